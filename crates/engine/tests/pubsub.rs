//! Publish/subscribe over real TCP with rumqttc v4 and v5 clients.

use std::time::Duration;

use moco_engine::Options;
use moco_test_support::*;
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

fn server_disconnect_reason(
    e: Option<rumqttc::v5::ConnectionError>,
) -> Option<rumqttc::v5::mqttbytes::v5::DisconnectReasonCode> {
    match e {
        Some(rumqttc::v5::ConnectionError::MqttState(
            rumqttc::v5::StateError::ServerDisconnect { reason_code, .. },
        )) => Some(reason_code),
        _ => None,
    }
}

#[tokio::test]
async fn rumqttc_v5_sees_take_over_and_shutdown_reasons() {
    use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
    let (server, addr) = start(Options::default()).await;
    let old = v5(v5_opts("twin", addr)).await;
    let new = v5(v5_opts("twin", addr)).await;
    let e = tokio::time::timeout(WAIT, old.task).await.unwrap().unwrap();
    assert_eq!(
        server_disconnect_reason(e),
        Some(DisconnectReasonCode::SessionTakenOver)
    );
    server.shutdown().await;
    let e = tokio::time::timeout(WAIT, new.task).await.unwrap().unwrap();
    assert_eq!(
        server_disconnect_reason(e),
        Some(DisconnectReasonCode::ServerShuttingDown)
    );
}

#[tokio::test]
async fn rumqttc_v5_retained_and_user_properties() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let (server, addr) = start(Options::default()).await;
    let mut publ = v5(v5_opts("p5", addr)).await;
    let props = PublishProperties {
        user_properties: vec![("k".into(), "v".into())],
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    publ.client
        .publish_with_properties("ret/5", Q5::AtLeastOnce, true, "kept", props)
        .await
        .unwrap();
    // Subscribe after the PUBACK, when the retained message exists.
    publ.next_where(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::PubAck(_)))
        .await;
    let mut sub = v5(v5_opts("s5r", addr)).await;
    sub.client
        .subscribe("ret/#", Q5::AtLeastOnce)
        .await
        .unwrap();
    let p = sub.next_publish().await;
    assert!(p.retain);
    assert_eq!(&p.payload[..], b"kept");
    let pr = p.properties.expect("properties");
    assert_eq!(pr.user_properties, vec![("k".to_owned(), "v".to_owned())]);
    assert_eq!(pr.content_type.as_deref(), Some("text/plain"));
    server.shutdown().await;
}

#[tokio::test]
async fn rumqttc_v4_last_will_on_lost_connection() {
    let (server, addr) = start(Options::default()).await;
    let mut sub = v4(v4_opts("wsub", addr)).await;
    sub.client
        .subscribe("lw/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    sub.next_where(|p| matches!(p, rumqttc::Packet::SubAck(_)))
        .await;
    let mut o = v4_opts("dying", addr);
    o.set_last_will(rumqttc::LastWill::new(
        "lw/dying",
        "bye",
        QoS::AtLeastOnce,
        false,
    ));
    let dying = v4(o).await;
    // Kill the event loop: the TCP connection drops without DISCONNECT.
    dying.task.abort();
    let p = sub.next_publish().await;
    assert_eq!(p.topic, "lw/dying");
    assert_eq!(&p.payload[..], b"bye");
    server.shutdown().await;
}
