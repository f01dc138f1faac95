//! A subscriber that never reads does not hold up delivery to 100 others.

use std::sync::Arc;

use moco_codec::{Packet, ProtocolVersion};
use moco_engine::Options;
use moco_test_support::*;

const N: usize = 128;
const PAYLOAD: usize = 64 * 1024;

/// Connects v5 client `id` over a socket with a 4 KiB receive buffer, checks it gets a CONNACK
/// and subscribes it to `filter` at `qos`; the test then never reads from it again.
async fn stuck_subscriber(addr: std::net::SocketAddr, id: &str, filter: &str, qos: u8) -> Raw {
    let v5 = ProtocolVersion::V5;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(addr).await.unwrap();
    let mut stuck = Raw {
        stream,
        dec: moco_codec::Decoder::with_version(0, v5),
        buf: bytes::BytesMut::new(),
        version: v5,
    };
    stuck
        .send(Packet::from(connect_packet(id, v5, 0, true)))
        .await;
    assert!(matches!(stuck.recv().await, Some(Packet::ConnAck(_))));
    stuck.sub(subscribe(1, filter, qos)).await;
    stuck
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_hurts_only_itself() {
    let (server, addr) = start(Options::default()).await;
    // The slow one: a tiny receive buffer, subscribes, then never reads again.
    let slow = stuck_subscriber(addr, "slow", "load", 0).await;

    let mut readers = Vec::new();
    for i in 0..100 {
        let mut r = Raw::v5(addr, &format!("fast{i}")).await;
        r.sub(subscribe(1, "load", 0)).await;
        readers.push(tokio::spawn(async move {
            let mut n = 0;
            while n < N {
                match r.recv().await {
                    Some(Packet::Publish(p)) => {
                        assert_eq!(p.payload.len(), PAYLOAD);
                        n += 1;
                    }
                    other => panic!("{other:?}"),
                }
            }
            n
        }));
    }

    let mut p = Raw::v5(addr, "pub").await;
    let body = bytes::Bytes::from(vec![7u8; PAYLOAD]);
    for _ in 0..N {
        let mut m = publish("load", 0, None, b"");
        m.payload = body.clone();
        p.send_publish(m).await;
    }
    for r in readers {
        assert_eq!(tokio::time::timeout(WAIT * 3, r).await.unwrap().unwrap(), N);
    }
    // Every fast subscriber got everything while the slow one is still backed up.
    let slow_state = server.broker().client("slow").unwrap();
    let backlog = slow_state.state.lock().session.pending.len();
    assert!(backlog > 0, "the slow subscriber was not backed up");
    drop(slow);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_over_a_stuck_client_ends_its_connection() {
    use std::sync::atomic::Ordering;
    let (server, addr) = start(Options::default()).await;
    let v5 = ProtocolVersion::V5;
    let stuck = stuck_subscriber(addr, "stuck", "flood", 0).await;
    let mut p = Raw::v5(addr, "flooder").await;
    let body = bytes::Bytes::from(vec![1u8; PAYLOAD]);
    for _ in 0..N {
        let mut m = publish("flood", 0, None, b"");
        m.payload = body.clone();
        p.send_publish(m).await;
    }
    p.send(Packet::PingReq).await;
    assert!(matches!(p.recv().await, Some(Packet::PingResp)));
    // The stuck client's writer is blocked; a new connection takes its id over.
    let old = server.broker().client("stuck").unwrap();
    let (_new, ack) = Raw::connect(addr, connect_packet("stuck", v5, 0, true)).await;
    assert_eq!(ack.reason_code, moco_codec::ReasonCode::Success);
    let info = &server.broker().info;
    let deadline = std::time::Instant::now() + WAIT;
    // flooder + new "stuck": the old connection must be gone, its tasks included (they
    // hold the only other references to the old client).
    while info.clients_connected.load(Ordering::Relaxed) > 2 || Arc::strong_count(&old) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "old connection never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(stuck);
    server.shutdown().await;
}

/// Publishes `n` QoS 1 messages of `size` bytes on `topic` from a new client `id`, 100 at a
/// time, each burst acknowledged before the next.
async fn qos1_publisher(
    addr: std::net::SocketAddr,
    id: String,
    topic: String,
    n: u16,
    size: usize,
) {
    let mut p = Raw::v5(addr, &id).await;
    let body = bytes::Bytes::from(vec![3u8; size]);
    let mut sent = 0;
    while sent < n {
        let burst = (n - sent).min(100);
        for i in 0..burst {
            let mut m = publish(&topic, 1, Some(i + 1), b"");
            m.payload = body.clone();
            p.send_publish(m).await;
        }
        for _ in 0..burst {
            assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
        }
        sent += burst;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_qos1_to_a_slower_subscriber_loses_nothing() {
    // A queue of 64 for a subscriber that takes 10 in flight and reads more slowly than four
    // publishers send: back-pressure holds the publishers instead of dropping.
    const EACH: u16 = 2_000;
    let (server, addr) = start_with(moco_engine::Capabilities {
        maximum_client_writes_pending: 64,
        ..Default::default()
    })
    .await;
    let v5 = ProtocolVersion::V5;
    let mut c = connect_packet("sink", v5, 0, true);
    c.properties.receive_maximum = Some(10);
    let (mut s, _) = Raw::connect(addr, c).await;
    s.sub(subscribe(1, "in/+", 1)).await;
    let pubs: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(qos1_publisher(
                addr,
                format!("p{i}"),
                format!("in/{i}"),
                EACH,
                1024,
            ))
        })
        .collect();
    let mut got = 0usize;
    while got < 4 * usize::from(EACH) {
        match s.recv().await {
            Some(Packet::Publish(m)) => {
                got += 1;
                if got % 200 == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                s.puback(&m).await;
            }
            other => panic!("after {got}: {other:?}"),
        }
    }
    for p in pubs {
        p.await.unwrap();
    }
    assert_eq!(messages_dropped(&server), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_qos1_subscriber_holds_up_publishers_only_briefly() {
    const MSGS: u16 = 2_000;
    let (server, addr) = start_with(moco_engine::Capabilities {
        maximum_client_writes_pending: 64,
        ..Default::default()
    })
    .await;
    // Stuck: a tiny receive buffer, subscribes at QoS 1, never reads again.
    let stuck = stuck_subscriber(addr, "stuck1", "q1", 1).await;
    // A healthy subscriber of the same messages.
    let mut fast = Raw::v5(addr, "fast1").await;
    fast.sub(subscribe(1, "q1", 1)).await;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < MSGS {
            match fast.recv().await {
                Some(Packet::Publish(m)) => {
                    n += 1;
                    fast.puback(&m).await;
                }
                other => panic!("{other:?}"),
            }
        }
        n
    });
    let started = std::time::Instant::now();
    // 32 MiB in all: more than the socket buffers towards the stuck client hold.
    qos1_publisher(addr, "pq".into(), "q1".into(), MSGS, 16 * 1024).await;
    assert_eq!(
        tokio::time::timeout(WAIT, reader).await.unwrap().unwrap(),
        MSGS
    );
    // One bounded wait for the stuck one (it is then marked stalled), not one per message.
    let took = started.elapsed();
    assert!(
        took < moco_engine::flow::STALL_AFTER * 4,
        "publisher held up for {took:?}"
    );
    assert!(messages_dropped(&server) > 0);
    drop(stuck);
    server.shutdown().await;
}
