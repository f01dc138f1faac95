//! AUTH (spec §3.15).

use crate::properties::AuthProperties;
use crate::{PacketType, ReasonCode};

/// AUTH: v5 enhanced authentication exchange (not valid in v3.x).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Reason code (v5).
    pub reason_code: ReasonCode,
    /// AUTH properties (v5).
    pub properties: AuthProperties,
}

// Same body as DISCONNECT; an empty v3.x AUTH decodes as Success, but encoding one for v3.x is
// refused (the packet does not exist there).
super::common::reason_packet!(Auth, PacketType::Auth, 0xF0, ReasonCode::Success, false);
