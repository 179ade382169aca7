//! Measures how fast a cluster converges when every node joins through one
//! seed at the same instant: the virtual time and protocol periods until every
//! node knows every other as alive, and the messages sent until then.
//!
//! Runs the deterministic simulator from `tests/sim` (1–20 ms delays, no
//! loss, default `Config`). Virtual time is capped; a run that does not
//! converge within the cap says so.
//!
//! ```sh
//! cargo run --release -p vergent-gossip --example convergence            # N = 10, 100, 1000
//! cargo run --release -p vergent-gossip --example convergence -- 300 2   # N = 300, seeds 1..=2
//! ```

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant};

use sim::{NetConfig, Sim};
use vergent_gossip::Config;

fn main() {
    let cap = Duration::from_secs(120);
    println!(
        "| N | seed | converged after (virtual) | protocol periods | messages sent | messages per node | wall time |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: convergence [N [SEEDS]]"))
        .collect();
    let runs = match args.as_slice() {
        [] => vec![(10, 1..=5), (100, 1..=5), (1000, 1..=2)],
        [n] => vec![(*n as usize, 1..=1)],
        [n, seeds, ..] => vec![(*n as usize, 1..=*seeds)],
    };
    for (n, seeds) in runs {
        for seed in seeds {
            #[allow(clippy::disallowed_methods)] // the example reports how long it ran
            let wall = Instant::now();
            let mut s = Sim::new(seed, n, Config::default(), NetConfig::default());
            s.record = false;
            let took = s.start_all_through_one_seed(cap);
            let periods = took.map(|t| t.as_secs_f64() / s.config.probe_interval.as_secs_f64());
            let time = match took {
                Some(t) => format!("{:.1} s", t.as_secs_f64()),
                None => format!("not within {} s (cap)", cap.as_secs()),
            };
            let periods = periods.map_or_else(|| "—".into(), |p| format!("{p:.1}"));
            println!(
                "| {n} | {seed} | {time} | {periods} | {} | {:.0} | {:.2} s |",
                s.stats.sent,
                s.stats.sent as f64 / n as f64,
                wall.elapsed().as_secs_f64()
            );
        }
    }
}
