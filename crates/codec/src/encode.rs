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
    buf.put_u8(body.first_byte());
    put_varint(buf, lens.remaining);
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
/// This runs on every PUBLISH in both directions, so it is branch-light: 16-byte blocks in a
/// form the compiler turns into SIMD compares (with an overlapping last block instead of a
/// byte-by-byte tail), and two overlapping 8- or 4-byte words (SWAR) for short strings.
#[inline]
pub(crate) fn has_wildcard_or_nul(t: &[u8]) -> bool {
    scan::<true>(t)
}

/// True if `s` holds a NUL byte (U+0000), which no MQTT string may contain.
#[inline]
pub(crate) fn has_nul(s: &[u8]) -> bool {
    scan::<false>(s)
}

#[inline(always)]
fn is_bad<const WILD: bool>(b: u8) -> bool {
    // Non-short-circuit `|` keeps the block loop branch-free, so it vectorizes.
    (b == 0) | (WILD & ((b == b'+') | (b == b'#')))
}

#[inline(always)]
fn word_has_bad<const WILD: bool>(x: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn zero_byte(x: u64) -> u64 {
        x.wrapping_sub(LO) & !x & HI
    }
    let mut hit = zero_byte(x);
    if WILD {
        hit |= zero_byte(x ^ (LO * u64::from(b'+'))) | zero_byte(x ^ (LO * u64::from(b'#')));
    }
    hit != 0
}

#[inline(always)]
fn scan<const WILD: bool>(t: &[u8]) -> bool {
    #[inline(always)]
    fn block<const WILD: bool>(c: &[u8; 16]) -> bool {
        let mut any = false;
        for &b in c {
            any |= is_bad::<WILD>(b);
        }
        any
    }
    #[inline(always)]
    fn window(t: &[u8], at: usize) -> &[u8; 16] {
        // `at + 16 <= t.len()` at every call site; the fallback is never taken.
        t[at..at + 16].try_into().unwrap_or(&[1; 16])
    }
    #[inline(always)]
    fn word8(t: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&t[at..at + 8]);
        u64::from_le_bytes(w)
    }
    #[inline(always)]
    fn word4(t: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&t[at..at + 4]);
        // Pad the upper half with a byte that is never "bad".
        u64::from(u32::from_le_bytes(w)) | 0x0101_0101_0000_0000
    }
    let n = t.len();
    if n >= 16 {
        let mut at = 0;
        while at + 16 <= n {
            if block::<WILD>(window(t, at)) {
                return true;
            }
            at += 16;
        }
        at < n && block::<WILD>(window(t, n - 16))
    } else if n >= 8 {
        word_has_bad::<WILD>(word8(t, 0)) || word_has_bad::<WILD>(word8(t, n - 8))
    } else if n >= 4 {
        word_has_bad::<WILD>(word4(t, 0)) || word_has_bad::<WILD>(word4(t, n - 4))
    } else {
        t.iter().any(|&b| is_bad::<WILD>(b))
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
