//! The [`Packet`] model: one type per control packet, shared by every protocol level.
//!
//! Fields that only exist in v5 (properties, reason codes) are ignored when encoding for
//! v3.x and come back as their defaults when decoding v3.x.

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::{encode_body, total_len, Body, FixedHeader};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion};

mod auth;
mod common;
mod connack;
mod connect;
mod disconnect;
mod ping;
mod puback;
mod pubcomp;
mod publish;
mod pubrec;
mod pubrel;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, LastWill};
pub use disconnect::Disconnect;
pub use puback::PubAck;
pub use pubcomp::PubComp;
pub use publish::Publish;
pub use pubrec::PubRec;
pub use pubrel::PubRel;
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, SubscriptionOptions};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT: client → server, first packet of a connection. Boxed, as CONNACK: they are
    /// the two largest packets and come once per connection, and inline they would make
    /// every `Packet` (each PUBLISH and ack moved through the broker) 440 bytes instead of
    /// PUBLISH's 232.
    Connect(Box<Connect>),
    /// CONNACK: server → client answer to CONNECT (boxed, see CONNECT).
    ConnAck(Box<ConnAck>),
    /// PUBLISH: an application message, either direction.
    Publish(Publish),
    /// PUBACK: QoS 1 acknowledgement.
    PubAck(PubAck),
    /// PUBREC: QoS 2 step 1.
    PubRec(PubRec),
    /// PUBREL: QoS 2 step 2.
    PubRel(PubRel),
    /// PUBCOMP: QoS 2 step 3.
    PubComp(PubComp),
    /// SUBSCRIBE: client → server.
    Subscribe(Subscribe),
    /// SUBACK: server → client.
    SubAck(SubAck),
    /// UNSUBSCRIBE: client → server.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK: server → client.
    UnsubAck(UnsubAck),
    /// PINGREQ: client keep-alive.
    PingReq,
    /// PINGRESP: server answer to PINGREQ.
    PingResp,
    /// DISCONNECT: either direction in v5, client → server in v3.x.
    Disconnect(Disconnect),
    /// AUTH: v5 enhanced authentication exchange.
    Auth(Auth),
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// Encodes the packet for protocol `v` at the end of `buf`; returns the bytes written.
    ///
    /// The size is computed first (validating the packet), `buf` is reserved once, then the
    /// bytes are written. On error nothing is written. To share one encoding among many
    /// receivers, encode into a scratch `BytesMut` and `split().freeze()` it.
    pub fn encode(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<usize, EncodeError> {
        match self {
            Packet::Connect(p) => encode_body(&**p, v, buf),
            Packet::ConnAck(p) => encode_body(&**p, v, buf),
            Packet::Publish(p) => encode_body(p, v, buf),
            Packet::PubAck(p) => encode_body(p, v, buf),
            Packet::PubRec(p) => encode_body(p, v, buf),
            Packet::PubRel(p) => encode_body(p, v, buf),
            Packet::PubComp(p) => encode_body(p, v, buf),
            Packet::Subscribe(p) => encode_body(p, v, buf),
            Packet::SubAck(p) => encode_body(p, v, buf),
            Packet::Unsubscribe(p) => encode_body(p, v, buf),
            Packet::UnsubAck(p) => encode_body(p, v, buf),
            Packet::PingReq => {
                buf.put_slice(&[0xC0, 0x00]);
                Ok(2)
            }
            Packet::PingResp => {
                buf.put_slice(&[0xD0, 0x00]);
                Ok(2)
            }
            Packet::Disconnect(p) => encode_body(p, v, buf),
            Packet::Auth(p) => encode_body(p, v, buf),
        }
    }

    /// The exact number of bytes [`Packet::encode`] would write, computed without encoding.
    pub fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        let remaining = match self {
            Packet::Connect(p) => p.lens(v)?.remaining,
            Packet::ConnAck(p) => p.lens(v)?.remaining,
            Packet::Publish(p) => p.lens(v)?.remaining,
            Packet::PubAck(p) => p.lens(v)?.remaining,
            Packet::PubRec(p) => p.lens(v)?.remaining,
            Packet::PubRel(p) => p.lens(v)?.remaining,
            Packet::PubComp(p) => p.lens(v)?.remaining,
            Packet::Subscribe(p) => p.lens(v)?.remaining,
            Packet::SubAck(p) => p.lens(v)?.remaining,
            Packet::Unsubscribe(p) => p.lens(v)?.remaining,
            Packet::UnsubAck(p) => p.lens(v)?.remaining,
            Packet::PingReq | Packet::PingResp => 0,
            Packet::Disconnect(p) => p.lens(v)?.remaining,
            Packet::Auth(p) => p.lens(v)?.remaining,
        };
        total_len(remaining)
    }

    /// Encodes the packet into a fresh, shareable `Bytes`.
    pub fn to_bytes(&self, v: ProtocolVersion) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.encode(v, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Decodes the body of a frame whose fixed header is `header`.
    pub(crate) fn decode_frame(
        header: &FixedHeader,
        frame: Bytes,
        v: ProtocolVersion,
    ) -> Result<Option<Packet>, DecodeError> {
        // Returns `Option` so the streaming decoder can hand the value straight back without
        // moving the (large) packet once more.
        if header.packet_type == PacketType::Publish {
            return Publish::decode(frame, header.flags, header.header_len, v, Packet::Publish);
        }
        Self::decode_body(header.packet_type, &frame, &frame[header.header_len..], v).map(Some)
    }

    /// Decodes a packet that keeps nothing of its frame (see `decode::keeps_nothing_of_frame`)
    /// from its `body` alone, built in the returned value as [`Packet::decode_frame`] does.
    pub(crate) fn decode_short(
        t: PacketType,
        body: &[u8],
        v: ProtocolVersion,
    ) -> Result<Option<Packet>, DecodeError> {
        // The body decoders touch the frame only to slice properties out of it, and these
        // bodies are too short to hold any. Its own match, not `decode_body`'s: going through
        // that one cost every ack measurably more (docs/perf-log.md).
        let none = Bytes::new();
        Ok(Some(match t {
            PacketType::PubAck => Packet::PubAck(PubAck::decode(&none, body, v)?),
            PacketType::PubRec => Packet::PubRec(PubRec::decode(&none, body, v)?),
            PacketType::PubRel => Packet::PubRel(PubRel::decode(&none, body, v)?),
            PacketType::PubComp => Packet::PubComp(PubComp::decode(&none, body, v)?),
            PacketType::PingReq => {
                ping::decode(body)?;
                Packet::PingReq
            }
            PacketType::PingResp => {
                ping::decode(body)?;
                Packet::PingResp
            }
            PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(&none, body, v)?),
            _ => return Err(DecodeError::Malformed("not a short packet")),
        }))
    }

    /// Decodes the body of any packet but PUBLISH (which consumes its frame).
    fn decode_body(
        t: PacketType,
        frame: &Bytes,
        body: &[u8],
        v: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        Ok(match t {
            PacketType::Connect => Packet::Connect(Box::new(Connect::decode(frame, body)?)),
            PacketType::ConnAck => Packet::ConnAck(Box::new(ConnAck::decode(frame, body, v)?)),
            PacketType::Publish => return Err(DecodeError::Malformed("PUBLISH body")),
            PacketType::PubAck => Packet::PubAck(PubAck::decode(frame, body, v)?),
            PacketType::PubRec => Packet::PubRec(PubRec::decode(frame, body, v)?),
            PacketType::PubRel => Packet::PubRel(PubRel::decode(frame, body, v)?),
            PacketType::PubComp => Packet::PubComp(PubComp::decode(frame, body, v)?),
            PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(frame, body, v)?),
            PacketType::SubAck => Packet::SubAck(SubAck::decode(frame, body, v)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(frame, body, v)?),
            PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(frame, body, v)?),
            PacketType::PingReq => {
                ping::decode(body)?;
                Packet::PingReq
            }
            PacketType::PingResp => {
                ping::decode(body)?;
                Packet::PingResp
            }
            PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(frame, body, v)?),
            PacketType::Auth => Packet::Auth(Auth::decode(frame, body, v)?),
        })
    }
}

impl From<Connect> for Packet {
    fn from(c: Connect) -> Self {
        Packet::Connect(Box::new(c))
    }
}

impl From<ConnAck> for Packet {
    fn from(c: ConnAck) -> Self {
        Packet::ConnAck(Box::new(c))
    }
}
