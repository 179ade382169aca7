//! Eventual reads and writes at `QUORUM` and `ALL` in the simulation: many
//! seeds of level writes, level reads and a few `ONE` writes from every
//! node on a few keys, under loss, delay, duplication, partitions, crashes
//! and wipes of a minority, must keep "an acknowledged write is durable on
//! a level's worth of voters", "a level read sees every level write
//! acknowledged before it started" and "level reads are monotonic" (and
//! every other invariant); trackers that count a node alone must be caught.

mod common;

use std::time::Duration;

use vergent_sim::{Event, LevelResult, World, WorldConfig, invariants};

/// Keys the level workload touches: few, so reads race writes.
const KEYS: usize = 4;

/// What the runs did, so a schedule that stopped exercising anything (and
/// would pass for nothing) is caught.
#[derive(Default, Debug)]
struct Seen {
    runs: usize,
    wipes: usize,
    crashes: usize,
    writes_ok: usize,
    writes_unknown: usize,
    reads_ok: usize,
    unavailable: usize,
}

fn level_world(seed: u64) -> World {
    let cfg = WorldConfig {
        nodes: if seed.is_multiple_of(3) { 5 } else { 3 },
        ..WorldConfig::default()
    };
    let mut w = common::world(cfg, seed);
    w.run_for(Duration::from_secs(1));
    w.level_schedule(Duration::from_secs(6), KEYS);
    // Long enough for every operation in flight to reach its deadline.
    w.run_for(vergent_sim::node::LEVEL_DEADLINE + Duration::from_secs(1));
    w
}

fn run_share(share: u64, shares: u64) {
    let mut seen = Seen::default();
    for seed in common::seeds(60)
        .into_iter()
        .filter(|s| s % shares == share || std::env::var("SIM_SEED").is_ok())
    {
        let mut w = level_world(seed);
        common::settle_and_check(&mut w, seed, "levels");
        seen.runs += 1;
        for e in &w.history.events {
            match e {
                Event::Fault(f) if f.starts_with("wipe") => seen.wipes += 1,
                Event::Fault(f) if f.starts_with("crash") => seen.crashes += 1,
                Event::LevelWrite { result, .. } => match result {
                    LevelResult::Ok => seen.writes_ok += 1,
                    LevelResult::Unknown => seen.writes_unknown += 1,
                    LevelResult::Unavailable => seen.unavailable += 1,
                },
                Event::LevelRead { result, .. } => match result {
                    LevelResult::Ok => seen.reads_ok += 1,
                    LevelResult::Unavailable => seen.unavailable += 1,
                    LevelResult::Unknown => {}
                },
                _ => {}
            }
        }
    }
    if std::env::var("SIM_SEED").is_err() && seen.runs >= 10 {
        assert!(
            seen.crashes > 0 && seen.wipes > 0,
            "the schedule must crash and wipe: {seen:?}"
        );
        assert!(
            seen.writes_ok > 20 * seen.runs && seen.reads_ok > 20 * seen.runs,
            "the workload must write and read at levels: {seen:?}"
        );
        assert!(seen.unavailable > 0, "and be refused sometimes: {seen:?}");
    }
}

#[test]
fn level_writes_stay_durable_and_level_reads_see_them_and_are_monotonic_share_0() {
    run_share(0, 2);
}

#[test]
fn level_writes_stay_durable_and_level_reads_see_them_and_are_monotonic_share_1() {
    run_share(1, 2);
}

#[test]
fn trackers_that_count_a_node_alone_are_caught_by_the_level_invariants() {
    let (mut durable, mut reads) = (None, None);
    for seed in 1..=20 {
        let mut w = common::world(WorldConfig::default(), seed);
        w.mutant_levels_of_one();
        w.run_for(Duration::from_secs(1));
        w.level_schedule(Duration::from_secs(4), KEYS);
        w.run_for(vergent_sim::node::LEVEL_DEADLINE);
        if !invariants::level_durable::check(&w.history).is_empty() {
            durable.get_or_insert(seed);
        }
        let stale = invariants::level_read_sees_acked::check(&w.history);
        let back = invariants::level_reads_monotonic::check(&w.history);
        if !stale.is_empty() || !back.is_empty() {
            reads.get_or_insert(seed);
        }
        if durable.is_some() && reads.is_some() {
            break;
        }
    }
    assert!(
        durable.is_some(),
        "a write acknowledged by its node alone must be caught"
    );
    assert!(
        reads.is_some(),
        "a read answered from one node must be caught"
    );
}

#[test]
fn a_quorum_read_repairs_a_stale_voter_before_it_answers() {
    use vergent_consensus::levels::Level;
    let mut w = common::world(WorldConfig::default(), 11);
    w.settle(common::SETTLE_BOUND);
    // n2 is cut off while n0 writes at QUORUM: n0 and n1 hold it.
    w.fault(vergent_sim::Filter::Partition(vec![
        [0, 1].into_iter().collect(),
        [2].into_iter().collect(),
    ]));
    w.level_write(0, b"k", Some(b"v".to_vec()), Level::Quorum);
    w.run_for(Duration::from_millis(200));
    assert!(w.nodes[1].store.get(b"k").is_some(), "n1 holds it");
    // n0 dies; n1 ships only its own writes, so n2 stays stale until
    // anti-entropy, or a read, repairs it.
    w.crash(0);
    w.net.heal();
    assert!(w.nodes[2].store.get(b"k").is_none(), "n2 missed it");
    w.level_read(2, b"k", Level::Quorum);
    let mut answer = None;
    for _ in 0..200 {
        w.run_for(Duration::from_millis(1));
        answer = w.history.events.iter().rev().find_map(|e| match e {
            Event::LevelRead {
                version, result, ..
            } => Some((version.clone(), *result)),
            _ => None,
        });
        if answer.is_some() {
            break;
        }
    }
    let (version, result) = answer.expect("the read answered within 200 ms");
    assert_eq!(result, LevelResult::Ok);
    assert!(version.is_some(), "it found the write");
    assert_eq!(
        w.nodes[2]
            .store
            .durable_get(b"k")
            .and_then(|r| r.value.clone())
            .as_deref(),
        Some(&b"v"[..]),
        "n2 was repaired, durably, by the time the read answered"
    );
}

#[test]
fn a_level_run_replays_exactly_from_its_seed() {
    let (a, b) = (level_world(5), level_world(5));
    assert_eq!(a.history.events, b.history.events);
    assert_eq!(a.states(), b.states());
}
