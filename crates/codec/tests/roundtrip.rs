//! Property tests: decode(encode(p)) == p for every packet type and protocol level; any split
//! of a stream decodes the same; random bytes never panic nor decode to garbage.

use bytes::{Bytes, BytesMut};
use moco_codec::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop::sample::select(&VERSIONS[..])
}

fn string() -> impl Strategy<Value = ByteString> {
    "[^\u{0}]{0,12}".prop_map(ByteString::from)
}

fn topic() -> impl Strategy<Value = ByteString> {
    "[a-z0-9/ é€$]{1,16}".prop_map(ByteString::from)
}

fn filter() -> impl Strategy<Value = ByteString> {
    prop_oneof!["[a-z0-9/+#]{1,16}", Just("$share/g/a/#".to_string())].prop_map(ByteString::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn pkid() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn user() -> impl Strategy<Value = UserProperties> {
    vec((string(), string()), 0..3)
}

fn sub_id() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..200, 1u32..=268_435_455]
}

fn reason_in(t: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = ReasonCode::ALL
        .iter()
        .copied()
        .filter(|rc| rc.allowed_in(t))
        .collect();
    prop::sample::select(codes)
}

fn ack_props(v: ProtocolVersion) -> BoxedStrategy<AckProperties> {
    if !v.is_v5() {
        return Just(AckProperties::default()).boxed();
    }
    (of(string()), user())
        .prop_map(|(reason_string, user_properties)| AckProperties {
            reason_string,
            user_properties,
        })
        .boxed()
}

fn will_props(v: ProtocolVersion) -> BoxedStrategy<WillProperties> {
    if !v.is_v5() {
        return Just(WillProperties::default()).boxed();
    }
    (
        of(any::<u32>()),
        of(any::<bool>()),
        of(any::<u32>()),
        of(string()),
        of(topic()),
        of(binary()),
        user(),
    )
        .prop_map(|(d, pf, me, ct, rt, cd, up)| WillProperties {
            will_delay_interval: d,
            payload_format_indicator: pf,
            message_expiry_interval: me,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
        })
        .boxed()
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = if v.is_v5() {
        (
            of(any::<u32>()),
            of(1..=u16::MAX),
            of(1..=u32::MAX),
            of(any::<u16>()),
            of(any::<bool>()),
            of(any::<bool>()),
            user(),
            of((string(), of(binary()))),
        )
            .prop_map(|(se, rm, mps, tam, rri, rpi, up, auth)| ConnectProperties {
                session_expiry_interval: se,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: up,
                authentication_method: auth.as_ref().map(|a| a.0.clone()),
                authentication_data: auth.and_then(|a| a.1),
            })
            .boxed()
    } else {
        Just(ConnectProperties::default()).boxed()
    };
    let will = (topic(), binary(), qos(), any::<bool>(), will_props(v)).prop_map(
        |(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    );
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        of(string()),
        of(binary()),
        of(will),
        props,
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, username, password, will, properties)| {
                // v3.x: a password needs a user name.
                let username = if !v.is_v5() && password.is_some() && username.is_none() {
                    Some(ByteString::from_static("u"))
                } else {
                    username
                };
                Packet::from(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    username,
                    password,
                    will,
                    properties,
                })
            },
        )
}

fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let rc: BoxedStrategy<ReasonCode> = if v.is_v5() {
        reason_in(PacketType::ConnAck).boxed()
    } else {
        prop::sample::select(
            (0..=5u8)
                .filter_map(ReasonCode::from_v3_connack)
                .collect::<Vec<_>>(),
        )
        .boxed()
    };
    let props = if v.is_v5() {
        (
            (
                of(any::<u32>()),
                of(1..=u16::MAX),
                of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
                of(any::<bool>()),
                of(1..=u32::MAX),
                of(string()),
            ),
            (
                of(any::<u16>()),
                of(string()),
                user(),
                of(any::<bool>()),
                of(any::<bool>()),
                of(any::<bool>()),
            ),
            (
                of(any::<u16>()),
                of(string()),
                of(string()),
                of((string(), of(binary()))),
            ),
        )
            .prop_map(
                |(
                    (se, rm, mq, ra, mps, aci),
                    (tam, rs, up, wsa, sia, ssa),
                    (ska, ri, sr, auth),
                )| {
                    ConnAckProperties {
                        session_expiry_interval: se,
                        receive_maximum: rm,
                        maximum_qos: mq,
                        retain_available: ra,
                        maximum_packet_size: mps,
                        assigned_client_identifier: aci,
                        topic_alias_maximum: tam,
                        reason_string: rs,
                        user_properties: up,
                        wildcard_subscription_available: wsa,
                        subscription_identifiers_available: sia,
                        shared_subscription_available: ssa,
                        server_keep_alive: ska,
                        response_information: ri,
                        server_reference: sr,
                        authentication_method: auth.as_ref().map(|a| a.0.clone()),
                        authentication_data: auth.and_then(|a| a.1),
                    }
                },
            )
            .boxed()
    } else {
        Just(ConnAckProperties::default()).boxed()
    };
    (any::<bool>(), rc, props).prop_map(move |(sp, reason_code, properties)| {
        Packet::from(ConnAck {
            session_present: sp && !reason_code.is_error() && v != ProtocolVersion::V3,
            reason_code,
            properties,
        })
    })
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = if v.is_v5() {
        (
            of(any::<bool>()),
            of(any::<u32>()),
            of(1..=u16::MAX),
            of(topic()),
            of(binary()),
            user(),
            vec(sub_id(), 0..3),
            of(string()),
        )
            .prop_map(|(pf, me, ta, rt, cd, up, si, ct)| PublishProperties {
                payload_format_indicator: pf,
                message_expiry_interval: me,
                topic_alias: ta,
                response_topic: rt,
                correlation_data: cd,
                user_properties: up,
                subscription_identifiers: si,
                content_type: ct,
            })
            .boxed()
    } else {
        Just(PublishProperties::default()).boxed()
    };
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic(),
        pkid(),
        vec(any::<u8>(), 0..200),
        props,
        any::<bool>(),
    )
        .prop_map(
            |(qos, dup, retain, topic, id, payload, properties, empty_topic)| {
                let topic = if empty_topic && properties.topic_alias.is_some() {
                    ByteString::new()
                } else {
                    topic
                };
                Packet::Publish(Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic,
                    packet_id: (qos != QoS::AtMostOnce).then_some(id),
                    payload: Bytes::from(payload),
                    properties,
                })
            },
        )
}

fn ack(v: ProtocolVersion, t: PacketType) -> impl Strategy<Value = Packet> {
    let rc = if v.is_v5() {
        reason_in(t).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    (pkid(), rc, ack_props(v)).prop_map(move |(packet_id, reason_code, properties)| match t {
        PacketType::PubAck => Packet::PubAck(PubAck {
            packet_id,
            reason_code,
            properties,
        }),
        PacketType::PubRec => Packet::PubRec(PubRec {
            packet_id,
            reason_code,
            properties,
        }),
        PacketType::PubRel => Packet::PubRel(PubRel {
            packet_id,
            reason_code,
            properties,
        }),
        _ => Packet::PubComp(PubComp {
            packet_id,
            reason_code,
            properties,
        }),
    })
}

fn options(v: ProtocolVersion) -> impl Strategy<Value = SubscriptionOptions> {
    let rh = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendAtSubscribeIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    (qos(), any::<bool>(), any::<bool>(), rh).prop_map(move |(qos, nl, rap, rh)| {
        if v.is_v5() {
            SubscriptionOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubscriptionOptions::new(qos)
        }
    })
}

fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = if v.is_v5() {
        (of(sub_id()), user())
            .prop_map(|(s, u)| SubscribeProperties {
                subscription_identifier: s,
                user_properties: u,
            })
            .boxed()
    } else {
        Just(SubscribeProperties::default()).boxed()
    };
    (pkid(), vec((filter(), options(v)), 1..4), props).prop_map(
        |(packet_id, filters, properties)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        },
    )
}

fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let rc = if v.is_v5() {
        reason_in(PacketType::SubAck).boxed()
    } else {
        prop::sample::select(vec![
            ReasonCode::GrantedQoS0,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ])
        .boxed()
    };
    (pkid(), vec(rc, 1..5), ack_props(v)).prop_map(|(packet_id, reason_codes, properties)| {
        Packet::SubAck(SubAck {
            packet_id,
            reason_codes,
            properties,
        })
    })
}

fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = if v.is_v5() {
        user()
            .prop_map(|u| UnsubscribeProperties { user_properties: u })
            .boxed()
    } else {
        Just(UnsubscribeProperties::default()).boxed()
    };
    (pkid(), vec(filter(), 1..4), props).prop_map(|(packet_id, filters, properties)| {
        Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters,
            properties,
        })
    })
}

fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if v.is_v5() {
        vec(reason_in(PacketType::UnsubAck), 1..5).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (pkid(), codes, ack_props(v)).prop_map(|(packet_id, reason_codes, properties)| {
        Packet::UnsubAck(UnsubAck {
            packet_id,
            reason_codes,
            properties,
        })
    })
}

fn disconnect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    if !v.is_v5() {
        return Just(Packet::Disconnect(Disconnect::default())).boxed();
    }
    let props =
        (of(any::<u32>()), of(string()), user(), of(string())).prop_map(|(se, rs, up, sr)| {
            DisconnectProperties {
                session_expiry_interval: se,
                reason_string: rs,
                user_properties: up,
                server_reference: sr,
            }
        });
    (reason_in(PacketType::Disconnect), props)
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        })
        .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    let props = (of((string(), of(binary()))), of(string()), user()).prop_map(|(a, rs, up)| {
        AuthProperties {
            authentication_method: a.as_ref().map(|a| a.0.clone()),
            authentication_data: a.and_then(|a| a.1),
            reason_string: rs,
            user_properties: up,
        }
    });
    (reason_in(PacketType::Auth), props).prop_map(|(reason_code, properties)| {
        Packet::Auth(Auth {
            reason_code,
            properties,
        })
    })
}

/// Any packet valid for protocol `v`.
fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(v),
        connack(v),
        publish(v),
        publish(v),
        ack(v, PacketType::PubAck),
        ack(v, PacketType::PubRec),
        ack(v, PacketType::PubRel),
        ack(v, PacketType::PubComp),
        subscribe(v),
        suback(v),
        unsubscribe(v),
        unsuback(v),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(v),
    ];
    if v.is_v5() {
        prop_oneof![10 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v)))
}

fn versioned_stream() -> impl Strategy<Value = (ProtocolVersion, Vec<Packet>)> {
    version().prop_flat_map(|v| (Just(v), vec(packet(v), 1..6)))
}

fn encode(p: &Packet, v: ProtocolVersion) -> Bytes {
    let mut buf = BytesMut::new();
    let n = p
        .encode(v, &mut buf)
        .unwrap_or_else(|e| panic!("encode {p:?}: {e}"));
    assert_eq!(n, buf.len());
    assert_eq!(p.encoded_len(v).unwrap(), n);
    buf.freeze()
}

/// Decodes every packet in `buf`, asserting each decoded packet re-encodes consistently.
fn drain(d: &mut Decoder, buf: &mut BytesMut, out: &mut Vec<Packet>) -> Result<(), DecodeError> {
    while let Some(p) = d.decode(buf)? {
        out.push(p);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip((v, p) in versioned_packet()) {
        let bytes = encode(&p, v);
        let decoded = decode_packet(bytes.clone(), v).unwrap_or_else(|e| panic!("decode {p:?}: {e}"));
        prop_assert_eq!(&decoded, &p);
        // Re-encoding the decoded packet gives the same bytes.
        prop_assert_eq!(encode(&decoded, v), bytes);
    }

    #[test]
    fn stream_split_anywhere((v, packets) in versioned_stream(), split in any::<prop::sample::Index>()) {
        let mut all = BytesMut::new();
        for p in &packets {
            p.encode(v, &mut all).unwrap();
        }
        let cut = split.index(all.len() + 1);
        let mut d = Decoder::with_version(0, v);
        let mut buf = BytesMut::from(&all[..cut]);
        let mut out = Vec::new();
        drain(&mut d, &mut buf, &mut out).unwrap();
        buf.extend_from_slice(&all[cut..]);
        drain(&mut d, &mut buf, &mut out).unwrap();
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, packets);
    }

    #[test]
    fn random_bytes_never_panic(v in version(), bytes in vec(any::<u8>(), 0..256), known in any::<bool>()) {
        let mut d = if known { Decoder::with_version(1024, v) } else { Decoder::new(1024) };
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.len();
            match d.decode(&mut buf) {
                Ok(Some(p)) => {
                    // A decoded packet consumed exactly its frame, and round-trips.
                    let consumed = before - buf.len();
                    let frame = Bytes::copy_from_slice(&bytes[bytes.len() - before..][..consumed]);
                    let pv = d.version().unwrap();
                    prop_assert_eq!(&decode_packet(frame, pv).unwrap(), &p);
                    if let Ok(re) = p.to_bytes(pv) {
                        prop_assert_eq!(decode_packet(re, pv).unwrap(), p);
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        let _ = decode_packet(Bytes::from(bytes), v);
    }

    #[test]
    fn mutated_packets_never_panic((v, p) in versioned_packet(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = encode(&p, v).to_vec();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        if let Ok(q) = decode_packet(Bytes::from(bytes), v) {
            if let Ok(re) = q.to_bytes(v) {
                prop_assert_eq!(decode_packet(re, v).unwrap(), q);
            }
        }
    }

    #[test]
    fn trailing_garbage_is_rejected((v, p) in versioned_packet(), garbage in vec(any::<u8>(), 1..8)) {
        let bytes = encode(&p, v);
        // After the frame: decode_packet refuses, the Decoder leaves it in the buffer.
        let mut long = bytes.to_vec();
        long.extend_from_slice(&garbage);
        prop_assert!(decode_packet(Bytes::from(long.clone()), v).is_err());
        let mut d = Decoder::with_version(0, v);
        let mut buf = BytesMut::from(&long[..]);
        prop_assert_eq!(d.decode(&mut buf).unwrap(), Some(p.clone()));
        prop_assert_eq!(&buf[..], &garbage[..]);
        // Inside the frame (remaining length grown) for packets whose body is self-delimiting.
        let self_delimiting = match &p {
            Packet::Connect(_) | Packet::PingReq | Packet::PingResp => true,
            Packet::ConnAck(_) | Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_)
            | Packet::PubComp(_) | Packet::UnsubAck(_) | Packet::Disconnect(_) => !v.is_v5(),
            _ => false,
        };
        if self_delimiting {
            let body = &bytes[if bytes[1] & 0x80 == 0 { 2 } else { 3 }..];
            let mut grown = vec![bytes[0]];
            let n = body.len() + garbage.len();
            prop_assume!(n < 16_384);
            if n < 128 { grown.push(n as u8) } else { grown.extend_from_slice(&[(n as u8) | 0x80, (n >> 7) as u8]) }
            grown.extend_from_slice(body);
            grown.extend_from_slice(&garbage);
            let e = decode_packet(Bytes::from(grown), v).unwrap_err();
            prop_assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
        }
    }
}
