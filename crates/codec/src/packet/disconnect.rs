//! DISCONNECT (spec §3.14).

use bytes::{BufMut, Bytes, BytesMut};

use crate::decode::{self, complete, fail};
use crate::encode::{Body, Lens};
use crate::packet::puback::reason;
use crate::properties::{decode_section, DisconnectProperties, PropertySet};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// DISCONNECT: in v5 either side may send it with a reason; in v3.x it has no body (the
/// reason code is dropped when encoding and `NormalDisconnection` when decoding).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Reason code (v5).
    pub reason_code: ReasonCode,
    /// DISCONNECT properties (v5).
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A Disconnect with the given reason code and no properties.
    #[inline]
    pub fn new(reason_code: ReasonCode) -> Self {
        Disconnect {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn decode(
        frame: &Bytes,
        body: &[u8],
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        if !v.is_v5() {
            if !body.is_empty() {
                return Err(DecodeError::Malformed("trailing bytes after packet"));
            }
            return Ok(Disconnect::new(ReasonCode::NormalDisconnection));
        }
        complete(body, |i| {
            // Remaining length 0 means Success and no properties (v5 §3.14.2.1).
            if i.is_empty() {
                return Ok((i, Disconnect::new(ReasonCode::NormalDisconnection)));
            }
            let (i, rc) = decode::u8(i)?;
            let reason_code = reason(rc, PacketType::Disconnect).map_err(fail)?;
            if i.is_empty() {
                return Ok((i, Disconnect::new(reason_code)));
            }
            let (i, properties) = decode_section::<DisconnectProperties>(frame, i)?;
            Ok((
                i,
                Disconnect {
                    reason_code,
                    properties,
                },
            ))
        })
    }
}

impl Body for Disconnect {
    #[inline]
    fn first_byte(&self) -> u8 {
        0xE0
    }

    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        if !self.reason_code.allowed_in(PacketType::Disconnect) {
            return Err(EncodeError::InvalidReasonCode(
                PacketType::Disconnect,
                self.reason_code,
            ));
        }
        if !v.is_v5() {
            return Ok(Lens::default());
        }
        if self.properties.is_empty() {
            let remaining = usize::from(self.reason_code != ReasonCode::Success);
            return Ok(Lens {
                remaining,
                ..Lens::default()
            });
        }
        let (inner, section) = self.properties.section_len()?;
        Ok(Lens {
            remaining: 1 + section,
            props: inner,
            will_props: 0,
        })
    }

    fn write(&self, _v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        if lens.remaining >= 1 {
            buf.put_u8(self.reason_code as u8);
        }
        if lens.remaining > 1 {
            self.properties.write_section(lens.props, buf);
        }
    }
}

super::impl_encode!(Disconnect);
