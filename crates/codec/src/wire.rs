//! The wire's primitives, both ways: fixed header, variable byte integers, integers, packet
//! identifiers, reason-code bytes, length-prefixed strings and binary data, and the two-pass
//! encoding frame ([`Body`], [`Lens`], [`encode_body`]).
//!
//! This is the bottom of the codec's import graph, which has no cycles:
//!
//! ```text
//! wire  <-  properties  <-  packet::common  <-  packet::<kind>  <-  packet (Packet)  <-  decode
//! ```
//!
//! Each module imports only from modules to its left, and from the vocabulary below them
//! all: the crate root's `ProtocolVersion`, `QoS` and `PacketType`, `reason`, `property_id`
//! and `error`, plain types that name one another (an error names its reason code, a
//! conversion from a wire byte names its error) and borrow no logic. A helper that two
//! packet kinds share lives in `packet::common`, never in one of the two, so no packet file
//! imports a sibling.
//!
//! Reading: bodies are parsed as `&[u8]` with `nom` (complete parsers: a body is only parsed
//! once it is fully buffered) and every string / binary slice is turned back into a `Bytes`
//! of the frame with [`Bytes::slice_ref`], so nothing is copied.
//!
//! Writing: every packet is encoded in two passes over its *fields* (never over bytes): a
//! length pass that validates and adds sizes arithmetically, then a single `reserve` and a
//! write pass that cannot fail.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use nom::error::{ErrorKind, ParseError};

use crate::{DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

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

/// Parses a v5 reason code byte and checks it is allowed in packet `t`: an unknown value is
/// 0x81 Malformed, a known value not allowed in this packet is 0x82 Protocol Error.
#[inline]
pub(crate) fn reason_code(b: u8, t: PacketType) -> Result<ReasonCode, DecodeError> {
    let rc = ReasonCode::try_from(b)?;
    if !rc.allowed_in(t) {
        return Err(DecodeError::Protocol(
            "reason code not allowed in this packet",
        ));
    }
    Ok(rc)
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
    if has_nul(s) {
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

// ---- writing ----

/// Sizes computed by the length pass and reused by the write pass.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Lens {
    /// Remaining length (everything after the fixed header).
    pub remaining: usize,
    /// Inner length of the packet's property list (v5).
    pub props: usize,
    /// Inner length of the will property list (CONNECT, v5).
    pub will_props: usize,
}

/// A packet body that knows its size and how to write itself.
pub(crate) trait Body {
    /// First byte of the fixed header (type and flags).
    fn first_byte(&self) -> u8;
    /// Validates the packet for `v` and computes its sizes.
    fn lens(&self, v: ProtocolVersion) -> Result<Lens, EncodeError>;
    /// Writes the variable header and payload; `lens` comes from [`Body::lens`].
    fn write(&self, v: ProtocolVersion, lens: &Lens, buf: &mut BytesMut);
}

/// Whole encoded size of a packet: fixed header plus remaining length.
#[inline]
pub(crate) fn total_len(remaining: usize) -> Result<usize, EncodeError> {
    if remaining > MAX_REMAINING_LENGTH as usize {
        return Err(EncodeError::PacketTooLarge(remaining));
    }
    Ok(1 + varint_len(remaining) + remaining)
}

/// Validates, reserves once and writes a packet; returns the number of bytes written.
#[inline]
pub(crate) fn encode_body<B: Body>(
    body: &B,
    v: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let lens = body.lens(v)?;
    let total = total_len(lens.remaining)?;
    buf.reserve(total);
    let start = buf.len();
    // Fixed header in one write for the common sizes.
    let first = body.first_byte();
    let r = lens.remaining;
    if r < 128 {
        buf.put_slice(&[first, r as u8]);
    } else if r < 16_384 {
        buf.put_slice(&[first, (r as u8) | 0x80, (r >> 7) as u8]);
    } else {
        buf.put_u8(first);
        put_varint(buf, r);
    }
    body.write(v, &lens, buf);
    debug_assert_eq!(
        buf.len() - start,
        total,
        "encoded_len disagrees with bytes written"
    );
    let _ = start;
    Ok(total)
}

/// Size of `n` as a variable byte integer.
#[inline]
pub(crate) const fn varint_len(n: usize) -> usize {
    if n < 128 {
        1
    } else if n < 16_384 {
        2
    } else if n < 2_097_152 {
        3
    } else {
        4
    }
}

/// Writes `n` (at most 268,435,455) as a variable byte integer.
#[inline]
pub(crate) fn put_varint(buf: &mut BytesMut, mut n: usize) {
    loop {
        let mut byte = (n & 0x7F) as u8;
        n >>= 7;
        if n > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if n == 0 {
            break;
        }
    }
}

/// Encoded size of a UTF-8 string field; refuses > 65,535 bytes or U+0000.
#[inline]
pub(crate) fn str_len(s: &str) -> Result<usize, EncodeError> {
    if s.len() > u16::MAX as usize {
        return Err(EncodeError::StringInvalid("longer than 65535 bytes"));
    }
    if has_nul(s.as_bytes()) {
        return Err(EncodeError::StringInvalid("contains U+0000"));
    }
    Ok(2 + s.len())
}

/// Encoded size of a binary data field; refuses > 65,535 bytes.
#[inline]
pub(crate) fn bin_len(b: &[u8]) -> Result<usize, EncodeError> {
    if b.len() > u16::MAX as usize {
        return Err(EncodeError::BinaryTooLong);
    }
    Ok(2 + b.len())
}

/// Encoded size of a topic name; refuses wildcards, U+0000, > 65,535 bytes, and an empty
/// name unless `allow_empty` (v5 PUBLISH with a Topic Alias).
#[inline]
pub(crate) fn topic_len(t: &str, allow_empty: bool) -> Result<usize, EncodeError> {
    if t.len() > u16::MAX as usize {
        return Err(EncodeError::StringInvalid("longer than 65535 bytes"));
    }
    if t.is_empty() && !allow_empty {
        return Err(EncodeError::TopicNameInvalid("empty topic name"));
    }
    if has_wildcard_or_nul(t.as_bytes()) {
        return Err(EncodeError::TopicNameInvalid(
            "wildcard or U+0000 in topic name",
        ));
    }
    Ok(2 + t.len())
}

/// Writes a length-prefixed string (length already validated).
#[inline]
pub(crate) fn put_str(buf: &mut BytesMut, s: &str) {
    put_bin(buf, s.as_bytes());
}

/// Writes length-prefixed binary data (length already validated).
#[inline]
pub(crate) fn put_bin(buf: &mut BytesMut, b: &[u8]) {
    buf.put_u16(b.len() as u16);
    buf.put_slice(b);
}

/// True if `t` holds `+`, `#` or NUL: the bytes a topic name must not contain.
///
/// This runs on every PUBLISH in both directions: 16-byte blocks as a SIMD-friendly
/// reduction, and 8-byte words (SWAR) for short strings and the tail.
// Out of line on purpose: inlined into large callers the block loop may lose its SIMD form.
#[inline(never)]
pub(crate) fn has_wildcard_or_nul(t: &[u8]) -> bool {
    if t.len() < 16 {
        scan_short::<true>(t)
    } else {
        scan_long::<true>(t)
    }
}

/// True if `s` holds a NUL byte (U+0000), which no MQTT string may contain.
#[inline(never)]
pub(crate) fn has_nul(s: &[u8]) -> bool {
    if s.len() < 16 {
        scan_short::<false>(s)
    } else {
        scan_long::<false>(s)
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Non-zero iff some byte of `x` is zero (exact for "any", the classic SWAR test).
#[inline(always)]
fn zero_byte(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// Non-zero iff some byte of `x` is NUL, or (if `WILD`) `+` or `#`. `#` (0x23) and `+` (0x2B)
/// differ only in bit 3, so setting that bit and comparing with `+` catches both.
#[inline(always)]
fn bad_bytes<const WILD: bool>(x: u64) -> u64 {
    if WILD {
        zero_byte(x) | zero_byte((x | (LO * 0x08)) ^ (LO * u64::from(b'+')))
    } else {
        zero_byte(x)
    }
}

#[inline(always)]
fn word(t: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&t[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn is_bad<const WILD: bool>(b: u8) -> u8 {
    u8::from(b == 0) | u8::from(WILD & ((b | 0x08) == b'+'))
}

/// `t.len() >= 16`: whole 16-byte blocks, then the last 16 bytes (overlapping bytes already
/// checked). Both are branch-free `bool` OR-reductions, which the compiler turns into SIMD
/// compares and one mask test (valid strings are scanned to the end anyway, so an early
/// exit buys nothing).
#[inline(always)]
fn scan_long<const WILD: bool>(t: &[u8]) -> bool {
    let n = t.len();
    let mut acc = false;
    for &b in &t[..n & !15] {
        acc |= is_bad_bool::<WILD>(b);
    }
    let tail: &[u8; 16] = t[n - 16..].try_into().expect("16-byte tail");
    for &b in tail {
        acc |= is_bad_bool::<WILD>(b);
    }
    acc
}

#[inline(always)]
fn is_bad_bool<const WILD: bool>(b: u8) -> bool {
    (b == 0) | (WILD & ((b | 0x08) == b'+'))
}

/// `t.len() < 16`: two overlapping words.
#[inline(always)]
fn scan_short<const WILD: bool>(t: &[u8]) -> bool {
    let n = t.len();
    if n >= 8 {
        bad_bytes::<WILD>(word(t, 0)) | bad_bytes::<WILD>(word(t, n - 8)) != 0
    } else if n >= 4 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&t[..4]);
        let a = u32::from_le_bytes(w);
        w.copy_from_slice(&t[n - 4..]);
        let b = u32::from_le_bytes(w);
        bad_bytes::<WILD>(u64::from(a) | (u64::from(b) << 32)) != 0
    } else {
        t.iter().fold(0, |acc, &b| acc | is_bad::<WILD>(b)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_scan_matches_naive() {
        let naive = |t: &[u8]| t.iter().any(|&b| b == b'+' || b == b'#' || b == 0);
        let base = b"sensors/building-7/floor-3/room-12/temperature".to_vec();
        for len in 0..base.len() {
            for pos in 0..len {
                for bad in [b'+', b'#', 0, b'*', 0x80, 0xFF, b'*' ^ 0x80] {
                    let mut t = base[..len].to_vec();
                    t[pos] = bad;
                    assert_eq!(has_wildcard_or_nul(&t), naive(&t), "{t:?}");
                    assert_eq!(has_nul(&t), t.contains(&0), "{t:?}");
                }
            }
            assert!(!has_wildcard_or_nul(&base[..len]));
        }
    }

    #[test]
    fn varint_lengths() {
        for (n, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (268_435_455, 4),
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, n);
            assert_eq!(buf.len(), len, "{n}");
            assert_eq!(varint_len(n), len, "{n}");
        }
    }
}
