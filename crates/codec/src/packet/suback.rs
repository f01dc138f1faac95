//! SUBACK (spec §3.9).

use bytes::{BufMut, Bytes, BytesMut};

use crate::packet::common::{
    check_id_list, check_reason_codes, decode_id_list, id_props_lens, put_reason_codes,
    reason_code_item, write_id_props,
};
use crate::properties::SubAckProperties;
use crate::wire::{reason_code, Body, Lens};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// SUBACK: one reason code per filter of the SUBSCRIBE, in order.
///
/// In v3.x the codes are the return codes 0x00, 0x01, 0x02 (granted QoS) and 0x80 (failure):
/// any error code is encoded as 0x80 and 0x80 decodes as [`ReasonCode::UnspecifiedError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE (not 0).
    pub packet_id: u16,
    /// Reason codes, one per topic filter (never empty on the wire).
    pub reason_codes: Vec<ReasonCode>,
    /// SUBACK properties (v5).
    pub properties: SubAckProperties,
}

impl SubAck {
    pub(crate) fn decode(
        frame: &Bytes,
        body: &[u8],
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (packet_id, properties, reason_codes) = decode_id_list(
            frame,
            body,
            v,
            reason_code_item(|b| {
                if v.is_v5() {
                    reason_code(b, PacketType::SubAck)
                } else {
                    ReasonCode::from_v3_suback(b)
                        .ok_or(DecodeError::Malformed("reserved SUBACK return code"))
                }
            }),
            "SUBACK without reason codes",
        )?;
        Ok(SubAck {
            packet_id,
            reason_codes,
            properties,
        })
    }
}

impl Body for SubAck {
    #[inline]
    fn first_byte(&self) -> u8 {
        0x90
    }

    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        check_id_list(self.packet_id, self.reason_codes.len(), PacketType::SubAck)?;
        check_reason_codes(&self.reason_codes, PacketType::SubAck)?;
        let mut lens = id_props_lens(&self.properties, v)?;
        lens.remaining += self.reason_codes.len();
        Ok(lens)
    }

    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        write_id_props(self.packet_id, &self.properties, v, lens, buf);
        if v.is_v5() {
            put_reason_codes(&self.reason_codes, buf);
        } else {
            for rc in &self.reason_codes {
                buf.put_u8(rc.to_v3_suback());
            }
        }
    }
}

super::common::impl_encode!(SubAck);
