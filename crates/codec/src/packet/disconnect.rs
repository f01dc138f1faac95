//! DISCONNECT (spec §3.14).

use crate::properties::DisconnectProperties;
use crate::{PacketType, ReasonCode};

/// DISCONNECT: in v5 either side may send it with a reason; in v3.x it has no body (the
/// reason code is dropped when encoding and `NormalDisconnection` when decoding).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Reason code (v5).
    pub reason_code: ReasonCode,
    /// DISCONNECT properties (v5).
    pub properties: DisconnectProperties,
}

// Same body as AUTH; in v3.x the packet is empty both ways.
super::common::reason_packet!(
    Disconnect,
    PacketType::Disconnect,
    0xE0,
    ReasonCode::NormalDisconnection,
    true
);
