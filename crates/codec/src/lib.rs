//! MQTT packet model, decoder and encoder for protocol levels 3 (v3.0, "MQIsdp"),
//! 4 (v3.1.1) and 5.
//!
//! * [`Packet`] is the one model for every control packet of every level; fields that only
//!   exist in v5 (properties, reason codes) are dropped when encoding for v3.x.
//! * [`Decoder`] turns a byte stream ([`bytes::BytesMut`]) into packets without copying:
//!   topics, strings, binary fields and payloads are slices of the read buffer.
//! * [`Packet::encode`] writes a packet into a [`bytes::BytesMut`], computing its size
//!   arithmetically first and reserving once; it refuses to produce an invalid packet.
//! * Every protocol error maps to the v5 [`ReasonCode`] that the peer should see.
#![forbid(unsafe_code)]

mod decode;
mod error;
pub mod packet;
pub mod properties;
mod property_id;
mod reason;
mod wire;

pub use decode::{decode_packet, Decoder};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, LastWill, Packet, PubAck, PubComp, PubRec, PubRel, Publish,
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PropertyId, PropertyType, PubAckProperties, PublishProperties, SubAckProperties,
    SubscribeProperties, UnsubAckProperties, UnsubscribeProperties, UserProperties, WillProperties,
};
pub use reason::ReasonCode;
pub use wire::{FixedHeader, MAX_REMAINING_LENGTH};

pub use bytes::{Bytes, BytesMut};
pub use bytestring::ByteString;

/// The MQTT protocol level carried in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ProtocolVersion {
    /// MQTT v3.0 / v3.1: protocol name "MQIsdp", level 3.
    V3 = 3,
    /// MQTT v3.1.1: protocol name "MQTT", level 4.
    V311 = 4,
    /// MQTT v5.0: protocol name "MQTT", level 5.
    V5 = 5,
}

impl ProtocolVersion {
    /// The protocol level byte written in CONNECT.
    #[inline]
    pub const fn level(self) -> u8 {
        self as u8
    }

    /// The protocol name written in CONNECT ("MQIsdp" for level 3, "MQTT" otherwise).
    #[inline]
    pub const fn protocol_name(self) -> &'static str {
        match self {
            ProtocolVersion::V3 => "MQIsdp",
            _ => "MQTT",
        }
    }

    /// True for MQTT v5.
    #[inline]
    pub const fn is_v5(self) -> bool {
        matches!(self, ProtocolVersion::V5)
    }
}

impl TryFrom<u8> for ProtocolVersion {
    type Error = DecodeError;

    fn try_from(level: u8) -> Result<Self, DecodeError> {
        match level {
            3 => Ok(ProtocolVersion::V3),
            4 => Ok(ProtocolVersion::V311),
            5 => Ok(ProtocolVersion::V5),
            _ => Err(DecodeError::UnsupportedProtocolVersion(level)),
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProtocolVersion::V3 => "3.1",
            ProtocolVersion::V311 => "3.1.1",
            ProtocolVersion::V5 => "5.0",
        })
    }
}

/// Quality of service of a message or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: acknowledged delivery (PUBACK).
    AtLeastOnce = 1,
    /// QoS 2: exactly-once delivery (PUBREC / PUBREL / PUBCOMP).
    ExactlyOnce = 2,
}

impl TryFrom<u8> for QoS {
    type Error = DecodeError;

    #[inline]
    fn try_from(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(DecodeError::Malformed("QoS 3 is not a valid QoS")),
        }
    }
}

/// The control packet type, the upper four bits of the first byte of every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// CONNECT (1).
    Connect = 1,
    /// CONNACK (2).
    ConnAck = 2,
    /// PUBLISH (3).
    Publish = 3,
    /// PUBACK (4).
    PubAck = 4,
    /// PUBREC (5).
    PubRec = 5,
    /// PUBREL (6).
    PubRel = 6,
    /// PUBCOMP (7).
    PubComp = 7,
    /// SUBSCRIBE (8).
    Subscribe = 8,
    /// SUBACK (9).
    SubAck = 9,
    /// UNSUBSCRIBE (10).
    Unsubscribe = 10,
    /// UNSUBACK (11).
    UnsubAck = 11,
    /// PINGREQ (12).
    PingReq = 12,
    /// PINGRESP (13).
    PingResp = 13,
    /// DISCONNECT (14).
    Disconnect = 14,
    /// AUTH (15, v5 only).
    Auth = 15,
}

impl TryFrom<u8> for PacketType {
    type Error = DecodeError;

    #[inline]
    fn try_from(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 => PacketType::Auth,
            _ => return Err(DecodeError::Malformed("reserved packet type 0")),
        })
    }
}

impl std::fmt::Display for PacketType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        })
    }
}
