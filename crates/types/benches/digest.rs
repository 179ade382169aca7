//! Criterion benchmarks for the anti-entropy digest: the per-write Merkle leaf
//! update (a record hash and two XORs) and the tree a repair session builds.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vergent_hlc::Timestamp;
use vergent_types::digest::{LEAVES, Tree, leaf_of, record_hash};
use vergent_types::{NodeId, Version};

fn bench_digest(c: &mut Criterion) {
    let origin = NodeId::new("bench").expect("valid id");
    let old = Version::new(Timestamp::from_u64(1 << 20), origin.clone());
    let new = Version::new(Timestamp::from_u64((1 << 20) + 1), origin);
    let key = b"key-0000000042";
    let mut leaves = vec![0u64; LEAVES];

    // What every write adds to the store's hot path: which bucket, and the
    // XOR that swaps the old version's hash for the new one.
    c.bench_function("digest/leaf_update", |b| {
        b.iter(|| {
            let key = black_box(&key[..]);
            let leaf = leaf_of(key);
            leaves[leaf as usize] ^= record_hash(key, &new) ^ record_hash(key, &old);
        })
    });

    let filled: Vec<u64> = (0..LEAVES as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    c.bench_function("digest/tree_from_65536_leaves", |b| {
        b.iter(|| Tree::from_leaves(black_box(filled.clone())).root())
    });
}

criterion_group!(benches, bench_digest);
criterion_main!(benches);
