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
