//! Criterion benchmarks for the store's hot paths: local write, a group of
//! writes, replicated apply and get.

use criterion::{Criterion, criterion_group, criterion_main};
use vergent_hlc::Timestamp;
use vergent_storage::{FsyncPolicy, Mutation, Record, Store, StoreOptions};
use vergent_types::{NodeId, Version};

fn bench_store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Off: the benchmark measures the engine path, not the disk's fsync latency.
    let opts = StoreOptions {
        fsync: FsyncPolicy::Off,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &opts).expect("open");
    let origin = NodeId::new("bench").expect("valid id");
    let value = vec![b'x'; 100];
    let mut hlc = 1u64 << 16;
    let mut i = 0u64;

    c.bench_function("storage/write_100b", |b| {
        b.iter(|| {
            i += 1;
            hlc += 1;
            let key = format!("key{:08}", i % 100_000);
            let ts = Timestamp::from_u64(hlc);
            let origin = origin.clone();
            store
                .write(
                    key.as_bytes(),
                    Mutation::Put {
                        value: value.clone(),
                        ttl_ms: None,
                    },
                    move |_| Ok(Version::new(ts, origin)),
                )
                .expect("write")
        })
    });

    c.bench_function("storage/apply_100b", |b| {
        b.iter(|| {
            i += 1;
            hlc += 1;
            let key = format!("key{:08}", i % 100_000);
            let rec = Record::value(
                Version::new(Timestamp::from_u64(hlc), origin.clone()),
                value.clone(),
                None,
            );
            store.apply(key.as_bytes(), rec).expect("apply")
        })
    });

    c.bench_function("storage/get_hit", |b| {
        b.iter(|| {
            i += 1;
            let key = format!("key{:08}", i % 1000);
            store.get(key.as_bytes()).expect("get")
        })
    });

    // One group commit of 64 client writes (what the node's writer builds
    // under 64 concurrent clients): one batch, one WAL write.
    let mut group = c.benchmark_group("storage/write_group");
    group.throughput(criterion::Throughput::Elements(64));
    group.bench_function("64x100b", |b| {
        b.iter(|| {
            let ops = (0..64)
                .map(|_| {
                    i += 1;
                    let key = format!("key{:08}", i % 100_000).into_bytes();
                    let value = value.clone();
                    (
                        key,
                        Mutation::Put {
                            value,
                            ttl_ms: None,
                        },
                    )
                })
                .collect();
            store
                .write_many(ops, |_| {
                    hlc += 1;
                    Ok(Version::new(Timestamp::from_u64(hlc), origin.clone()))
                })
                .expect("group")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
