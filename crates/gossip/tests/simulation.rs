//! Seeded whole-cluster simulations of the membership protocol, each test
//! stating one property and checking it over many seeds. On failure the
//! message names the seed; replay it with
//! `GOSSIP_SEED=<seed> cargo test -p vergent-gossip --test simulation <test>`.

mod sim;

use std::collections::BTreeSet;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{NetConfig, Sim, seeds};
use vergent_gossip::{Config, Event, State};

const SEC: Duration = Duration::from_secs(1);

/// A cluster of `n` started through node 0 and converged; panics otherwise.
fn converged(seed: u64, n: usize, net: NetConfig) -> Sim {
    let mut s = Sim::new(seed, n, Config::default(), net);
    let took = s.start_all_through_one_seed(60 * SEC);
    assert!(
        took.is_some(),
        "seed {seed}: {n} nodes did not converge in 60 s"
    );
    s
}

/// The longest suspicion timeout for `n` live members.
fn suspicion_max(config: &Config, n: usize) -> Duration {
    let scale = ((n + 1) as f64).log10().max(1.0);
    config
        .probe_interval
        .mul_f64(scale * f64::from(config.suspicion_max_mult))
}

#[test]
fn hundred_nodes_joining_through_one_seed_all_know_each_other_alive() {
    let mut worst = Duration::ZERO;
    for seed in seeds(100, 10) {
        let mut s = Sim::new(seed, 100, Config::default(), NetConfig::default());
        s.record = false;
        let took = s.start_all_through_one_seed(30 * SEC);
        let took = took.unwrap_or_else(|| panic!("seed {seed}: no convergence within 30 s"));
        eprintln!(
            "seed {seed}: 100 nodes converged in {took:?} ({:.1} protocol periods), {} messages",
            took.as_secs_f64() / s.config.probe_interval.as_secs_f64(),
            s.stats.sent
        );
        worst = worst.max(took);
    }
    assert!(worst <= 30 * SEC);
}

/// Bound: the longest suspicion timeout plus ten protocol periods (for the
/// first failed probe, the indirect probes and the spread of the news).
#[test]
fn stopped_node_is_declared_dead_by_every_live_node_within_the_bound() {
    let mut worst = Duration::ZERO;
    for seed in seeds(200, 50) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(10..=30);
        let mut s = converged(seed, n, NetConfig::default());
        let victim = rng.random_range(0..n);
        s.stop(victim);
        let bound = suspicion_max(&s.config, n) + 10 * s.config.probe_interval;
        let took = s
            .run_until_true(bound, SEC / 10, |s| s.all_see(victim, State::Dead))
            .unwrap_or_else(|| {
                panic!("seed {seed}: n{victim} not dead everywhere within {bound:?}")
            });
        worst = worst.max(took);
        let false_deaths: Vec<_> = s
            .dead_declarations()
            .into_iter()
            .filter(|&(_, subject, _)| subject != victim)
            .collect();
        assert!(false_deaths.is_empty(), "seed {seed}: {false_deaths:?}");
    }
    eprintln!("slowest detection: {worst:?}");
}

#[test]
fn with_10_percent_loss_no_live_node_is_ever_declared_dead() {
    let mut suspicions = 0;
    for seed in seeds(300, 50) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(20..=50);
        let net = NetConfig {
            drop: 0.1,
            ..NetConfig::default()
        };
        let mut s = converged(seed, n, net);
        s.run_for(60 * SEC);
        // Some suspicion may be in flight at the end; without loss it clears.
        s.net.drop = 0.0;
        let all: Vec<usize> = (0..n).collect();
        let settled = s.run_until_true(30 * SEC, SEC / 10, |s| s.all_alive(&all));
        let deaths = s.dead_declarations();
        assert!(deaths.is_empty(), "seed {seed} (n = {n}): {deaths:?}");
        assert!(
            settled.is_some(),
            "seed {seed}: not all alive after the loss stops"
        );
        let distinct: BTreeSet<(String, u64)> = s
            .log
            .iter()
            .filter_map(|r| match &r.event {
                Event::Suspect(m) => Some((m.id.to_string(), m.incarnation)),
                _ => None,
            })
            .collect();
        suspicions += distinct.len();
    }
    eprintln!("false suspicions raised and refuted: {suspicions}");
}

#[test]
fn restarted_node_rejoins_alive_everywhere_with_a_higher_incarnation() {
    for seed in seeds(400, 50) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(8..=20);
        let mut s = converged(seed, n, NetConfig::default());
        let x = rng.random_range(1..n);
        // Some restarts come before the failure is noticed, some long after.
        let down = Duration::from_millis(rng.random_range(0..60_000));
        let before = s.node(x).incarnation();
        s.stop(x);
        s.run_for(down);
        s.start(x, &[0]);
        let id = s.id(x).clone();
        let took = s.run_until_true(60 * SEC, SEC / 10, |s| {
            let mine = s.node(x).incarnation();
            mine > before
                && s.running().iter().all(|&i| {
                    s.node(i)
                        .member(&id)
                        .is_some_and(|m| m.state == State::Alive && m.incarnation == mine)
                })
        });
        assert!(
            took.is_some(),
            "seed {seed}: n{x} (down {down:?}) not alive everywhere above incarnation {before}"
        );
    }
}

#[test]
fn graceful_leave_is_marked_left_everywhere_never_dead() {
    for seed in seeds(500, 50) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(8..=25);
        let mut s = converged(seed, n, NetConfig::default());
        let x = rng.random_range(0..n);
        s.leave(x);
        // The announcements are on the wire; the process exits at once.
        s.stop(x);
        let took = s.run_until_true(30 * SEC, SEC / 10, |s| s.all_see(x, State::Left));
        assert!(took.is_some(), "seed {seed}: n{x} not Left everywhere");
        s.run_for(60 * SEC);
        assert!(s.all_see(x, State::Left), "seed {seed}: Left did not stick");
        let deaths = s.dead_declarations();
        assert!(deaths.is_empty(), "seed {seed}: {deaths:?}");
    }
}

#[test]
fn partitioned_majority_and_minority_converge_alive_after_heal() {
    for seed in seeds(600, 20) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(10..=20);
        let mut s = converged(seed, n, NetConfig::default());
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let (minority, majority) = order.split_at(n / 3);
        s.partition(&[majority, minority]);
        let split = s.run_until_true(180 * SEC, SEC / 10, |s| {
            majority.iter().all(|&x| {
                minority.iter().all(|&y| {
                    s.node(x)
                        .member(s.id(y))
                        .is_some_and(|m| m.state == State::Dead)
                        && s.node(y)
                            .member(s.id(x))
                            .is_some_and(|m| m.state == State::Dead)
                })
            })
        });
        assert!(
            split.is_some(),
            "seed {seed}: the sides never saw each other dead"
        );
        s.heal();
        let all: Vec<usize> = (0..n).collect();
        let healed = s.run_until_true(180 * SEC, SEC / 10, |s| s.all_alive(&all));
        assert!(
            healed.is_some(),
            "seed {seed}: no convergence within 180 s after the heal"
        );
        eprintln!("seed {seed}: split seen after {split:?}, healed after {healed:?}");
    }
}

/// Bound: two push-pull periods (each node contacts one seed or former
/// member per period) plus a minute for the news to spread.
#[test]
fn a_partition_longer_than_dead_retention_heals_once_the_network_does() {
    for seed in seeds(700, 10) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(4..=7);
        let mut s = converged(seed, n, NetConfig::default());
        s.record = false;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let (a, b) = order.split_at(rng.random_range(2..=n - 2));
        s.partition(&[a, b]);
        // Long enough for gossip to forget the other side (dead members go
        // after `dead_retention`; stale news of them may linger a while).
        s.run_for(3 * s.config.dead_retention);
        let forgotten = a
            .iter()
            .flat_map(|&x| b.iter().map(move |&y| (x, y)))
            .filter(|&(x, y)| s.node(x).member(s.id(y)).is_none())
            .count();
        s.heal();
        let bound = 2 * s.config.push_pull_interval + 60 * SEC;
        let all: Vec<usize> = (0..n).collect();
        let healed = s.run_until_true(bound, SEC / 10, |s| s.all_alive(&all));
        assert!(
            healed.is_some(),
            "seed {seed}: {a:?} and {b:?} not all alive within {bound:?} of the heal"
        );
        eprintln!(
            "seed {seed}: {a:?} | {b:?} ({forgotten} pairs forgotten) healed {healed:?} after the network did"
        );
    }
}

/// One scenario with loss, a restart and a leave; two runs with the same
/// seed must produce the same events at the same virtual times.
fn replay(seed: u64) -> (Vec<sim::Record>, sim::Stats) {
    let net = NetConfig {
        drop: 0.05,
        ..NetConfig::default()
    };
    let mut s = Sim::new(seed, 12, Config::default(), net);
    s.start_all_through_one_seed(60 * SEC);
    s.stop(3);
    s.run_for(20 * SEC);
    s.start(3, &[0]);
    s.run_for(10 * SEC);
    s.leave(5);
    s.stop(5);
    s.run_for(20 * SEC);
    (s.log, s.stats)
}

#[test]
fn pinned_seed_replays_exactly() {
    const PINNED: u64 = 0x5EED_0001;
    let (log_a, stats_a) = replay(PINNED);
    let (log_b, stats_b) = replay(PINNED);
    assert_eq!(stats_a, stats_b);
    assert_eq!(log_a.len(), log_b.len());
    assert!(log_a == log_b, "same seed, different event history");
    assert!(
        log_a
            .iter()
            .any(|r| matches!(&r.event, Event::Left(m) if m.id.as_str() == "n0005")),
        "the scenario exercises a leave"
    );
    let (log_c, _) = replay(PINNED + 1);
    assert!(log_a != log_c, "another seed takes another path");
}
