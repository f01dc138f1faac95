//! SUBACK (spec §3.9).

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::{decode_section, PropertySet, SubAckProperties};
use crate::wire::{self, complete, fail, reason_code, Body, Lens};
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
        complete(body, |i| {
            let (i, packet_id) = wire::packet_id(i)?;
            let (i, properties) = if v.is_v5() {
                decode_section::<SubAckProperties>(frame, i)?
            } else {
                (i, SubAckProperties::default())
            };
            let mut reason_codes = Vec::new();
            for &b in i {
                let rc = if v.is_v5() {
                    reason_code(b, PacketType::SubAck).map_err(fail)?
                } else {
                    ReasonCode::from_v3_suback(b)
                        .ok_or(fail(DecodeError::Malformed("reserved SUBACK return code")))?
                };
                reason_codes.push(rc);
            }
            if reason_codes.is_empty() {
                return Err(fail(DecodeError::Protocol("SUBACK without reason codes")));
            }
            Ok((
                &i[i.len()..],
                SubAck {
                    packet_id,
                    reason_codes,
                    properties,
                },
            ))
        })
    }
}

impl Body for SubAck {
    #[inline]
    fn first_byte(&self) -> u8 {
        0x90
    }

    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        if self.reason_codes.is_empty() {
            return Err(EncodeError::EmptyList(PacketType::SubAck));
        }
        if let Some(&rc) = self
            .reason_codes
            .iter()
            .find(|rc| !rc.allowed_in(PacketType::SubAck))
        {
            return Err(EncodeError::InvalidReasonCode(PacketType::SubAck, rc));
        }
        let mut lens = Lens::default();
        let mut n = 2 + self.reason_codes.len();
        if v.is_v5() {
            let (inner, section) = self.properties.section_len()?;
            lens.props = inner;
            n += section;
        }
        lens.remaining = n;
        Ok(lens)
    }

    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id);
        if v.is_v5() {
            self.properties.write_section(lens.props, buf);
            for rc in &self.reason_codes {
                buf.put_u8(*rc as u8);
            }
        } else {
            for rc in &self.reason_codes {
                buf.put_u8(rc.to_v3_suback());
            }
        }
    }
}

super::common::impl_encode!(SubAck);
