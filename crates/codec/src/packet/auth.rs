//! AUTH (spec §3.15).

use bytes::{Bytes, BytesMut};

use crate::packet::common::{decode_reason_body, reason_body_lens, write_reason_body};
use crate::properties::AuthProperties;
use crate::wire::{Body, Lens};
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
        let (reason_code, properties) = decode_reason_body(frame, body, PacketType::Auth)?;
        Ok(Auth {
            reason_code,
            properties,
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
        reason_body_lens(
            self.reason_code,
            &self.properties,
            self.properties.is_empty(),
        )
    }

    fn write(&self, _v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut) {
        write_reason_body(self.reason_code, &self.properties, lens, buf);
    }
}

super::common::impl_encode!(Auth);
