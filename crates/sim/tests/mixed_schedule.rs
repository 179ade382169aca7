//! Many seeds of a mixed schedule (writes and deletes, partitions, loss,
//! delay, duplication, one-way drops, crashes with loss of unsynced state,
//! wipes, restarts) on 3 to 7 nodes with a short tombstone grace, so purges
//! happen throughout; after healing, every invariant must hold. The seeds
//! are shared out over four tests so they run in parallel.

mod common;

use std::time::Duration;

use vergent_sim::{Event, WorldConfig};

/// What the runs did, so a schedule that stopped injecting faults (and
/// would pass for nothing) is caught.
#[derive(Default)]
struct Seen {
    runs: usize,
    crashes: usize,
    wipes: usize,
    partitions: usize,
    purges: usize,
    acked: usize,
}

fn run_share(share: u64) {
    let mut seen = Seen::default();
    for seed in common::seeds(200)
        .into_iter()
        .filter(|s| s % 4 == share || std::env::var("SIM_SEED").is_ok())
    {
        let cfg = WorldConfig {
            nodes: 3 + (seed % 5) as usize,
            ..WorldConfig::default()
        };
        let mut w = common::world(cfg, seed);
        w.run_for(Duration::from_secs(3));
        w.random_schedule(Duration::from_secs(20));
        common::settle_and_check(&mut w, seed, "mixed_schedule");
        seen.runs += 1;
        for e in &w.history.events {
            match e {
                Event::Fault(f) if f.starts_with("crash") => seen.crashes += 1,
                Event::Fault(f) if f.starts_with("wipe") => seen.wipes += 1,
                Event::Fault(f) if f.starts_with("Partition") => seen.partitions += 1,
                Event::Purged { .. } => seen.purges += 1,
                Event::Acked { .. } => seen.acked += 1,
                _ => {}
            }
        }
    }
    eprintln!(
        "share {share}: {} runs, {} acknowledged writes, {} crashes, {} wipes, {} partitions, {} purges",
        seen.runs, seen.acked, seen.crashes, seen.wipes, seen.partitions, seen.purges
    );
    if seen.runs >= 20 {
        assert!(
            seen.crashes > 0 && seen.wipes > 0 && seen.partitions > 0 && seen.purges > 0,
            "the schedule no longer exercises every fault: {} crashes, {} wipes, {} partitions, {} purges",
            seen.crashes,
            seen.wipes,
            seen.partitions,
            seen.purges
        );
    }
}

#[test]
fn every_invariant_holds_after_a_mixed_fault_schedule_seeds_0_mod_4() {
    run_share(0);
}

#[test]
fn every_invariant_holds_after_a_mixed_fault_schedule_seeds_1_mod_4() {
    run_share(1);
}

#[test]
fn every_invariant_holds_after_a_mixed_fault_schedule_seeds_2_mod_4() {
    run_share(2);
}

#[test]
fn every_invariant_holds_after_a_mixed_fault_schedule_seeds_3_mod_4() {
    run_share(3);
}
