//! Criterion benchmarks for the peer protocol's hot frame: a replication
//! batch of 256 records with 16-byte keys and 100-byte values.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use std::hint::black_box;
use vergent_wire::peer::v1::{Batch, Record};

fn batch() -> Batch {
    Batch {
        first: 1,
        last: 256,
        records: (1..=256u64)
            .map(|seq| Record {
                seq,
                key: format!("k{seq:015}").into_bytes(),
                hlc: (1 << 20) + seq,
                origin: "node-1".to_string(),
                tombstone: false,
                value: vec![b'x'; 100],
                expires_at_ms: None,
            })
            .collect(),
        truncated: false,
    }
}

fn bench_codec(c: &mut Criterion) {
    let b = batch();
    let bytes = b.encode_to_vec();
    let mut group = c.benchmark_group("wire/batch_256x100b");
    group.throughput(Throughput::Elements(256));
    group.bench_function("encode", |bench| {
        let mut buf = Vec::with_capacity(bytes.len());
        bench.iter(|| {
            buf.clear();
            black_box(&b).encode(&mut buf).expect("buffer has room");
        })
    });
    group.bench_function("decode", |bench| {
        bench.iter(|| Batch::decode(black_box(bytes.as_slice())).expect("valid batch"))
    });
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
