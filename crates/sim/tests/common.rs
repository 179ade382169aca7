//! Shared by the simulation tests: seeds, a world, and the settled checks.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use vergent_sim::{World, WorldConfig, invariants};

/// Virtual time a healed cluster gets to converge.
pub(crate) const SETTLE_BOUND: Duration = Duration::from_secs(120);

/// The seeds to run: `SIM_SEED=s` replays one, `SIM_SEEDS=n` runs `n`
/// (default `default`).
pub(crate) fn seeds(default: u64) -> Vec<u64> {
    if let Some(s) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (1..=n).collect()
}

/// The virtual origin: any instant will do, no outcome depends on it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn origin() -> Instant {
    Instant::now()
}

/// A fresh world for `seed`.
pub(crate) fn world(cfg: WorldConfig, seed: u64) -> World {
    World::new(cfg, seed, origin())
}

/// Heals, waits for convergence within the bound, and checks every
/// invariant; panics with the seed's replay command otherwise.
pub(crate) fn settle_and_check(w: &mut World, seed: u64, test: &str) {
    w.heal();
    let mut took = w.settle(SETTLE_BOUND);
    // Then a quiet while longer than the grace and two purge sweeps, so the
    // tombstones of the run are purged and the invariants see that too.
    if took.is_some() {
        w.run_for(Duration::from_secs(30));
        took = w.settle(SETTLE_BOUND);
    }
    let views: Vec<_> = w.nodes.iter().map(|n| n.alive_view()).collect();
    let mut violations = invariants::check_all(&w.history, &w.states(), &views);
    if took.is_none() {
        violations.insert(
            0,
            format!("did not converge within {SETTLE_BOUND:?} of healing"),
        );
    }
    assert!(
        violations.is_empty(),
        "seed {seed} failed; replay: SIM_SEED={seed} cargo nextest run -p vergent-sim --test {test}\n{}",
        violations
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
