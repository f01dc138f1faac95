//! PUBREL (spec §3.6); same layout as PUBACK.

use crate::PacketType;

super::common::pub_ack!(
    /// PUBREL: second step of the QoS 2 flow (fixed header flags 0010).
    PubRel,
    PacketType::PubRel,
    0x62
);
