//! Persistence over real sockets: a broker stops, a second one opens the same store, and the
//! clients find what the first one acknowledged.

use std::sync::Arc;

use moco_codec::{Packet, ProtocolVersion, PubAck, PubRel, ReasonCode};
use moco_engine::{AllowAll, Server};
use moco_storage::{Backend, Durability, Persistence, SledBackend};
use moco_test_support::{connect_packet, publish, serve, subscribe, Raw};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A broker on `dir`'s sled store, and its persistence (to close after the broker stops).
async fn broker_on(dir: &std::path::Path) -> (Server, std::net::SocketAddr, Persistence) {
    let backend: Arc<dyn Backend> = Arc::new(SledBackend::open(dir).unwrap());
    let store = Persistence::open(backend, Durability::Sync).await.unwrap();
    let server = store.install(Server::builder().hook(AllowAll)).build();
    let (server, addr) = serve(server).await;
    (server, addr, store)
}

async fn stop(server: Server, store: Persistence) {
    server.shutdown().await;
    assert!(store.close().await, "the store flushed");
}

fn lasting(id: &str) -> moco_codec::Connect {
    let mut c = connect_packet(id, V5, 0, false);
    c.properties.session_expiry_interval = Some(300);
    c
}

async fn puback(c: &mut Raw) -> ReasonCode {
    loop {
        match c.recv().await {
            Some(Packet::PubAck(a)) => return a.reason_code,
            Some(_) => continue,
            None => panic!("closed before PUBACK"),
        }
    }
}

/// A lasting session's subscription, its unacknowledged message (resent with DUP), the
/// messages queued while it was away (in order) and a retained message all survive a restart.
#[tokio::test]
async fn a_restart_keeps_sessions_queues_inflight_and_retained() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, store) = broker_on(dir.path()).await;
    let (mut dev, ack) = Raw::connect(addr, lasting("dev")).await;
    assert!(!ack.session_present);
    dev.sub(subscribe(1, "t/#", 1)).await;
    let mut producer = Raw::v5(addr, "producer").await;
    producer
        .send_publish(publish("t/1", 1, Some(1), b"one"))
        .await;
    assert_eq!(puback(&mut producer).await, ReasonCode::Success);
    let first = dev.expect_publish().await;
    assert_eq!(&first.payload[..], b"one");
    // Not acknowledged: dev goes away with it in flight.
    drop(dev);
    moco_test_support::wait_disconnected(&server, "dev", 200).await;
    for (i, payload) in [b"two", b"tri"].into_iter().enumerate() {
        let pid = 2 + i as u16;
        producer
            .send_publish(publish(&format!("t/{pid}"), 1, Some(pid), payload))
            .await;
        assert_eq!(puback(&mut producer).await, ReasonCode::Success);
    }
    let mut kept = publish("r/1", 1, Some(9), b"kept");
    kept.retain = true;
    producer.send_publish(kept).await;
    assert_eq!(
        puback(&mut producer).await,
        ReasonCode::NoMatchingSubscribers
    );
    drop(producer);
    stop(server, store).await;

    let (server, addr, store) = broker_on(dir.path()).await;
    let (mut dev, ack) = Raw::connect(addr, lasting("dev")).await;
    assert!(ack.session_present, "the session came back");
    let again = dev.expect_publish().await;
    assert_eq!((&again.payload[..], again.dup), (&b"one"[..], true));
    let two = dev.expect_publish().await;
    let tri = dev.expect_publish().await;
    assert_eq!(
        (&two.payload[..], &tri.payload[..]),
        (&b"two"[..], &b"tri"[..])
    );
    for m in [&again, &two, &tri] {
        dev.send(Packet::PubAck(PubAck::new(m.packet_id.unwrap())))
            .await;
    }
    // The subscription came back too: a new message reaches it.
    let mut producer = Raw::v5(addr, "producer").await;
    producer.send_publish(publish("t/4", 0, None, b"new")).await;
    assert_eq!(&dev.expect_publish().await.payload[..], b"new");
    let mut late = Raw::v5(addr, "late").await;
    late.sub(subscribe(1, "r/#", 0)).await;
    let r = late.expect_publish().await;
    assert_eq!((&r.payload[..], r.retain), (&b"kept"[..], true));
    drop(dev);
    moco_test_support::wait_disconnected(&server, "dev", 200).await;
    stop(server, store).await;

    // What dev acknowledged is gone from the store: a third broker resumes the session with
    // nothing to send.
    let (server, addr, store) = broker_on(dir.path()).await;
    let (mut dev, ack) = Raw::connect(addr, lasting("dev")).await;
    assert!(ack.session_present);
    dev.expect_quiet().await;
    stop(server, store).await;
}

/// Exactly once across a restart: a QoS 2 PUBLISH whose PUBREC was sent is not routed again
/// when resent, and its PUBREL after the restart gets PUBCOMP.
#[tokio::test]
async fn a_pubrel_after_a_restart_completes_without_a_second_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, store) = broker_on(dir.path()).await;
    let mut sub = Raw::v5(addr, "watcher").await;
    sub.sub(subscribe(1, "x", 0)).await;
    let (mut p, _) = Raw::connect(addr, lasting("pub2")).await;
    p.send_publish(publish("x", 2, Some(5), b"once")).await;
    assert!(
        matches!(p.recv().await, Some(Packet::PubRec(r)) if r.reason_code == ReasonCode::Success)
    );
    assert_eq!(&sub.expect_publish().await.payload[..], b"once");
    drop(p);
    drop(sub);
    stop(server, store).await;

    let (server, addr, store) = broker_on(dir.path()).await;
    let mut sub = Raw::v5(addr, "watcher").await;
    sub.sub(subscribe(1, "x", 0)).await;
    let (mut p, ack) = Raw::connect(addr, lasting("pub2")).await;
    assert!(ack.session_present);
    let mut dup = publish("x", 2, Some(5), b"once");
    dup.dup = true;
    p.send_publish(dup).await;
    assert!(matches!(p.recv().await, Some(Packet::PubRec(_))));
    p.send(Packet::PubRel(PubRel {
        packet_id: 5,
        reason_code: ReasonCode::Success,
        properties: Default::default(),
    }))
    .await;
    match p.recv().await {
        Some(Packet::PubComp(c)) => assert_eq!(c.reason_code, ReasonCode::Success),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    sub.expect_quiet().await;
    stop(server, store).await;
}
