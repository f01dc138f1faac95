//! The decoder: fixed header, variable byte integers, primitive fields, and the streaming
//! [`Decoder`] over a `BytesMut` read buffer.
//!
//! Packet bodies are parsed as `&[u8]` with `nom` (complete parsers: a body is only parsed
//! once it is fully buffered) and every string / binary slice is turned back into a `Bytes`
//! of the frame with [`Bytes::slice_ref`], so nothing is copied.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use nom::error::{ErrorKind, ParseError};

use crate::packet::{Packet, Publish};
use crate::{DecodeError, PacketType, ProtocolVersion};

/// Largest remaining length a 4-byte variable byte integer can carry (268,435,455).
pub const MAX_REMAINING_LENGTH: u32 = 268_435_455;

/// Parser input: a slice of the frame.
pub(crate) type Input<'a> = &'a [u8];
/// nom result with our error type.
pub(crate) type PResult<'a, T> = nom::IResult<Input<'a>, T, DecodeError>;

impl<'a> ParseError<Input<'a>> for DecodeError {
    #[inline]
    fn from_error_kind(_input: Input<'a>, _kind: ErrorKind) -> Self {
        DecodeError::Malformed("truncated field")
    }

    #[inline]
    fn append(_input: Input<'a>, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// Wraps a decode error as a fatal nom error.
#[inline]
pub(crate) fn fail(e: DecodeError) -> nom::Err<DecodeError> {
    nom::Err::Failure(e)
}

/// Unwraps a nom error into ours.
#[inline]
pub(crate) fn unwrap_err(e: nom::Err<DecodeError>) -> DecodeError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => DecodeError::Malformed("truncated field"),
    }
}

/// Runs a body parser and requires it to consume the whole body (else 0x81 trailing bytes).
#[inline]
pub(crate) fn complete<'a, T>(
    body: Input<'a>,
    parser: impl FnOnce(Input<'a>) -> PResult<'a, T>,
) -> Result<T, DecodeError> {
    match parser(body) {
        Ok(([], v)) => Ok(v),
        Ok(_) => Err(DecodeError::Malformed("trailing bytes after packet")),
        Err(e) => Err(unwrap_err(e)),
    }
}

/// One byte.
#[inline]
pub(crate) fn u8(i: Input<'_>) -> PResult<'_, u8> {
    nom::number::complete::be_u8(i)
}

/// Big-endian u16.
#[inline]
pub(crate) fn u16(i: Input<'_>) -> PResult<'_, u16> {
    nom::number::complete::be_u16(i)
}

/// Big-endian u32.
#[inline]
pub(crate) fn u32(i: Input<'_>) -> PResult<'_, u32> {
    nom::number::complete::be_u32(i)
}

/// A non-zero packet identifier.
///
/// A zero packet id is 0x82 Protocol Error, not 0x81 Malformed: §2.2.1 requires a non-zero
/// id [MQTT-2.2.1-3], and §1.2 / §4.13 call a packet that *parses* but breaks such a rule a
/// Protocol Error (Malformed is reserved for packets that cannot be parsed per the spec).
#[inline]
pub(crate) fn packet_id(i: Input<'_>) -> PResult<'_, u16> {
    let (i, id) = u16(i)?;
    if id == 0 {
        return Err(fail(DecodeError::Protocol("packet identifier 0")));
    }
    Ok((i, id))
}

/// Result of reading a variable byte integer from a possibly partial buffer.
enum VarInt {
    /// Value and bytes used.
    Done(u32, usize),
    /// More bytes are needed.
    Partial,
}

#[inline]
fn read_varint(i: &[u8]) -> Result<VarInt, DecodeError> {
    let mut value: u32 = 0;
    for (n, &b) in i.iter().take(4).enumerate() {
        value |= u32::from(b & 0x7F) << (7 * n);
        if b & 0x80 == 0 {
            if n > 0 && b == 0 {
                return Err(DecodeError::Malformed(
                    "variable byte integer not minimally encoded",
                ));
            }
            return Ok(VarInt::Done(value, n + 1));
        }
    }
    if i.len() >= 4 {
        Err(DecodeError::Malformed(
            "variable byte integer longer than 4 bytes",
        ))
    } else {
        Ok(VarInt::Partial)
    }
}

/// A variable byte integer inside a complete body.
#[inline]
pub(crate) fn varint(i: Input<'_>) -> PResult<'_, u32> {
    match read_varint(i).map_err(fail)? {
        VarInt::Done(v, n) => Ok((&i[n..], v)),
        VarInt::Partial => Err(fail(DecodeError::Malformed(
            "truncated variable byte integer",
        ))),
    }
}

/// A length-prefixed byte slice.
#[inline]
pub(crate) fn len_prefixed(i: Input<'_>) -> PResult<'_, &[u8]> {
    let (i, len) = u16(i)?;
    nom::bytes::complete::take(len)(i)
}

/// Validates a string slice of `frame` (UTF-8, no U+0000) and shares it as a `ByteString`.
#[inline]
pub(crate) fn to_string(frame: &Bytes, s: &[u8]) -> Result<ByteString, DecodeError> {
    if crate::encode::has_nul(s) {
        return Err(DecodeError::Malformed("U+0000 in string"));
    }
    ByteString::try_from(frame.slice_ref(s)).map_err(|_| DecodeError::Malformed("invalid UTF-8"))
}

/// A length-prefixed UTF-8 string, zero copy.
#[inline]
pub(crate) fn string<'a>(frame: &Bytes, i: Input<'a>) -> PResult<'a, ByteString> {
    let (i, s) = len_prefixed(i)?;
    Ok((i, to_string(frame, s).map_err(fail)?))
}

/// Length-prefixed binary data, zero copy.
#[inline]
pub(crate) fn binary<'a>(frame: &Bytes, i: Input<'a>) -> PResult<'a, Bytes> {
    let (i, b) = len_prefixed(i)?;
    Ok((i, frame.slice_ref(b)))
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// Packet type (upper nibble of byte 1).
    pub packet_type: PacketType,
    /// Flags (lower nibble of byte 1), already validated for the type.
    pub flags: u8,
    /// Remaining length: bytes after the fixed header.
    pub remaining_length: u32,
    /// Size of the fixed header itself (2..=5).
    pub header_len: usize,
}

impl FixedHeader {
    /// Size of the whole packet.
    #[inline]
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining_length as usize
    }

    /// Parses a fixed header from the start of `buf`; `Ok(None)` if more bytes are needed.
    ///
    /// The type / flags byte is validated as soon as it is present (spec §2.1.3: reserved
    /// flags wrong, or PUBLISH QoS 3, or DUP on QoS 0 → 0x81), so garbage fails fast.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let packet_type = PacketType::try_from(first >> 4)?;
        let flags = first & 0x0F;
        check_flags(packet_type, flags)?;
        match read_varint(&buf[1..])? {
            VarInt::Done(remaining_length, n) => Ok(Some(FixedHeader {
                packet_type,
                flags,
                remaining_length,
                header_len: 1 + n,
            })),
            VarInt::Partial => Ok(None),
        }
    }
}

#[inline]
fn check_flags(t: PacketType, flags: u8) -> Result<(), DecodeError> {
    match t {
        PacketType::Publish => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::Malformed("PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::Malformed("PUBLISH QoS 0 with DUP set"));
            }
            Ok(())
        }
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => {
            if flags != 0b0010 {
                return Err(DecodeError::Malformed("fixed header flags must be 0010"));
            }
            Ok(())
        }
        _ => {
            if flags != 0 {
                return Err(DecodeError::Malformed("fixed header flags must be 0000"));
            }
            Ok(())
        }
    }
}

/// Decodes one whole packet (fixed header included) for protocol `version`.
///
/// A CONNECT is decoded by its own protocol level whatever `version` says. The frame must
/// hold exactly one packet.
pub fn decode_packet(frame: Bytes, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let header =
        FixedHeader::parse(&frame)?.ok_or(DecodeError::Malformed("truncated fixed header"))?;
    if frame.len() != header.frame_len() {
        return Err(DecodeError::Malformed(
            "frame length differs from remaining length",
        ));
    }
    check_version(header.packet_type, Some(version))?;
    Packet::decode_frame(&header, frame, version)?.ok_or(DecodeError::Malformed("truncated packet"))
}

#[inline]
fn check_version(t: PacketType, v: Option<ProtocolVersion>) -> Result<(), DecodeError> {
    match v {
        // Common case first: a version is known and the packet is not AUTH.
        Some(v) if t != PacketType::Auth || v.is_v5() => Ok(()),
        _ if t == PacketType::Connect => Ok(()),
        _ => Err(DecodeError::UnexpectedPacket(t, v)),
    }
}

/// Streaming decoder for one connection.
///
/// Feed it the connection's read buffer; it takes whole packets off the front and leaves a
/// partial packet untouched. Before a protocol version is known only CONNECT is accepted
/// (anything else is 0x82); decoding a CONNECT adopts its protocol level.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_packet_size: u32,
    version: Option<ProtocolVersion>,
}

impl Decoder {
    /// A decoder that refuses packets larger than `max_packet_size` bytes (fixed header
    /// included) with 0x95 Packet too large; `0` means no limit beyond the protocol's own.
    pub fn new(max_packet_size: u32) -> Self {
        Decoder {
            max_packet_size,
            version: None,
        }
    }

    /// A decoder already set to protocol `version` (e.g. on the client side).
    pub fn with_version(max_packet_size: u32, version: ProtocolVersion) -> Self {
        Decoder {
            max_packet_size,
            version: Some(version),
        }
    }

    /// The protocol version in use, once known.
    #[inline]
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the protocol version (a client sets it when it sends CONNECT).
    #[inline]
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// The maximum packet size in force (`0` = no limit).
    #[inline]
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the maximum packet size (`0` = no limit).
    #[inline]
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// Decodes the next packet from the front of `buf`.
    ///
    /// * `Ok(None)`: `buf` holds only part of a packet; nothing was consumed.
    /// * `Ok(Some(p))`: the packet's bytes were split off `buf`; `p` shares them.
    /// * `Err(e)`: the stream is broken; `e.reason_code()` says why. The size check is made
    ///   from the fixed header alone, before the body is buffered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf)? else {
            // Fail fast on a packet type that is not allowed yet, even with one byte.
            if let Some(&b) = buf.first() {
                if let Ok(t) = PacketType::try_from(b >> 4) {
                    check_version(t, self.version)?;
                }
            }
            return Ok(None);
        };
        check_version(header.packet_type, self.version)?;
        let total = header.frame_len();
        if self.max_packet_size != 0 && total as u64 > u64::from(self.max_packet_size) {
            return Err(DecodeError::PacketTooLarge {
                size: total as u64,
                max: self.max_packet_size,
            });
        }
        if buf.len() < total {
            return Ok(None);
        }
        if let Some(v) = self.version {
            if keeps_nothing_of_frame(&header) {
                // Decoded where it lies: splitting a frame off costs a reference count per
                // packet, and an allocation when the buffer was not shared yet (a lone PINGREQ
                // or PUBACK usually arrives in a fresh one).
                let packet =
                    Packet::decode_short(header.packet_type, &buf[header.header_len..total], v);
                bytes::Buf::advance(buf, total);
                return packet;
            }
        }
        let frame = buf.split_to(total).freeze();
        if let (PacketType::Publish, Some(v)) = (header.packet_type, self.version) {
            // Hot path, inlined here: no dispatch over the other packet types.
            return Publish::decode(frame, header.flags, header.header_len, v);
        }
        match self.version {
            // Hot path: hand the result straight back (no extra move of the packet).
            Some(v) => Packet::decode_frame(&header, frame, v),
            None => {
                let packet = Packet::decode_frame(&header, frame, ProtocolVersion::V311);
                if let Ok(Some(Packet::Connect(c))) = &packet {
                    self.version = Some(c.protocol);
                }
                packet
            }
        }
    }
}

/// Packets whose decoded form holds no slice of their frame: pings, and acknowledgements and
/// DISCONNECTs too short to carry properties (packet id and reason code at most). Their body
/// decoders never look at the frame they are given.
fn keeps_nothing_of_frame(h: &FixedHeader) -> bool {
    match h.packet_type {
        PacketType::PingReq | PacketType::PingResp => true,
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            h.remaining_length <= 3
        }
        PacketType::Disconnect => h.remaining_length <= 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The in-place decoding of short packets gives what decoding their split-off frame
        /// gives, for any body of up to 3 bytes, valid or not, and consumes the same bytes.
        #[test]
        fn short_packets_decode_in_place_as_from_their_frame(
            first in prop::sample::select(vec![0x40u8, 0x50, 0x62, 0x70, 0xC0, 0xD0, 0xE0]),
            body in prop::collection::vec(any::<u8>(), 0..=3),
            v5 in any::<bool>(),
            trailing in prop::collection::vec(any::<u8>(), 0..3),
        ) {
            let v = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V311 };
            // A DISCONNECT with more than a reason code may carry properties: not short.
            let body = if first == 0xE0 { &body[..body.len().min(1)] } else { &body[..] };
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&[first, body.len() as u8]);
            buf.extend_from_slice(body);
            let frame = Bytes::copy_from_slice(&buf);
            buf.extend_from_slice(&trailing);
            let header = FixedHeader::parse(&buf).unwrap().unwrap();
            prop_assert!(keeps_nothing_of_frame(&header));
            let expected = Packet::decode_frame(&header, frame, v);
            let got = Decoder::with_version(0, v).decode(&mut buf);
            match (got, expected) {
                (Ok(g), Ok(e)) => prop_assert_eq!(g, e),
                (Err(g), Err(e)) => prop_assert_eq!(g.to_string(), e.to_string()),
                (g, e) => prop_assert!(false, "in place {g:?}, from the frame {e:?}"),
            }
            prop_assert_eq!(&buf[..], &trailing[..]);
        }
    }
}
