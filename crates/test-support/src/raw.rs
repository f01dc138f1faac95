//! A hand-driven async client over a raw TCP socket, and the packets tests send with it.

use std::net::SocketAddr;

use moco_codec::{
    ConnAck, Connect, Decoder, Packet, ProtocolVersion, PubAck, Publish, QoS, ReasonCode,
    RetainHandling, Subscribe, SubscriptionOptions,
};

use crate::WAIT;

/// A hand-driven client over a raw TCP socket, encoding and decoding with moco-codec.
pub struct Raw {
    /// The socket.
    pub stream: tokio::net::TcpStream,
    /// Decodes what the server sends, for [`Raw::version`](Raw#structfield.version).
    pub dec: Decoder,
    /// Bytes read but not decoded yet.
    pub buf: bytes::BytesMut,
    /// The protocol version packets are encoded and decoded for.
    pub version: ProtocolVersion,
}

/// A CONNECT for client `id` with `version`, `keep_alive` seconds and clean start (v5) or
/// clean session (v3) `clean`; no credentials, no will, no properties.
pub fn connect_packet(id: &str, version: ProtocolVersion, keep_alive: u16, clean: bool) -> Connect {
    Connect {
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
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> Raw {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        Raw {
            stream,
            dec: Decoder::with_version(0, version),
            buf: bytes::BytesMut::new(),
            version,
        }
    }

    /// Opens a socket, sends `connect` and returns the CONNACK.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (Raw, ConnAck) {
        let mut r = Raw::open(addr, connect.protocol).await;
        r.send(Packet::from(connect)).await;
        match r.recv().await {
            Some(Packet::ConnAck(a)) => (r, *a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Opens a socket and connects client `id` with v5, no keep-alive and clean start; the
    /// CONNACK is read but not looked at (use [`Raw::connect`] to check it).
    pub async fn v5(addr: SocketAddr, id: &str) -> Raw {
        Raw::connect(addr, connect_packet(id, ProtocolVersion::V5, 0, true))
            .await
            .0
    }

    /// Opens a socket, sends `connect` and asserts the CONNACK accepts it.
    pub async fn connect_ok(addr: SocketAddr, connect: Connect) -> Raw {
        let (r, ack) = Raw::connect(addr, connect).await;
        assert_eq!(ack.reason_code, ReasonCode::Success);
        r
    }

    /// Encodes `p` for [`Raw::version`](Raw#structfield.version) and writes it.
    pub async fn send(&mut self, p: Packet) {
        let mut out = bytes::BytesMut::new();
        p.encode(self.version, &mut out).unwrap();
        self.send_bytes(&out).await;
    }

    /// Sends the PUBLISH `p`.
    pub async fn send_publish(&mut self, p: Publish) {
        self.send(Packet::Publish(p)).await;
    }

    /// Sends a DISCONNECT with `reason` and no properties.
    pub async fn disconnect(&mut self, reason: ReasonCode) {
        self.send(Packet::Disconnect(moco_codec::Disconnect {
            reason_code: reason,
            properties: Default::default(),
        }))
        .await;
    }

    /// Writes `b` as it is.
    pub async fn send_bytes(&mut self, b: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(b).await.unwrap();
    }

    /// Next packet, or `None` when the server closed the connection; panics after [`WAIT`].
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, self.read_packet())
            .await
            .expect("server did not answer in time")
    }

    /// Next packet, or `None` when the server closed the connection; not bounded in time (wrap
    /// it in a timeout).
    pub async fn read_packet(&mut self) -> Option<Packet> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(p) = self.dec.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends `s` and returns the SUBACK's reason codes; panics on anything else.
    pub async fn sub(&mut self, s: Subscribe) -> Vec<ReasonCode> {
        self.send(Packet::Subscribe(s)).await;
        match self.recv().await {
            Some(Packet::SubAck(a)) => a.reason_codes,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub async fn expect_publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Asserts nothing is pending: a PINGREQ is answered before any other packet.
    pub async fn expect_quiet(&mut self) {
        self.send(Packet::PingReq).await;
        match self.recv().await {
            Some(Packet::PingResp) => {}
            other => panic!("expected nothing but PINGRESP, got {other:?}"),
        }
    }

    /// Acknowledges the QoS 1 PUBLISH `p` (panics if it has no packet id).
    pub async fn puback(&mut self, p: &Publish) {
        self.send(Packet::PubAck(PubAck::new(p.packet_id.unwrap())))
            .await;
    }

    /// Reads until the server's DISCONNECT (returning its reason) or the close (`None`).
    pub async fn disconnect_reason(&mut self) -> Option<ReasonCode> {
        loop {
            match self.recv().await {
                Some(Packet::Disconnect(d)) => {
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

/// A PUBLISH of `payload` to `topic` at `qos` (0, 1 or 2) with packet id `pid`; not a
/// duplicate, not retained, no properties.
pub fn publish(topic: &str, qos: u8, pid: Option<u16>, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos: QoS::try_from(qos).unwrap(),
        retain: false,
        topic: topic.into(),
        packet_id: pid,
        payload: bytes::Bytes::from_static(payload),
        properties: Default::default(),
    }
}

/// A SUBSCRIBE with packet id `pid` to one `filter` at maximum `qos` (0, 1 or 2), retained
/// messages sent at subscribe, no other option, no properties.
pub fn subscribe(pid: u16, filter: &str, qos: u8) -> Subscribe {
    Subscribe {
        packet_id: pid,
        filters: vec![(
            filter.into(),
            SubscriptionOptions {
                qos: QoS::try_from(qos).unwrap(),
                no_local: false,
                retain_as_published: false,
                retain_handling: RetainHandling::SendAtSubscribe,
            },
        )],
        properties: Default::default(),
    }
}
