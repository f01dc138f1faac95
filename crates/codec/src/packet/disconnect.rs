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
        let (reason_code, properties) = decode_reason_body(frame, body, PacketType::Disconnect)?;
        Ok(Disconnect {
            reason_code,
            properties,
        })
    }
}

/// Decodes the v5 body that DISCONNECT and AUTH share (§3.14.2.1, §3.15.2.1): remaining length 0
/// means Success and no properties; a reason code alone means no properties.
pub(crate) fn decode_reason_body<P: PropertySet>(
    frame: &Bytes,
    body: &[u8],
    t: PacketType,
) -> Result<(ReasonCode, P), DecodeError> {
    complete(body, |i| {
        if i.is_empty() {
            return Ok((i, (ReasonCode::Success, P::default())));
        }
        let (i, rc) = decode::u8(i)?;
        let reason_code = reason(rc, t).map_err(fail)?;
        if i.is_empty() {
            return Ok((i, (reason_code, P::default())));
        }
        let (i, properties) = decode_section::<P>(frame, i)?;
        Ok((i, (reason_code, properties)))
    })
}

/// Lengths of that shared v5 body: empty for Success without properties, the reason code alone
/// without properties, else reason code and property section.
pub(crate) fn reason_body_lens<P: PropertySet>(
    reason_code: ReasonCode,
    properties: &P,
    properties_empty: bool,
) -> Result<Lens, EncodeError> {
    if properties_empty {
        return Ok(Lens {
            remaining: usize::from(reason_code != ReasonCode::Success),
            ..Lens::default()
        });
    }
    let (inner, section) = properties.section_len()?;
    Ok(Lens {
        remaining: 1 + section,
        props: inner,
        will_props: 0,
    })
}

/// Writes that shared v5 body as [`reason_body_lens`] sized it.
pub(crate) fn write_reason_body<P: PropertySet>(
    reason_code: ReasonCode,
    properties: &P,
    lens: &Lens,
    buf: &mut BytesMut,
) {
    if lens.remaining >= 1 {
        buf.put_u8(reason_code as u8);
    }
    if lens.remaining > 1 {
        properties.write_section(lens.props, buf);
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

super::impl_encode!(Disconnect);
