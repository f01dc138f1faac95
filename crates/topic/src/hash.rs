//! Small hashers: a seeded one for strings and client ids (which peers choose, so the seed is
//! random per process), and a cheap one for the dense `u32` level ids the trie assigns itself.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        // std's RandomState keys come from the OS's random source.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6d6f_636f);
        h.finish() | 1
    })
}

/// Builds [`SeededHasher`]s with a random per-process seed. Zero-sized.
///
/// Fast on short keys such as client ids, and keyed by a secret seed so that peers cannot
/// choose colliding keys; the engine uses it for its client registry too.
#[derive(Clone, Copy, Default, Debug)]
pub struct SeededState;

impl BuildHasher for SeededState {
    type Hasher = SeededHasher;
    #[inline]
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher {
            acc: process_seed(),
        }
    }
}

/// A folded-multiply hasher over 8-byte words, keyed by a secret seed.
#[derive(Debug)]
pub struct SeededHasher {
    acc: u64,
}

impl Hasher for SeededHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut acc = self.acc;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            acc = fold_mul(acc ^ w, K1);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            acc = fold_mul(acc ^ u64::from_le_bytes(buf), K2);
        }
        self.acc = fold_mul(acc ^ bytes.len() as u64, K0);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.acc = fold_mul(self.acc ^ u64::from(i), K0);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.acc = fold_mul(self.acc ^ u64::from(i), K1);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.acc = fold_mul(self.acc ^ u64::from(i), K1);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.acc = fold_mul(self.acc ^ i, K1);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.acc, K2)
    }
}

/// Builds [`IdHasher`]s for the trie's own `u32` ids. Zero-sized.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct IdState;

impl BuildHasher for IdState {
    type Hasher = IdHasher;
    #[inline]
    fn build_hasher(&self) -> IdHasher {
        IdHasher(K0)
    }
}

/// A one-multiply hasher for integer keys.
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = fold_mul(self.0 ^ u64::from(b), K1);
        }
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0 = fold_mul(self.0 ^ u64::from(i), K1);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Hashes one value with the seeded hasher (sticky share selection, aggregation).
#[inline]
pub(crate) fn hash_one<T: std::hash::Hash + ?Sized>(v: &T) -> u64 {
    SeededState.hash_one(v)
}

/// SplitMix64's finaliser: a well-mixed value from a counter.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random starting value for per-trie counters.
pub(crate) fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
}
