//! The hashing every replica agrees on for anti-entropy digests.
//!
//! Keys fall into [`LEAVES`] buckets by a hash of the key alone, so a key
//! stays in its bucket across versions. A bucket's digest is the XOR of
//! [`record_hash`] over the records in it: adding, replacing or removing a
//! record is one XOR, whatever the bucket holds, and the result does not
//! depend on the order writes arrived in. Two replicas with the same bucket
//! digest hold the same `(key, version)` set there, up to a 2^-64 collision.
//!
//! The hashes are part of the peer protocol: changing them (or the seeds)
//! makes every bucket of a mixed-version cluster differ.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::Version;

/// Bits of the bucket number: 2^16 leaf buckets.
pub const LEAF_BITS: u32 = 16;
/// Number of leaf buckets.
pub const LEAVES: usize = 1 << LEAF_BITS;

const BUCKET_SEED: u64 = 0x7665_7267_656e_7462; // "vergentb"
const RECORD_SEED: u64 = 0x7665_7267_656e_7472; // "vergentr"

/// Bits of the fanout of the hash tree above the leaves: 16 children.
pub const FANOUT_BITS: u32 = 4;
/// Children per inner node.
pub const FANOUT: usize = 1 << FANOUT_BITS;
/// Levels below the root: level [`DEPTH`] holds the [`LEAVES`].
pub const DEPTH: u8 = (LEAF_BITS / FANOUT_BITS) as u8;
const INNER_SEED: u64 = 0x7665_7267_656e_7469; // "vergenti"

/// The hash tree over the leaf bucket digests: level 0 is the root, level
/// [`DEPTH`] the leaves, and each inner node hashes its [`FANOUT`] children.
///
/// Rebuilt from a leaf snapshot in one pass (4,369 small hashes), so only the
/// leaves need maintaining on write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    levels: Vec<Vec<u64>>,
}

impl Tree {
    /// Builds the tree over `leaves`; panics unless there are exactly [`LEAVES`].
    #[must_use]
    pub fn from_leaves(leaves: Vec<u64>) -> Self {
        assert_eq!(leaves.len(), LEAVES, "a tree needs every leaf bucket");
        let mut levels = vec![leaves];
        while levels[0].len() > 1 {
            let below = &levels[0];
            let above = below
                .chunks(FANOUT)
                .map(|children| {
                    let mut bytes = [0u8; FANOUT * 8];
                    for (slot, h) in bytes.chunks_mut(8).zip(children) {
                        slot.copy_from_slice(&h.to_be_bytes());
                    }
                    xxh3_64_with_seed(&bytes, INNER_SEED)
                })
                .collect();
            levels.insert(0, above);
        }
        Self { levels }
    }

    /// The hashes of one level (level 0 is the root alone).
    #[must_use]
    pub fn level(&self, level: u8) -> &[u64] {
        self.levels.get(level as usize).map_or(&[], Vec::as_slice)
    }

    /// The root hash: equal roots mean equal contents.
    #[must_use]
    pub fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// The hashes of the children of node `index` at `level`.
    #[must_use]
    pub fn children(&self, level: u8, index: u32) -> &[u64] {
        let start = index as usize * FANOUT;
        self.level(level + 1)
            .get(start..start + FANOUT)
            .unwrap_or(&[])
    }

    /// Number of nodes at `level`.
    #[must_use]
    pub fn width(level: u8) -> usize {
        1 << (FANOUT_BITS * u32::from(level))
    }
}

/// One key of a leaf bucket as repair lists it: its version and whether the
/// record is a tombstone, without the value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeafEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The stored version.
    pub version: Version,
    /// Whether the stored record is a tombstone.
    pub tombstone: bool,
}

/// The leaf bucket `key` belongs to.
#[must_use]
pub fn leaf_of(key: &[u8]) -> u16 {
    // The top bits: xxh3 mixes well, and this keeps the bucket independent of
    // the record hash's low bits.
    (xxh3_64_with_seed(key, BUCKET_SEED) >> (64 - LEAF_BITS)) as u16
}

/// The contribution of one stored record to its bucket digest.
///
/// A version names exactly one write, so `(key, version)` identifies the
/// record; the value need not be hashed.
#[must_use]
pub fn record_hash(key: &[u8], version: &Version) -> u64 {
    let origin = version.origin.as_str().as_bytes();
    let mut buf = Vec::with_capacity(4 + key.len() + 8 + origin.len());
    // Length-prefixed so that (key, origin) splits are unambiguous.
    buf.extend_from_slice(&(key.len() as u32).to_be_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&version.hlc.as_u64().to_be_bytes());
    buf.extend_from_slice(origin);
    let h = xxh3_64_with_seed(&buf, RECORD_SEED);
    // Zero is the empty bucket; a record must never look like no record.
    if h == 0 { 1 } else { h }
}

#[cfg(test)]
mod tests {
    use vergent_hlc::Timestamp;

    use super::*;
    use crate::NodeId;

    fn v(ms: u64, origin: &str) -> Version {
        Version::new(
            Timestamp::new(ms, 0),
            NodeId::new(origin.to_string()).expect("valid id"),
        )
    }

    #[test]
    fn hashes_are_stable_across_builds_and_machines() {
        // Pinned values: these are part of the peer protocol.
        let pinned = (
            leaf_of(b"user/1"),
            record_hash(b"k", &v(1_700_000_000_000, "n1")),
        );
        assert_eq!(pinned, PINNED);
    }

    const PINNED: (u16, u64) = (42286, 16_486_892_642_810_086_414);

    #[test]
    fn every_version_and_origin_changes_the_record_hash() {
        let base = record_hash(b"k", &v(1, "n1"));
        assert_ne!(base, record_hash(b"k", &v(2, "n1")));
        assert_ne!(base, record_hash(b"k", &v(1, "n2")));
        assert_ne!(base, record_hash(b"k2", &v(1, "n1")));
        // The length prefix keeps key/origin boundaries apart.
        assert_ne!(
            record_hash(b"ab", &v(1, "c")),
            record_hash(b"a", &v(1, "bc"))
        );
    }

    #[test]
    fn a_changed_leaf_changes_every_ancestor_and_nothing_else() {
        let mut leaves = vec![0u64; LEAVES];
        let before = Tree::from_leaves(leaves.clone());
        leaves[0x1234] = 42;
        let after = Tree::from_leaves(leaves);
        assert_ne!(before.root(), after.root());
        for level in 0..=DEPTH {
            let differing: Vec<usize> = (0..Tree::width(level))
                .filter(|&i| before.level(level)[i] != after.level(level)[i])
                .collect();
            let ancestor = 0x1234 >> (FANOUT_BITS * u32::from(DEPTH - level));
            assert_eq!(differing, vec![ancestor], "level {level}");
        }
        assert_eq!(after.children(DEPTH - 1, 0x123)[4], 42);
    }

    #[test]
    fn keys_spread_over_the_buckets() {
        let mut hit = vec![0u32; LEAVES];
        for i in 0..(LEAVES as u32 * 4) {
            hit[leaf_of(format!("key/{i}").as_bytes()) as usize] += 1;
        }
        let empty = hit.iter().filter(|&&n| n == 0).count();
        // Poisson(4): about 1.8% of buckets stay empty.
        assert!(empty < LEAVES / 25, "{empty} empty buckets");
        assert!(hit.iter().all(|&n| n < 30));
    }
}
