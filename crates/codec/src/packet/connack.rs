//! CONNACK (spec §3.2).

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::{decode_section, ConnAckProperties, PropertySet};
use crate::wire::{self, complete, fail, reason_code, Body, Lens};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Session Present (always `false` with an error code; not sent in v3.0).
    pub session_present: bool,
    /// Reason code. For v3.x it is mapped to / from the return codes 0x00..=0x05
    /// (see [`ReasonCode::to_v3_connack`]).
    pub reason_code: ReasonCode,
    /// CONNACK properties (v5).
    pub properties: ConnAckProperties,
}

impl ConnAck {
    pub(crate) fn decode(
        frame: &Bytes,
        body: &[u8],
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        complete(body, |i| {
            let (i, ack_flags) = wire::u8(i)?;
            // v3.0 has no session-present bit: the byte is reserved and ignored.
            let session_present = if v == ProtocolVersion::V3 {
                false
            } else {
                if ack_flags & 0xFE != 0 {
                    return Err(fail(DecodeError::Malformed("CONNACK reserved flags set")));
                }
                ack_flags & 0x01 != 0
            };
            let (i, code) = wire::u8(i)?;
            let (i, reason_code, properties) = if v.is_v5() {
                let rc = reason_code(code, PacketType::ConnAck).map_err(fail)?;
                let (i, props) = decode_section::<ConnAckProperties>(frame, i)?;
                (i, rc, props)
            } else {
                let rc = ReasonCode::from_v3_connack(code)
                    .ok_or(fail(DecodeError::Malformed("reserved CONNACK return code")))?;
                (i, rc, ConnAckProperties::default())
            };
            if session_present && reason_code.is_error() {
                return Err(fail(DecodeError::Protocol(
                    "session present with an error code",
                )));
            }
            Ok((
                i,
                ConnAck {
                    session_present,
                    reason_code,
                    properties,
                },
            ))
        })
    }
}

impl Body for ConnAck {
    #[inline]
    fn first_byte(&self) -> u8 {
        0x20
    }

    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        if !self.reason_code.allowed_in(PacketType::ConnAck) {
            return Err(EncodeError::InvalidReasonCode(
                PacketType::ConnAck,
                self.reason_code,
            ));
        }
        if self.session_present && self.reason_code.is_error() {
            return Err(EncodeError::Invalid("session present with an error code"));
        }
        if v.is_v5() {
            let (inner, section) = self.properties.section_len()?;
            Ok(Lens {
                remaining: 2 + section,
                props: inner,
                will_props: 0,
            })
        } else {
            Ok(Lens {
                remaining: 2,
                ..Lens::default()
            })
        }
    }

    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        let flags = u8::from(self.session_present && v != ProtocolVersion::V3);
        buf.put_u8(flags);
        if v.is_v5() {
            buf.put_u8(self.reason_code as u8);
            self.properties.write_section(lens.props, buf);
        } else {
            buf.put_u8(self.reason_code.to_v3_connack());
        }
    }
}

super::common::impl_encode!(ConnAck);
