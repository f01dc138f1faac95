//! The inline client: publish and subscribe from the embedding program.

use std::sync::Arc;

use moco_codec::{Packet, ProtocolVersion, QoS};
use moco_engine::{Error, Options};
use moco_test_support::*;

#[tokio::test]
async fn inline_publish_and_subscribe() {
    let (server, addr) = start(Options {
        inline_client: true,
        ..Default::default()
    })
    .await;
    let broker = server.broker().clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    broker
        .inline_subscribe(
            "in/#",
            7,
            Arc::new(move |p: &moco_codec::Publish| {
                let _ = tx.send((p.topic.to_string(), p.payload.clone(), p.retain));
            }),
        )
        .unwrap();
    // A network client publishes; the inline subscriber sees it.
    let (mut c, _) = Raw::connect(addr, connect_packet("net", ProtocolVersion::V5, 0, true)).await;
    c.send(Packet::Subscribe(subscribe(1, "out/#", 0))).await;
    assert!(matches!(c.recv().await, Some(Packet::SubAck(_))));
    c.send_publish(publish("in/1", 0, None, b"up")).await;
    let (topic, payload, _) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((topic.as_str(), &payload[..]), ("in/1", &b"up"[..]));
    // The inline client publishes; the network client sees it.
    assert_eq!(
        broker
            .inline_publish("out/2", "down", QoS::AtMostOnce, false)
            .unwrap(),
        1
    );
    match c.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"down"),
        other => panic!("{other:?}"),
    }
    assert!(broker.inline_unsubscribe("in/#", 7).unwrap());
    assert!(matches!(
        broker.inline_publish("bad/#", "x", QoS::AtMostOnce, false),
        Err(Error::Topic(_))
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn inline_client_is_off_by_default() {
    let (server, _) = start(Options::default()).await;
    assert!(matches!(
        server
            .broker()
            .inline_publish("a", "x", QoS::AtMostOnce, false),
        Err(Error::InlineClientDisabled)
    ));
    server.shutdown().await;
}
