//! What several packet kinds share: the PUBACK / PUBREC / PUBREL / PUBCOMP layout, the
//! reason-code-and-properties body of DISCONNECT and AUTH, the packet id + properties + list
//! layout of SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK, and the macros that give each
//! packet struct its inherent `encode` / `encoded_len`. Packet files import from here and
//! never from each other.

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::{decode_section, AckProperties, PropertySet};
use crate::wire::{self, complete, fail, reason_code, Input, Lens, PResult};
use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// Decodes packet id, reason code and properties of a PUBLISH acknowledgement. In v5 the
/// reason code and properties may be omitted (remaining length 2 → Success, 3 → no props).
pub(crate) fn decode_ack(
    frame: &Bytes,
    body: &[u8],
    v: ProtocolVersion,
    t: PacketType,
) -> Result<(u16, ReasonCode, AckProperties), DecodeError> {
    complete(body, |i| {
        let (i, id) = wire::packet_id(i)?;
        if !v.is_v5() || i.is_empty() {
            return Ok((i, (id, ReasonCode::Success, AckProperties::default())));
        }
        let (i, rc) = wire::u8(i)?;
        let rc = reason_code(rc, t).map_err(fail)?;
        if i.is_empty() {
            return Ok((i, (id, rc, AckProperties::default())));
        }
        let (i, props) = decode_section::<AckProperties>(frame, i)?;
        Ok((i, (id, rc, props)))
    })
}

/// Lengths of a PUBLISH acknowledgement: packet id, then (v5) a reason code unless it is
/// Success without properties, then the property section if any.
pub(crate) fn ack_lens(
    id: u16,
    rc: ReasonCode,
    props: &AckProperties,
    v: ProtocolVersion,
    t: PacketType,
) -> Result<Lens, EncodeError> {
    if id == 0 {
        return Err(EncodeError::ZeroPacketId);
    }
    if !rc.allowed_in(t) {
        return Err(EncodeError::InvalidReasonCode(t, rc));
    }
    if !v.is_v5() {
        return Ok(Lens {
            remaining: 2,
            ..Lens::default()
        });
    }
    if props.is_empty() {
        let remaining = if rc == ReasonCode::Success { 2 } else { 3 };
        return Ok(Lens {
            remaining,
            ..Lens::default()
        });
    }
    let (inner, section) = props.section_len()?;
    Ok(Lens {
        remaining: 3 + section,
        props: inner,
        will_props: 0,
    })
}

/// Writes what [`ack_lens`] sized.
pub(crate) fn ack_write(
    id: u16,
    rc: ReasonCode,
    props: &AckProperties,
    _v: ProtocolVersion,
    lens: &Lens,
    buf: &mut BytesMut,
) {
    buf.put_u16(id);
    if lens.remaining > 2 {
        buf.put_u8(rc as u8);
    }
    if lens.remaining > 3 {
        props.write_section(lens.props, buf);
    }
}

/// Decodes the body that DISCONNECT and AUTH share (§3.14.2.1, §3.15.2.1). In v3.x there is no
/// body and the packet decodes to `v3_code`; in v5 remaining length 0 means Success and no
/// properties, and a reason code alone means no properties.
pub(crate) fn decode_reason_body<P: PropertySet>(
    frame: &Bytes,
    body: &[u8],
    v: ProtocolVersion,
    t: PacketType,
    v3_code: ReasonCode,
) -> Result<(ReasonCode, P), DecodeError> {
    if !v.is_v5() {
        if !body.is_empty() {
            return Err(DecodeError::Malformed("trailing bytes after packet"));
        }
        return Ok((v3_code, P::default()));
    }
    complete(body, |i| {
        if i.is_empty() {
            return Ok((i, (ReasonCode::Success, P::default())));
        }
        let (i, rc) = wire::u8(i)?;
        let reason_code = reason_code(rc, t).map_err(fail)?;
        if i.is_empty() {
            return Ok((i, (reason_code, P::default())));
        }
        let (i, properties) = decode_section::<P>(frame, i)?;
        Ok((i, (reason_code, properties)))
    })
}

/// Lengths of that shared body. The reason code is checked first, whatever the version; in
/// v3.x the body is empty if `in_v3` (DISCONNECT) and the packet cannot be sent otherwise
/// (AUTH). In v5: empty for Success without properties, the reason code alone without
/// properties, else reason code and property section.
pub(crate) fn reason_body_lens<P: PropertySet>(
    reason_code: ReasonCode,
    properties: &P,
    properties_empty: bool,
    v: ProtocolVersion,
    t: PacketType,
    in_v3: bool,
) -> Result<Lens, EncodeError> {
    if !reason_code.allowed_in(t) {
        return Err(EncodeError::InvalidReasonCode(t, reason_code));
    }
    if !v.is_v5() {
        return if in_v3 {
            Ok(Lens::default())
        } else {
            Err(EncodeError::UnsupportedInVersion(t, v))
        };
    }
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

/// Writes that shared body as [`reason_body_lens`] sized it (nothing when it sized 0, which
/// covers v3.x).
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

/// Gives DISCONNECT or AUTH (a struct with `reason_code` and `properties`) its `new`, its
/// decode and its [`Body`](crate::wire::Body) impl over the shared body above. `$v3_code` is
/// what a v3.x packet decodes to; `$in_v3` says whether it may be encoded for v3.x.
macro_rules! reason_packet {
    ($name:ident, $ptype:expr, $first:expr, $v3_code:expr, $in_v3:expr) => {
        impl $name {
            #[doc = concat!("A ", stringify!($name), " with the given reason code and no properties.")]
            #[inline]
            pub fn new(reason_code: crate::ReasonCode) -> Self {
                $name {
                    reason_code,
                    properties: Default::default(),
                }
            }

            pub(crate) fn decode(
                frame: &bytes::Bytes,
                body: &[u8],
                v: crate::ProtocolVersion,
            ) -> Result<Self, crate::DecodeError> {
                let (reason_code, properties) =
                    crate::packet::common::decode_reason_body(frame, body, v, $ptype, $v3_code)?;
                Ok($name {
                    reason_code,
                    properties,
                })
            }
        }

        impl crate::wire::Body for $name {
            #[inline]
            fn first_byte(&self) -> u8 {
                $first
            }

            fn lens(
                &self,
                v: crate::ProtocolVersion,
            ) -> Result<crate::wire::Lens, crate::EncodeError> {
                crate::packet::common::reason_body_lens(
                    self.reason_code,
                    &self.properties,
                    self.properties.is_empty(),
                    v,
                    $ptype,
                    $in_v3,
                )
            }

            fn write(
                &self,
                _v: crate::ProtocolVersion,
                lens: &crate::wire::Lens,
                buf: &mut bytes::BytesMut,
            ) {
                crate::packet::common::write_reason_body(
                    self.reason_code,
                    &self.properties,
                    lens,
                    buf,
                );
            }
        }

        crate::packet::common::impl_encode!($name);
    };
}
pub(crate) use reason_packet;

/// Decodes a whole SUBSCRIBE, SUBACK, UNSUBSCRIBE or (v5) UNSUBACK body: the packet id, in v5
/// the property section (default properties in v3.x, which has none), then `item` repeatedly
/// until the body ends (topic filters or reason codes). The list may not be empty (protocol
/// error `none`).
#[inline]
pub(crate) fn decode_id_list<'a, P: PropertySet, T>(
    frame: &Bytes,
    body: Input<'a>,
    v: ProtocolVersion,
    mut item: impl FnMut(Input<'a>) -> PResult<'a, T>,
    none: &'static str,
) -> Result<(u16, P, Vec<T>), DecodeError> {
    complete(body, |i| {
        let (i, packet_id) = wire::packet_id(i)?;
        let (mut i, properties) = if v.is_v5() {
            decode_section::<P>(frame, i)?
        } else {
            (i, P::default())
        };
        let mut items = Vec::new();
        while !i.is_empty() {
            let (rest, x) = item(i)?;
            items.push(x);
            i = rest;
        }
        if items.is_empty() {
            return Err(fail(DecodeError::Protocol(none)));
        }
        Ok((i, (packet_id, properties, items)))
    })
}

/// An `item` of [`decode_id_list`] for SUBACK / UNSUBACK: one reason-code byte, given its
/// meaning by `code` (v5 or v3.x).
#[inline]
pub(crate) fn reason_code_item<'a>(
    code: impl Fn(u8) -> Result<ReasonCode, DecodeError>,
) -> impl FnMut(Input<'a>) -> PResult<'a, ReasonCode> {
    move |i| {
        let (i, b) = wire::u8(i)?;
        Ok((i, code(b).map_err(fail)?))
    }
}

/// Encode-side checks of SUBSCRIBE, SUBACK and UNSUBSCRIBE, in this order: packet id not 0,
/// list of `len` items not empty.
#[inline]
pub(crate) fn check_id_list(packet_id: u16, len: usize, t: PacketType) -> Result<(), EncodeError> {
    if packet_id == 0 {
        return Err(EncodeError::ZeroPacketId);
    }
    if len == 0 {
        return Err(EncodeError::EmptyList(t));
    }
    Ok(())
}

/// Fails on the first reason code of a SUBACK / UNSUBACK that `t` does not allow.
#[inline]
pub(crate) fn check_reason_codes(codes: &[ReasonCode], t: PacketType) -> Result<(), EncodeError> {
    match codes.iter().find(|rc| !rc.allowed_in(t)) {
        Some(&rc) => Err(EncodeError::InvalidReasonCode(t, rc)),
        None => Ok(()),
    }
}

/// Lengths of the head of what [`decode_id_list`] reads: packet id, then in v5 the property section.
/// The caller adds the length of its list to `remaining`.
#[inline]
pub(crate) fn id_props_lens<P: PropertySet>(
    properties: &P,
    v: ProtocolVersion,
) -> Result<Lens, EncodeError> {
    if !v.is_v5() {
        return Ok(Lens {
            remaining: 2,
            ..Lens::default()
        });
    }
    let (inner, section) = properties.section_len()?;
    Ok(Lens {
        remaining: 2 + section,
        props: inner,
        will_props: 0,
    })
}

/// Writes what [`id_props_lens`] sized.
#[inline]
pub(crate) fn write_id_props<P: PropertySet>(
    packet_id: u16,
    properties: &P,
    v: ProtocolVersion,
    lens: &Lens,
    buf: &mut BytesMut,
) {
    buf.put_u16(packet_id);
    if v.is_v5() {
        properties.write_section(lens.props, buf);
    }
}

/// Writes v5 reason codes, one byte each.
#[inline]
pub(crate) fn put_reason_codes(codes: &[ReasonCode], buf: &mut BytesMut) {
    for rc in codes {
        buf.put_u8(*rc as u8);
    }
}

/// Adds inherent `encode` / `encoded_len` to a packet struct, so the hot path need not wrap
/// it in a [`Packet`].
macro_rules! impl_encode {
    ($t:ty) => {
        impl $t {
            /// Encodes this packet for protocol `v` at the end of `buf`; returns the bytes
            /// written (see [`Packet::encode`](crate::Packet::encode)).
            #[inline]
            pub fn encode(
                &self,
                v: crate::ProtocolVersion,
                buf: &mut bytes::BytesMut,
            ) -> Result<usize, crate::EncodeError> {
                crate::wire::encode_body(self, v, buf)
            }

            /// The exact number of bytes [`Self::encode`] would write.
            #[inline]
            pub fn encoded_len(
                &self,
                v: crate::ProtocolVersion,
            ) -> Result<usize, crate::EncodeError> {
                crate::wire::total_len(crate::wire::Body::lens(self, v)?.remaining)
            }
        }
    };
}
pub(crate) use impl_encode;

/// Defines one of the four PUBLISH acknowledgements (same layout, different type / flags).
macro_rules! pub_ack {
    ($(#[$m:meta])* $name:ident, $ptype:expr, $first:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Packet identifier of the PUBLISH flow (not 0).
            pub packet_id: u16,
            /// Reason code (v5; always `Success` when decoded from v3.x, dropped when encoding
            /// for v3.x).
            pub reason_code: crate::ReasonCode,
            /// Properties (v5).
            pub properties: crate::properties::AckProperties,
        }

        impl $name {
            /// A successful acknowledgement with no properties.
            #[inline]
            pub fn new(packet_id: u16) -> Self {
                $name {
                    packet_id,
                    reason_code: crate::ReasonCode::Success,
                    properties: Default::default(),
                }
            }

            pub(crate) fn decode(
                frame: &bytes::Bytes,
                body: &[u8],
                v: crate::ProtocolVersion,
            ) -> Result<Self, crate::DecodeError> {
                let (packet_id, reason_code, properties) =
                    crate::packet::common::decode_ack(frame, body, v, $ptype)?;
                Ok($name { packet_id, reason_code, properties })
            }
        }

        impl crate::wire::Body for $name {
            #[inline]
            fn first_byte(&self) -> u8 {
                $first
            }

            #[inline]
            fn lens(
                &self,
                v: crate::ProtocolVersion,
            ) -> Result<crate::wire::Lens, crate::EncodeError> {
                crate::packet::common::ack_lens(
                    self.packet_id,
                    self.reason_code,
                    &self.properties,
                    v,
                    $ptype,
                )
            }

            #[inline]
            fn write(
                &self,
                v: crate::ProtocolVersion,
                lens: &crate::wire::Lens,
                buf: &mut bytes::BytesMut,
            ) {
                crate::packet::common::ack_write(
                    self.packet_id,
                    self.reason_code,
                    &self.properties,
                    v,
                    lens,
                    buf,
                )
            }
        }

        crate::packet::common::impl_encode!($name);
    };
}
pub(crate) use pub_ack;
