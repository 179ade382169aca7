//! A seed replays: two runs of the same seed make the same history and end
//! in the same state, and another seed does not.

mod common;

use std::time::Duration;

use vergent_sim::{World, WorldConfig};

fn run(seed: u64) -> World {
    let mut w = common::world(WorldConfig::default(), seed);
    w.run_for(Duration::from_secs(2));
    w.random_schedule(Duration::from_secs(10));
    w.heal();
    w.settle(common::SETTLE_BOUND);
    w
}

#[test]
fn a_pinned_seed_replays_exactly() {
    let (a, b) = (run(42), run(42));
    assert_eq!(a.history.events, b.history.events);
    assert_eq!(a.states(), b.states());
    assert_eq!(a.elapsed(), b.elapsed());
    let c = run(43);
    assert_ne!(
        a.history.events, c.history.events,
        "another seed, another run"
    );
}
