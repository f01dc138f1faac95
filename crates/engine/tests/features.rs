//! Protocol features end to end over TCP: retained, wills, subscription options, shared
//! subscriptions, properties, offline queue, expiry, ordering, v3/v5 downgrade.

use std::time::Duration;

use moco_codec::{LastWill, Packet, ProtocolVersion, ReasonCode, RetainHandling};
use moco_engine::{Capabilities, Options};
use moco_test_support::*;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V311;

fn with_rh(mut s: moco_codec::Subscribe, rh: RetainHandling) -> moco_codec::Subscribe {
    s.filters[0].1.retain_handling = rh;
    s
}

#[tokio::test]
async fn retained_set_delivered_and_cleared() {
    let (server, addr) = start(Options::default()).await;
    let mut p = Raw::v5(addr, "rp").await;
    let mut m = publish("r/1", 1, Some(1), b"keep");
    m.retain = true;
    p.send_publish(m).await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));

    let mut s = Raw::v5(addr, "rs").await;
    let mut sb = subscribe(1, "r/+", 1);
    sb.properties.subscription_identifier = Some(42);
    assert_eq!(s.sub(sb).await, vec![ReasonCode::GrantedQoS1]);
    let got = s.expect_publish().await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"keep");
    assert_eq!(got.properties.subscription_identifiers, vec![42]);
    s.puback(&got).await;
    // A live message carries the identifier too, and RETAIN cleared (not retain-as-published).
    let mut again = publish("r/1", 1, Some(2), b"keep2");
    again.retain = true;
    p.send_publish(again).await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    let live = s.expect_publish().await;
    assert!(!live.retain);
    assert_eq!(live.properties.subscription_identifiers, vec![42]);
    s.puback(&live).await;

    // Retain handling 2: never; 1: only for a new subscription.
    assert_eq!(
        s.sub(with_rh(subscribe(2, "r/#", 0), RetainHandling::DoNotSend))
            .await,
        vec![ReasonCode::GrantedQoS0]
    );
    s.expect_quiet().await;
    assert_eq!(
        s.sub(with_rh(
            subscribe(3, "r/+", 0),
            RetainHandling::SendAtSubscribeIfNew
        ))
        .await,
        vec![ReasonCode::GrantedQoS0]
    );
    s.expect_quiet().await;

    // Clear it with an empty retained payload: a new subscriber gets nothing.
    let mut clear = publish("r/1", 0, None, b"");
    clear.retain = true;
    p.send_publish(clear).await;
    // The live subscriber sees the clearing message itself.
    let live = s.expect_publish().await;
    assert!(live.payload.is_empty());
    let mut s2 = Raw::v5(addr, "rs2").await;
    s2.sub(subscribe(1, "r/#", 0)).await;
    s2.expect_quiet().await;
    server.shutdown().await;
}

fn will_connect(id: &str, delay: Option<u32>) -> moco_codec::Connect {
    let mut c = connect_packet(id, V5, 0, true);
    let mut w = LastWill {
        topic: "will/t".into(),
        payload: bytes::Bytes::from_static(b"gone"),
        qos: moco_codec::QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    };
    w.properties.content_type = Some("text/plain".into());
    w.properties.user_properties = vec![("k".into(), "v".into())];
    w.properties.will_delay_interval = delay;
    c.will = Some(w);
    c
}

#[tokio::test]
async fn will_on_abrupt_close_with_properties_not_on_normal_disconnect() {
    let (server, addr) = start(Options::default()).await;
    let mut s = Raw::v5(addr, "ws").await;
    s.sub(subscribe(1, "will/#", 1)).await;

    let (w, _) = Raw::connect(addr, will_connect("w1", None)).await;
    drop(w);
    let got = s.expect_publish().await;
    assert_eq!(&got.payload[..], b"gone");
    assert_eq!(got.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(got.properties.user_properties.len(), 1);
    s.puback(&got).await;

    // Normal DISCONNECT: no will.
    let (mut w, _) = Raw::connect(addr, will_connect("w2", None)).await;
    w.disconnect(ReasonCode::Success).await;
    assert!(w.recv().await.is_none());
    s.expect_quiet().await;

    // DISCONNECT 0x04: will.
    let (mut w, _) = Raw::connect(addr, will_connect("w3", None)).await;
    w.disconnect(ReasonCode::DisconnectWithWillMessage).await;
    let got = s.expect_publish().await;
    assert_eq!(&got.payload[..], b"gone");
    server.shutdown().await;
}

#[tokio::test]
async fn no_local_and_retain_as_published() {
    let (server, addr) = start(Options::default()).await;
    let mut c = Raw::v5(addr, "nl").await;
    let mut s = subscribe(1, "nl/t", 0);
    s.filters[0].1.no_local = true;
    c.sub(s).await;
    c.send_publish(publish("nl/t", 0, None, b"mine")).await;
    c.expect_quiet().await;

    let mut rap = Raw::v5(addr, "rap").await;
    let mut s = subscribe(1, "rap/t", 0);
    s.filters[0].1.retain_as_published = true;
    s.filters[0].1.retain_handling = RetainHandling::DoNotSend;
    rap.sub(s).await;
    let mut plain = Raw::v5(addr, "plain").await;
    plain
        .sub(with_rh(subscribe(1, "rap/t", 0), RetainHandling::DoNotSend))
        .await;
    let mut m = publish("rap/t", 0, None, b"r");
    m.retain = true;
    c.send_publish(m).await;
    assert!(rap.expect_publish().await.retain);
    assert!(!plain.expect_publish().await.retain);
    server.shutdown().await;
}

#[tokio::test]
async fn shared_subscription_splits_messages() {
    let (server, addr) = start(Options::default()).await;
    let mut a = Raw::v5(addr, "sa").await;
    let mut b = Raw::v5(addr, "sb").await;
    a.sub(subscribe(1, "$share/g/job/#", 0)).await;
    b.sub(subscribe(1, "$share/g/job/#", 0)).await;
    let mut p = Raw::v5(addr, "sp").await;
    for _ in 0..10 {
        p.send_publish(publish("job/1", 0, None, b"j")).await;
    }
    p.expect_quiet().await;
    let mut counts = [0, 0];
    for (i, r) in [&mut a, &mut b].into_iter().enumerate() {
        r.send(Packet::PingReq).await;
        loop {
            match r.recv().await {
                Some(Packet::Publish(_)) => counts[i] += 1,
                Some(Packet::PingResp) => break,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(counts[0] + counts[1], 10, "{counts:?}");
    assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn refused_subscriptions_by_option() {
    let (server, addr) = start_with(Capabilities {
        wildcard_sub_available: false,
        shared_sub_available: false,
        sub_id_available: false,
        ..Default::default()
    })
    .await;
    let mut c = Raw::v5(addr, "ref").await;
    assert_eq!(
        c.sub(subscribe(1, "a/+", 0)).await,
        vec![ReasonCode::WildcardSubscriptionsNotSupported]
    );
    assert_eq!(
        c.sub(subscribe(2, "$share/g/a", 0)).await,
        vec![ReasonCode::SharedSubscriptionsNotSupported]
    );
    let mut s = subscribe(3, "a/b", 0);
    s.properties.subscription_identifier = Some(5);
    assert_eq!(
        c.sub(s).await,
        vec![ReasonCode::SubscriptionIdentifiersNotSupported]
    );
    assert_eq!(
        c.sub(subscribe(4, "a/#/b", 0)).await,
        vec![ReasonCode::TopicFilterInvalid]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn properties_forwarded_to_v5_and_dropped_for_v3() {
    let (server, addr) = start(Options::default()).await;
    let mut s5 = Raw::v5(addr, "p5").await;
    let (mut s4, _) = Raw::connect(addr, connect_packet("p4", V4, 0, true)).await;
    s5.sub(subscribe(1, "props", 0)).await;
    s4.sub(subscribe(1, "props", 0)).await;
    let mut p = Raw::v5(addr, "pp").await;
    let mut m = publish("props", 0, None, b"{}");
    m.properties.payload_format_indicator = Some(true);
    m.properties.content_type = Some("application/json".into());
    m.properties.response_topic = Some("reply/here".into());
    m.properties.correlation_data = Some(bytes::Bytes::from_static(b"corr"));
    m.properties.user_properties = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
    m.properties.message_expiry_interval = Some(100);
    p.send_publish(m).await;
    let got = s5.expect_publish().await;
    let pr = &got.properties;
    assert_eq!(pr.payload_format_indicator, Some(true));
    assert_eq!(pr.content_type.as_deref(), Some("application/json"));
    assert_eq!(pr.response_topic.as_deref(), Some("reply/here"));
    assert_eq!(pr.correlation_data.as_deref(), Some(&b"corr"[..]));
    assert_eq!(pr.user_properties.len(), 2);
    assert!(pr
        .message_expiry_interval
        .is_some_and(|e| (99..=100).contains(&e)));
    // The v3 subscriber decodes a plain v3 PUBLISH.
    let got = s4.expect_publish().await;
    assert_eq!(&got.payload[..], b"{}");
    assert!(got.properties.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn offline_queue_is_bounded_oldest_dropped() {
    let (server, addr) = start_with(Capabilities {
        maximum_client_writes_pending: 2,
        ..Default::default()
    })
    .await;
    let mut c = connect_packet("off", V4, 0, false);
    let (mut s, _) = Raw::connect(addr, c.clone()).await;
    s.sub(subscribe(1, "off/#", 1)).await;
    drop(s);
    // Wait until the broker has seen the close.
    wait_disconnected(&server, "off", 100).await;
    let (mut p, _) = Raw::connect(addr, connect_packet("offp", V4, 0, true)).await;
    for (i, body) in [&b"1"[..], b"2", b"3"].into_iter().enumerate() {
        let mut m = publish("off/x", 1, Some(i as u16 + 1), b"");
        m.payload = bytes::Bytes::from_static(body);
        p.send_publish(m).await;
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    c.clean_start = false;
    let (mut s, ack) = Raw::connect(addr, c).await;
    assert!(ack.session_present);
    let a = s.expect_publish().await;
    let b = s.expect_publish().await;
    assert_eq!((&a.payload[..], &b.payload[..]), (&b"2"[..], &b"3"[..]));
    server.shutdown().await;
}

#[tokio::test]
async fn expired_session_leaves_nothing_behind() {
    let (server, addr) = start(Options::default()).await;
    let mut c = connect_packet("exp", V5, 0, true);
    c.properties.session_expiry_interval = Some(1);
    let (mut s, _) = Raw::connect(addr, c.clone()).await;
    s.sub(subscribe(1, "exp/#", 1)).await;
    assert_eq!(server.broker().subscription_count(), 1);
    drop(s);
    let deadline = std::time::Instant::now() + WAIT;
    while server.broker().client("exp").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "session never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.broker().subscription_count(), 0);
    c.clean_start = false;
    let (_s, ack) = Raw::connect(addr, c).await;
    assert!(!ack.session_present);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_publisher_one_topic_arrives_in_order_at_every_qos() {
    let (server, addr) = start(Options::default()).await;
    let mut s = Raw::v5(addr, "ord-s").await;
    s.sub(subscribe(1, "ord", 2)).await;
    let mut p = Raw::v5(addr, "ord-p").await;
    const N: u16 = 300;
    let bodies: Vec<bytes::Bytes> = (0..N).map(|i| bytes::Bytes::from(i.to_string())).collect();
    let writer = tokio::spawn(async move {
        for i in 0..N {
            let qos = (i % 3) as u8;
            let mut m = publish("ord", qos, (qos > 0).then_some(i + 1), b"");
            m.payload = bodies[i as usize].clone();
            p.send_publish(m).await;
        }
        p
    });
    let mut next = 0u16;
    while next < N {
        match s.recv().await {
            Some(Packet::Publish(m)) => {
                assert_eq!(m.payload, next.to_string().as_bytes(), "out of order");
                match m.qos {
                    moco_codec::QoS::AtLeastOnce => s.puback(&m).await,
                    moco_codec::QoS::ExactlyOnce => {
                        s.send(Packet::PubRec(moco_codec::PubRec::new(
                            m.packet_id.unwrap(),
                        )))
                        .await
                    }
                    _ => {}
                }
                next += 1;
            }
            Some(Packet::PubRel(r)) => {
                s.send(Packet::PubComp(moco_codec::PubComp::new(r.packet_id)))
                    .await
            }
            other => panic!("{other:?}"),
        }
    }
    let _p = writer.await.unwrap();
    server.shutdown().await;
}

/// One write of ~1 MiB holding thousands of PUBLISHes of three sizes: the broker's reads grow
/// past the first buffer, small messages are copied out of it and large ones share it, and
/// packets straddle reads. Every message arrives, intact and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_mixed_sizes_in_one_write_arrives_whole_and_in_order() {
    let (server, addr) = start(Options::default()).await;
    let mut s = Raw::v5(addr, "burst-s").await;
    s.sub(subscribe(1, "burst", 0)).await;
    let mut p = Raw::v5(addr, "burst-p").await;
    const N: usize = 6_000;
    let body = |i: usize| -> Vec<u8> {
        let len = match i % 50 {
            0 => 20_000,
            1..=9 => 300,
            _ => 4,
        };
        let mut b = vec![(i % 251) as u8; len];
        b[..4].copy_from_slice(&(i as u32).to_be_bytes());
        b
    };
    let mut all = bytes::BytesMut::new();
    for i in 0..N {
        let mut m = publish("burst", 0, None, b"");
        m.payload = body(i).into();
        Packet::Publish(m).encode(V5, &mut all).unwrap();
    }
    assert!(all.len() > 1 << 20);
    let writer = tokio::spawn(async move {
        p.send_bytes(&all).await;
        p
    });
    for i in 0..N {
        let got = s.expect_publish().await;
        assert_eq!(&got.payload[..], &body(i)[..], "message {i}");
    }
    let _p = writer.await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn v30_client_exchanges_with_v5_client() {
    let (server, addr) = start(Options::default()).await;
    let v3 = ProtocolVersion::V3;
    let (mut old, ack) = Raw::connect(addr, connect_packet("old-mqisdp", v3, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let mut new = Raw::v5(addr, "new5").await;
    old.sub(subscribe(1, "mix/#", 1)).await;
    new.sub(subscribe(1, "mix/#", 1)).await;
    let mut m = publish("mix/a", 1, Some(4), b"from v5");
    m.properties.user_properties = vec![("only".into(), "v5".into())];
    new.send_publish(m).await;
    let got = old.expect_publish().await;
    assert_eq!(&got.payload[..], b"from v5");
    old.puback(&got).await;
    old.send_publish(publish("mix/b", 1, Some(5), b"from v3.0"))
        .await;
    // The v5 client gets its own message back first, then the v3.0 one.
    let mut payloads = Vec::new();
    while payloads.len() < 2 {
        match new.recv().await {
            Some(Packet::Publish(p)) => payloads.push(p.payload.clone()),
            Some(Packet::PubAck(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(&payloads[1][..], b"from v3.0");
    server.shutdown().await;
}

#[tokio::test]
async fn take_over_publishes_will_when_the_session_ends() {
    let (server, addr) = start(Options::default()).await;
    let mut s = Raw::v5(addr, "tws").await;
    s.sub(subscribe(1, "will/#", 0)).await;
    let (mut old, _) = Raw::connect(addr, will_connect("tw", None)).await;
    let _new = Raw::v5(addr, "tw").await;
    assert_eq!(
        old.disconnect_reason().await,
        Some(ReasonCode::SessionTakenOver)
    );
    assert_eq!(&s.expect_publish().await.payload[..], b"gone");
    server.shutdown().await;
}

#[tokio::test]
async fn messages_larger_than_the_client_maximum_are_not_sent() {
    let (server, addr) = start(Options::default()).await;
    let mut c = connect_packet("small", V5, 0, true);
    c.properties.maximum_packet_size = Some(64);
    let (mut s, _) = Raw::connect(addr, c).await;
    s.sub(subscribe(1, "size", 0)).await;
    let mut p = Raw::v5(addr, "sizep").await;
    p.send_publish(publish("size", 0, None, &[b'x'; 200])).await;
    p.send_publish(publish("size", 0, None, b"small")).await;
    assert_eq!(&s.expect_publish().await.payload[..], b"small");
    server.shutdown().await;
}

#[tokio::test]
async fn client_receive_maximum_limits_inflight() {
    let (server, addr) = start(Options::default()).await;
    let mut c = connect_packet("rm1", V5, 0, true);
    c.properties.receive_maximum = Some(1);
    let (mut s, _) = Raw::connect(addr, c).await;
    s.sub(subscribe(1, "rm", 1)).await;
    let mut p = Raw::v5(addr, "rmp").await;
    for i in 1..=3 {
        p.send_publish(publish("rm", 1, Some(i), b"x")).await;
    }
    for _ in 0..3 {
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    let first = s.expect_publish().await;
    // Nothing more until the first is acknowledged.
    s.expect_quiet().await;
    s.puback(&first).await;
    let second = s.expect_publish().await;
    assert_ne!(second.packet_id, first.packet_id);
    server.shutdown().await;
}

#[tokio::test]
async fn sys_topics_are_readable() {
    let (server, addr) = start(Options::default()).await;
    let mut s = Raw::v5(addr, "sysr").await;
    s.sub(subscribe(1, "$SYS/broker/version", 0)).await;
    let got = s.expect_publish().await;
    assert_eq!(&got.payload[..], env!("CARGO_PKG_VERSION").as_bytes());
    // `#` does not match `$SYS`.
    let mut all = Raw::v5(addr, "sysall").await;
    all.sub(subscribe(1, "#", 0)).await;
    all.expect_quiet().await;
    server.shutdown().await;
}

#[tokio::test]
async fn no_local_on_shared_subscription_is_a_protocol_error() {
    let mut s = subscribe(1, "$share/g/x", 0);
    s.filters[0].1.no_local = true;
    assert_eq!(
        disconnect_reason_after(Capabilities::default(), "nls", [Packet::Subscribe(s)]).await,
        Some(ReasonCode::ProtocolError)
    );
}

#[tokio::test]
async fn retain_unavailable_disconnects_with_9a() {
    let caps = Capabilities {
        retain_available: false,
        ..Default::default()
    };
    let mut m = publish("r", 0, None, b"x");
    m.retain = true;
    assert_eq!(
        disconnect_reason_after(caps, "nr", [Packet::Publish(m)]).await,
        Some(ReasonCode::RetainNotSupported)
    );
}

#[tokio::test]
async fn delayed_will_goes_out_when_a_clean_start_ends_the_session() {
    let (server, addr) = start(Options::default()).await;
    let mut s = Raw::v5(addr, "cws").await;
    s.sub(subscribe(1, "will/#", 0)).await;
    let mut c = will_connect("cw", Some(100));
    c.properties.session_expiry_interval = Some(100);
    let (w, _) = Raw::connect(addr, c).await;
    drop(w);
    // Wait until the broker noticed the close (the will is now pending for 100 s).
    wait_disconnected(&server, "cw", 100).await;
    s.expect_quiet().await;
    let (_w, ack) = Raw::connect(addr, connect_packet("cw", V5, 0, true)).await;
    assert!(!ack.session_present);
    assert_eq!(&s.expect_publish().await.payload[..], b"gone");
    server.shutdown().await;
}

#[tokio::test]
async fn no_expiry_on_the_wire_unless_published_with_one() {
    let (server, addr) = start(Options::default()).await;
    let mut s = Raw::v5(addr, "noexp").await;
    s.sub(subscribe(1, "noexp", 0)).await;
    let mut p = Raw::v5(addr, "noexpp").await;
    p.send_publish(publish("noexp", 0, None, b"x")).await;
    let got = s.expect_publish().await;
    assert_eq!(got.properties.message_expiry_interval, None);
    // One above the broker's cap (86 400 s) is lowered to it.
    let mut m = publish("noexp", 0, None, b"y");
    m.properties.message_expiry_interval = Some(1_000_000);
    p.send_publish(m).await;
    let got = s.expect_publish().await;
    assert!(got
        .properties
        .message_expiry_interval
        .is_some_and(|e| e <= 86_400));
    server.shutdown().await;
}
