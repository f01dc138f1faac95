//! DISCONNECT (spec §3.14).

use bytes::{Bytes, BytesMut};

use crate::packet::common::{decode_reason_body, reason_body_lens, write_reason_body};
use crate::properties::DisconnectProperties;
use crate::wire::{Body, Lens};
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
        let (reason_code, properties) = decode_reason_body(frame, body, PacketType::Disconnect)?;
        Ok(Disconnect {
            reason_code,
            properties,
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

super::common::impl_encode!(Disconnect);
