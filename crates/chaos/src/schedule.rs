//! The nemesis schedule: which fault, on which nodes, when and for how long,
//! all drawn from one seed so a failing run replays exactly.
//!
//! Faults run one at a time: each [`Step`] is applied at `start`, held for
//! `hold`, then healed, followed by a quiet gap. Every step is healed before
//! the run's duration ends.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// A family of faults, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// `kill -9` a minority of nodes, restart them later.
    Kill,
    /// SIGSTOP a minority of nodes, SIGCONT later.
    Pause,
    /// Drop peer traffic between groups (majority/minority, one isolated node, one-way links).
    Partition,
    /// Drop a share of all peer packets at random.
    Loss,
    /// Delay and reorder peer packets (through a seeded UDP proxy in front of every node).
    Delay,
    /// Restart one node with its physical clock offset, within or beyond the max offset.
    Skew,
    /// The same through libfaketime, as a black box (`FAKETIME_DONT_FAKE_MONOTONIC=1`).
    Faketime,
    /// Make fsync fail with EIO on one node (strace fault injection).
    Disk,
    /// Kill one node, delete its data dir, restart it empty: it must rebuild
    /// from its peers through anti-entropy.
    Wipe,
}

impl FaultKind {
    /// Every kind, in command-line order.
    pub const ALL: [Self; 9] = [
        Self::Kill,
        Self::Pause,
        Self::Partition,
        Self::Loss,
        Self::Delay,
        Self::Skew,
        Self::Faketime,
        Self::Disk,
        Self::Wipe,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Pause => "pause",
            Self::Partition => "partition",
            Self::Loss => "loss",
            Self::Delay => "delay",
            Self::Skew => "skew",
            Self::Faketime => "faketime",
            Self::Disk => "disk",
            Self::Wipe => "wipe",
        }
    }

    /// Whether the fault needs packet filtering, which the suite only does
    /// inside a network namespace of its own (never on the host's firewall).
    pub fn needs_netns(self) -> bool {
        matches!(self, Self::Partition | Self::Loss)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown fault {s:?}; choose from {}, or all",
                    names.join(", ")
                )
            })
    }
}

/// Parses a comma-separated fault list; `all` means every kind.
pub fn parse_kinds(list: &str) -> Result<Vec<FaultKind>, String> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "all" {
            out.extend(FaultKind::ALL);
        } else {
            out.push(part.parse()?);
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err("no faults named".into());
    }
    Ok(out)
}

/// A concrete fault on concrete nodes (indexes into the cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "lowercase")]
pub enum Fault {
    /// `kill -9` these nodes; restart them when healed.
    Kill {
        /// The nodes.
        nodes: Vec<usize>,
    },
    /// SIGSTOP these nodes; SIGCONT when healed.
    Pause {
        /// The nodes.
        nodes: Vec<usize>,
    },
    /// Drop peer packets on these directed links `(from, to)`.
    Partition {
        /// What shape of partition this is, for the report.
        shape: String,
        /// Directed links whose packets are dropped at the receiver.
        drops: Vec<(usize, usize)>,
    },
    /// Drop this share of every peer packet.
    Loss {
        /// Percent dropped.
        percent: u8,
    },
    /// Delay every peer packet by `delay_ms` plus up to `jitter_ms`.
    Delay {
        /// Fixed part of the delay.
        delay_ms: u64,
        /// Random extra delay, which reorders packets.
        jitter_ms: u64,
    },
    /// Restart `node` with its physical clock offset by `offset_ms`.
    Skew {
        /// The node.
        node: usize,
        /// The offset (negative: behind).
        offset_ms: i64,
        /// Through libfaketime rather than the node's test-only offset flag.
        faketime: bool,
    },
    /// Make fsync fail on `node`.
    Disk {
        /// The node.
        node: usize,
    },
    /// Wipe `node`'s data dir (after its writes reached its peers) and
    /// restart it empty when healed.
    Wipe {
        /// The node.
        node: usize,
    },
}

impl Fault {
    /// The family this fault belongs to.
    pub fn kind(&self) -> FaultKind {
        match self {
            Self::Kill { .. } => FaultKind::Kill,
            Self::Pause { .. } => FaultKind::Pause,
            Self::Partition { .. } => FaultKind::Partition,
            Self::Loss { .. } => FaultKind::Loss,
            Self::Delay { .. } => FaultKind::Delay,
            Self::Skew {
                faketime: false, ..
            } => FaultKind::Skew,
            Self::Skew { faketime: true, .. } => FaultKind::Faketime,
            Self::Disk { .. } => FaultKind::Disk,
            Self::Wipe { .. } => FaultKind::Wipe,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |nodes: &[usize]| {
            nodes
                .iter()
                .map(|n| format!("n{}", n + 1))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Self::Kill { nodes } => write!(f, "kill -9 {}", names(nodes)),
            Self::Pause { nodes } => write!(f, "pause {}", names(nodes)),
            Self::Partition { shape, .. } => write!(f, "partition {shape}"),
            Self::Loss { percent } => write!(f, "loss {percent}%"),
            Self::Delay {
                delay_ms,
                jitter_ms,
            } => write!(f, "delay {delay_ms}ms +0..{jitter_ms}ms"),
            Self::Skew {
                node,
                offset_ms,
                faketime,
            } => write!(
                f,
                "{} n{} {offset_ms:+}ms",
                if *faketime { "faketime" } else { "skew" },
                node + 1
            ),
            Self::Disk { node } => write!(f, "fsync EIO on n{}", node + 1),
            Self::Wipe { node } => write!(f, "wipe n{} and rebuild", node + 1),
        }
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// When to apply it, from the start of the workload.
    #[serde(with = "millis")]
    pub start: Duration,
    /// How long to hold it before healing.
    #[serde(with = "millis")]
    pub hold: Duration,
    /// The fault.
    pub fault: Fault,
}

mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Draws the schedule for a run of `duration` on `nodes` nodes from `seed`,
/// using only `kinds`. `max_offset_ms` is the nodes' clock-offset bound, so
/// skew faults land both within and beyond it.
pub fn plan(
    seed: u64,
    nodes: usize,
    duration: Duration,
    kinds: &[FaultKind],
    max_offset_ms: u64,
) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return steps;
    }
    let mut at = Duration::from_millis(rng.random_range(500..1_500));
    loop {
        let hold = Duration::from_millis(rng.random_range(2_000..6_000));
        // Leave a quiet second at the end so the last heal is inside the run.
        if at + hold + Duration::from_secs(1) > duration {
            break;
        }
        let kind = *kinds.choose(&mut rng).unwrap_or(&kinds[0]);
        let fault = draw(&mut rng, kind, nodes, max_offset_ms);
        steps.push(Step {
            start: at,
            hold,
            fault,
        });
        at += hold + Duration::from_millis(rng.random_range(1_000..3_000));
    }
    steps
}

/// A minority: at least one node, fewer than half (one when n ≤ 2).
fn minority(rng: &mut StdRng, nodes: usize) -> Vec<usize> {
    let max = ((nodes - 1) / 2).max(1);
    let size = rng.random_range(1..=max);
    let mut all: Vec<usize> = (0..nodes).collect();
    all.shuffle(rng);
    let mut out = all[..size].to_vec();
    out.sort_unstable();
    out
}

fn draw(rng: &mut StdRng, kind: FaultKind, nodes: usize, max_offset_ms: u64) -> Fault {
    let max_offset = i64::try_from(max_offset_ms).unwrap_or(i64::MAX / 4);
    match kind {
        FaultKind::Kill => Fault::Kill {
            nodes: minority(rng, nodes),
        },
        FaultKind::Pause => Fault::Pause {
            nodes: minority(rng, nodes),
        },
        FaultKind::Partition => partition(rng, nodes),
        FaultKind::Loss => Fault::Loss {
            percent: *[10u8, 20, 30].choose(rng).unwrap_or(&10),
        },
        FaultKind::Delay => Fault::Delay {
            delay_ms: rng.random_range(5..60),
            jitter_ms: rng.random_range(10..80),
        },
        FaultKind::Skew | FaultKind::Faketime => {
            // Half within the bound (accepted by peers), half well beyond it
            // (refused), ahead or behind.
            let magnitude = if rng.random_bool(0.5) {
                max_offset / 2
            } else {
                max_offset * 4
            };
            let sign = if rng.random_bool(0.5) { 1 } else { -1 };
            Fault::Skew {
                node: rng.random_range(0..nodes),
                offset_ms: sign * magnitude,
                faketime: kind == FaultKind::Faketime,
            }
        }
        FaultKind::Disk => Fault::Disk {
            node: rng.random_range(0..nodes),
        },
        FaultKind::Wipe => Fault::Wipe {
            node: rng.random_range(0..nodes),
        },
    }
}

fn partition(rng: &mut StdRng, nodes: usize) -> Fault {
    let all: Vec<usize> = (0..nodes).collect();
    let cut = |a: &[usize], b: &[usize]| -> Vec<(usize, usize)> {
        let mut drops = Vec::new();
        for &x in a {
            for &y in b {
                drops.push((x, y));
                drops.push((y, x));
            }
        }
        drops.sort_unstable();
        drops
    };
    let name = |g: &[usize]| {
        g.iter()
            .map(|n| format!("n{}", n + 1))
            .collect::<Vec<_>>()
            .join(",")
    };
    match rng.random_range(0..4) {
        0 if nodes >= 3 => {
            let minor = minority(rng, nodes);
            let major: Vec<usize> = all.iter().copied().filter(|n| !minor.contains(n)).collect();
            Fault::Partition {
                shape: format!("majority {} / minority {}", name(&major), name(&minor)),
                drops: cut(&major, &minor),
            }
        }
        1 => {
            let lone = rng.random_range(0..nodes);
            let rest: Vec<usize> = all.iter().copied().filter(|&n| n != lone).collect();
            Fault::Partition {
                shape: format!("isolate n{}", lone + 1),
                drops: cut(&[lone], &rest),
            }
        }
        2 => {
            // One node hears nobody but everybody hears it.
            let deaf = rng.random_range(0..nodes);
            let drops = all
                .iter()
                .copied()
                .filter(|&n| n != deaf)
                .map(|n| (n, deaf))
                .collect();
            Fault::Partition {
                shape: format!("n{} deaf (one-way)", deaf + 1),
                drops,
            }
        }
        _ => {
            // A single one-way link.
            let mut pair = all.clone();
            pair.shuffle(rng);
            let (from, to) = (pair[0], pair.get(1).copied().unwrap_or(pair[0]));
            if from == to {
                return Fault::Partition {
                    shape: "none (one node)".into(),
                    drops: Vec::new(),
                };
            }
            Fault::Partition {
                shape: format!("n{} -> n{} dropped (one-way)", from + 1, to + 1),
                drops: vec![(from, to)],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECS_60: Duration = Duration::from_secs(60);

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let a = plan(7, 5, SECS_60, &FaultKind::ALL, 500);
        assert_eq!(a, plan(7, 5, SECS_60, &FaultKind::ALL, 500));
        assert_ne!(a, plan(8, 5, SECS_60, &FaultKind::ALL, 500));
    }

    #[test]
    fn every_step_is_healed_within_the_run_and_steps_do_not_overlap() {
        for seed in 0..200 {
            let steps = plan(seed, 5, Duration::from_secs(20), &FaultKind::ALL, 500);
            assert!(!steps.is_empty(), "seed {seed}: no faults in 20 s");
            let mut free_at = Duration::ZERO;
            for s in &steps {
                assert!(s.start >= free_at, "seed {seed}: overlapping steps");
                free_at = s.start + s.hold;
                assert!(free_at < Duration::from_secs(20), "seed {seed}");
            }
        }
    }

    #[test]
    fn only_the_chosen_kinds_are_drawn_and_all_of_them_over_many_seeds() {
        let kinds = [FaultKind::Kill, FaultKind::Partition];
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..50 {
            for s in plan(seed, 3, SECS_60, &kinds, 500) {
                assert!(kinds.contains(&s.fault.kind()), "{}", s.fault);
                seen.insert(s.fault.kind());
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), kinds);
    }

    #[test]
    fn kills_and_pauses_take_a_minority_and_partitions_never_cut_a_node_from_itself() {
        for seed in 0..300 {
            for s in plan(seed, 5, SECS_60, &FaultKind::ALL, 500) {
                match &s.fault {
                    Fault::Kill { nodes } | Fault::Pause { nodes } => {
                        assert!(!nodes.is_empty() && nodes.len() <= 2, "{}", s.fault);
                    }
                    Fault::Partition { drops, .. } => {
                        assert!(drops.iter().all(|(a, b)| a != b && *a < 5 && *b < 5));
                    }
                    Fault::Skew { node, .. } | Fault::Disk { node } | Fault::Wipe { node } => {
                        assert!(*node < 5);
                    }
                    Fault::Loss { percent } => assert!(*percent <= 30),
                    Fault::Delay { .. } => {}
                }
            }
        }
    }

    #[test]
    fn skews_land_both_within_and_beyond_the_max_offset() {
        let mut within = false;
        let mut beyond = false;
        for seed in 0..100 {
            for s in plan(seed, 3, SECS_60, &[FaultKind::Skew], 500) {
                if let Fault::Skew { offset_ms, .. } = s.fault {
                    within |= offset_ms.abs() < 500;
                    beyond |= offset_ms.abs() > 500;
                }
            }
        }
        assert!(within && beyond);
    }

    #[test]
    fn fault_lists_parse_all_and_reject_unknown_names() {
        assert_eq!(parse_kinds("all").expect("all").len(), FaultKind::ALL.len());
        assert_eq!(
            parse_kinds("partition, kill,kill").expect("list"),
            [FaultKind::Kill, FaultKind::Partition]
        );
        let err = parse_kinds("kill,flood").expect_err("unknown");
        assert!(err.contains("flood") && err.contains("partition"), "{err}");
        assert!(parse_kinds("").is_err());
    }
}
