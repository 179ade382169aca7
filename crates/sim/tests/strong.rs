//! Strong per-key operations (CASPaxos) in the simulation: many seeds of
//! reads, writes and CASes from every node on three keys under loss, delay,
//! duplication, partitions and crashes with restarts must stay
//! linearizable (and keep every other invariant); a quorum-of-one mutant
//! must be caught; and the message counts of the fast paths hold.

mod common;

use std::time::Duration;

use vergent_consensus::{Expect, Op};
use vergent_sim::{Event, Filter, StrongResult, World, WorldConfig, invariants};

/// Keys the strong workload touches: few, so operations contend.
const KEYS: usize = 3;

/// What the runs did, so a schedule that stopped exercising anything (and
/// would pass for nothing) is caught.
#[derive(Default, Debug)]
struct Seen {
    runs: usize,
    crashes: usize,
    partitions: usize,
    applied: usize,
    not_applied: usize,
    reads: usize,
    unknown: usize,
    failed: usize,
}

fn strong_world(seed: u64) -> World {
    let cfg = WorldConfig {
        nodes: if seed.is_multiple_of(3) { 5 } else { 3 },
        ..WorldConfig::default()
    };
    let mut w = common::world(cfg, seed);
    w.run_for(Duration::from_secs(1));
    w.strong_schedule(Duration::from_secs(4), KEYS);
    // Long enough for every operation in flight to reach its deadline.
    w.run_for(vergent_sim::node::DEADLINE + vergent_sim::node::ROUND_TIMEOUT);
    w
}

fn run_share(share: u64, shares: u64) {
    let mut seen = Seen::default();
    for seed in common::seeds(100)
        .into_iter()
        .filter(|s| s % shares == share || std::env::var("SIM_SEED").is_ok())
    {
        let mut w = strong_world(seed);
        assert!(
            w.strong_idle(),
            "seed {seed}: operations outlived their deadline; replay: SIM_SEED={seed} cargo nextest run -p vergent-sim --test strong"
        );
        common::settle_and_check(&mut w, seed, "strong");
        seen.runs += 1;
        for e in &w.history.events {
            match e {
                Event::Fault(f) if f.starts_with("crash") => seen.crashes += 1,
                Event::Fault(f) if f.starts_with("Partition") => seen.partitions += 1,
                Event::StrongReturned { result, .. } => match result {
                    StrongResult::Applied(true) => seen.applied += 1,
                    StrongResult::Applied(false) => seen.not_applied += 1,
                    StrongResult::Read(_) => seen.reads += 1,
                    StrongResult::Unknown => seen.unknown += 1,
                    StrongResult::Failed => seen.failed += 1,
                },
                _ => {}
            }
        }
    }
    if std::env::var("SIM_SEED").is_err() && seen.runs >= 10 {
        assert!(
            seen.crashes > 0 && seen.partitions > 0,
            "the schedule must inject faults: {seen:?}"
        );
        assert!(
            seen.applied > 10 * seen.runs && seen.not_applied > 0 && seen.reads > 10 * seen.runs,
            "the workload must apply, refuse and read: {seen:?}"
        );
    }
}

#[test]
fn strong_operations_stay_linearizable_under_faults_share_0() {
    run_share(0, 2);
}

#[test]
fn strong_operations_stay_linearizable_under_faults_share_1() {
    run_share(1, 2);
}

#[test]
fn a_quorum_of_one_mutant_is_caught_as_not_linearizable() {
    let mut caught = None;
    for seed in 1..=20 {
        let cfg = WorldConfig::default();
        let mut w = common::world(cfg, seed);
        w.mutant_quorum_of_one();
        w.run_for(Duration::from_secs(1));
        w.strong_schedule(Duration::from_secs(3), KEYS);
        w.run_for(vergent_sim::node::DEADLINE + vergent_sim::node::ROUND_TIMEOUT);
        let found = invariants::linearizable::check(&w.history);
        if !found.is_empty() {
            assert!(
                found.iter().any(|v| v.contains("not linearizable")),
                "{found:?}"
            );
            caught = Some(seed);
            break;
        }
    }
    assert!(
        caught.is_some(),
        "the checker must catch a quorum of one on some seed"
    );
}

/// A healthy three-node world whose membership settled.
fn quiet_world() -> World {
    let mut w = common::world(WorldConfig::default(), 7);
    w.settle(common::SETTLE_BOUND);
    w
}

/// The answer to operation `id` and the prepares and accepts its proposer
/// sent, if it was answered.
fn answer_counts(w: &World, id: u64) -> Option<(StrongResult, u32, u32)> {
    w.history.events.iter().find_map(|e| match e {
        Event::StrongReturned {
            id: i,
            result,
            prepares,
            accepts,
            ..
        } if *i == id => Some((result.clone(), *prepares, *accepts)),
        _ => None,
    })
}

/// The answer to operation `id`, if it was answered.
fn answer_of(w: &World, id: u64) -> Option<StrongResult> {
    answer_counts(w, id).map(|(r, _, _)| r)
}

/// Runs `op` on `key` through `node` to its answer: the result and the
/// prepares and accepts its proposer sent.
fn run_op(w: &mut World, node: usize, key: &[u8], op: Op) -> (StrongResult, u32, u32) {
    let id = w.strong(node, key, op).expect("node up and key idle");
    w.run_for(Duration::from_secs(1));
    answer_counts(w, id).expect("answered within a second on a quiet network")
}

fn cas(expect: Expect, new: &str) -> Op {
    Op::Cas {
        expect,
        new: Some(new.as_bytes().to_vec()),
    }
}

#[test]
fn an_uncontended_cas_on_a_fresh_key_takes_two_round_trips() {
    let mut w = quiet_world();
    let members = w.nodes.len() as u32;
    let (result, prepares, accepts) = run_op(&mut w, 0, b"fresh", cas(Expect::Absent, "a"));
    assert_eq!(result, StrongResult::Applied(true));
    assert_eq!(
        (prepares, accepts),
        (members, members),
        "one prepare and one accept to each member"
    );
}

#[test]
fn a_repeated_cas_by_the_same_proposer_takes_one_round_trip_through_the_cache() {
    let mut w = quiet_world();
    let members = w.nodes.len() as u32;
    run_op(&mut w, 1, b"k", cas(Expect::Absent, "a"));
    let (result, prepares, accepts) = run_op(&mut w, 1, b"k", cas(Expect::Value(b"a".into()), "b"));
    assert_eq!(result, StrongResult::Applied(true));
    assert_eq!((prepares, accepts), (0, members), "accepts only");
}

#[test]
fn a_read_of_a_settled_key_takes_one_round_trip() {
    let mut w = quiet_world();
    let members = w.nodes.len() as u32;
    run_op(&mut w, 0, b"k", cas(Expect::Absent, "a"));
    let (result, prepares, accepts) = run_op(&mut w, 2, b"k", Op::Read);
    assert_eq!(result, StrongResult::Read(Some(b"a".to_vec())));
    assert_eq!((prepares, accepts), (members, 0), "prepares only");
}

#[test]
fn a_strong_run_replays_exactly_from_its_seed() {
    let (a, b) = (strong_world(5), strong_world(5));
    assert_eq!(a.history.events, b.history.events);
    assert_eq!(a.states(), b.states());
}

#[test]
fn an_acceptance_survives_the_acceptors_crash_and_a_later_quorum_finds_it() {
    let mut w = quiet_world();
    // n0 and n1 choose "a" without n2; n1 crashes right after accepting,
    // before n0's commit reaches it.
    w.fault(Filter::Partition(vec![[0, 1].into(), [2].into()]));
    let id = w
        .strong(0, b"k", cas(Expect::Absent, "a"))
        .expect("n0 is up");
    // Base latency 1 ms: n1 promises at +1 ms and accepts at +3 ms.
    w.run_for(Duration::from_micros(3_500));
    w.crash(1);
    w.run_for(Duration::from_secs(1));
    assert_eq!(answer_of(&w, id), Some(StrongResult::Applied(true)));
    // Now a quorum without n0 must still find "a" through n1's acceptance.
    w.net.heal();
    w.fault(Filter::Partition(vec![[1, 2].into(), [0].into()]));
    w.restart(1);
    let (result, _, _) = run_op(&mut w, 2, b"k", Op::Read);
    assert_eq!(result, StrongResult::Read(Some(b"a".to_vec())));
}
