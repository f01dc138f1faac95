//! AUTH (spec §3.15).

use bytes::{BufMut, Bytes, BytesMut};

use crate::decode::{self, complete, fail};
use crate::encode::{Body, Lens};
use crate::packet::puback::reason;
use crate::properties::{decode_section, AuthProperties, PropertySet};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// AUTH: v5 enhanced authentication exchange (not valid in v3.x).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Reason code (v5).
    pub reason_code: ReasonCode,
    /// AUTH properties (v5).
    pub properties: AuthProperties,
}

impl Auth {
    /// A Auth with the given reason code and no properties.
    #[inline]
    pub fn new(reason_code: ReasonCode) -> Self {
        Auth {
            reason_code,
            properties: AuthProperties::default(),
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
            return Ok(Auth::new(ReasonCode::Success));
        }
        complete(body, |i| {
            // Remaining length 0 means Success and no properties (v5 §3.15.2.1).
            if i.is_empty() {
                return Ok((i, Auth::new(ReasonCode::Success)));
            }
            let (i, rc) = decode::u8(i)?;
            let reason_code = reason(rc, PacketType::Auth).map_err(fail)?;
            if i.is_empty() {
                return Ok((i, Auth::new(reason_code)));
            }
            let (i, properties) = decode_section::<AuthProperties>(frame, i)?;
            Ok((
                i,
                Auth {
                    reason_code,
                    properties,
                },
            ))
        })
    }
}

impl Body for Auth {
    #[inline]
    fn first_byte(&self) -> u8 {
        0xF0
    }

    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError> {
        if !self.reason_code.allowed_in(PacketType::Auth) {
            return Err(EncodeError::InvalidReasonCode(
                PacketType::Auth,
                self.reason_code,
            ));
        }
        if !v.is_v5() {
            return Err(EncodeError::UnsupportedInVersion(PacketType::Auth, v));
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

super::impl_encode!(Auth);
