//! A deterministic in-memory cluster: seeded schedules that drop, duplicate and reorder messages and crash acceptors, checked for lost and duplicated updates.
//!
//! Acceptors are maps from key to [`AcceptorState`] plus an LWW map; their
//! state survives a crash (it is "persisted" before every reply). Clients
//! run counter increments (`CAS value=n -> n+1`) and reads on one or two
//! keys through [`Round`]s. After the run a final read on a healed network
//! gives each key's counter, and the checker requires:
//!
//! - no two different proposals were ever accepted at one ballot;
//! - the values chosen on a key, in ballot order, never decrease;
//! - no two `Applied` CASes wrote the same counter value, every value up to
//!   the final one was written by an `Applied` or `Unknown` CAS, and none
//!   above it was `Applied` (lost and duplicated updates);
//! - every value an operation reports is at least every value `Applied`
//!   before the operation started (real-time order);
//! - outcomes are honest: only the expected kinds occur, and a round
//!   reported `Contention` or `Unavailable` had no proposal accepted anywhere.
//!
//! A deliberately broken cluster (each proposer's configuration holds one
//! acceptor, a quorum of 1) must fail the same checker on some seed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vergent_consensus::{
    AcceptReply, AcceptorState, Backoff, Ballot, Expect, LwwRecord, Message, Op, Outcome,
    PrepareReply, ProposerCache, Round, RoundOutput, RoundRequest, Value, VotingConfig,
    handle_accept, handle_commit, handle_prepare,
};
use vergent_hlc::{Hlc, HlcConfig};
use vergent_types::NodeId;

const EPOCH: u64 = 1;
const START_MS: u64 = 1_700_000_000_000;
/// Steps a round may run before the client gives up on it.
const ROUND_DEADLINE: u64 = 150;

fn id(s: String) -> NodeId {
    NodeId::new(s).expect("valid id")
}

#[derive(Default)]
struct Acceptor {
    state: HashMap<Vec<u8>, AcceptorState>,
    lww: HashMap<Vec<u8>, LwwRecord>,
    up: bool,
}

enum Payload {
    Request(Message),
    Prepared(PrepareReply),
    Accepted(AcceptReply),
}

struct Envelope {
    from: NodeId,
    to: NodeId,
    /// Which round of the proposer the message belongs to.
    round: u64,
    payload: Payload,
}

/// One operation's record in the history.
#[derive(Clone, Debug)]
struct Event {
    key: Vec<u8>,
    /// The value a CAS wrote if applied.
    new: Option<u64>,
    ballot: Ballot,
    invoked: u64,
    returned: u64,
    outcome: Outcome,
}

struct Proposer {
    id: NodeId,
    config: VotingConfig,
    hlc: Hlc,
    skew_ms: u64,
    cache: ProposerCache,
    round: Option<(u64, Round, Option<u64>, u64)>,
    next_round: u64,
    /// What this client believes each key holds (`None`: unknown, read first).
    known: HashMap<Vec<u8>, Option<u64>>,
    idle_until: u64,
    attempts: u32,
    retry_above: Option<Ballot>,
}

fn decode(v: &Value) -> u64 {
    v.as_ref()
        .map(|b| String::from_utf8_lossy(b).parse().expect("counter value"))
        .unwrap_or(0)
}

fn encode(n: u64) -> Value {
    Some(n.to_string().into_bytes())
}

struct Cluster {
    rng: ChaCha8Rng,
    step: u64,
    acceptors: BTreeMap<NodeId, Acceptor>,
    proposers: Vec<Proposer>,
    net: Vec<Envelope>,
    keys: Vec<Vec<u8>>,
    history: Vec<Event>,
    /// Every proposal an acceptor accepted: (key, ballot) -> (value, acceptors).
    accepted: BTreeMap<(Vec<u8>, Ballot), (Value, BTreeSet<NodeId>)>,
    /// Set when two proposals were accepted at one ballot.
    ballot_conflict: Option<String>,
    real: VotingConfig,
    /// Rounds that started from a 1-RTT cache entry.
    cached_rounds: usize,
    backoff: Backoff,
    max_down: usize,
}

impl Cluster {
    fn new(seed: u64, broken: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n_acceptors = if rng.random_bool(0.5) { 3 } else { 5 };
        let n_proposers = rng.random_range(2..=3);
        let n_keys = rng.random_range(1..=2);
        let acceptor_ids: Vec<NodeId> = (0..n_acceptors).map(|i| id(format!("a{i}"))).collect();
        let real = VotingConfig::new(EPOCH, acceptor_ids.iter().cloned());
        let acceptors = acceptor_ids
            .iter()
            .map(|a| {
                let acc = Acceptor {
                    up: true,
                    ..Acceptor::default()
                };
                (a.clone(), acc)
            })
            .collect();
        let proposers = (0..n_proposers)
            .map(|i| Proposer {
                id: id(format!("p{i}")),
                config: if broken {
                    VotingConfig::new(EPOCH, [acceptor_ids[i % n_acceptors].clone()])
                } else {
                    real.clone()
                },
                hlc: Hlc::new(HlcConfig::default()),
                skew_ms: rng.random_range(0..100),
                cache: ProposerCache::new(),
                round: None,
                next_round: 0,
                known: HashMap::new(),
                idle_until: 0,
                attempts: 0,
                retry_above: None,
            })
            .collect();
        Self {
            rng,
            step: 0,
            acceptors,
            proposers,
            net: Vec::new(),
            keys: (0..n_keys).map(|k| format!("k{k}").into_bytes()).collect(),
            history: Vec::new(),
            accepted: BTreeMap::new(),
            ballot_conflict: None,
            real,
            cached_rounds: 0,
            backoff: Backoff::new(4, 64),
            max_down: n_acceptors / 2,
        }
    }

    fn now(&self, p: usize) -> u64 {
        START_MS + self.step + self.proposers[p].skew_ms
    }

    /// Starts an increment (or a read when the client does not know the value).
    fn start_op(&mut self, p: usize) {
        let key = self.keys[self.rng.random_range(0..self.keys.len())].clone();
        let known = self.proposers[p].known.get(&key).copied().flatten();
        let (op, new) = match known {
            Some(n) if self.rng.random_bool(0.8) => {
                let expect = if n == 0 {
                    Expect::Absent
                } else {
                    Expect::Value(n.to_string().into_bytes())
                };
                (
                    Op::Cas {
                        expect,
                        new: encode(n + 1),
                    },
                    Some(n + 1),
                )
            }
            _ => (Op::Read, None),
        };
        let now = self.now(p);
        let pr = &mut self.proposers[p];
        if let Some(b) = pr.retry_above.take() {
            pr.hlc.observe(b.hlc);
        }
        let ballot_hlc = pr.hlc.now(now);
        let cache = pr.cache.take(&key);
        self.cached_rounds += usize::from(cache.is_some());
        let req = RoundRequest {
            key,
            op,
            proposer: pr.id.clone(),
            config: pr.config.clone(),
            ballot_hlc,
            cache,
        };
        let round = Round::new(now, &mut pr.hlc, req);
        let rid = pr.next_round;
        pr.next_round += 1;
        pr.round = Some((rid, round, new, self.step));
        self.pump(p);
    }

    /// Carries out a proposer's round outputs.
    fn pump(&mut self, p: usize) {
        let step = self.step;
        let pr = &mut self.proposers[p];
        let Some((rid, round, new, invoked)) = &mut pr.round else {
            return;
        };
        let mut done = None;
        while let Some(out) = round.poll_output() {
            match out {
                RoundOutput::Send { to, msg } => self.net.push(Envelope {
                    from: pr.id.clone(),
                    to,
                    round: *rid,
                    payload: Payload::Request(msg),
                }),
                RoundOutput::Cache { key, entry } => pr.cache.insert(key, entry),
                RoundOutput::Done(outcome) => done = Some(outcome),
            }
        }
        let Some(outcome) = done else { return };
        let key = round.key().to_vec();
        self.history.push(Event {
            key: key.clone(),
            new: *new,
            ballot: round.ballot().clone(),
            invoked: *invoked,
            returned: step,
            outcome: outcome.clone(),
        });
        // Its commit sends are queued already; a finished round takes no input.
        pr.round = None;
        pr.attempts = match &outcome {
            Outcome::Contention { .. } | Outcome::Unavailable { .. } => pr.attempts + 1,
            _ => 0,
        };
        let known = match &outcome {
            Outcome::Applied { value, .. }
            | Outcome::NotApplied { value, .. }
            | Outcome::Read { value, .. } => Some(decode(value)),
            _ => None,
        };
        pr.known.insert(key, known);
        if let Outcome::Contention { retry_above } = &outcome {
            pr.retry_above = Some(retry_above.clone());
        }
        let attempts = pr.attempts;
        let delay = if attempts > 0 {
            self.backoff.delay_ms(attempts - 1, &mut self.rng)
        } else {
            self.rng.random_range(0..3)
        };
        self.proposers[p].idle_until = step + delay;
    }

    fn deliver(&mut self, env: Envelope) {
        match env.payload {
            Payload::Request(msg) => {
                let Some(acc) = self.acceptors.get_mut(&env.to) else {
                    return;
                };
                if !acc.up {
                    return;
                }
                let reply = match &msg {
                    Message::Prepare(m) => {
                        let st = acc.state.get(&m.key).cloned().unwrap_or_default();
                        let (persist, reply) = handle_prepare(&st, acc.lww.get(&m.key), m, EPOCH);
                        if let Some(s) = persist {
                            acc.state.insert(m.key.clone(), s);
                        }
                        Some(Payload::Prepared(reply))
                    }
                    Message::Accept(m) => {
                        let st = acc.state.get(&m.key).cloned().unwrap_or_default();
                        let (persist, reply) = handle_accept(&st, acc.lww.get(&m.key), m, EPOCH);
                        if let Some(s) = persist {
                            acc.state.insert(m.key.clone(), s);
                            let entry = self
                                .accepted
                                .entry((m.key.clone(), m.ballot.clone()))
                                .or_insert_with(|| (m.value.clone(), BTreeSet::new()));
                            if entry.0 != m.value && self.ballot_conflict.is_none() {
                                self.ballot_conflict = Some(format!(
                                    "ballot {} accepted both {:?} and {:?}",
                                    m.ballot, entry.0, m.value
                                ));
                            }
                            entry.1.insert(env.to.clone());
                        }
                        Some(Payload::Accepted(reply))
                    }
                    Message::Commit(m) => {
                        let st = acc.state.get(&m.key).cloned().unwrap_or_default();
                        let effect = handle_commit(&st, m);
                        let newer = acc.lww.get(&m.key).is_none_or(|(v, _)| effect.lww.0 > *v);
                        if newer {
                            acc.lww.insert(m.key.clone(), effect.lww);
                        }
                        if let Some(s) = effect.state {
                            acc.state.insert(m.key.clone(), s);
                        }
                        None
                    }
                };
                if let Some(payload) = reply {
                    self.net.push(Envelope {
                        from: env.to,
                        to: env.from,
                        round: env.round,
                        payload,
                    });
                }
            }
            Payload::Prepared(reply) => {
                if let Some(p) = self.proposer_for(&env.to, env.round) {
                    let now = self.now(p);
                    let pr = &mut self.proposers[p];
                    if let Some((_, round, _, _)) = &mut pr.round {
                        round.handle_prepare_reply(now, &mut pr.hlc, &env.from, reply);
                    }
                    self.pump(p);
                }
            }
            Payload::Accepted(reply) => {
                if let Some(p) = self.proposer_for(&env.to, env.round) {
                    let now = self.now(p);
                    let pr = &mut self.proposers[p];
                    if let Some((_, round, _, _)) = &mut pr.round {
                        round.handle_accept_reply(now, &mut pr.hlc, &env.from, reply);
                    }
                    self.pump(p);
                }
            }
        }
    }

    fn proposer_for(&self, node: &NodeId, round: u64) -> Option<usize> {
        self.proposers
            .iter()
            .position(|p| p.id == *node && p.round.as_ref().is_some_and(|(rid, ..)| *rid == round))
    }

    fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.step += 1;
            for p in 0..self.proposers.len() {
                let pr = &mut self.proposers[p];
                match &pr.round {
                    None if self.step >= pr.idle_until => self.start_op(p),
                    Some((_, _, _, invoked)) if self.step - invoked > ROUND_DEADLINE => {
                        let now = self.now(p);
                        if let Some((_, round, _, _)) = &mut self.proposers[p].round {
                            round.handle_timeout(now);
                        }
                        self.pump(p);
                    }
                    _ => {}
                }
            }
            let roll = self.rng.random_range(0..100);
            if roll < 2 {
                self.toggle_crash();
            } else if !self.net.is_empty() {
                let i = self.rng.random_range(0..self.net.len());
                let env = self.net.swap_remove(i);
                match roll {
                    2..=7 => {} // dropped
                    8..=12 => {
                        let copy = Envelope {
                            from: env.from.clone(),
                            to: env.to.clone(),
                            round: env.round,
                            payload: match &env.payload {
                                Payload::Request(m) => Payload::Request(m.clone()),
                                Payload::Prepared(r) => Payload::Prepared(r.clone()),
                                Payload::Accepted(r) => Payload::Accepted(r.clone()),
                            },
                        };
                        self.net.push(copy);
                        self.deliver(env);
                    }
                    _ => self.deliver(env),
                }
            }
        }
    }

    fn toggle_crash(&mut self) {
        let ids: Vec<NodeId> = self.acceptors.keys().cloned().collect();
        let pick = ids[self.rng.random_range(0..ids.len())].clone();
        let down = self.acceptors.values().filter(|a| !a.up).count();
        let acc = self.acceptors.get_mut(&pick).expect("acceptor");
        if acc.up && down < self.max_down {
            acc.up = false;
        } else if !acc.up {
            acc.up = true;
        }
    }

    /// Heals the cluster and reads every key with the real configuration.
    fn final_reads(&mut self) -> BTreeMap<Vec<u8>, u64> {
        self.net.clear();
        for a in self.acceptors.values_mut() {
            a.up = true;
        }
        let reader = id("reader".to_string());
        let mut hlc = Hlc::new(HlcConfig::default());
        let mut out = BTreeMap::new();
        for key in self.keys.clone() {
            let mut value = None;
            for attempt in 0..50 {
                let now = START_MS + self.step + 1_000 + attempt;
                let req = RoundRequest {
                    key: key.clone(),
                    op: Op::Read,
                    proposer: reader.clone(),
                    config: self.real.clone(),
                    ballot_hlc: hlc.now(now),
                    cache: None,
                };
                let mut round = Round::new(now, &mut hlc, req);
                let mut result = None;
                // A reliable network in FIFO order: deliver until done.
                let mut queue = std::collections::VecDeque::new();
                loop {
                    while let Some(o) = round.poll_output() {
                        match o {
                            RoundOutput::Send { to, msg } => queue.push_back((to, msg)),
                            RoundOutput::Done(d) => result = Some(d),
                            RoundOutput::Cache { .. } => {}
                        }
                    }
                    let Some((to, msg)) = queue.pop_front() else {
                        break;
                    };
                    let env = Envelope {
                        from: reader.clone(),
                        to: to.clone(),
                        round: 0,
                        payload: Payload::Request(msg),
                    };
                    self.deliver(env);
                    for env in std::mem::take(&mut self.net) {
                        match env.payload {
                            Payload::Prepared(r) => {
                                round.handle_prepare_reply(now, &mut hlc, &env.from, r)
                            }
                            Payload::Accepted(r) => {
                                round.handle_accept_reply(now, &mut hlc, &env.from, r)
                            }
                            Payload::Request(_) => {}
                        }
                    }
                }
                match result {
                    Some(Outcome::Read { value: v, .. }) => {
                        value = Some(decode(&v));
                        break;
                    }
                    Some(Outcome::Contention { retry_above }) => hlc.observe(retry_above.hlc),
                    other => panic!("final read on a healed cluster ended {other:?}"),
                }
            }
            out.insert(key, value.expect("final read succeeded within 50 attempts"));
        }
        out
    }

    /// The checker; `Err` names the first violation.
    fn check(&mut self) -> Result<(), String> {
        if let Some(c) = &self.ballot_conflict {
            return Err(c.clone());
        }
        // A round still running when the schedule ends may yet be chosen.
        for p in &mut self.proposers {
            if let Some((_, round, new, invoked)) = p.round.take() {
                self.history.push(Event {
                    key: round.key().to_vec(),
                    new,
                    ballot: round.ballot().clone(),
                    invoked,
                    returned: u64::MAX,
                    outcome: Outcome::Unknown,
                });
            }
        }
        let finals = self.final_reads();
        let quorum = self.real.voters.len() / 2 + 1;
        // Chosen values never decrease in ballot order.
        for key in &self.keys {
            let mut last = 0;
            for ((k, b), (v, by)) in &self.accepted {
                if k == key && by.len() >= quorum {
                    let n = decode(v);
                    if n < last {
                        return Err(format!("chosen value {n} at {b} after {last}"));
                    }
                    last = n;
                }
            }
        }
        for e in &self.history {
            match &e.outcome {
                Outcome::Applied { .. }
                | Outcome::NotApplied { .. }
                | Outcome::Read { .. }
                | Outcome::Unknown => {}
                Outcome::Contention { .. } | Outcome::Unavailable { .. } => {
                    if self
                        .accepted
                        .contains_key(&(e.key.clone(), e.ballot.clone()))
                    {
                        return Err(format!(
                            "{:?} but ballot {} was accepted",
                            e.outcome, e.ballot
                        ));
                    }
                }
                other => return Err(format!("unexpected outcome {other:?}")),
            }
        }
        for key in &self.keys {
            let fin = finals[key];
            let events: Vec<&Event> = self.history.iter().filter(|e| &e.key == key).collect();
            let mut applied = BTreeSet::new();
            let mut maybe = BTreeSet::new();
            for e in &events {
                match (&e.outcome, e.new) {
                    (Outcome::Applied { .. }, Some(n)) => {
                        if !applied.insert(n) {
                            return Err(format!("two CASes applied value {n} on {key:?}"));
                        }
                        maybe.insert(n);
                    }
                    (Outcome::Unknown, Some(n)) => {
                        maybe.insert(n);
                    }
                    _ => {}
                }
            }
            if let Some(&top) = applied.last()
                && top > fin
            {
                return Err(format!(
                    "applied {top} but the final value is {fin} (lost update)"
                ));
            }
            if let Some(missing) = (1..=fin).find(|n| !maybe.contains(n)) {
                return Err(format!("final value {fin} but nobody wrote {missing}"));
            }
            // Real time: what an operation reports is at least everything
            // reported before it started (a read must not see a value that
            // is later undone), and never more than the final value.
            let seen = |e: &Event| match &e.outcome {
                Outcome::Applied { value, .. }
                | Outcome::NotApplied { value, .. }
                | Outcome::Read { value, .. } => Some(decode(value)),
                _ => None,
            };
            for e in &events {
                let Some(saw) = seen(e) else { continue };
                if saw > fin {
                    return Err(format!(
                        "operation at step {} saw {saw} above the final {fin}",
                        e.invoked
                    ));
                }
                let before = events
                    .iter()
                    .filter(|a| a.returned < e.invoked)
                    .filter_map(|a| seen(a))
                    .max()
                    .unwrap_or(0);
                if saw < before {
                    return Err(format!(
                        "operation at step {} saw {saw} after {before} was reported",
                        e.invoked
                    ));
                }
            }
        }
        Ok(())
    }
}

fn run_seed(seed: u64, broken: bool) -> (Result<(), String>, BTreeMap<&'static str, usize>) {
    let mut c = Cluster::new(seed, broken);
    c.run(2_000);
    let mut kinds = BTreeMap::new();
    for e in &c.history {
        let kind = match e.outcome {
            Outcome::Applied { .. } => "applied",
            Outcome::NotApplied { .. } => "not_applied",
            Outcome::Read { .. } => "read",
            Outcome::Contention { .. } => "contention",
            Outcome::Unavailable { .. } => "unavailable",
            Outcome::Unknown => "unknown",
            Outcome::StaleConfig { .. } => "stale_config",
            Outcome::ClockSkew(_) => "clock_skew",
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds.insert("cached_start", c.cached_rounds);
    (c.check(), kinds)
}

#[test]
fn concurrent_increments_under_loss_duplication_reordering_and_crashes_lose_nothing() {
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in 0..300 {
        let (result, kinds) = run_seed(seed, false);
        if let Err(e) = result {
            panic!("seed {seed}: {e}");
        }
        for (k, n) in kinds {
            *totals.entry(k).or_insert(0) += n;
        }
    }
    eprintln!("outcomes over 300 seeds: {totals:?}");
    // The schedules must exercise the interesting paths, not just succeed.
    for kind in [
        "applied",
        "not_applied",
        "read",
        "contention",
        "unknown",
        "unavailable",
        "cached_start",
    ] {
        assert!(
            totals.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} outcome: {totals:?}"
        );
    }
}

#[test]
fn the_checker_catches_a_cluster_with_a_quorum_of_one() {
    let failures: Vec<String> = (0..50)
        .filter_map(|seed| run_seed(seed, true).0.err())
        .collect();
    eprintln!(
        "{} of 50 broken runs failed; first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        !failures.is_empty(),
        "a quorum of 1 should lose updates on some seed"
    );
}
