//! Decode and encode errors, each mapped to the v5 reason code that goes on the wire.

use crate::property_id::PropertyId;
use crate::{PacketType, ProtocolVersion, ReasonCode};

/// Why a byte stream could not be decoded into a packet.
///
/// Every variant maps to the v5 reason code the spec names for it ([`DecodeError::reason_code`]);
/// a server sends it in CONNACK or DISCONNECT (v5) or just closes the connection (v3.x).
/// After any error the stream is not resynchronised: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet cannot be parsed per the spec (0x81 Malformed Packet).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet parses but breaks a protocol rule (0x82 Protocol Error).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// CONNECT names a protocol name / level this codec does not speak (0x84).
    #[error("unsupported protocol version (level {0})")]
    UnsupportedProtocolVersion(u8),
    /// The fixed header announces a packet larger than the maximum (0x95 Packet too large).
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Size of the whole packet (fixed header included) as announced.
        size: u64,
        /// The configured maximum.
        max: u32,
    },
    /// A PUBLISH or will topic name is invalid, e.g. contains a wildcard (0x90).
    #[error("topic name invalid: {0}")]
    TopicNameInvalid(&'static str),
    /// A Topic Alias of 0 (0x94 Topic Alias invalid).
    #[error("topic alias invalid")]
    TopicAliasInvalid,
    /// A property is present twice (0x82 Protocol Error).
    #[error("duplicate property {0:?}")]
    DuplicateProperty(PropertyId),
    /// A property is not allowed in this packet (0x81 Malformed Packet).
    #[error("property {0:?} not allowed in {1}")]
    PropertyNotAllowed(PropertyId, &'static str),
    /// A packet arrived that is not valid before / in this protocol version (0x82).
    #[error("{0} not allowed here (protocol version {1:?})")]
    UnexpectedPacket(PacketType, Option<ProtocolVersion>),
}

impl DecodeError {
    /// The v5 reason code for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::Malformed(_) | DecodeError::PropertyNotAllowed(..) => {
                ReasonCode::MalformedPacket
            }
            DecodeError::Protocol(_)
            | DecodeError::DuplicateProperty(_)
            | DecodeError::UnexpectedPacket(..) => ReasonCode::ProtocolError,
            DecodeError::UnsupportedProtocolVersion(_) => ReasonCode::UnsupportedProtocolVersion,
            DecodeError::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            DecodeError::TopicNameInvalid(_) => ReasonCode::TopicNameInvalid,
            DecodeError::TopicAliasInvalid => ReasonCode::TopicAliasInvalid,
        }
    }
}

impl From<DecodeError> for ReasonCode {
    fn from(e: DecodeError) -> Self {
        e.reason_code()
    }
}

impl From<&DecodeError> for ReasonCode {
    fn from(e: &DecodeError) -> Self {
        e.reason_code()
    }
}

/// Why a packet could not be encoded: the encoder refuses to produce an invalid packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A QoS > 0 PUBLISH without packet id, or a QoS 0 PUBLISH with one.
    #[error("PUBLISH packet id must be present iff QoS > 0")]
    PacketIdMismatch,
    /// A packet identifier of 0 (never valid on the wire).
    #[error("packet identifier 0 is not allowed")]
    ZeroPacketId,
    /// A PUBLISH / will topic name that is empty (without alias) or holds `+`, `#` or U+0000.
    #[error("topic name invalid: {0}")]
    TopicNameInvalid(&'static str),
    /// SUBSCRIBE / UNSUBSCRIBE (or a v5 SUBACK / UNSUBACK) with an empty list.
    #[error("{0} must carry at least one entry")]
    EmptyList(PacketType),
    /// A string longer than 65,535 bytes or containing U+0000.
    #[error("string invalid: {0}")]
    StringInvalid(&'static str),
    /// Binary data longer than 65,535 bytes.
    #[error("binary data longer than 65535 bytes")]
    BinaryTooLong,
    /// The packet would exceed the 268,435,455-byte remaining-length limit.
    #[error("packet too large: remaining length {0} exceeds 268435455")]
    PacketTooLarge(usize),
    /// A property value the spec forbids (e.g. Receive Maximum 0, Subscription Identifier 0).
    #[error("property {0:?} has an invalid value")]
    InvalidProperty(PropertyId),
    /// A property not allowed in this packet.
    #[error("property {0:?} not allowed in {1}")]
    PropertyNotAllowed(PropertyId, PacketType),
    /// A reason code not allowed in this packet.
    #[error("reason code {1:?} not allowed in {0}")]
    InvalidReasonCode(PacketType, ReasonCode),
    /// The packet does not exist in this protocol version (AUTH in v3.x).
    #[error("{0} does not exist in protocol version {1:?}")]
    UnsupportedInVersion(PacketType, ProtocolVersion),
    /// `Connect::protocol` differs from the version asked to encode with.
    #[error("CONNECT says {0:?} but encoding was asked for {1:?}")]
    VersionMismatch(ProtocolVersion, ProtocolVersion),
    /// Any other rule of the spec the packet breaks.
    #[error("invalid packet: {0}")]
    Invalid(&'static str),
}

impl EncodeError {
    /// The v5 reason code closest to this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            EncodeError::TopicNameInvalid(_) => ReasonCode::TopicNameInvalid,
            EncodeError::PacketTooLarge(_) => ReasonCode::PacketTooLarge,
            EncodeError::StringInvalid(_)
            | EncodeError::BinaryTooLong
            | EncodeError::PropertyNotAllowed(..) => ReasonCode::MalformedPacket,
            EncodeError::UnsupportedInVersion(..) | EncodeError::VersionMismatch(..) => {
                ReasonCode::ImplementationSpecificError
            }
            _ => ReasonCode::ProtocolError,
        }
    }
}

impl From<EncodeError> for ReasonCode {
    fn from(e: EncodeError) -> Self {
        e.reason_code()
    }
}
