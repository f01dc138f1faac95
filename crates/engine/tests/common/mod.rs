//! Shared helpers for the integration tests: a server on 127.0.0.1 port 0 and rumqttc clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use moco_engine::{AllowAll, Options, Server};

/// Bound on any wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts a server with AllowAll and `options` on an ephemeral loopback port.
pub async fn start(options: Options) -> (Server, SocketAddr) {
    let mut server = Server::builder().options(options).hook(AllowAll).build();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.add_tcp_listener("tcp", l).unwrap();
    server.serve();
    (server, addr)
}

pub fn v4_opts(id: &str, addr: SocketAddr) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

pub fn v5_opts(id: &str, addr: SocketAddr) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// A v4 client whose event loop runs in a task; incoming packets arrive on the channel.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Packet>,
    pub task: tokio::task::JoinHandle<Option<rumqttc::ConnectionError>>,
}

pub async fn v4(opts: rumqttc::MqttOptions) -> V4 {
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 100);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return None;
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    });
    // Wait for the CONNACK.
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("connack");
    assert!(
        matches!(first, Some(rumqttc::Packet::ConnAck(_))),
        "{first:?}"
    );
    V4 { client, rx, task }
}

impl V4 {
    /// Next incoming PUBLISH (skipping acks), within [`WAIT`].
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        loop {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some(rumqttc::Packet::Publish(p))) => return p,
                Ok(Some(_)) => continue,
                other => panic!("no publish: {other:?}"),
            }
        }
    }

    /// Next packet matching `f`, within [`WAIT`].
    pub async fn next_where(&mut self, f: impl Fn(&rumqttc::Packet) -> bool) -> rumqttc::Packet {
        loop {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some(p)) if f(&p) => return p,
                Ok(Some(_)) => continue,
                other => panic!("no matching packet: {other:?}"),
            }
        }
    }
}

/// A v5 client whose event loop runs in a task.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>,
    pub task: tokio::task::JoinHandle<Option<rumqttc::v5::ConnectionError>>,
    pub connack: rumqttc::v5::mqttbytes::v5::ConnAck,
}

pub async fn v5(opts: rumqttc::v5::MqttOptions) -> V5 {
    use rumqttc::v5::mqttbytes::v5::Packet;
    let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 100);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return None;
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    });
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("connack");
    let connack = match first {
        Some(Packet::ConnAck(c)) => c,
        other => panic!("expected CONNACK, got {other:?}"),
    };
    V5 {
        client,
        rx,
        task,
        connack,
    }
}

impl V5 {
    /// Next incoming PUBLISH, within [`WAIT`].
    pub async fn next_publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        use rumqttc::v5::mqttbytes::v5::Packet;
        loop {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some(Packet::Publish(p))) => return p,
                Ok(Some(_)) => continue,
                other => panic!("no publish: {other:?}"),
            }
        }
    }

    /// Next packet matching `f`, within [`WAIT`].
    pub async fn next_where(
        &mut self,
        f: impl Fn(&rumqttc::v5::mqttbytes::v5::Packet) -> bool,
    ) -> rumqttc::v5::mqttbytes::v5::Packet {
        loop {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some(p)) if f(&p) => return p,
                Ok(Some(_)) => continue,
                other => panic!("no matching packet: {other:?}"),
            }
        }
    }
}

/// A hand-driven client over a raw TCP socket, encoding with moco-codec.
pub struct Raw {
    pub stream: tokio::net::TcpStream,
    pub dec: moco_codec::Decoder,
    pub buf: bytes::BytesMut,
    pub version: moco_codec::ProtocolVersion,
}

pub fn connect_packet(
    id: &str,
    version: moco_codec::ProtocolVersion,
    keep_alive: u16,
    clean: bool,
) -> moco_codec::Connect {
    moco_codec::Connect {
        protocol: version,
        clean_start: clean,
        keep_alive,
        client_id: id.into(),
        username: None,
        password: None,
        will: None,
        properties: Default::default(),
    }
}

impl Raw {
    /// Opens a socket without sending anything.
    pub async fn open(addr: SocketAddr, version: moco_codec::ProtocolVersion) -> Raw {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        Raw {
            stream,
            dec: moco_codec::Decoder::with_version(0, version),
            buf: bytes::BytesMut::new(),
            version,
        }
    }

    /// Opens a socket, sends `connect` and returns the CONNACK.
    pub async fn connect(
        addr: SocketAddr,
        connect: moco_codec::Connect,
    ) -> (Raw, moco_codec::ConnAck) {
        let mut r = Raw::open(addr, connect.protocol).await;
        r.send(moco_codec::Packet::from(connect)).await;
        match r.recv().await {
            Some(moco_codec::Packet::ConnAck(a)) => (r, *a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn send(&mut self, p: moco_codec::Packet) {
        let mut out = bytes::BytesMut::new();
        p.encode(self.version, &mut out).unwrap();
        self.send_bytes(&out).await;
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(b).await.unwrap();
    }

    /// Next packet, or `None` when the server closed the connection; panics after [`WAIT`].
    pub async fn recv(&mut self) -> Option<moco_codec::Packet> {
        use tokio::io::AsyncReadExt;
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(p) = self.dec.decode(&mut self.buf).unwrap() {
                    return Some(p);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("server did not answer in time")
    }

    /// Reads until the server's DISCONNECT (returning its reason) or the close (`None`).
    pub async fn disconnect_reason(&mut self) -> Option<moco_codec::ReasonCode> {
        loop {
            match self.recv().await {
                Some(moco_codec::Packet::Disconnect(d)) => {
                    // After a DISCONNECT the server closes.
                    assert!(self.recv().await.is_none(), "data after DISCONNECT");
                    return Some(d.reason_code);
                }
                Some(_) => continue,
                None => return None,
            }
        }
    }
}

pub fn publish(
    topic: &str,
    qos: u8,
    pid: Option<u16>,
    payload: &'static [u8],
) -> moco_codec::Publish {
    moco_codec::Publish {
        dup: false,
        qos: moco_codec::QoS::try_from(qos).unwrap(),
        retain: false,
        topic: topic.into(),
        packet_id: pid,
        payload: bytes::Bytes::from_static(payload),
        properties: Default::default(),
    }
}

pub fn subscribe(pid: u16, filter: &str, qos: u8) -> moco_codec::Subscribe {
    moco_codec::Subscribe {
        packet_id: pid,
        filters: vec![(
            filter.into(),
            moco_codec::SubscriptionOptions {
                qos: moco_codec::QoS::try_from(qos).unwrap(),
                no_local: false,
                retain_as_published: false,
                retain_handling: moco_codec::RetainHandling::SendAtSubscribe,
            },
        )],
        properties: Default::default(),
    }
}
