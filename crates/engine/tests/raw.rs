//! Hand-written packets over raw sockets: server-initiated DISCONNECT reason codes, CONNACK
//! contents, malformed input, keep-alive, connect timeout, redelivery with DUP.

use std::time::Duration;

use moco_codec::{Packet, ProtocolVersion, ReasonCode};
use moco_engine::{Capabilities, Options};
use moco_test_support::*;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V311;
const V3: ProtocolVersion = ProtocolVersion::V3;

/// How the server ends `r`'s connection ([`Raw::disconnect_reason`]) and how long that took
/// from now.
async fn timed_disconnect_reason(r: &mut Raw) -> (Option<ReasonCode>, Duration) {
    let t = std::time::Instant::now();
    let reason = r.disconnect_reason().await;
    (reason, t.elapsed())
}

#[tokio::test]
async fn connack_advertises_limits() {
    let (server, addr) = start_with(Capabilities {
        maximum_packet_size: 1000,
        maximum_qos: 1,
        retain_available: false,
        wildcard_sub_available: false,
        sub_id_available: false,
        shared_sub_available: false,
        topic_alias_maximum: 7,
        receive_maximum: 9,
        maximum_keep_alive: 20,
        maximum_session_expiry_interval: 100,
        ..Default::default()
    })
    .await;
    let mut c = connect_packet("", V5, 0, true);
    c.properties.session_expiry_interval = Some(1000);
    c.properties.request_response_information = Some(true);
    let (_r, ack) = Raw::connect(addr, c).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(!ack.session_present);
    let p = &ack.properties;
    assert_eq!(p.maximum_packet_size, Some(1000));
    assert_eq!(p.maximum_qos, Some(moco_codec::QoS::AtLeastOnce));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.wildcard_subscription_available, Some(false));
    assert_eq!(p.subscription_identifiers_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(false));
    assert_eq!(p.topic_alias_maximum, Some(7));
    assert_eq!(p.receive_maximum, Some(9));
    assert_eq!(p.server_keep_alive, Some(20));
    assert_eq!(p.session_expiry_interval, Some(100));
    assert!(p
        .assigned_client_identifier
        .as_deref()
        .is_some_and(|s| !s.is_empty()));
    assert!(p.response_information.is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn empty_client_id_rules_for_v3() {
    let (server, addr) = start(Options::default()).await;
    // v3.1.1 with clean session: accepted (id assigned, not told).
    let (_a, ack) = Raw::connect(addr, connect_packet("", V4, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    // v3.1.1 without clean session: identifier rejected, then closed.
    let (mut b, ack) = Raw::connect(addr, connect_packet("", V4, 0, false)).await;
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(b.recv().await.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn keep_alive_timeout_disconnects_with_8d() {
    let (server, addr) = start(Options::default()).await;
    let (mut r, _) = Raw::connect(addr, connect_packet("ka", V5, 1, true)).await;
    let (reason, waited) = timed_disconnect_reason(&mut r).await;
    assert_eq!(reason, Some(ReasonCode::KeepAliveTimeout));
    assert!(
        waited >= Duration::from_millis(1400),
        "too early: {waited:?}"
    );
    server.shutdown().await;
}

/// The reader's timer is armed for the first keep-alive deadline and not moved while packets
/// arrive: when it fires early it must look again, not close, and still close once the client
/// goes silent.
#[tokio::test]
async fn keep_alive_deadline_moves_with_each_packet() {
    let (server, addr) = start(Options::default()).await;
    let (mut r, _) = Raw::connect(addr, connect_packet("ka-busy", V5, 1, true)).await;
    // A PINGREQ every 0.5 s for 2.5 s: past the first deadline (1.5 s after CONNECT) but never
    // 1.5 s without a packet.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        r.send(Packet::PingReq).await;
        assert_eq!(
            r.recv().await,
            Some(Packet::PingResp),
            "closed while pinging"
        );
    }
    let (reason, waited) = timed_disconnect_reason(&mut r).await;
    assert_eq!(reason, Some(ReasonCode::KeepAliveTimeout));
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_millis(3000),
        "closed {waited:?} after the last packet"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn keep_alive_v3_is_a_plain_close() {
    let (server, addr) = start(Options::default()).await;
    let (mut r, _) = Raw::connect(addr, connect_packet("ka3", V4, 1, true)).await;
    assert_eq!(r.disconnect_reason().await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn take_over_disconnects_old_with_8e() {
    let (server, addr) = start(Options::default()).await;
    let mut old = Raw::v5(addr, "same").await;
    let (_new, ack) = Raw::connect(addr, connect_packet("same", V5, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(
        old.disconnect_reason().await,
        Some(ReasonCode::SessionTakenOver)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_packet_gets_81() {
    let (server, addr) = start(Options::default()).await;
    let mut r = Raw::v5(addr, "bad").await;
    // SUBSCRIBE with the wrong fixed-header flags (must be 0b0010).
    r.send_bytes(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a'])
        .await;
    assert_eq!(
        r.disconnect_reason().await,
        Some(ReasonCode::MalformedPacket)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn second_connect_is_protocol_error_82() {
    let second = Packet::from(connect_packet("twice", V5, 0, true));
    assert_eq!(
        disconnect_reason_after(Capabilities::default(), "twice", [second]).await,
        Some(ReasonCode::ProtocolError)
    );
}

#[tokio::test]
async fn packet_too_large_gets_95() {
    let caps = Capabilities {
        maximum_packet_size: 64,
        ..Default::default()
    };
    let big = Packet::Publish(publish("t", 0, None, &[b'x'; 200]));
    assert_eq!(
        disconnect_reason_after(caps, "big", [big]).await,
        Some(ReasonCode::PacketTooLarge)
    );
}

#[tokio::test]
async fn qos_not_supported_gets_9b() {
    let caps = Capabilities {
        maximum_qos: 1,
        ..Default::default()
    };
    let qos2 = Packet::Publish(publish("t", 2, Some(1), b"x"));
    assert_eq!(
        disconnect_reason_after(caps, "q2", [qos2]).await,
        Some(ReasonCode::QoSNotSupported)
    );
}

#[tokio::test]
async fn receive_maximum_exceeded_gets_93() {
    let caps = Capabilities {
        receive_maximum: 2,
        ..Default::default()
    };
    let three = (1..=3).map(|pid| Packet::Publish(publish("t", 2, Some(pid), b"x")));
    assert_eq!(
        disconnect_reason_after(caps, "rm", three).await,
        Some(ReasonCode::ReceiveMaximumExceeded)
    );
}

#[tokio::test]
async fn topic_alias_invalid_gets_94() {
    let caps = Capabilities {
        topic_alias_maximum: 2,
        ..Default::default()
    };
    let mut p = publish("t", 0, None, b"x");
    p.properties.topic_alias = Some(3);
    assert_eq!(
        disconnect_reason_after(caps, "alias", [Packet::Publish(p)]).await,
        Some(ReasonCode::TopicAliasInvalid)
    );
}

#[tokio::test]
async fn shutdown_sends_8b_to_v5_and_closes_v3() {
    let (server, addr) = start(Options::default()).await;
    let mut r5 = Raw::v5(addr, "s5").await;
    let (mut r4, _) = Raw::connect(addr, connect_packet("s4", V4, 0, true)).await;
    let stop = tokio::spawn(server.shutdown());
    assert_eq!(
        r5.disconnect_reason().await,
        Some(ReasonCode::ServerShuttingDown)
    );
    assert_eq!(r4.disconnect_reason().await, None);
    tokio::time::timeout(WAIT, stop).await.unwrap().unwrap();
}

#[tokio::test]
async fn connect_timeout_closes_silent_socket() {
    let (server, addr) = start(Options {
        connect_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut r = Raw::open(addr, V5).await;
    assert!(r.recv().await.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn sys_topics_are_not_publishable() {
    let (server, addr) = start(Options::default()).await;
    let mut r = Raw::v5(addr, "sys").await;
    r.send_publish(publish("$SYS/broker/uptime", 1, Some(5), b"0"))
        .await;
    match r.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::NotAuthorized),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unacked_messages_are_redelivered_with_dup_on_resume() {
    let (server, addr) = start(Options::default()).await;
    let mut c = connect_packet("dup", V5, 0, true);
    c.properties.session_expiry_interval = Some(60);
    let (mut sub, _) = Raw::connect(addr, c.clone()).await;
    sub.sub(subscribe(1, "d/#", 1)).await;
    let mut publ = Raw::v5(addr, "dup-pub").await;
    publ.send_publish(publish("d/1", 1, Some(9), b"hello"))
        .await;
    assert!(matches!(publ.recv().await, Some(Packet::PubAck(_))));
    let first = sub.expect_publish().await;
    assert!(!first.dup);
    // Drop the connection without acknowledging; resume the session.
    drop(sub);
    c.clean_start = false;
    let (mut sub, ack) = Raw::connect(addr, c).await;
    assert!(ack.session_present);
    let again = sub.expect_publish().await;
    assert!(again.dup);
    assert_eq!(again.packet_id, first.packet_id);
    assert_eq!(&again.payload[..], b"hello");
    sub.puback(&again).await;
    server.shutdown().await;
}

#[tokio::test]
async fn repeated_qos2_publish_before_pubrel_is_reacknowledged() {
    let (server, addr) = start(Options::default()).await;
    let mut sub = Raw::v5(addr, "q2s").await;
    sub.sub(subscribe(1, "q2", 0)).await;
    let mut r = Raw::v5(addr, "q2p").await;
    let p = publish("q2", 2, Some(3), b"once");
    r.send_publish(p.clone()).await;
    let mut dup = p;
    dup.dup = true;
    r.send_publish(dup).await;
    for _ in 0..2 {
        match r.recv().await {
            Some(Packet::PubRec(a)) => {
                assert_eq!(a.packet_id, 3);
                assert_eq!(a.reason_code, ReasonCode::Success);
            }
            other => panic!("{other:?}"),
        }
    }
    r.send(Packet::PubRel(moco_codec::PubRel::new(3))).await;
    assert!(matches!(r.recv().await, Some(Packet::PubComp(_))));
    // Delivered exactly once.
    assert!(matches!(sub.recv().await, Some(Packet::Publish(_))));
    sub.send(Packet::PingReq).await;
    assert!(matches!(sub.recv().await, Some(Packet::PingResp)));
    server.shutdown().await;
}

#[tokio::test]
async fn outbound_topic_aliases_within_the_client_maximum() {
    let (server, addr) = start(Options::default()).await;
    let mut c = connect_packet("al", V5, 0, true);
    c.properties.topic_alias_maximum = Some(1);
    let (mut s, _) = Raw::connect(addr, c).await;
    s.sub(subscribe(1, "al/#", 0)).await;
    let mut p = Raw::v5(addr, "alp").await;
    for t in ["al/one", "al/one", "al/two"] {
        p.send_publish(publish(t, 0, None, b"x")).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        match s.recv().await {
            Some(Packet::Publish(m)) => got.push((m.topic.to_string(), m.properties.topic_alias)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            ("al/one".to_owned(), Some(1)),
            (String::new(), Some(1)),
            ("al/two".to_owned(), None),
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn minimum_protocol_version_refuses_older_clients() {
    let (server, addr) = start_with(Capabilities {
        minimum_protocol_version: 5,
        ..Default::default()
    })
    .await;
    let (mut r, ack) = Raw::connect(addr, connect_packet("old", V4, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::UnsupportedProtocolVersion);
    assert!(r.recv().await.is_none());
    let (_r, ack) = Raw::connect(addr, connect_packet("new", V5, 0, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    server.shutdown().await;
}

#[tokio::test]
async fn passive_client_disconnect_leaves_the_close_to_the_client() {
    use tokio::io::AsyncReadExt;
    let (server, addr) = start_with(Capabilities {
        compatibilities: moco_engine::Compatibilities {
            passive_client_disconnect: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut old = Raw::v5(addr, "pas").await;
    let _new = Raw::v5(addr, "pas").await;
    match old.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, ReasonCode::SessionTakenOver),
        other => panic!("{other:?}"),
    }
    // The server does not close: a read waits.
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_millis(300), old.stream.read(&mut b)).await;
    assert!(r.is_err(), "the server closed the connection: {r:?}");
    drop(old);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_protocol_level_gets_a_v311_refusal() {
    let (server, addr) = start(Options::default()).await;
    let mut r = Raw::open(addr, V4).await;
    // CONNECT, protocol "MQTT" level 9, clean session, keep-alive 0, client id "x".
    r.send_bytes(&[
        0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 9, 0x02, 0x00, 0x00, 0x00, 0x01, b'x',
    ])
    .await;
    r.dec.set_version(V4);
    match r.recv().await {
        Some(Packet::ConnAck(a)) => {
            assert_eq!(a.reason_code, ReasonCode::UnsupportedProtocolVersion)
        }
        other => panic!("{other:?}"),
    }
    assert!(r.recv().await.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn maximum_keep_alive_holds_v5_and_v3_clients() {
    let (server, addr) = start_with(Capabilities {
        maximum_keep_alive: 1,
        ..Default::default()
    })
    .await;
    // v5 asking for 60 s is told 1 s and held to it (1.5 s without packets).
    let (mut r, ack) = Raw::connect(addr, connect_packet("ka5", V5, 60, true)).await;
    assert_eq!(ack.properties.server_keep_alive, Some(1));
    assert_eq!(
        r.disconnect_reason().await,
        Some(ReasonCode::KeepAliveTimeout)
    );
    // v3.1.1 and v3.0 asking for more than the cap, or for none, are accepted (v3 cannot be
    // told a server keep-alive) and held to it: closed after 1.5 s of silence, not later.
    let mut silent = Vec::new();
    for (version, ka) in [(V4, 0), (V4, 2), (V4, 120), (V3, 0), (V3, 61)] {
        let id = format!("ka-{version:?}-{ka}");
        let (r, ack) = Raw::connect(addr, connect_packet(&id, version, ka, true)).await;
        assert_eq!(ack.reason_code, ReasonCode::Success, "{id}");
        assert!(ack.properties.server_keep_alive.is_none(), "{id}");
        silent.push((id, r, std::time::Instant::now()));
    }
    for (id, mut r, since) in silent {
        assert_eq!(
            r.disconnect_reason().await,
            None,
            "{id}: v3 gets a plain close"
        );
        let after = since.elapsed();
        assert!(
            after >= Duration::from_millis(1400) && after < Duration::from_secs(4),
            "{id}: closed after {after:?}"
        );
    }
    let (_r, ack) = Raw::connect(addr, connect_packet("ka4b", V4, 1, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    server.shutdown().await;

    // The compatibility switch refuses them instead (return code 2, identifier rejected).
    let (server, addr) = start_with(Capabilities {
        maximum_keep_alive: 1,
        compatibilities: moco_engine::Compatibilities {
            refuse_v3_keep_alive_above_maximum: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    for (version, ka) in [(V4, 0), (V4, 2), (V3, 0), (V3, 61)] {
        let (_r, ack) = Raw::connect(addr, connect_packet("refused", version, ka, true)).await;
        assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    }
    let (_r, ack) = Raw::connect(addr, connect_packet("ka3", V3, 1, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let (mut r, ack) = Raw::connect(addr, connect_packet("ka5b", V5, 0, true)).await;
    assert_eq!(
        ack.properties.server_keep_alive,
        Some(1),
        "v5 is still told"
    );
    assert_eq!(
        r.disconnect_reason().await,
        Some(ReasonCode::KeepAliveTimeout)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unacknowledged_pile_up_waits_in_the_queue_and_drops_past_it() {
    let (server, addr) = start_with(Capabilities {
        maximum_client_writes_pending: 2,
        ..Default::default()
    })
    .await;
    let mut c = connect_packet("pile", V5, 0, true);
    c.properties.receive_maximum = Some(1);
    let (mut s, _) = Raw::connect(addr, c).await;
    s.sub(subscribe(1, "pile", 1)).await;
    let mut p = Raw::v5(addr, "piler").await;
    // One in flight (not acknowledged yet), two queued, the fourth is dropped: the
    // subscriber stays connected and gets the first three, in order, as it acknowledges.
    for i in 1..=4u8 {
        let mut m = publish("pile", 1, Some(u16::from(i)), b"");
        m.payload = bytes::Bytes::from(vec![i]);
        p.send_publish(m).await;
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    for want in 1..=3u8 {
        match s.recv().await {
            Some(Packet::Publish(m)) => {
                assert_eq!(&m.payload[..], &[want]);
                s.puback(&m).await;
            }
            other => panic!("{other:?}"),
        }
    }
    s.send(Packet::PingReq).await;
    assert!(matches!(s.recv().await, Some(Packet::PingResp)));
    assert_eq!(messages_dropped(&server), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_gets_all_of_20k_retained_messages() {
    // Far more retained messages than the queue holds (8192 by default) and than the
    // subscriber's receive maximum: all of them arrive, with flow control.
    const N: u16 = 20_000;
    let (server, addr) = start(Options::default()).await;
    let mut p = Raw::v5(addr, "keeper").await;
    for i in 0..N {
        let mut m = publish(&format!("kept/{i}"), 1, Some(i % 1000 + 1), b"v");
        m.retain = true;
        p.send_publish(m).await;
        if i % 1000 == 999 {
            for _ in 0..1000 {
                assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
            }
        }
    }
    // (The broker's own `$SYS` topics are retained too.)
    assert!(server.broker().retained_count() >= usize::from(N));
    let mut c = connect_packet("all", V5, 0, true);
    c.properties.receive_maximum = Some(100);
    let (mut s, _) = Raw::connect(addr, c).await;
    s.sub(subscribe(1, "kept/#", 1)).await;
    let mut seen = std::collections::HashSet::new();
    while seen.len() < usize::from(N) {
        match s.recv().await {
            Some(Packet::Publish(m)) => {
                assert!(m.retain);
                seen.insert(m.topic.clone());
                s.puback(&m).await;
            }
            other => panic!("after {} messages: {other:?}", seen.len()),
        }
    }
    assert_eq!(messages_dropped(&server), 0);
    server.shutdown().await;
}

/// An idle connection holds no read buffer and waits with a 1 KiB probe; a packet larger than
/// the probe, and one split across writes, arriving after an idle spell are still read whole.
#[tokio::test]
async fn packets_after_an_idle_spell_are_read_whole() {
    static PAYLOAD: [u8; 3000] = [7u8; 3000];
    let (server, addr) = start(Options::default()).await;
    let (mut c, _) = Raw::connect(addr, connect_packet("idler", V5, 60, true)).await;
    c.sub(subscribe(1, "idle/echo", 0)).await;
    for split in [false, true] {
        // Past the reader's quiet spell (100 ms): its read buffer is given back.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut out = bytes::BytesMut::new();
        Packet::Publish(publish("idle/echo", 0, None, &PAYLOAD))
            .encode(V5, &mut out)
            .unwrap();
        if split {
            c.send_bytes(&out[..10]).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            c.send_bytes(&out[10..]).await;
        } else {
            c.send_bytes(&out).await;
        }
        match c.recv().await {
            Some(Packet::Publish(p)) => {
                assert_eq!(p.topic, "idle/echo");
                assert_eq!(&p.payload[..], &PAYLOAD[..]);
            }
            other => panic!("expected the echoed PUBLISH, got {other:?}"),
        }
    }
    server.shutdown().await;
}

/// A client that sends PINGREQs without reading the PINGRESPs fills its stream; the replies the
/// reader writes itself must not block it, or it could no longer enforce the keep-alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_replies_still_meets_its_keep_alive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut hooks = moco_engine::Hooks::new();
    hooks.add(std::sync::Arc::new(moco_engine::AllowAll));
    let broker = std::sync::Arc::new(moco_engine::Broker::new(Options::default(), hooks));
    // An in-memory stream that holds 64 bytes each way.
    let (mut client, server) = tokio::io::duplex(64);
    let conn = tokio::spawn(moco_engine::run_connection(
        broker,
        moco_engine::Shared::new(server, moco_engine::Peer::named("duplex")),
        "test".into(),
        moco_engine::ListenerKind::Other,
    ));
    let mut out = bytes::BytesMut::new();
    Packet::from(connect_packet("deaf", V5, 1, true))
        .encode(V5, &mut out)
        .unwrap();
    client.write_all(&out).await.unwrap();
    // 100 PINGREQs: 200 bytes of PINGRESP, more than the stream holds. The broker keeps
    // reading them although nobody reads its replies.
    tokio::time::timeout(WAIT, client.write_all(&[0xC0, 0x00].repeat(100)))
        .await
        .expect("the broker stopped reading")
        .unwrap();
    // Silent past 1.5 times the keep-alive: the broker closes with 0x8D.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .expect("the broker closed the stream")
        .unwrap();
    let mut all = bytes::BytesMut::from(&rest[..]);
    let mut dec = moco_codec::Decoder::with_version(0, V5);
    let mut got = Vec::new();
    while let Some(p) = dec.decode(&mut all).unwrap() {
        got.push(p);
    }
    // CONNACK, PINGRESPs (those still queued when the connection closed are dropped with
    // it), DISCONNECT 0x8D.
    assert!(matches!(got.first(), Some(Packet::ConnAck(_))), "{got:?}");
    match got.last() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, ReasonCode::KeepAliveTimeout),
        other => panic!("expected DISCONNECT last, got {other:?}"),
    }
    let between = &got[1..got.len() - 1];
    assert!(!between.is_empty() && between.len() <= 100);
    assert!(
        between.iter().all(|p| matches!(p, Packet::PingResp)),
        "{got:?}"
    );
    assert!(matches!(conn.await.unwrap(), Err(_) | Ok(())));
}
