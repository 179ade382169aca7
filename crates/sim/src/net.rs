//! The simulated network: composable filters between nodes, in the spirit
//! of TiKV's `transport_simulate`. Datagrams (gossip, replication batches)
//! may be dropped, delayed, duplicated and reordered; streams (repair and
//! purge exchanges) keep their order and are cut only by a partition.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Best effort: every filter applies.
    Datagram,
    /// An ordered stream between two nodes: only partitions and delay apply.
    Stream,
}

/// One rule of the network; rules compose (every one applies).
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// Nothing crosses between the groups; a node in no group is cut off
    /// from every group.
    Partition(Vec<BTreeSet<usize>>),
    /// Messages from `from` to `to` are dropped (one way).
    DropOneWay {
        /// The sender.
        from: usize,
        /// The receiver.
        to: usize,
    },
    /// This fraction of datagrams is dropped.
    Loss(f64),
    /// Every message takes `min..=max` more.
    Delay {
        /// Least added delay.
        min: Duration,
        /// Most added delay.
        max: Duration,
    },
    /// This fraction of datagrams arrives twice.
    Duplicate(f64),
}

/// The filters in force and the base latency.
#[derive(Clone, Debug)]
pub struct Network {
    /// Latency of every message without filters.
    pub base: Duration,
    filters: Vec<Filter>,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(1),
            filters: Vec::new(),
        }
    }
}

impl Network {
    /// Adds a filter.
    pub fn add(&mut self, f: Filter) {
        self.filters.push(f);
    }

    /// Removes every filter: the network is whole again.
    pub fn heal(&mut self) {
        self.filters.clear();
    }

    /// Whether any filter is in force.
    pub fn is_faulty(&self) -> bool {
        !self.filters.is_empty()
    }

    /// Whether `from` can reach `to` at all.
    pub fn connected(&self, from: usize, to: usize) -> bool {
        self.filters.iter().all(|f| match f {
            Filter::Partition(groups) => {
                groups.iter().any(|g| g.contains(&from) && g.contains(&to))
            }
            Filter::DropOneWay { from: a, to: b } => !(*a == from && *b == to),
            _ => true,
        })
    }

    /// The delays after which copies of one message arrive: none when it is
    /// lost, two when it is duplicated.
    pub fn deliveries(
        &self,
        rng: &mut ChaCha8Rng,
        from: usize,
        to: usize,
        class: Class,
    ) -> Vec<Duration> {
        if from != to && !self.connected(from, to) {
            return Vec::new();
        }
        let mut delay = self.base;
        let mut copies = 1;
        for f in &self.filters {
            match f {
                Filter::Loss(p)
                    if class == Class::Datagram && rng.random_bool(p.clamp(0.0, 1.0)) =>
                {
                    return Vec::new();
                }
                Filter::Delay { min, max } => {
                    let (lo, hi) = (
                        min.as_micros() as u64,
                        max.as_micros().max(min.as_micros()) as u64,
                    );
                    delay += Duration::from_micros(rng.random_range(lo..=hi));
                }
                Filter::Duplicate(p)
                    if class == Class::Datagram && rng.random_bool(p.clamp(0.0, 1.0)) =>
                {
                    copies = 2;
                }
                _ => {}
            }
        }
        (0..copies)
            .map(|i| delay + Duration::from_micros(i * 700))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_partition_cuts_only_between_groups_and_healing_restores_everything() {
        let mut n = Network::default();
        n.add(Filter::Partition(vec![[0, 1].into(), [2].into()]));
        assert!(n.connected(0, 1));
        assert!(!n.connected(1, 2));
        assert!(!n.connected(2, 0));
        n.heal();
        assert!(n.connected(1, 2));
    }

    #[test]
    fn streams_are_not_lost_or_duplicated_but_datagrams_are() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut n = Network::default();
        n.add(Filter::Loss(1.0));
        assert!(n.deliveries(&mut rng, 0, 1, Class::Datagram).is_empty());
        assert_eq!(n.deliveries(&mut rng, 0, 1, Class::Stream).len(), 1);
        n.heal();
        n.add(Filter::Duplicate(1.0));
        assert_eq!(n.deliveries(&mut rng, 0, 1, Class::Datagram).len(), 2);
        n.add(Filter::DropOneWay { from: 0, to: 1 });
        assert!(n.deliveries(&mut rng, 0, 1, Class::Stream).is_empty());
        assert_eq!(n.deliveries(&mut rng, 1, 0, Class::Stream).len(), 1);
    }
}
