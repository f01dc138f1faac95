//! UNSUBACK (spec §3.11).

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::{decode_section, PropertySet, UnsubAckProperties};
use crate::wire::{self, complete, fail, reason_code, Body, Lens};
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
        complete(body, |i| {
            let (i, packet_id) = wire::packet_id(i)?;
            if !v.is_v5() {
                return Ok((
                    i,
                    UnsubAck {
                        packet_id,
                        reason_codes: Vec::new(),
                        properties: UnsubAckProperties::default(),
                    },
                ));
            }
            let (i, properties) = decode_section::<UnsubAckProperties>(frame, i)?;
            let mut reason_codes = Vec::new();
            for &b in i {
                reason_codes.push(reason_code(b, PacketType::UnsubAck).map_err(fail)?);
            }
            if reason_codes.is_empty() {
                return Err(fail(DecodeError::Protocol("UNSUBACK without reason codes")));
            }
            Ok((
                &i[i.len()..],
                UnsubAck {
                    packet_id,
                    reason_codes,
                    properties,
                },
            ))
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
        if let Some(&rc) = self
            .reason_codes
            .iter()
            .find(|rc| !rc.allowed_in(PacketType::UnsubAck))
        {
            return Err(EncodeError::InvalidReasonCode(PacketType::UnsubAck, rc));
        }
        if !v.is_v5() {
            return Ok(Lens {
                remaining: 2,
                ..Lens::default()
            });
        }
        if self.reason_codes.is_empty() {
            return Err(EncodeError::EmptyList(PacketType::UnsubAck));
        }
        let (inner, section) = self.properties.section_len()?;
        Ok(Lens {
            remaining: 2 + section + self.reason_codes.len(),
            props: inner,
            will_props: 0,
        })
    }

    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id);
        if v.is_v5() {
            self.properties.write_section(lens.props, buf);
            for rc in &self.reason_codes {
                buf.put_u8(*rc as u8);
            }
        }
    }
}

super::common::impl_encode!(UnsubAck);
