//! PUBCOMP (spec §3.7); same layout as PUBACK.

use crate::PacketType;

super::common::pub_ack!(
    /// PUBCOMP: last step of the QoS 2 flow.
    PubComp,
    PacketType::PubComp,
    0x70
);
