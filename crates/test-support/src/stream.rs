//! An MQTT client over any byte stream (TLS, WebSocket adapters, Unix sockets), encoding and
//! decoding with moco-codec so that exact reason codes can be read.

use bytes::BytesMut;
use moco_codec::{Connect, Decoder, Packet, ProtocolVersion, ReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::WAIT;

/// An MQTT client over any byte stream.
pub struct Mqtt<S> {
    /// The stream.
    pub stream: S,
    dec: Decoder,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Mqtt<S> {
    /// A client on `stream` speaking `version`.
    pub fn new(stream: S, version: ProtocolVersion) -> Self {
        Self {
            stream,
            dec: Decoder::with_version(0, version),
            buf: BytesMut::new(),
            version,
        }
    }

    /// Encodes `p` and writes it.
    pub async fn send(&mut self, p: impl Into<Packet>) {
        let mut out = BytesMut::new();
        p.into().encode(self.version, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next packet; `None` when the server closed the stream (or reset it).
    pub async fn recv(&mut self) -> Option<Packet> {
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
        .expect("nothing from the server")
    }

    /// Sends CONNECT for `id` (with `username`) and returns the CONNACK's reason code.
    pub async fn connect(&mut self, id: &str, username: Option<&str>) -> ReasonCode {
        let mut c = Connect::new(self.version, id);
        c.keep_alive = 0;
        c.username = username.map(Into::into);
        self.send(c).await;
        match self.recv().await {
            Some(Packet::ConnAck(a)) => a.reason_code,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Subscribes to `filter` at QoS 1; returns the SUBACK's code.
    pub async fn subscribe(&mut self, pid: u16, filter: &str) -> ReasonCode {
        self.send(Packet::Subscribe(crate::subscribe(pid, filter, 1)))
            .await;
        match self.recv().await {
            Some(Packet::SubAck(a)) => a.reason_codes[0],
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes at QoS 0.
    pub async fn publish(&mut self, topic: &str, payload: &'static [u8]) {
        let p = crate::publish(topic, 0, None, payload);
        self.send(Packet::Publish(p)).await;
    }

    /// The next PUBLISH's topic and payload.
    pub async fn next_publish(&mut self) -> (String, Vec<u8>) {
        match self.recv().await {
            Some(Packet::Publish(p)) => (p.topic.to_string(), p.payload.to_vec()),
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}
