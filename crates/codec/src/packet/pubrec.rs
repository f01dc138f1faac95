//! PUBREC (spec §3.5); same layout as PUBACK.

use crate::PacketType;

super::common::pub_ack!(
    /// PUBREC: first answer to a QoS 2 PUBLISH.
    PubRec,
    PacketType::PubRec,
    0x50
);
