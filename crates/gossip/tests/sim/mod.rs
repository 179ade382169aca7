//! Deterministic simulation harness: N [`Membership`] cores, a virtual clock
//! and a seeded in-memory network with delay, loss, partitions, stops and
//! restarts. Everything random comes from one seed, so a seed replays
//! exactly; `GOSSIP_SEED=<n>` runs one seed, `GOSSIP_SEEDS=<n>` sets how many.
//!
//! Shared by `tests/simulation.rs` and `examples/convergence.rs` (through
//! `#[path]`), which use different parts of it.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each user of the harness needs a different part"
)]

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vergent_gossip::{Config, Event, Membership, Message, NodeId, Output, State};

/// How the simulated network treats each message.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay; each message gets a uniform delay in between.
    pub max_delay: Duration,
    /// Probability that a message is lost.
    pub drop: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            drop: 0.0,
        }
    }
}

/// One event observed by one node, for invariant checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// The node that emitted the event.
    pub observer: usize,
    /// The event.
    pub event: Event,
}

/// Message counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages the cores asked to send.
    pub sent: u64,
    /// Messages handed to a running core.
    pub delivered: u64,
    /// Messages lost to the drop rate, a partition or a stopped node.
    pub dropped: u64,
}

struct Slot {
    id: NodeId,
    addr: String,
    core: Option<Membership>,
    lives: u64,
    /// The timer entry currently in the heap for this node.
    wake: Option<Instant>,
    group: u32,
}

struct Flight {
    at: Instant,
    seq: u64,
    from: usize,
    to: usize,
    msg: Message,
}

impl PartialEq for Flight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Flight {}
impl PartialOrd for Flight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Flight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A simulated cluster.
pub struct Sim {
    /// The gossip configuration every node starts with.
    pub config: Config,
    /// The network behaviour; may be changed between steps.
    pub net: NetConfig,
    /// Counters since the start.
    pub stats: Stats,
    /// Events observed so far, if recording is on.
    pub log: Vec<Record>,
    /// Whether events are recorded into `log`.
    pub record: bool,
    seed: u64,
    base: Instant,
    now: Instant,
    rng: StdRng,
    slots: Vec<Slot>,
    by_addr: HashMap<String, usize>,
    by_id: HashMap<NodeId, usize>,
    flights: BinaryHeap<Reverse<Flight>>,
    wakes: BinaryHeap<Reverse<(Instant, usize)>>,
    next_flight: u64,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: spreads seeds so that nearby seeds give unrelated streams.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The id of node `i` in every simulation.
pub fn node_id(i: usize) -> NodeId {
    NodeId::new(format!("n{i:04}")).expect("valid id")
}

/// The seeds a test runs: `GOSSIP_SEED` alone if set, else `GOSSIP_SEEDS`
/// (or `default`) consecutive seeds starting at `base`.
pub fn seeds(base: u64, default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("GOSSIP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let n = std::env::var("GOSSIP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (base..base + n).collect()
}

impl Sim {
    /// `n` nodes, none started, named `n0000`.. at addresses `n<i>:7000`.
    pub fn new(seed: u64, n: usize, config: Config, net: NetConfig) -> Self {
        // The only clock read: virtual time is `base + elapsed`.
        #[allow(clippy::disallowed_methods)] // an arbitrary origin for virtual time
        let base = Instant::now();
        let slots: Vec<Slot> = (0..n)
            .map(|i| Slot {
                id: node_id(i),
                addr: format!("n{i}:7000"),
                core: None,
                lives: 0,
                wake: None,
                group: 0,
            })
            .collect();
        let by_addr = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.addr.clone(), i))
            .collect();
        let by_id = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Self {
            config,
            net,
            stats: Stats::default(),
            log: Vec::new(),
            record: true,
            seed,
            base,
            now: base,
            rng: StdRng::seed_from_u64(mix(seed)),
            slots,
            by_addr,
            by_id,
            flights: BinaryHeap::new(),
            wakes: BinaryHeap::new(),
            next_flight: 0,
        }
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The simulation seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The address of node `i`.
    pub fn addr(&self, i: usize) -> &str {
        &self.slots[i].addr
    }

    /// The id of node `i`.
    pub fn id(&self, i: usize) -> &NodeId {
        &self.slots[i].id
    }

    /// The index of the node with `id`.
    pub fn index(&self, id: &NodeId) -> usize {
        self.by_id[id]
    }

    /// Whether node `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.slots[i].core.is_some()
    }

    /// The running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_running(i)).collect()
    }

    /// Node `i`'s core. Panics if it is stopped.
    pub fn node(&self, i: usize) -> &Membership {
        self.slots[i].core.as_ref().expect("node is running")
    }

    /// Starts node `i` (again, after a stop) at incarnation 0 and joins through
    /// the nodes `seeds`.
    pub fn start(&mut self, i: usize, seeds: &[usize]) {
        let seeds: Vec<String> = seeds.iter().map(|&s| self.slots[s].addr.clone()).collect();
        let slot = &mut self.slots[i];
        slot.lives += 1;
        let rng_seed = mix(self.seed ^ mix(i as u64 + (slot.lives << 32)));
        let mut core = Membership::new(
            self.config.clone(),
            slot.id.clone(),
            slot.addr.clone(),
            0,
            rng_seed,
            self.now,
        );
        core.join(self.now, &seeds);
        slot.core = Some(core);
        slot.wake = None;
        self.pump(i);
    }

    /// Stops node `i` abruptly: its state is lost and messages to it vanish.
    pub fn stop(&mut self, i: usize) {
        self.slots[i].core = None;
        self.slots[i].wake = None;
    }

    /// Node `i` leaves gracefully; its announcements are sent, and it keeps
    /// running until stopped.
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        if let Some(core) = self.slots[i].core.as_mut() {
            core.leave(now);
        }
        self.pump(i);
    }

    /// Splits the cluster: messages flow only within a group. Nodes not listed
    /// form one more group together.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        for s in &mut self.slots {
            s.group = u32::MAX;
        }
        for (g, members) in groups.iter().enumerate() {
            for &i in *members {
                self.slots[i].group = g as u32;
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        for s in &mut self.slots {
            s.group = 0;
        }
    }

    /// Drains node `i`'s outputs into the network and the log, and schedules
    /// its next wake-up.
    fn pump(&mut self, i: usize) {
        let Some(core) = self.slots[i].core.as_mut() else {
            return;
        };
        let mut outs = Vec::new();
        while let Some(out) = core.poll_output() {
            outs.push(out);
        }
        let next = core.poll_timeout();
        for out in outs {
            match out {
                Output::Send { to, msg } => self.send(i, &to, msg),
                Output::Event(event) => {
                    if self.record {
                        self.log.push(Record {
                            at: self.now - self.base,
                            observer: i,
                            event,
                        });
                    }
                }
            }
        }
        if let Some(t) = next {
            let slot = &mut self.slots[i];
            if slot.wake.is_none_or(|w| t < w) {
                slot.wake = Some(t);
                self.wakes.push(Reverse((t, i)));
            }
        }
    }

    fn send(&mut self, from: usize, to: &str, msg: Message) {
        self.stats.sent += 1;
        let Some(&to) = self.by_addr.get(to) else {
            self.stats.dropped += 1;
            return;
        };
        if self.slots[from].group != self.slots[to].group || self.rng.random_bool(self.net.drop) {
            self.stats.dropped += 1;
            return;
        }
        let span = (self.net.max_delay - self.net.min_delay).as_micros() as u64;
        let delay = self.net.min_delay + Duration::from_micros(self.rng.random_range(0..=span));
        self.next_flight += 1;
        self.flights.push(Reverse(Flight {
            at: self.now + delay,
            seq: self.next_flight,
            from,
            to,
            msg,
        }));
    }

    /// The time of the next delivery or timer, if any.
    fn next_event(&self) -> Option<Instant> {
        let f = self.flights.peek().map(|Reverse(f)| f.at);
        let w = self.wakes.peek().map(|Reverse((t, _))| *t);
        match (f, w) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes one delivery or timer, advancing the clock to it.
    fn step(&mut self) {
        let flight_first = match (self.flights.peek(), self.wakes.peek()) {
            (Some(Reverse(f)), Some(Reverse((t, _)))) => f.at <= *t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return,
        };
        if flight_first {
            let Reverse(f) = self.flights.pop().expect("peeked");
            self.now = f.at;
            let cut = self.slots[f.from].group != self.slots[f.to].group;
            let from_addr = self.slots[f.from].addr.clone();
            let now = self.now;
            match self.slots[f.to].core.as_mut() {
                Some(core) if !cut => {
                    self.stats.delivered += 1;
                    core.handle_message(now, &from_addr, f.msg);
                    self.pump(f.to);
                }
                _ => self.stats.dropped += 1,
            }
        } else {
            let Reverse((t, i)) = self.wakes.pop().expect("peeked");
            if self.slots[i].wake != Some(t) {
                return; // Superseded by an earlier wake-up, or the node restarted.
            }
            self.now = t;
            self.slots[i].wake = None;
            if let Some(core) = self.slots[i].core.as_mut() {
                core.handle_timeout(t);
            }
            self.pump(i);
        }
    }

    /// Runs every event up to `deadline`, then sets the clock to it.
    pub fn run_until(&mut self, deadline: Instant) {
        while self.next_event().is_some_and(|t| t <= deadline) {
            self.step();
        }
        self.now = self.now.max(deadline);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `done` holds (checked every `every`) or `limit` of virtual
    /// time has passed; returns the time taken if `done` held.
    pub fn run_until_true(
        &mut self,
        limit: Duration,
        every: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let end = start + limit;
        loop {
            if done(self) {
                return Some(self.now - start);
            }
            if self.now >= end {
                return None;
            }
            self.run_until((self.now + every).min(end));
        }
    }

    /// Whether every node in `live` knows every node in `live` (itself
    /// included) as alive and knows nobody else as alive.
    pub fn all_alive(&self, live: &[usize]) -> bool {
        // Cheap counts first: the full check costs N² lookups.
        let counts_match = live.iter().all(|&i| {
            self.slots[i]
                .core
                .as_ref()
                .is_some_and(|core| core.count(State::Alive) == live.len())
        });
        counts_match
            && live.iter().all(|&i| {
                let core = self.slots[i].core.as_ref().expect("checked above");
                live.iter().all(|&j| {
                    core.member(&self.slots[j].id)
                        .is_some_and(|m| m.state == State::Alive)
                })
            })
    }

    /// Whether every running node other than `x` sees node `x` in `state`.
    pub fn all_see(&self, x: usize, state: State) -> bool {
        let id = &self.slots[x].id;
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != x)
            .filter_map(|(_, s)| s.core.as_ref())
            .all(|core| core.member(id).is_some_and(|m| m.state == state))
    }

    /// Starts all `n` nodes at once, all joining through node 0, and runs until
    /// everyone knows everyone alive or `limit` passes.
    pub fn start_all_through_one_seed(&mut self, limit: Duration) -> Option<Duration> {
        self.start(0, &[]);
        for i in 1..self.len() {
            self.start(i, &[0]);
        }
        let all: Vec<usize> = (0..self.len()).collect();
        let every = self.config.probe_interval / 10;
        self.run_until_true(limit, every, |s| s.all_alive(&all))
    }

    /// The logged `Dead` events: `(observer, subject, when)`.
    pub fn dead_declarations(&self) -> Vec<(usize, usize, Duration)> {
        self.log
            .iter()
            .filter_map(|r| match &r.event {
                Event::Dead(m) => Some((r.observer, self.by_id[&m.id], r.at)),
                _ => None,
            })
            .collect()
    }
}
