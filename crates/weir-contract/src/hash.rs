//! Sets of values seen, for `unique`, `primary_key` and `allowed`.
//!
//! The hasher folds each 64-bit word into its state with a 64x64 -> 128-bit
//! multiply keyed by two per-process random seeds (the scheme of
//! `foldhash`): a few cycles per word, and an attacker who cannot read the
//! process's memory cannot precompute colliding keys. It is not a
//! cryptographic hash.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};

/// Seeds for [`Fold`], random per process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seed {
    k0: u64,
    k1: u64,
}

impl Seed {
    pub(crate) fn random() -> Self {
        // std's RandomState draws its keys from the OS once per thread and
        // increments them per instance.
        let state = std::collections::hash_map::RandomState::new();
        Seed {
            k0: state.hash_one(0x5745_4952_u64),
            k1: state.hash_one(0x434f_4e54_u64) | 1,
        }
    }
}

impl Default for Seed {
    fn default() -> Self {
        Seed::random()
    }
}

impl BuildHasher for Seed {
    type Hasher = Fold;

    fn build_hasher(&self) -> Fold {
        Fold {
            acc: self.k0,
            key: self.k1,
        }
    }
}

const PI: u64 = 0x243F_6A88_85A3_08D3;

fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// The hasher [`Seed`] builds.
#[derive(Debug, Clone)]
pub(crate) struct Fold {
    acc: u64,
    key: u64,
}

impl Fold {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.acc = folded_multiply(self.acc ^ word, self.key);
    }
}

impl Hasher for Fold {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(rest) {
                *w = *b;
            }
            // The length tells "ab" from "ab\0".
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.mix(i as u64);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }

    #[inline]
    fn write_i128(&mut self, i: i128) {
        self.write_u128(i as u128);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.acc, self.key ^ PI)
    }
}

/// A set with the fast seeded hasher.
pub(crate) type FastSet<K> = HashSet<K, Seed>;

pub(crate) fn fast_set<K>() -> FastSet<K> {
    HashSet::with_hasher(Seed::random())
}

/// A number kept by [`KeySet`].
pub(crate) trait Key: Copy + Ord + Hash {
    /// Whether `self` is `prev + 1`.
    fn follows(self, prev: Self) -> bool;
    /// Whether `self` is among the `len` keys from `start` on.
    fn within(self, start: Self, len: u32) -> bool;
}

impl Key for i64 {
    #[inline]
    fn follows(self, prev: Self) -> bool {
        prev.checked_add(1) == Some(self)
    }

    #[inline]
    fn within(self, start: Self, len: u32) -> bool {
        self.checked_sub(start)
            .is_some_and(|d| (0..i64::from(len)).contains(&d))
    }
}

impl Key for i128 {
    #[inline]
    fn follows(self, prev: Self) -> bool {
        prev.checked_add(1) == Some(self)
    }

    #[inline]
    fn within(self, start: Self, len: u32) -> bool {
        self.checked_sub(start)
            .is_some_and(|d| (0..i128::from(len)).contains(&d))
    }
}

/// Keys seen so far in one column, for duplicate detection across batches.
///
/// A key larger than every key seen so far (ascending ids, times) is new
/// without a lookup. Such keys are kept as runs of consecutive numbers
/// (first key and length), so a dense ascending id column takes a few bytes
/// in all, and a sparse ascending one a key and 4 bytes per value, written
/// in order. Other keys are looked up in the runs by binary search, then in
/// a hash set.
#[derive(Clone)]
pub(crate) struct KeySet<K> {
    /// First key of each run, ascending.
    starts: Vec<K>,
    /// Length of each run.
    lens: Vec<u32>,
    /// The largest key: the end of the last run.
    max: Option<K>,
    others: FastSet<K>,
}

impl<K: Key> KeySet<K> {
    pub(crate) fn new() -> Self {
        KeySet {
            starts: Vec::new(),
            lens: Vec::new(),
            max: None,
            others: fast_set(),
        }
    }

    /// Adds `key`; `false` if it was already there.
    #[inline]
    pub(crate) fn insert(&mut self, key: K) -> bool {
        match self.max {
            Some(max) if key <= max => {
                let run = self.starts.partition_point(|s| *s <= key).checked_sub(1);
                let start = run.and_then(|r| self.starts.get(r).zip(self.lens.get(r)));
                if start.is_some_and(|(start, len)| key.within(*start, *len)) {
                    return false;
                }
                self.others.insert(key)
            }
            Some(max) if key.follows(max) => {
                match self.lens.last_mut() {
                    Some(len) if *len < u32::MAX => *len += 1,
                    _ => {
                        self.starts.push(key);
                        self.lens.push(1);
                    }
                }
                self.max = Some(key);
                true
            }
            _ => {
                self.starts.push(key);
                self.lens.push(1);
                self.max = Some(key);
                true
            }
        }
    }
}

/// Byte strings seen so far (strings, binary, encoded key tuples).
#[derive(Clone)]
pub(crate) struct BytesSet(FastSet<Box<[u8]>>);

impl BytesSet {
    pub(crate) fn new() -> Self {
        BytesSet(fast_set())
    }

    /// Adds `key`; `false` if it was already there.
    #[inline]
    pub(crate) fn insert(&mut self, key: &[u8]) -> bool {
        if self.0.contains(key) {
            return false;
        }
        self.0.insert(key.into())
    }
}

/// A fixed set of byte strings (allowed values), with a fast path when all
/// are at most 7 bytes long (country codes, status names): such a value is
/// packed with its length into one `u64` and looked up as a number.
#[derive(Debug, Clone)]
pub(crate) struct ByteValues {
    longest: usize,
    packed: Option<FastSet<u64>>,
    all: FastSet<Box<[u8]>>,
}

/// `bytes` (little-endian) and its length in one word, if it has at most 7
/// bytes. Reads whole words where it can: copying bytes to the stack and
/// reloading them as a word stalls store forwarding.
#[inline]
fn pack(bytes: &[u8]) -> Option<u64> {
    let len = bytes.len();
    let byte = |i: usize| bytes.get(i).map_or(0, |b| u64::from(*b));
    let word = |range: std::ops::Range<usize>| -> Option<u64> {
        let four: [u8; 4] = bytes.get(range)?.try_into().ok()?;
        Some(u64::from(u32::from_le_bytes(four)))
    };
    let data = match len {
        0 => 0,
        // First, middle and last byte cover all of 1 to 3 bytes.
        1..=3 => byte(0) | byte(len / 2) << (8 * (len / 2)) | byte(len - 1) << (8 * (len - 1)),
        // The first four bytes, then the last four's top `len - 4`.
        4..=7 => word(0..4)? | (word(len - 4..len)? >> (8 * (8 - len))) << 32,
        _ => return None,
    };
    Some(data | ((len as u64) << 56))
}

impl ByteValues {
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let all: FastSet<Box<[u8]>> = values.into_iter().map(Box::from).collect();
        let longest = all.iter().map(|v| v.len()).max().unwrap_or(0);
        let packed = all.iter().map(|v| pack(v)).collect();
        ByteValues {
            longest,
            packed,
            all,
        }
    }

    #[inline]
    pub(crate) fn contains(&self, value: &[u8]) -> bool {
        if value.len() > self.longest {
            return false;
        }
        match (&self.packed, pack(value)) {
            (Some(packed), Some(word)) => packed.contains(&word),
            _ => self.all.contains(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn key_set_is_a_set(keys in proptest::collection::vec(-20i64..20, 0..200)) {
            let mut set = KeySet::new();
            let mut reference = std::collections::BTreeSet::new();
            for k in keys {
                proptest::prop_assert_eq!(set.insert(k), reference.insert(k), "{}", k);
            }
        }
    }

    #[test]
    fn key_set_runs() {
        let mut s = KeySet::new();
        for k in 10i64..20 {
            assert!(s.insert(k));
        }
        for k in [30i64, 31, 32, 40] {
            assert!(s.insert(k));
        }
        assert_eq!(
            (s.starts.clone(), s.lens.clone()),
            (vec![10, 30, 40], vec![10, 3, 1])
        );
        for k in [10i64, 15, 19, 30, 32, 40] {
            assert!(!s.insert(k), "{k}");
        }
        for k in [9i64, 20, 29, 33, 39] {
            assert!(s.insert(k), "{k}");
            assert!(!s.insert(k), "{k}");
        }
        let mut wide = KeySet::new();
        assert!(wide.insert(i128::MIN));
        assert!(wide.insert(i128::MAX));
        assert!(!wide.insert(i128::MIN));
        assert!(wide.insert(0));
        let mut edge = KeySet::new();
        assert!(edge.insert(i64::MAX - 1));
        assert!(edge.insert(i64::MAX));
        assert!(!edge.insert(i64::MAX));
        assert!(edge.insert(i64::MIN));
    }

    #[test]
    fn key_set_ascending_then_not() {
        let mut s = KeySet::new();
        assert!(s.insert(1i64));
        assert!(s.insert(5));
        assert!(!s.insert(5));
        assert!(s.insert(3));
        assert!(!s.insert(3));
        assert!(!s.insert(1));
        assert!(s.insert(6));
        assert!(s.insert(-10));
        assert!(!s.insert(-10));
        assert!(!s.insert(6));
    }

    #[test]
    fn pack_is_little_endian_with_length() {
        for len in 0..=7usize {
            let bytes: Vec<u8> = (1..=len as u8).map(|b| b * 17).collect();
            let mut expected = (len as u64) << 56;
            for (i, b) in bytes.iter().enumerate() {
                expected |= u64::from(*b) << (8 * i);
            }
            assert_eq!(pack(&bytes), Some(expected), "{len}");
        }
        assert_eq!(pack(&[0; 8]), None);
    }

    #[test]
    fn byte_values() {
        let short = ByteValues::new([&b"US"[..], b"DE", b"", b"ab\0"]);
        assert!(short.packed.is_some());
        for yes in [&b"US"[..], b"DE", b"", b"ab\0"] {
            assert!(short.contains(yes));
        }
        for no in [&b"U"[..], b"USA", b"ab", b"\0", b"us", b"longer than all"] {
            assert!(!short.contains(no));
        }
        let long = ByteValues::new([&b"US"[..], b"a longer value"]);
        assert!(long.packed.is_none());
        assert!(long.contains(b"US") && long.contains(b"a longer value"));
        assert!(!long.contains(b"a longer valuf") && !long.contains(b""));
    }

    #[test]
    fn bytes_set() {
        let mut s = BytesSet::new();
        assert!(s.insert(b"ab"));
        assert!(s.insert(b"ab\0"));
        assert!(s.insert(b""));
        assert!(!s.insert(b"ab"));
        assert!(!s.insert(b""));
    }

    #[test]
    fn hasher_spreads_small_keys() {
        let seed = Seed::random();
        let hashes: FastSet<u64> = (0u64..10_000).map(|k| seed.hash_one(k)).collect();
        assert_eq!(hashes.len(), 10_000);
        // The top 7 bits pick SwissTable control bytes: all 128 values show.
        let tops: FastSet<u64> = (0u64..10_000).map(|k| seed.hash_one(k) >> 57).collect();
        assert_eq!(tops.len(), 128);
    }
}
