//! UNSUBACK (spec §3.11).

use bytes::{Bytes, BytesMut};

use crate::packet::common::{
    check_reason_codes, decode_id_list, id_props_lens, put_reason_codes, reason_code_item,
    write_id_props,
};
use crate::properties::UnsubAckProperties;
use crate::wire::{self, complete, reason_code, Body, Lens};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// UNSUBACK: in v5 one reason code per filter of the UNSUBSCRIBE; in v3.x only the packet id
/// (reason codes are dropped when encoding and empty when decoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE (not 0).
    pub packet_id: u16,
    /// Reason codes (v5; never empty there).
    pub reason_codes: Vec<ReasonCode>,
    /// UNSUBACK properties (v5).
    pub properties: UnsubAckProperties,
}

impl UnsubAck {
    pub(crate) fn decode(
        frame: &Bytes,
        body: &[u8],
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        if !v.is_v5() {
            // A v3.x UNSUBACK is the packet id alone.
            let packet_id = complete(body, wire::packet_id)?;
            return Ok(UnsubAck {
                packet_id,
                reason_codes: Vec::new(),
                properties: UnsubAckProperties::default(),
            });
        }
        let (packet_id, properties, reason_codes) = decode_id_list(
            frame,
            body,
            v,
            reason_code_item(|b| reason_code(b, PacketType::UnsubAck)),
            "UNSUBACK without reason codes",
        )?;
        Ok(UnsubAck {
            packet_id,
            reason_codes,
            properties,
        })
    }
}

impl Body for UnsubAck {
    #[inline]
    fn first_byte(&self) -> u8 {
        0xB0
    }

    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        // Checked in v3.x too, though the codes are dropped there; only v5 needs any.
        check_reason_codes(&self.reason_codes, PacketType::UnsubAck)?;
        let codes = if v.is_v5() {
            if self.reason_codes.is_empty() {
                return Err(EncodeError::EmptyList(PacketType::UnsubAck));
            }
            self.reason_codes.len()
        } else {
            0
        };
        let mut lens = id_props_lens(&self.properties, v)?;
        lens.remaining += codes;
        Ok(lens)
    }

    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        write_id_props(self.packet_id, &self.properties, v, lens, buf);
        if v.is_v5() {
            put_reason_codes(&self.reason_codes, buf);
        }
    }
}

super::common::impl_encode!(UnsubAck);
