//! Malformed input is an error carrying the reason code the v5 spec names; the encoder
//! refuses invalid packets; v3 encodings drop v5-only fields.

use bytes::{Bytes, BytesMut};
use moco_codec::*;

fn dec(bytes: &[u8], v: ProtocolVersion) -> Result<Packet, DecodeError> {
    decode_packet(Bytes::copy_from_slice(bytes), v)
}

fn code(bytes: &[u8], v: ProtocolVersion) -> ReasonCode {
    match dec(bytes, v) {
        Ok(p) => panic!("expected an error, decoded {p:?}"),
        Err(e) => e.reason_code(),
    }
}

/// Builds a frame from a first byte and a body (remaining length computed).
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n & 0x7F) as u8;
        n >>= 7;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn enc(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let n = p.encode(v, &mut buf).expect("encode");
    assert_eq!(n, buf.len());
    assert_eq!(p.encoded_len(v).unwrap(), n);
    buf.to_vec()
}

const V3: ProtocolVersion = ProtocolVersion::V3;
const V4: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const MALFORMED: ReasonCode = ReasonCode::MalformedPacket;
const PROTOCOL: ReasonCode = ReasonCode::ProtocolError;

/// CONNECT v3.1.1 body with the given flags byte and payload.
fn connect_body(name: &[u8], level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, name.len() as u8];
    b.extend_from_slice(name);
    b.push(level);
    b.push(flags);
    b.extend_from_slice(&[0, 60]);
    if level == 5 {
        b.push(0); // empty properties
    }
    b.extend_from_slice(payload);
    b
}

// ---- fixed header ----------------------------------------------------------------------

#[test]
fn bad_fixed_header_flags() {
    assert_eq!(code(&[0x60, 0x02, 0x00, 0x01], V4), MALFORMED); // PUBREL flags 0000
    assert_eq!(
        code(&[0x80, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'], V4),
        MALFORMED
    ); // SUBSCRIBE
    assert_eq!(code(&[0xA0, 0x04, 0x00, 0x01, 0x00, 0x00], V4), MALFORMED); // UNSUBSCRIBE
    assert_eq!(code(&[0xC1, 0x00], V4), MALFORMED); // PINGREQ flags
    assert_eq!(code(&[0x42, 0x02, 0x00, 0x01], V4), MALFORMED); // PUBACK flags
    assert_eq!(code(&[0x00, 0x00], V4), MALFORMED); // reserved type 0
}

#[test]
fn publish_qos3_and_dup_on_qos0() {
    assert_eq!(code(&frame(0x36, &[0, 1, b'a', 0, 1]), V4), MALFORMED);
    assert_eq!(code(&frame(0x38, &[0, 1, b'a']), V4), MALFORMED);
}

#[test]
fn remaining_length_varint() {
    // 5-byte remaining length.
    let mut d = Decoder::with_version(0, V4);
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(d.decode(&mut buf).unwrap_err().reason_code(), MALFORMED);
    // Non-minimal encoding (0x80 0x00 for 0).
    assert_eq!(code(&[0xC0, 0x80, 0x00], V4), MALFORMED);
}

#[test]
fn packet_too_large_from_fixed_header_alone() {
    let mut d = Decoder::with_version(100, V4);
    // Remaining length 16,383: only the 3-byte fixed header is buffered.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0x7F][..]);
    let e = d.decode(&mut buf).unwrap_err();
    assert_eq!(e.reason_code(), ReasonCode::PacketTooLarge);
    assert_eq!(
        e,
        DecodeError::PacketTooLarge {
            size: 16_386,
            max: 100
        }
    );
    // Exactly at the limit is fine.
    let mut d = Decoder::with_version(5, V4);
    let mut buf = BytesMut::from(&[0x30, 0x03, 0x00, 0x01, b'a'][..]);
    assert!(d.decode(&mut buf).unwrap().is_some());
}

#[test]
fn prefixes_need_more_and_consume_nothing() {
    let p = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        packet_id: Some(7),
        ..Publish::new("a/b", Bytes::from_static(&[1; 300]))
    });
    let bytes = enc(&p, V5);
    for cut in 0..bytes.len() {
        let mut d = Decoder::with_version(0, V5);
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(d.decode(&mut buf).unwrap(), None, "prefix {cut}");
        assert_eq!(buf.len(), cut);
    }
    let mut d = Decoder::with_version(0, V5);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(d.decode(&mut buf).unwrap(), Some(p));
    assert!(buf.is_empty());
}

#[test]
fn only_connect_before_version_and_connect_adopts_it() {
    let mut d = Decoder::new(0);
    let mut buf = BytesMut::from(&[0xC0][..]);
    assert_eq!(d.decode(&mut buf).unwrap_err().reason_code(), PROTOCOL);

    let connect = Packet::from(Connect::new(V5, "c1"));
    let mut buf = BytesMut::from(&enc(&connect, V5)[..]);
    buf.extend_from_slice(&[0xC0, 0x00]);
    assert_eq!(d.decode(&mut buf).unwrap(), Some(connect));
    assert_eq!(d.version(), Some(V5));
    assert_eq!(d.decode(&mut buf).unwrap(), Some(Packet::PingReq));
}

#[test]
fn auth_not_valid_in_v3() {
    assert_eq!(code(&[0xF0, 0x00], V4), PROTOCOL);
    assert_eq!(
        dec(&[0xF0, 0x00], V5).unwrap(),
        Packet::Auth(Auth::default())
    );
}

// ---- CONNECT ---------------------------------------------------------------------------

#[test]
fn connect_reserved_flag_bit0() {
    let body = connect_body(b"MQTT", 4, 0x03, &[0, 0]);
    assert_eq!(code(&frame(0x10, &body), V4), MALFORMED);
    let ok = connect_body(b"MQTT", 4, 0x02, &[0, 0]);
    assert!(dec(&frame(0x10, &ok), V4).is_ok());
}

#[test]
fn connect_unsupported_protocol() {
    let uv = ReasonCode::UnsupportedProtocolVersion;
    assert_eq!(
        code(&frame(0x10, &connect_body(b"MQTT", 6, 2, &[0, 0])), V4),
        uv
    );
    assert_eq!(
        code(&frame(0x10, &connect_body(b"MQTT", 3, 2, &[0, 0])), V4),
        uv
    );
    assert_eq!(
        code(&frame(0x10, &connect_body(b"MQIsdp", 4, 2, &[0, 0])), V4),
        uv
    );
    assert_eq!(
        code(&frame(0x10, &connect_body(b"MQTX", 4, 2, &[0, 0])), V4),
        uv
    );
    let v3 = dec(
        &frame(0x10, &connect_body(b"MQIsdp", 3, 2, &[0, 1, b'x'])),
        V4,
    )
    .unwrap();
    assert!(matches!(v3, Packet::Connect(c) if c.protocol == V3 && c.client_id == "x"));
}

#[test]
fn connect_will_flags_without_will() {
    // will QoS 1 without will flag
    assert_eq!(
        code(&frame(0x10, &connect_body(b"MQTT", 4, 0x0A, &[0, 0])), V4),
        MALFORMED
    );
    // will retain without will flag
    assert_eq!(
        code(&frame(0x10, &connect_body(b"MQTT", 5, 0x22, &[0, 0])), V5),
        MALFORMED
    );
    // will QoS 3
    let will = [0, 0, 0, 1, b't', 0, 0];
    assert_eq!(
        code(&frame(0x10, &connect_body(b"MQTT", 4, 0x1E, &will)), V4),
        MALFORMED
    );
    // valid will QoS 1
    assert!(dec(&frame(0x10, &connect_body(b"MQTT", 4, 0x0E, &will)), V4).is_ok());
}

#[test]
fn connect_password_without_username_v311() {
    let payload = [0, 0, 0, 2, b'p', b'w'];
    assert_eq!(
        code(&frame(0x10, &connect_body(b"MQTT", 4, 0x42, &payload)), V4),
        MALFORMED
    );
    // allowed in v5
    assert!(dec(&frame(0x10, &connect_body(b"MQTT", 5, 0x42, &payload)), V5).is_ok());
}

#[test]
fn strings_invalid_utf8_or_nul() {
    let bad_utf8 = connect_body(b"MQTT", 4, 2, &[0, 2, 0xC3, 0x28]);
    assert_eq!(code(&frame(0x10, &bad_utf8), V4), MALFORMED);
    let surrogate = connect_body(b"MQTT", 4, 2, &[0, 3, 0xED, 0xA0, 0x80]);
    assert_eq!(code(&frame(0x10, &surrogate), V4), MALFORMED);
    let nul = connect_body(b"MQTT", 4, 2, &[0, 2, b'a', 0]);
    assert_eq!(code(&frame(0x10, &nul), V4), MALFORMED);
    // in a PUBLISH topic too
    assert_eq!(code(&frame(0x30, &[0, 2, b'a', 0]), V4), MALFORMED);
    assert_eq!(code(&frame(0x30, &[0, 2, 0xFF, b'a']), V4), MALFORMED);
}

#[test]
fn truncated_fields() {
    // topic length 5 but 1 byte present
    assert_eq!(code(&frame(0x30, &[0, 5, b'a']), V4), MALFORMED);
    // CONNECT cut inside the keep alive
    assert_eq!(
        code(&frame(0x10, &[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0]), V4),
        MALFORMED
    );
    // PUBACK with 1 byte
    assert_eq!(code(&frame(0x40, &[0]), V4), MALFORMED);
    // property length beyond the packet
    assert_eq!(code(&frame(0x30, &[0, 1, b'a', 9, 1]), V5), MALFORMED);
    // property value cut
    assert_eq!(
        code(&frame(0x30, &[0, 1, b'a', 3, 0x02, 0, 0]), V5),
        MALFORMED
    );
}

#[test]
fn trailing_bytes() {
    assert_eq!(code(&frame(0x40, &[0, 1, 0]), V4), MALFORMED); // v3 PUBACK is 2 bytes
    assert_eq!(code(&frame(0xC0, &[0]), V4), MALFORMED);
    assert_eq!(code(&frame(0xE0, &[0]), V4), MALFORMED); // v3 DISCONNECT has no body
    assert_eq!(code(&frame(0x20, &[0, 0, 0]), V4), MALFORMED);
    let mut c = connect_body(b"MQTT", 4, 2, &[0, 0]);
    c.push(0xAA);
    assert_eq!(code(&frame(0x10, &c), V4), MALFORMED);
    // v5 ack: props section followed by junk
    assert_eq!(code(&frame(0x40, &[0, 1, 0, 0, 0xAA]), V5), MALFORMED);
}

// ---- properties ------------------------------------------------------------------------

#[test]
fn duplicate_property_is_protocol_error() {
    let body = [0, 1, b'a', 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2];
    assert_eq!(code(&frame(0x30, &body), V5), PROTOCOL);
    // user properties may repeat
    let body = [
        0, 1, b'a', 10, 0x26, 0, 1, b'k', 0, 0, 0x26, 0, 1, b'k', 0, 0,
    ];
    let body = {
        let mut b = body.to_vec();
        b[3] = 12;
        b
    };
    let p = dec(&frame(0x30, &body), V5).unwrap();
    let Packet::Publish(p) = p else { panic!() };
    assert_eq!(p.properties.user_properties.len(), 2);
    // subscription identifiers may repeat in PUBLISH but not in SUBSCRIBE
    let body = [0, 1, b'a', 4, 0x0B, 1, 0x0B, 2];
    let Packet::Publish(p) = dec(&frame(0x30, &body), V5).unwrap() else {
        panic!()
    };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 2]);
    let body = [0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0];
    assert_eq!(code(&frame(0x82, &body), V5), PROTOCOL);
}

#[test]
fn wrong_property_for_packet_is_malformed() {
    // Session Expiry Interval in PUBLISH
    let body = [0, 1, b'a', 5, 0x11, 0, 0, 0, 1];
    assert_eq!(code(&frame(0x30, &body), V5), MALFORMED);
    // Will Delay Interval in CONNECT properties
    let mut c = vec![
        0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 0,
    ];
    assert_eq!(code(&frame(0x10, &c), V5), MALFORMED);
    // Topic Alias in SUBACK
    assert_eq!(code(&frame(0x90, &[0, 1, 3, 0x23, 0, 1, 0]), V5), MALFORMED);
    // unknown property id 0x7F
    assert_eq!(code(&frame(0x30, &[0, 1, b'a', 2, 0x7F, 0]), V5), MALFORMED);
    c.clear();
}

#[test]
fn property_table() {
    use PropertyId as P;
    assert!(P::TopicAlias.allowed_in(PacketType::Publish));
    assert!(!P::TopicAlias.allowed_in(PacketType::Connect));
    assert!(P::WillDelayInterval.allowed_in_will());
    assert!(!P::WillDelayInterval.allowed_in(PacketType::Connect));
    assert!(P::ReasonString.allowed_in(PacketType::UnsubAck));
    assert!(!P::ReasonString.allowed_in(PacketType::Publish));
    assert!(P::UserProperty.allowed_in(PacketType::Auth));
    assert_eq!(
        P::SubscriptionIdentifier.wire_type(),
        PropertyType::VariableByteInteger
    );
    assert_eq!(P::UserProperty.wire_type(), PropertyType::Utf8StringPair);
    assert_eq!(P::ALL.len(), 27);
}

#[test]
fn property_values() {
    // Topic Alias 0
    let body = [0, 1, b'a', 3, 0x23, 0, 0];
    assert_eq!(code(&frame(0x30, &body), V5), ReasonCode::TopicAliasInvalid);
    // Payload Format Indicator 2
    assert_eq!(code(&frame(0x30, &[0, 1, b'a', 2, 0x01, 2]), V5), PROTOCOL);
    // Subscription Identifier 0
    assert_eq!(code(&frame(0x30, &[0, 1, b'a', 2, 0x0B, 0]), V5), PROTOCOL);
    // Receive Maximum 0 in CONNECT
    let c = [
        0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 3, 0x21, 0, 0, 0, 0,
    ];
    assert_eq!(code(&frame(0x10, &c), V5), PROTOCOL);
    // Authentication Data without Method
    let c = [
        0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 3, 0x16, 0, 0, 0, 0,
    ];
    assert_eq!(code(&frame(0x10, &c), V5), PROTOCOL);
    // Maximum QoS 2 in CONNACK
    assert_eq!(code(&frame(0x20, &[0, 0, 2, 0x24, 2]), V5), PROTOCOL);
}

// ---- PUBLISH ---------------------------------------------------------------------------

#[test]
fn publish_topic_rules() {
    assert_eq!(
        code(&frame(0x30, &[0, 3, b'a', b'/', b'+']), V4),
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(
        code(&frame(0x30, &[0, 1, b'#']), V4),
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(code(&frame(0x30, &[0, 0]), V4), PROTOCOL); // empty topic
    assert_eq!(code(&frame(0x30, &[0, 0, 0]), V5), PROTOCOL); // empty, no alias
    let Packet::Publish(p) = dec(&frame(0x30, &[0, 0, 3, 0x23, 0, 9, b'x']), V5).unwrap() else {
        panic!()
    };
    assert_eq!(p.properties.topic_alias, Some(9));
    assert_eq!(&p.payload[..], b"x");
}

#[test]
fn packet_id_zero_is_protocol_error() {
    // §2.2.1: SUBSCRIBE, UNSUBSCRIBE and QoS>0 PUBLISH MUST carry a non-zero packet id
    // [MQTT-2.2.1-3]; the packet parses, so the spec's category is Protocol Error (0x82).
    assert_eq!(code(&frame(0x32, &[0, 1, b'a', 0, 0]), V4), PROTOCOL);
    assert_eq!(code(&frame(0x82, &[0, 0, 0, 1, b'a', 0]), V4), PROTOCOL);
    assert_eq!(code(&frame(0xA2, &[0, 0, 0, 1, b'a']), V4), PROTOCOL);
    assert_eq!(code(&frame(0x40, &[0, 0]), V4), PROTOCOL);
    assert_eq!(code(&frame(0x62, &[0, 0]), V5), PROTOCOL);
}

#[test]
fn publish_zero_copy() {
    let bytes = Bytes::from(frame(0x30, &[0, 3, b'a', b'/', b'b', 1, 2, 3]));
    let Packet::Publish(p) = decode_packet(bytes.clone(), V4).unwrap() else {
        panic!()
    };
    let base = bytes.as_ptr() as usize;
    let range = base..base + bytes.len();
    assert!(range.contains(&(p.payload.as_ptr() as usize)));
    assert!(range.contains(&(p.topic.as_bytes().as_ptr() as usize)));
}

// ---- SUBSCRIBE / UNSUBSCRIBE -----------------------------------------------------------

#[test]
fn empty_subscribe_and_unsubscribe() {
    assert_eq!(code(&frame(0x82, &[0, 1]), V4), PROTOCOL);
    assert_eq!(code(&frame(0x82, &[0, 1, 0]), V5), PROTOCOL);
    assert_eq!(code(&frame(0xA2, &[0, 1]), V4), PROTOCOL);
    assert_eq!(code(&frame(0xA2, &[0, 1, 0]), V5), PROTOCOL);
    assert_eq!(code(&frame(0x90, &[0, 1]), V4), PROTOCOL); // SUBACK without codes
    assert_eq!(code(&frame(0xB0, &[0, 1, 0]), V5), PROTOCOL); // v5 UNSUBACK without codes
}

#[test]
fn subscription_option_bits() {
    let sub = |opts: u8, v: ProtocolVersion| {
        let body: Vec<u8> = if v == V5 {
            vec![0, 1, 0, 0, 1, b'a', opts]
        } else {
            vec![0, 1, 0, 1, b'a', opts]
        };
        dec(&frame(0x82, &body), v)
    };
    assert_eq!(sub(0x40, V5).unwrap_err().reason_code(), MALFORMED); // reserved bit 6
    assert_eq!(sub(0x80, V5).unwrap_err().reason_code(), MALFORMED); // reserved bit 7
    assert_eq!(sub(0x03, V5).unwrap_err().reason_code(), MALFORMED); // QoS 3
    assert_eq!(sub(0x30, V5).unwrap_err().reason_code(), PROTOCOL); // retain handling 3
    assert_eq!(sub(0x04, V4).unwrap_err().reason_code(), MALFORMED); // v3: bits 2-7 reserved
    assert_eq!(sub(0x03, V4).unwrap_err().reason_code(), MALFORMED);
    let Packet::Subscribe(s) = sub(0x2E, V5).unwrap() else {
        panic!()
    };
    assert_eq!(
        s.filters[0].1,
        SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        }
    );
}

// ---- reason codes ----------------------------------------------------------------------

#[test]
fn reason_codes() {
    assert_eq!(
        ReasonCode::try_from(0x95).unwrap(),
        ReasonCode::PacketTooLarge
    );
    assert!(ReasonCode::try_from(0x03).is_err());
    assert!(ReasonCode::NotAuthorized.is_error());
    assert!(!ReasonCode::GrantedQoS2.is_error());
    assert_eq!(ReasonCode::NormalDisconnection, ReasonCode::Success);
    assert_eq!(ReasonCode::ALL.len(), 43);
    for &rc in ReasonCode::ALL {
        assert_eq!(ReasonCode::try_from(rc as u8).unwrap(), rc);
    }
    // unknown code → malformed, known but misplaced → protocol error
    assert_eq!(code(&frame(0x40, &[0, 1, 0x03]), V5), MALFORMED);
    assert_eq!(code(&frame(0x40, &[0, 1, 0x92]), V5), PROTOCOL);
    assert_eq!(code(&frame(0xE0, &[0x18]), V5), PROTOCOL);
    let e: ReasonCode = DecodeError::Malformed("x").into();
    assert_eq!(e, MALFORMED);
}

// ---- encoder refusals ------------------------------------------------------------------

fn enc_err(p: Packet, v: ProtocolVersion) -> EncodeError {
    let mut buf = BytesMut::new();
    let e = p.encode(v, &mut buf).unwrap_err();
    assert!(buf.is_empty(), "nothing written on error");
    assert_eq!(p.encoded_len(v).unwrap_err(), e);
    e
}

#[test]
fn encoder_refuses_invalid_packets() {
    let qos1 = Publish {
        qos: QoS::AtLeastOnce,
        ..Publish::new("a", "x")
    };
    assert_eq!(
        enc_err(Packet::Publish(qos1.clone()), V4),
        EncodeError::PacketIdMismatch
    );
    let p = Publish {
        packet_id: Some(0),
        ..qos1.clone()
    };
    assert_eq!(enc_err(Packet::Publish(p), V4), EncodeError::ZeroPacketId);
    let p = Publish {
        packet_id: Some(1),
        ..Publish::new("a", "x")
    };
    assert_eq!(
        enc_err(Packet::Publish(p), V4),
        EncodeError::PacketIdMismatch
    );
    let p = Publish {
        dup: true,
        ..Publish::new("a", "x")
    };
    assert!(matches!(
        enc_err(Packet::Publish(p), V4),
        EncodeError::Invalid(_)
    ));
    for t in ["a/+", "#", "", "a\0b"] {
        let e = enc_err(Packet::Publish(Publish::new(t, "x")), V5);
        assert!(
            matches!(e, EncodeError::TopicNameInvalid(_)),
            "{t:?}: {e:?}"
        );
        assert_eq!(e.reason_code(), ReasonCode::TopicNameInvalid);
    }
    let sub = Subscribe {
        packet_id: 1,
        filters: vec![],
        properties: Default::default(),
    };
    assert_eq!(
        enc_err(Packet::Subscribe(sub), V4),
        EncodeError::EmptyList(PacketType::Subscribe)
    );
    let unsub = Unsubscribe {
        packet_id: 1,
        filters: vec![],
        properties: Default::default(),
    };
    assert_eq!(
        enc_err(Packet::Unsubscribe(unsub), V5),
        EncodeError::EmptyList(PacketType::Unsubscribe)
    );
    let long = "x".repeat(65_536);
    let e = enc_err(Packet::from(Connect::new(V4, long.as_str())), V4);
    assert!(matches!(e, EncodeError::StringInvalid(_)));
    let big = Publish::new("a", Bytes::from(vec![0u8; 268_435_456]));
    assert!(matches!(
        enc_err(Packet::Publish(big), V4),
        EncodeError::PacketTooLarge(_)
    ));
    assert_eq!(
        enc_err(Packet::Auth(Auth::default()), V4),
        EncodeError::UnsupportedInVersion(PacketType::Auth, V4)
    );
    let mut c = Connect::new(V4, "c");
    c.password = Some(Bytes::from_static(b"pw"));
    assert!(matches!(
        enc_err(Packet::from(c.clone()), V4),
        EncodeError::Invalid(_)
    ));
    c.protocol = V5;
    assert!(Packet::from(c.clone())
        .encode(V5, &mut BytesMut::new())
        .is_ok());
    assert_eq!(
        enc_err(Packet::from(c), V4),
        EncodeError::VersionMismatch(V5, V4)
    );
    // property values
    let mut p = Publish::new("a", "x");
    p.properties.subscription_identifiers = vec![0];
    assert_eq!(
        enc_err(Packet::Publish(p.clone()), V5),
        EncodeError::InvalidProperty(PropertyId::SubscriptionIdentifier)
    );
    p.properties.subscription_identifiers = vec![];
    p.properties.topic_alias = Some(0);
    assert_eq!(
        enc_err(Packet::Publish(p), V5),
        EncodeError::InvalidProperty(PropertyId::TopicAlias)
    );
    let mut ca = ConnAck::default();
    ca.properties.maximum_qos = Some(QoS::ExactlyOnce);
    assert_eq!(
        enc_err(Packet::from(ca), V5),
        EncodeError::InvalidProperty(PropertyId::MaximumQoS)
    );
    // reason code not allowed in the packet
    let ack = PubAck {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..PubAck::new(1)
    };
    assert!(matches!(
        enc_err(Packet::PubAck(ack), V5),
        EncodeError::InvalidReasonCode(..)
    ));
    let ca = ConnAck {
        session_present: true,
        reason_code: ReasonCode::NotAuthorized,
        ..Default::default()
    };
    assert!(matches!(
        enc_err(Packet::from(ca), V5),
        EncodeError::Invalid(_)
    ));
}

// ---- v3 drops v5-only fields -----------------------------------------------------------

#[test]
fn v3_encoding_drops_v5_fields() {
    let mut ack = PubAck {
        reason_code: ReasonCode::QuotaExceeded,
        ..PubAck::new(5)
    };
    ack.properties.reason_string = Some("full".into());
    assert_eq!(enc(&Packet::PubAck(ack.clone()), V4), [0x40, 2, 0, 5]);
    assert_eq!(
        enc(&Packet::PubAck(ack), V5),
        [0x40, 11, 0, 5, 0x97, 7, 0x1F, 0, 4, b'f', b'u', b'l', b'l']
    );
    assert_eq!(enc(&Packet::PubAck(PubAck::new(5)), V5), [0x40, 2, 0, 5]);

    let sa = SubAck {
        packet_id: 1,
        reason_codes: vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::NotAuthorized,
            ReasonCode::QuotaExceeded,
        ],
        properties: Default::default(),
    };
    assert_eq!(enc(&Packet::SubAck(sa), V4), [0x90, 5, 0, 1, 1, 0x80, 0x80]);

    let d = Disconnect::new(ReasonCode::ServerShuttingDown);
    assert_eq!(enc(&Packet::Disconnect(d.clone()), V4), [0xE0, 0]);
    assert_eq!(enc(&Packet::Disconnect(d), V5), [0xE0, 1, 0x8B]);
    assert_eq!(
        enc(&Packet::Disconnect(Disconnect::default()), V5),
        [0xE0, 0]
    );

    let ua = UnsubAck {
        packet_id: 3,
        reason_codes: vec![ReasonCode::NoSubscriptionExisted],
        properties: Default::default(),
    };
    assert_eq!(enc(&Packet::UnsubAck(ua), V4), [0xB0, 2, 0, 3]);

    let mut p = Publish::new("t", "x");
    p.properties.message_expiry_interval = Some(1);
    assert_eq!(enc(&Packet::Publish(p), V4), [0x30, 4, 0, 1, b't', b'x']);
}

#[test]
fn v3_connack_return_codes() {
    let cases = [
        (ReasonCode::Success, 0),
        (ReasonCode::UnsupportedProtocolVersion, 1),
        (ReasonCode::ClientIdentifierNotValid, 2),
        (ReasonCode::ServerUnavailable, 3),
        (ReasonCode::ServerBusy, 3),
        (ReasonCode::BadUserNameOrPassword, 4),
        (ReasonCode::BadAuthenticationMethod, 4),
        (ReasonCode::NotAuthorized, 5),
        (ReasonCode::Banned, 5),
        (ReasonCode::UnspecifiedError, 3),
    ];
    for (rc, v3) in cases {
        let ca = ConnAck {
            reason_code: rc,
            ..Default::default()
        };
        assert_eq!(enc(&Packet::from(ca), V4), [0x20, 2, 0, v3], "{rc:?}");
    }
    let Packet::ConnAck(ca) = dec(&[0x20, 2, 1, 0], V4).unwrap() else {
        panic!()
    };
    assert!(ca.session_present);
    let Packet::ConnAck(ca) = dec(&[0x20, 2, 0, 4], V4).unwrap() else {
        panic!()
    };
    assert_eq!(ca.reason_code, ReasonCode::BadUserNameOrPassword);
    assert_eq!(code(&[0x20, 2, 0, 6], V4), MALFORMED);
    assert_eq!(code(&[0x20, 2, 2, 0], V4), MALFORMED); // reserved ack flag
                                                       // v3.0 CONNACK: no session-present bit, the flags byte is ignored
    let ca = ConnAck {
        session_present: true,
        ..Default::default()
    };
    assert_eq!(enc(&Packet::from(ca), V3), [0x20, 2, 0, 0]);
}

#[test]
fn v3_connect_bytes() {
    let c = Connect {
        keep_alive: 10,
        ..Connect::new(V3, "id")
    };
    assert_eq!(
        enc(&Packet::from(c.clone()), V3),
        [0x10, 16, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 10, 0, 2, b'i', b'd']
    );
    assert_eq!(
        dec(&enc(&Packet::from(c.clone()), V3), V3).unwrap(),
        Packet::from(c)
    );
}
