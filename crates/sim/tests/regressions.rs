//! The correctness holes of issue #11, each as a simulated schedule: what
//! was reproduced on real processes, expressed against the cores.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use vergent_sim::{Event, Filter, WorldConfig};

fn purges(w: &vergent_sim::World) -> usize {
    w.history
        .events
        .iter()
        .filter(|e| matches!(e, Event::Purged { .. }))
        .count()
}

/// Hole 1: a value is in A's log, its delete (through B) left B's log and
/// was purged everywhere, and C comes back wiped and is sent A's whole log.
#[test]
fn a_wiped_node_is_never_handed_a_value_whose_delete_was_purged() {
    for seed in common::seeds(20) {
        let mut cfg = WorldConfig::default();
        cfg.node.max_log_entries = 50;
        let mut w = common::world(cfg, seed);
        w.run_for(Duration::from_secs(3));
        w.write(0, b"k", Some(b"old".to_vec()));
        w.run_for(Duration::from_secs(1));
        w.write(1, b"k", None);
        // B's log drops the tombstone's entry.
        for i in 0..100 {
            w.write(1, format!("filler{i}").as_bytes(), Some(b"f".to_vec()));
            w.run_for(Duration::from_millis(5));
        }
        // Past the grace, so every node purges the tombstone.
        w.run_for(Duration::from_secs(40));
        assert!(
            purges(&w) > 0,
            "seed {seed}: the tombstone was never purged"
        );
        w.wipe(2);
        w.run_for(Duration::from_secs(30));
        common::settle_and_check(&mut w, seed, "regressions");
        assert!(
            w.nodes
                .iter()
                .all(|n| n.store.get(b"k").is_none_or(|r| r.is_tombstone()))
        );
    }
}

/// Hole 3: a node cut off longer than the grace keeps running, both sides
/// take deletes; nothing deleted comes back when the partition heals.
#[test]
fn a_partition_longer_than_the_grace_brings_no_deleted_key_back() {
    for seed in common::seeds(20) {
        let mut w = common::world(WorldConfig::default(), seed);
        w.run_for(Duration::from_secs(3));
        for i in 0..20u32 {
            w.write(
                (i % 3) as usize,
                format!("k{i}").as_bytes(),
                Some(b"v".to_vec()),
            );
        }
        w.run_for(Duration::from_secs(2));
        w.fault(Filter::Partition(vec![
            BTreeSet::from([0, 1]),
            BTreeSet::from([2]),
        ]));
        for i in 0..20u32 {
            let node = if i % 2 == 0 { 0 } else { 2 };
            w.write(node, format!("k{i}").as_bytes(), None);
            w.run_for(Duration::from_millis(100));
        }
        w.run_for(Duration::from_secs(35));
        common::settle_and_check(&mut w, seed, "regressions");
    }
}

/// Hole 5: a partition longer than gossip's dead retention (1 h) heals when
/// the network does.
#[test]
fn a_partition_three_times_longer_than_dead_retention_heals() {
    for seed in common::seeds(3) {
        let cfg = WorldConfig {
            nodes: 4,
            ..WorldConfig::default()
        };
        let mut w = common::world(cfg, seed);
        w.run_for(Duration::from_secs(5));
        w.fault(Filter::Partition(vec![
            BTreeSet::from([0, 1]),
            BTreeSet::from([2, 3]),
        ]));
        w.run_for(Duration::from_secs(3 * 3600));
        common::settle_and_check(&mut w, seed, "regressions");
    }
}
