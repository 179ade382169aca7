//! Throughput of the clock's hot paths: `now` on every write, `update` on every received message.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vergent_hlc::{Hlc, HlcConfig, Timestamp};

const T0: u64 = 1_795_440_472_123;

fn bench_now(c: &mut Criterion) {
    let mut group = c.benchmark_group("now");
    group.bench_function("same_ms", |b| {
        // A burst within one millisecond exercises the logical-counter path.
        let mut hlc = Hlc::new(HlcConfig::default());
        b.iter(|| hlc.now(black_box(T0)));
    });
    group.bench_function("advancing_ms", |b| {
        let mut hlc = Hlc::new(HlcConfig::default());
        let mut physical = T0;
        b.iter(|| {
            physical += 1;
            hlc.now(black_box(physical))
        });
    });
    group.finish();
}

fn bench_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("update");
    group.bench_function("remote_ahead", |b| {
        let mut hlc = Hlc::new(HlcConfig::default());
        let mut physical = T0;
        b.iter(|| {
            // Both sides advance so the remote stays ahead yet within the offset.
            physical += 1;
            let remote = Timestamp::new(physical + 1, 0);
            hlc.update(black_box(physical), black_box(remote))
        });
    });
    group.bench_function("remote_behind", |b| {
        let mut hlc = Hlc::new(HlcConfig::default());
        let remote = Timestamp::new(T0 - 1_000, 0);
        b.iter(|| hlc.update(black_box(T0), black_box(remote)));
    });
    group.bench_function("refused", |b| {
        let mut hlc = Hlc::new(HlcConfig::default());
        let remote = Timestamp::new(T0 + 60_000, 0);
        b.iter(|| hlc.update(black_box(T0), black_box(remote)));
    });
    group.finish();
}

criterion_group!(benches, bench_now, bench_update);
criterion_main!(benches);
