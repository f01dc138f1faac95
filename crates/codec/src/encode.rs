//! Encoding helpers: variable byte integers, length-prefixed strings and binary data.
//!
//! Every packet is encoded in two passes over its *fields* (never over bytes): a length pass
//! that validates and adds sizes arithmetically, then a single `reserve` and a write pass that
//! cannot fail.

use bytes::{BufMut, BytesMut};

use crate::{EncodeError, ProtocolVersion, MAX_REMAINING_LENGTH};

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
