//! PUBACK (spec §3.4); PUBREC, PUBREL and PUBCOMP share its layout (`common::pub_ack!`).

use crate::PacketType;

super::common::pub_ack!(
    /// PUBACK: acknowledges a QoS 1 PUBLISH.
    PubAck,
    PacketType::PubAck,
    0x40
);
