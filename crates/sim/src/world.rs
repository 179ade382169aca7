//! A world of simulated nodes on a simulated network, in virtual time:
//! everything that happens is drawn from one seed, so a run is a function
//! of its seed and any failure replays from it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vergent_consensus::{Expect, Op};

use crate::history::{Event, History, LevelResult};
use crate::net::{Class, Filter, Network};
use crate::node::{Msg, NodeConfig, SimNode};
use crate::store::Rec;
use vergent_consensus::levels::Level;

/// Wall-clock time of the virtual origin, ms since the Unix epoch (the
/// nodes' clocks read this plus virtual time plus their offset).
const EPOCH_MS: u64 = 1_800_000_000_000;

/// The shape of a run.
#[derive(Clone, Copy, Debug)]
pub struct WorldConfig {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Keys the workload writes.
    pub keys: usize,
    /// The nodes' settings.
    pub node: NodeConfig,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            nodes: 3,
            keys: 40,
            node: NodeConfig {
                grace_ms: 10_000,
                max_offset_ms: 500,
                max_log_entries: 1 << 20,
            },
        }
    }
}

/// A message on its way.
struct InFlight {
    from: usize,
    to: usize,
    msg: Msg,
}

/// The nodes, the network and virtual time; see the module docs.
pub struct World {
    /// The nodes, by index.
    pub nodes: Vec<SimNode>,
    /// The network's filters.
    pub net: Network,
    /// What happened.
    pub history: History,
    /// Virtual now.
    pub now: Instant,
    /// The virtual origin.
    pub start: Instant,
    cfg: WorldConfig,
    rng: ChaCha8Rng,
    queue: BTreeMap<(Instant, u64), InFlight>,
    /// When the last stream message between two nodes arrives, so streams
    /// keep their order.
    stream_tail: BTreeMap<(usize, usize), Instant>,
    seq: u64,
    writes: u64,
    strong_ops: u64,
    level_ops: u64,
    /// When each node was last wiped, µs since the start.
    wiped_at: BTreeMap<usize, u64>,
    /// The value the latest strong write invoked on each key would leave,
    /// so the workload's CAS expectations often hold.
    strong_last: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl World {
    /// A cluster of `cfg.nodes` nodes, each joining through node 0, from
    /// `seed`. `origin` is the virtual origin: any instant (no outcome
    /// depends on its value).
    pub fn new(cfg: WorldConfig, seed: u64, origin: Instant) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nodes = (0..cfg.nodes)
            .map(|i| {
                let seeds: Vec<usize> = if i == 0 { Vec::new() } else { vec![0] };
                let mut n =
                    SimNode::new(i, &seeds, cfg.node, EPOCH_MS, origin, rng.random(), origin);
                n.world_size = cfg.nodes;
                n
            })
            .collect();
        let mut w = Self {
            nodes,
            net: Network::default(),
            history: History::default(),
            now: origin,
            start: origin,
            cfg,
            rng,
            queue: BTreeMap::new(),
            stream_tail: BTreeMap::new(),
            seq: 0,
            writes: 0,
            strong_ops: 0,
            level_ops: 0,
            wiped_at: BTreeMap::new(),
            strong_last: BTreeMap::new(),
        };
        w.flush_outboxes();
        w
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn flush_outboxes(&mut self) {
        for from in 0..self.nodes.len() {
            for (to, class, msg) in self.nodes[from].take_outbox() {
                if to >= self.nodes.len() {
                    continue;
                }
                for delay in self.net.deliveries(&mut self.rng, from, to, class) {
                    let mut at = self.now + delay;
                    if class == Class::Stream {
                        let tail = self.stream_tail.entry((from, to)).or_insert(at);
                        at = at.max(*tail);
                        *tail = at;
                    }
                    self.seq += 1;
                    self.queue.insert(
                        (at, self.seq),
                        InFlight {
                            from,
                            to,
                            msg: msg.clone(),
                        },
                    );
                }
            }
        }
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_msg = self.queue.keys().next().map(|(t, _)| *t);
            let next_timer = self.nodes.iter().filter_map(SimNode::poll_timeout).min();
            let next = match (next_msg, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            let seen = self.history.events.len();
            if next_msg == Some(next) {
                let (_, m) = self.queue.pop_first().expect("peeked above");
                self.nodes[m.to].handle_message(self.now, m.from, m.msg, &mut self.history);
            } else {
                for n in &mut self.nodes {
                    if n.poll_timeout().is_some_and(|t| t <= self.now) {
                        n.handle_timeout(self.now, &mut self.history);
                    }
                }
            }
            self.count_level_holders(seen);
            self.flush_outboxes();
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// A client put (`value`) or delete (`None`) of `key` through `node`.
    pub fn write(&mut self, node: usize, key: &[u8], value: Option<Vec<u8>>) {
        if !self.nodes[node].up {
            return;
        }
        self.writes += 1;
        let id = self.writes;
        self.nodes[node].client_write(self.now, id, key, value, &mut self.history);
        self.flush_outboxes();
    }

    /// A client's strong operation `op` on `key` through `node`; its id, or
    /// `None` when the node is down or already runs one on `key`.
    pub fn strong(&mut self, node: usize, key: &[u8], op: Op) -> Option<u64> {
        let id = self.strong_ops + 1;
        if !self.nodes[node].strong_start(self.now, id, key, op.clone(), &mut self.history) {
            return None;
        }
        self.strong_ops = id;
        if let Op::Cas { new, .. } = op {
            self.strong_last.insert(key.to_vec(), new);
        }
        self.flush_outboxes();
        Some(id)
    }

    /// A client write at `level` of `key` through `node` (`None` deletes).
    pub fn level_write(&mut self, node: usize, key: &[u8], value: Option<Vec<u8>>, level: Level) {
        self.level_ops += 1;
        let id = self.level_ops;
        let seen = self.history.events.len();
        self.nodes[node].level_write(self.now, id, key, value, level, &mut self.history);
        self.count_level_holders(seen);
        self.flush_outboxes();
    }

    /// A client read at `level` of `key` through `node`.
    pub fn level_read(&mut self, node: usize, key: &[u8], level: Level) {
        self.level_ops += 1;
        let id = self.level_ops;
        let seen = self.history.events.len();
        self.nodes[node].level_read(self.now, id, key, level, &mut self.history);
        self.count_level_holders(seen);
        self.flush_outboxes();
    }

    /// Test-only mutant: every node's level trackers count it alone.
    #[doc(hidden)]
    pub fn mutant_levels_of_one(&mut self) {
        for n in &mut self.nodes {
            n.break_levels();
        }
    }

    /// For each level write acknowledged since event `from`, records how
    /// many nodes held it durably at that moment (what a crash of every
    /// other node would leave).
    fn count_level_holders(&mut self, from: usize) {
        type Acked = (u64, Vec<u8>, vergent_types::Version, Level, u64);
        let acked: Vec<Acked> = self.history.events[from..]
            .iter()
            .filter_map(|e| match e {
                Event::LevelWrite {
                    id,
                    key,
                    version: Some(v),
                    level,
                    result: LevelResult::Ok,
                    invoked_us,
                    ..
                } => Some((*id, key.clone(), v.clone(), *level, *invoked_us)),
                _ => None,
            })
            .collect();
        for (id, key, version, level, invoked_us) in acked {
            let holds = |n: &SimNode| {
                n.store
                    .durable_get(&key)
                    .is_some_and(|r| r.version >= version)
            };
            let holders = self.nodes.iter().filter(|n| holds(n)).count();
            let wiped_during = self
                .nodes
                .iter()
                .filter(|n| {
                    !holds(n) && self.wiped_at.get(&n.idx).is_some_and(|t| *t >= invoked_us)
                })
                .count();
            self.history.push(Event::LevelHeld {
                id,
                holders,
                wiped_during,
                voters: self.nodes.len(),
                level,
            });
        }
    }

    /// A random schedule of eventual writes and reads at `QUORUM` (and a
    /// few at `ALL` and `ONE`) from every node on `keys` keys `q0`…, under
    /// partitions, loss, delay, duplication, crashes, restarts and wipes of
    /// a minority, for `duration`. Every fault is healed before it returns.
    pub fn level_schedule(&mut self, duration: Duration, keys: usize) {
        let end = self.now + duration;
        let n = self.nodes.len();
        let minority = (n - 1) / 2;
        while self.now < end {
            let step = Duration::from_millis(self.rng.random_range(2..30));
            self.run_for(step);
            let roll = self.rng.random_range(0..1000);
            let node = self.rng.random_range(0..n);
            let key = format!("q{}", self.rng.random_range(0..keys.max(1))).into_bytes();
            let level = if self.rng.random_bool(0.85) {
                Level::Quorum
            } else {
                Level::All
            };
            match roll {
                0..=399 => {
                    let value = if self.rng.random_bool(0.9) {
                        Some(format!("w{}", self.level_ops + 1).into_bytes())
                    } else {
                        None
                    };
                    self.level_write(node, &key, value, level);
                }
                400..=449 => {
                    let value = Some(format!("o{}", self.writes + 1).into_bytes());
                    self.write(node, &key, value);
                }
                450..=849 => self.level_read(node, &key, level),
                850..=909 => self.network_fault(roll),
                // A crash keeps what was synced: any number may be down.
                910..=934 => self.crash(node),
                935..=944 => {
                    // A wipe loses a copy for good: at most a minority of
                    // the nodes may be without their data at once (down,
                    // or wiped and still catching up).
                    let lacking = self
                        .nodes
                        .iter()
                        .enumerate()
                        .filter(|(i, x)| *i != node && x.lacks_data())
                        .count();
                    if lacking < minority {
                        self.wipe(node);
                    }
                }
                945..=969 => self.restart(node),
                _ => self.heal(),
            }
        }
        self.heal();
    }

    /// Whether no node has a strong operation in flight.
    pub fn strong_idle(&self) -> bool {
        self.nodes.iter().all(|n| !n.up || n.strong_idle())
    }

    /// Test-only mutant: every node's rounds count only its own acceptor
    /// as a quorum, so a checker that passes it cannot catch anything.
    #[doc(hidden)]
    pub fn mutant_quorum_of_one(&mut self) {
        for n in &mut self.nodes {
            n.self_quorum = true;
        }
    }

    /// A random schedule of strong operations (reads, puts, deletes, CAS on
    /// a value or on absence) from every node on `keys` keys `s0`…, under
    /// partitions, loss, delay, duplication, crashes and restarts, for
    /// `duration`. Every fault is healed before it returns; operations may
    /// still be in flight.
    pub fn strong_schedule(&mut self, duration: Duration, keys: usize) {
        let end = self.now + duration;
        let n = self.nodes.len();
        while self.now < end {
            let step = Duration::from_millis(self.rng.random_range(2..30));
            self.run_for(step);
            let roll = self.rng.random_range(0..1000);
            let node = self.rng.random_range(0..n);
            match roll {
                0..=849 => {
                    let key = format!("s{}", self.rng.random_range(0..keys.max(1))).into_bytes();
                    let value = Some(format!("v{}", self.strong_ops + 1).into_bytes());
                    let op = match self.rng.random_range(0..100) {
                        0..=29 => Op::Read,
                        30..=49 => Op::Cas {
                            expect: Expect::Any,
                            new: value,
                        },
                        50..=54 => Op::Cas {
                            expect: Expect::Any,
                            new: None,
                        },
                        _ => {
                            let expect = match self.strong_last.get(&key) {
                                Some(Some(v)) if self.rng.random_bool(0.8) => {
                                    Expect::Value(v.clone())
                                }
                                _ => Expect::Absent,
                            };
                            let new = if self.rng.random_bool(0.9) {
                                value
                            } else {
                                None
                            };
                            Op::Cas { expect, new }
                        }
                    };
                    self.strong(node, &key, op);
                }
                850..=909 => self.network_fault(roll),
                910..=934 => self.crash(node),
                935..=969 => self.restart(node),
                _ => self.heal(),
            }
        }
        self.heal();
    }

    /// A partition of the nodes into two random sides (either may be empty).
    fn random_split(&mut self) -> Filter {
        let mut a = std::collections::BTreeSet::new();
        let mut b = std::collections::BTreeSet::new();
        for i in 0..self.nodes.len() {
            if self.rng.random_bool(0.5) {
                a.insert(i);
            } else {
                b.insert(i);
            }
        }
        Filter::Partition(vec![a, b])
    }

    /// The strong and level schedules' network faults, for a `roll` in
    /// 850..=909: a partition, loss, delay or duplication.
    fn network_fault(&mut self, roll: i32) {
        let f = match roll {
            850..=869 => self.random_split(),
            870..=884 => Filter::Loss(self.rng.random_range(0.05..0.3)),
            885..=899 => Filter::Delay {
                min: Duration::from_millis(1),
                max: Duration::from_millis(self.rng.random_range(5..100)),
            },
            _ => Filter::Duplicate(0.2),
        };
        self.fault(f);
    }

    /// Kills `node` (its unsynced state is lost).
    pub fn crash(&mut self, node: usize) {
        self.history.push(Event::Fault(format!("crash n{node}")));
        self.nodes[node].crash();
    }

    /// Starts a crashed `node` again.
    pub fn restart(&mut self, node: usize) {
        if !self.nodes[node].up {
            self.history.push(Event::Fault(format!("restart n{node}")));
            self.nodes[node].restart(self.now);
            self.reset_connections(node);
            self.flush_outboxes();
        }
    }

    /// Wipes `node`'s data dir and starts it empty.
    pub fn wipe(&mut self, node: usize) {
        self.history.push(Event::Fault(format!("wipe n{node}")));
        let at = (self.now - self.start).as_micros() as u64;
        self.wiped_at.insert(node, at);
        self.nodes[node].wipe(self.now);
        self.reset_connections(node);
        self.flush_outboxes();
    }

    /// Every peer's connection to a restarted `node` breaks and is redialled.
    fn reset_connections(&mut self, node: usize) {
        for i in 0..self.nodes.len() {
            if i != node {
                self.nodes[i].connection_reset(self.now, node);
            }
        }
    }

    /// Adds a network filter.
    pub fn fault(&mut self, f: Filter) {
        self.history.push(Event::Fault(format!("{f:?}")));
        self.net.add(f);
    }

    /// Heals the network and restarts every node that is down.
    pub fn heal(&mut self) {
        self.history.push(Event::Fault("heal".into()));
        self.net.heal();
        for i in 0..self.nodes.len() {
            self.restart(i);
        }
    }

    /// Each node's records, for the invariants.
    pub fn states(&self) -> Vec<BTreeMap<Vec<u8>, Rec>> {
        self.nodes
            .iter()
            .map(|n| n.store.records().clone())
            .collect()
    }

    /// Whether every node holds the same live values, and every tombstone
    /// is on every node or purged.
    pub fn converged(&self) -> bool {
        crate::invariants::convergence::check(&self.states()).is_empty()
    }

    /// Whether every node sees every node alive.
    pub fn membership_converged(&self) -> bool {
        let views: Vec<_> = self.nodes.iter().map(SimNode::alive_view).collect();
        crate::invariants::membership::check(&views, self.nodes.len()).is_empty()
    }

    /// Runs until converged (replicas and membership) or `bound` elapsed;
    /// returns how long it took, if it did.
    pub fn settle(&mut self, bound: Duration) -> Option<Duration> {
        let from = self.now;
        let deadline = from + bound;
        while self.now < deadline {
            self.run_for(Duration::from_millis(250));
            if self.converged() && self.membership_converged() {
                return Some(self.now - from);
            }
        }
        None
    }

    /// A random schedule mixing writes, deletes, partitions, loss, delay,
    /// duplication, crashes, wipes and restarts for `duration`, from this
    /// world's seed. Every fault is healed before it returns.
    pub fn random_schedule(&mut self, duration: Duration) {
        let end = self.now + duration;
        let n = self.nodes.len();
        while self.now < end {
            let step = Duration::from_millis(self.rng.random_range(5..60));
            self.run_for(step);
            let roll = self.rng.random_range(0..1000);
            let node = self.rng.random_range(0..n);
            match roll {
                0..=879 => {
                    let key = format!("k{:03}", self.rng.random_range(0..self.cfg.keys));
                    let value = if self.rng.random_bool(0.75) {
                        Some(format!("v{}", self.writes + 1).into_bytes())
                    } else {
                        None
                    };
                    self.write(node, key.as_bytes(), value);
                }
                880..=899 => {
                    let split = self.random_split();
                    self.fault(split);
                }
                900..=909 => {
                    let p = self.rng.random_range(0.05..0.4);
                    self.fault(Filter::Loss(p));
                }
                910..=919 => {
                    let max = Duration::from_millis(self.rng.random_range(5..200));
                    self.fault(Filter::Delay {
                        min: Duration::from_millis(1),
                        max,
                    });
                }
                920..=924 => self.fault(Filter::Duplicate(0.2)),
                925..=929 => {
                    let to = self.rng.random_range(0..n);
                    if to != node {
                        self.fault(Filter::DropOneWay { from: node, to });
                    }
                }
                930..=949 => self.crash(node),
                950..=954 => {
                    // Only a node whose writes are all elsewhere is wiped, as
                    // an operator would (docs/operations.md): the cluster
                    // settles first.
                    if self.nodes.iter().all(|n| n.up)
                        && !self.net.is_faulty()
                        && self.settle(Duration::from_secs(60)).is_some()
                    {
                        self.wipe(node);
                    }
                }
                955..=974 => self.restart(node),
                _ => self.heal(),
            }
        }
        self.heal();
    }
}
