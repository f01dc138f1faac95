//! Any byte stream can carry MQTT: a listener of in-memory duplex pipes.

use bytes::BytesMut;
use moco_codec::{Connect, Decoder, Packet, ProtocolVersion, ReasonCode};
use moco_engine::{AllowAll, Listener, ListenerKind, Peer, Server, Shared};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

struct Pipes(mpsc::Receiver<DuplexStream>);

impl Listener for Pipes {
    type Conn = Shared<DuplexStream>;

    fn kind(&self) -> ListenerKind {
        ListenerKind::Other
    }

    async fn accept(&mut self) -> std::io::Result<Shared<DuplexStream>> {
        match self.0.recv().await {
            Some(s) => Ok(Shared::new(s, Peer::named("pipe"))),
            None => std::future::pending().await,
        }
    }
}

#[tokio::test]
async fn mqtt_over_an_in_memory_listener() {
    let (tx, rx) = mpsc::channel(4);
    let mut server = Server::builder().hook(AllowAll).build();
    server.add_listener("pipes", Pipes(rx));
    server.serve();

    let (mut client, broker_side) = tokio::io::duplex(4096);
    tx.send(broker_side).await.unwrap();
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 0,
        client_id: "piped".into(),
        username: None,
        password: None,
        will: None,
        properties: Default::default(),
    };
    let mut out = BytesMut::new();
    Packet::from(connect)
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    client.write_all(&out).await.unwrap();
    let mut dec = Decoder::with_version(0, ProtocolVersion::V5);
    let mut buf = BytesMut::new();
    let ack = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(p) = dec.decode(&mut buf).unwrap() {
                return p;
            }
            assert!(client.read_buf(&mut buf).await.unwrap() > 0, "closed");
        }
    })
    .await
    .unwrap();
    match ack {
        Packet::ConnAck(a) => assert_eq!(a.reason_code, ReasonCode::Success),
        other => panic!("{other:?}"),
    }
    assert!(server.broker().client("piped").is_some());
    server.shutdown().await;
}
