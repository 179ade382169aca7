//! Criterion benchmarks for the store's hot paths: local write, replicated apply and get.

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
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
