//! Publish/subscribe over real TCP with rumqttc v4 and v5 clients.

mod common;

use std::time::Duration;

use common::*;
use moco_engine::Options;
use rumqttc::QoS;

#[tokio::test]
async fn v4_qos0_1_2_roundtrip() {
    let (server, addr) = start(Options::default()).await;
    let mut sub = v4(v4_opts("sub", addr)).await;
    sub.client
        .subscribe("a/+/c", QoS::ExactlyOnce)
        .await
        .unwrap();
    sub.next_where(|p| matches!(p, rumqttc::Packet::SubAck(_)))
        .await;
    let publ = v4(v4_opts("pub", addr)).await;
    for (i, q) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publ.client
            .publish("a/b/c", q, false, format!("m{i}"))
            .await
            .unwrap();
        let p = sub.next_publish().await;
        assert_eq!(p.topic, "a/b/c");
        assert_eq!(p.payload, format!("m{i}").as_bytes());
        assert_eq!(p.qos, q);
        assert!(!p.retain);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn v5_and_v3_clients_exchange_messages() {
    let (server, addr) = start(Options::default()).await;
    let mut s5 = v5(v5_opts("s5", addr)).await;
    let mut s4 = v4(v4_opts("s4", addr)).await;
    s5.client
        .subscribe("x/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    s4.client.subscribe("y/#", QoS::AtLeastOnce).await.unwrap();
    s5.next_where(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::SubAck(_)))
        .await;
    s4.next_where(|p| matches!(p, rumqttc::Packet::SubAck(_)))
        .await;
    s4.client
        .publish("x/1", QoS::AtLeastOnce, false, "from v4")
        .await
        .unwrap();
    s5.client
        .publish(
            "y/1",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "from v5",
        )
        .await
        .unwrap();
    let p5 = s5.next_publish().await;
    assert_eq!(&p5.payload[..], b"from v4");
    let p4 = s4.next_publish().await;
    assert_eq!(&p4.payload[..], b"from v5");
    let _ = Duration::ZERO;
    server.shutdown().await;
}
