//! A `stateright` model check of the consensus core: every interleaving, within bounds, of two
//! clients' operations over three acceptors, checked for linearizability.
//!
//! The model implements [`stateright::Model`] directly over the production
//! sans-IO core: each state holds three acceptors' [`AcceptorState`] and LWW
//! record, the network, and per client its HLC, its [`ProposerCache`] and
//! the running [`Round`]. Every transition calls the real [`Round`] methods
//! and [`handle_prepare`] / [`handle_accept`] / [`handle_commit`]; nothing of
//! the protocol is re-implemented here.
//!
//! **Network.** A set of envelopes. Any envelope may be delivered next
//! (reordering). With duplication on, a delivered envelope stays in the set
//! and may be delivered again (`stateright`'s duplicating network); without
//! it, delivery removes it. Loss needs no action of its own: an envelope
//! that is never delivered is lost, and every property here is an `Always`
//! over the history, which undelivered envelopes do not change. (Sending an
//! envelope that is already in the set merges the two, which is again a
//! loss.) Replies carry the client's operation number, and the client feeds
//! a reply only to the round it was sent for, as the node driver does.
//!
//! **Crashes.** An acceptor may crash and restart (one atomic action, at most
//! `max_crashes` times: the time it is down is indistinguishable from lost
//! envelopes). It restarts from its *durable* state: everything the
//! handlers returned to persist, made durable before the reply was sent, as
//! the persistence contract requires. The promise-not-persisted mutant
//! keeps a promise only in memory until the next accept or commit persists.
//! A crash is offered only to an acceptor holding something not durable:
//! elsewhere it would restore what the acceptor already holds, a step that
//! changes nothing. So the correct core, which persists before every reply,
//! never crashes in the model: its crash is exactly a pause, which lost and
//! delayed envelopes already cover.
//!
//! **Timeouts and clocks.** A running round may time out at any step
//! ([`Round::handle_timeout`]), ending Unknown, Unavailable or Contention.
//! An operation is not retried: after any outcome the client starts its next
//! operation, after a Contention with its HLC moved past `retry_above` as a
//! driver does. Physical time stands still, but client 1's clock reads 10 ms
//! ahead of client 0's (so its first ballot is not below the promise client
//! 0's first accept leaves behind); HLC logical counters do the rest.
//!
//! **Search.** The full space (two operations per client, duplication, a
//! crash) is far beyond a debug-build test, so every run stops after a
//! bound on generated states: breadth-first (every schedule up to some
//! depth, about 10 to 18 steps here) or seeded uniform random walks to final
//! states (depth 25 to 45). No test here is exhaustive; each prints its
//! state counts. Every mutant test first runs its scenario against the
//! correct core with the same search, which must find nothing.
//!
//! **Encoding outcomes for the linearizability tester.** Each operation is
//! its own tester thread (so a client can go on after an Unknown; the tester
//! still orders a client's later operations after its earlier returned ones,
//! by real time). The sequential spec is a register over a tiny value domain
//! (absent, 1, 2, 3, 4); every CAS writes a value no other operation writes,
//! so any value a read sees names the operation that wrote it.
//! - `Applied` returns [`Ret::Applied`]: the CAS took effect and its
//!   condition held at its linearization point.
//! - `NotApplied {value}` returns [`Ret::NotApplied`]: the condition failed
//!   on exactly `value`.
//! - `Read {value}` returns [`Ret::Read`].
//! - `Unknown` never returns: the tester may linearize it anywhere after its
//!   invocation or drop it, which is exactly "may or may not take effect".
//! - `Unavailable` and `Contention` return [`Ret::NoEffect`], a return the
//!   spec accepts in any state *and that leaves the register unchanged*. That
//!   is the core's claim ("nothing was proposed" / "nothing of this round
//!   can be chosen") checked in full: had such a CAS taken effect, its unique
//!   value would later be read, or a later CAS would fail on it, and no
//!   linearization could explain it. Treating these as never-returning
//!   would be weaker: it lets the write happen silently. Treating them as a
//!   not-applied CAS would be wrong the other way, as the core does not
//!   report the current value then.
//!
//! **Mutants**, each of which the checker must refute (one test each, on a
//! scenario sized so the bounded search reaches the bug):
//! - quorum of 1: client 0's configuration holds only acceptor 0, client
//!   1's all three (their quorums need not intersect); two CAS-if-absent;
//! - a read that skips its write-back
//!   ([`Round::mutant_read_without_write_back`]); a CAS-if-absent against
//!   two reads;
//! - a promise that is not persisted (the model's crash handling above);
//!   two CAS-if-absent and one crash;
//! - a cache entry kept after a failed round
//!   ([`ProposerCache::mutant_keep_entry_after_failure`]), so the next round
//!   reuses the promised ballot with another value; client 0 does three
//!   CASes (the first run alone to completion as the initial state, which
//!   leaves the cache entry) against one read.
//!
//! - a collection that deletes every record, agreed or not
//!   ([`Mutant::GcForgetsAll`]); one CAS-if-absent against two reads.
//!
//! **Collection** (`vergent_consensus::gc`), when a scenario allows it: a
//! round starts once anything is committed, every acceptor raising its floor
//! above every ballot it holds and reporting at once; then each acceptor, in
//! any interleaving with everything else, deletes its record if the reports
//! agree and it still may.
//!
//! The two core hooks exist only with the crate's `mutants` feature, which
//! only its own dev-dependency on itself enables.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use stateright::{Checker, HasDiscoveries, Model, Property, UniformChooser};
use vergent_consensus::gc::{self, Report};
use vergent_consensus::{
    AcceptReply, AcceptorState, Ballot, Expect, LwwRecord, Message, Op, Outcome, PrepareReply,
    ProposerCache, Round, RoundOutput, RoundRequest, Value, VotingConfig, handle_accept,
    handle_commit, handle_prepare,
};
use vergent_hlc::{Hlc, HlcConfig, Timestamp};
use vergent_types::NodeId;

const EPOCH: u64 = 1;
/// Physical time stands still; the HLCs' logical counters keep ballots and versions distinct.
const NOW: u64 = 1_000_000;
/// Client `c`'s physical clock reads `NOW + c * SKEW_MS` (well within the HLC's offset limit):
/// without it client 0's first accept would promise a ballot above client 1's first one.
const SKEW_MS: u64 = 10;

fn now(c: usize) -> u64 {
    NOW + c as u64 * SKEW_MS
}
const KEY: &[u8] = b"k";
const ACCEPTORS: usize = 3;

fn acceptor_id(i: usize) -> NodeId {
    NodeId::new(format!("a{i}")).expect("valid id")
}

fn client_id(i: usize) -> NodeId {
    NodeId::new(format!("p{i}")).expect("valid id")
}

fn acceptor_index(id: &NodeId) -> usize {
    id.as_str()[1..].parse().expect("acceptor id")
}

fn encode(v: Option<u8>) -> Value {
    v.map(|n| vec![n])
}

fn decode(v: &Value) -> Option<u8> {
    v.as_ref().map(|b| b[0])
}

// ---------------------------------------------------------------------------
// The sequential specification.

/// What a model CAS requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Want {
    Absent,
    Is(u8),
}

/// A model operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum MOp {
    Read,
    Cas { want: Want, new: u8 },
}

/// What an operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ret {
    Applied,
    NotApplied(Option<u8>),
    Read(Option<u8>),
    /// Unavailable or Contention: returned, and took no effect.
    NoEffect,
}

/// A register holding nothing or a small number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Register(Option<u8>);

impl SequentialSpec for Register {
    type Op = MOp;
    type Ret = Ret;

    fn invoke(&mut self, op: &MOp) -> Ret {
        match *op {
            MOp::Read => Ret::Read(self.0),
            MOp::Cas { want, new } => {
                let holds = match want {
                    Want::Absent => self.0.is_none(),
                    Want::Is(v) => self.0 == Some(v),
                };
                if holds {
                    self.0 = Some(new);
                    Ret::Applied
                } else {
                    Ret::NotApplied(self.0)
                }
            }
        }
    }

    fn is_valid_step(&mut self, op: &MOp, ret: &Ret) -> bool {
        // A failure that took no effect fits any state and changes nothing.
        *ret == Ret::NoEffect || self.invoke(op) == *ret
    }
}

// ---------------------------------------------------------------------------
// The model's state.

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Payload {
    Request(Message),
    Prepared(PrepareReply),
    Accepted(AcceptReply),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Envelope {
    /// The client (requests come from it, replies go to it).
    client: usize,
    /// The acceptor.
    acceptor: usize,
    /// The client's operation number the message belongs to.
    op: usize,
    payload: Payload,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Acceptor {
    state: AcceptorState,
    /// What a restart recovers.
    durable: AcceptorState,
    lww: Option<LwwRecord>,
    /// The garbage-collection floor (always durable: persisted before use).
    floor: Option<Ballot>,
}

/// A collection round in progress: the floor every acceptor raised, the
/// reports taken then, and which acceptors have since acted on them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Gc {
    floor: Ballot,
    reports: Vec<Report>,
    forgotten: Vec<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Client {
    /// The HLC's last timestamp (the clock is rebuilt from it each step).
    hlc: Timestamp,
    cache: ProposerCache,
    /// The running round and its operation number.
    round: Option<(usize, Round)>,
    /// The next operation to start.
    next: usize,
}

/// Bits of [`State::seen`], for the `Sometimes` properties.
const SAW_APPLIED: u16 = 1;
const SAW_READ_OTHER: u16 = 1 << 1;
const SAW_UNKNOWN: u16 = 1 << 2;
const SAW_NO_EFFECT: u16 = 1 << 3;
const SAW_CACHED_START: u16 = 1 << 4;
const SAW_CRASH: u16 = 1 << 5;
const SAW_NOT_APPLIED: u16 = 1 << 6;
const SAW_FORGOTTEN: u16 = 1 << 7;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    acceptors: Vec<Acceptor>,
    /// The network as a set, kept sorted by each envelope's hash so equal sets are equal states.
    net: Vec<(u64, Envelope)>,
    clients: Vec<Client>,
    crashes: u8,
    history: LinearizabilityTester<usize, Register>,
    seen: u16,
    gc: Option<Gc>,
    collects: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Start(usize),
    /// Deliver the envelope at this index of [`State::net`].
    Deliver(usize),
    Timeout(usize),
    Crash(usize),
    /// Start a collection round: every acceptor raises its floor and reports.
    GcStart,
    /// This acceptor deletes its record if the reports agree and it may.
    GcForget(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutant {
    None,
    /// Client 0's configuration holds only acceptor 0.
    QuorumOfOne,
    ReadWithoutWriteBack,
    PromiseNotPersisted,
    CacheKeptAfterFailure,
    /// Collection deletes every record, agreed or not.
    GcForgetsAll,
}

/// The model: who does what, and what the network and acceptors may do.
#[derive(Clone, Debug)]
struct Cas {
    ops: Vec<Vec<MOp>>,
    duplicating: bool,
    max_crashes: u8,
    mutant: Mutant,
    /// Start from the state after client 0's first operation ran alone on a
    /// reliable network (every envelope delivered once, none lost): a
    /// reachable state, which shortens the paths the mutant tests need.
    warm_start: bool,
    /// Collection rounds of per-key state (`vergent_consensus::gc`) allowed.
    max_collects: u8,
}

fn fingerprint(e: &Envelope) -> u64 {
    let mut h = DefaultHasher::new();
    e.hash(&mut h);
    h.finish()
}

impl Cas {
    fn config(&self, client: usize) -> VotingConfig {
        if self.mutant == Mutant::QuorumOfOne && client == 0 {
            VotingConfig::new(EPOCH, [acceptor_id(0)])
        } else {
            VotingConfig::new(EPOCH, (0..ACCEPTORS).map(acceptor_id))
        }
    }

    /// The client that writes `value` (for "a read saw the other client's write").
    fn writer_of(&self, value: u8) -> Option<usize> {
        self.ops.iter().position(|ops| {
            ops.iter()
                .any(|op| matches!(op, MOp::Cas { new, .. } if *new == value))
        })
    }

    fn send(state: &mut State, env: Envelope) {
        let fp = fingerprint(&env);
        let pos = state.net.partition_point(|(f, _)| *f < fp);
        if state.net[pos..]
            .iter()
            .take_while(|(f, _)| *f == fp)
            .any(|(_, e)| *e == env)
        {
            return;
        }
        state.net.insert(pos, (fp, env));
    }

    /// Carries out client `c`'s round outputs; on `Done`, records the return.
    fn pump(&self, state: &mut State, c: usize) {
        let client = &mut state.clients[c];
        let Some((op_no, round)) = &mut client.round else {
            return;
        };
        let op_no = *op_no;
        let mut done = None;
        let mut sends = Vec::new();
        while let Some(out) = round.poll_output() {
            match out {
                RoundOutput::Send { to, msg } => sends.push(Envelope {
                    client: c,
                    acceptor: acceptor_index(&to),
                    op: op_no,
                    payload: Payload::Request(msg),
                }),
                RoundOutput::Cache { key, entry } => client.cache.insert(key, entry),
                RoundOutput::Done(outcome) => done = Some(outcome),
            }
        }
        if done.is_some() {
            client.round = None;
        }
        for env in sends {
            Self::send(state, env);
        }
        let Some(outcome) = done else { return };
        let thread = c * 16 + op_no;
        let ret = match &outcome {
            Outcome::Applied { .. } => {
                state.seen |= SAW_APPLIED;
                Some(Ret::Applied)
            }
            Outcome::NotApplied { value, .. } => {
                state.seen |= SAW_NOT_APPLIED;
                Some(Ret::NotApplied(decode(value)))
            }
            Outcome::Read { value, .. } => {
                let v = decode(value);
                if v.and_then(|v| self.writer_of(v)).is_some_and(|w| w != c) {
                    state.seen |= SAW_READ_OTHER;
                }
                Some(Ret::Read(v))
            }
            Outcome::Unknown => {
                state.seen |= SAW_UNKNOWN;
                None
            }
            Outcome::Contention { retry_above } => {
                // As a driver does: the next ballot goes above the one that won.
                let mut hlc = Hlc::with_floor(HlcConfig::default(), state.clients[c].hlc);
                hlc.observe(retry_above.hlc);
                state.clients[c].hlc = hlc.last();
                state.seen |= SAW_NO_EFFECT;
                Some(Ret::NoEffect)
            }
            Outcome::Unavailable { .. } => {
                state.seen |= SAW_NO_EFFECT;
                Some(Ret::NoEffect)
            }
            // Both claim nothing was proposed; neither can happen here.
            Outcome::StaleConfig { .. } | Outcome::ClockSkew(_) => Some(Ret::NoEffect),
        };
        if let Some(ret) = ret {
            // Errors only for a malformed history (a return without an
            // invocation), which the tester then reports as not linearizable.
            let _ = state.history.on_return(thread, ret);
        }
    }

    fn start(&self, state: &mut State, c: usize) {
        let op_no = state.clients[c].next;
        let op = self.ops[c][op_no];
        let _ = state.history.on_invoke(c * 16 + op_no, op);
        let client = &mut state.clients[c];
        client.next += 1;
        let mut hlc = Hlc::with_floor(HlcConfig::default(), client.hlc);
        let cache = client.cache.take(KEY);
        if cache.is_some() {
            state.seen |= SAW_CACHED_START;
        }
        let req = RoundRequest {
            key: KEY.to_vec(),
            op: match op {
                MOp::Read => Op::Read,
                MOp::Cas { want, new } => Op::Cas {
                    expect: match want {
                        Want::Absent => Expect::Absent,
                        Want::Is(v) => Expect::Value(vec![v]),
                    },
                    new: encode(Some(new)),
                },
            },
            proposer: client_id(c),
            config: self.config(c),
            ballot_hlc: hlc.now(now(c)),
            cache,
        };
        let mut round = Round::new(now(c), &mut hlc, req);
        if self.mutant == Mutant::ReadWithoutWriteBack {
            round.mutant_read_without_write_back();
        }
        client.hlc = hlc.last();
        client.round = Some((op_no, round));
        self.pump(state, c);
    }

    fn deliver(&self, state: &mut State, env: Envelope) {
        let c = env.client;
        match env.payload {
            Payload::Request(msg) => {
                let acc = &mut state.acceptors[env.acceptor];
                let reply = match &msg {
                    Message::Prepare(m) => {
                        let floored = gc::with_floor(&acc.state, acc.floor.as_ref());
                        let (persist, reply) = handle_prepare(&floored, acc.lww.as_ref(), m, EPOCH);
                        if let Some(s) = persist {
                            acc.state = s;
                            if self.mutant != Mutant::PromiseNotPersisted {
                                acc.durable = acc.state.clone();
                            }
                        }
                        Some(Payload::Prepared(reply))
                    }
                    Message::Accept(m) => {
                        let floored = gc::with_floor(&acc.state, acc.floor.as_ref());
                        let (persist, reply) = handle_accept(&floored, acc.lww.as_ref(), m, EPOCH);
                        if let Some(s) = persist {
                            acc.state = s;
                            acc.durable = acc.state.clone();
                        }
                        Some(Payload::Accepted(reply))
                    }
                    Message::Commit(m) => {
                        let effect = handle_commit(&acc.state, m);
                        // The ordinary LWW apply: keep the greater version.
                        if acc.lww.as_ref().is_none_or(|(v, _)| effect.lww.0 > *v) {
                            acc.lww = Some(effect.lww);
                        }
                        if let Some(s) = effect.state {
                            acc.state = s;
                            acc.durable = acc.state.clone();
                        }
                        None
                    }
                };
                if let Some(payload) = reply {
                    let reply = Envelope {
                        client: env.client,
                        acceptor: env.acceptor,
                        op: env.op,
                        payload,
                    };
                    Self::send(state, reply);
                }
            }
            Payload::Prepared(reply) => {
                let client = &mut state.clients[c];
                let Some((op_no, round)) = &mut client.round else {
                    return;
                };
                if *op_no != env.op {
                    return;
                }
                let mut hlc = Hlc::with_floor(HlcConfig::default(), client.hlc);
                round.handle_prepare_reply(now(c), &mut hlc, &acceptor_id(env.acceptor), reply);
                client.hlc = hlc.last();
                self.pump(state, c);
            }
            Payload::Accepted(reply) => {
                let client = &mut state.clients[c];
                let Some((op_no, round)) = &mut client.round else {
                    return;
                };
                if *op_no != env.op {
                    return;
                }
                let mut hlc = Hlc::with_floor(HlcConfig::default(), client.hlc);
                round.handle_accept_reply(now(c), &mut hlc, &acceptor_id(env.acceptor), reply);
                client.hlc = hlc.last();
                self.pump(state, c);
            }
        }
    }
}

impl Cas {
    /// Drops every envelope whose delivery would change nothing but the
    /// network: a reply to a round that is over or that the round would
    /// ignore (the same [`Round`] after feeding it, nothing output), and a
    /// commit its acceptor has applied. Dropping is loss, which the network
    /// allows anyway; this only keeps such envelopes from multiplying states.
    fn collect_no_ops(&self, state: &mut State) {
        let clients = &state.clients;
        let acceptors = &state.acceptors;
        state.net.retain(|(_, env)| {
            let client = &clients[env.client];
            let live = |r: &Option<(usize, Round)>| match r {
                Some((op, round)) if *op == env.op => Some(round.clone()),
                _ => None,
            };
            match &env.payload {
                Payload::Prepared(reply) => live(&client.round).is_some_and(|mut round| {
                    let before = round.clone();
                    let mut hlc = Hlc::with_floor(HlcConfig::default(), client.hlc);
                    let from = acceptor_id(env.acceptor);
                    round.handle_prepare_reply(now(env.client), &mut hlc, &from, reply.clone());
                    round != before || hlc.last() != client.hlc
                }),
                Payload::Accepted(reply) => live(&client.round).is_some_and(|mut round| {
                    let before = round.clone();
                    let mut hlc = Hlc::with_floor(HlcConfig::default(), client.hlc);
                    round.handle_accept_reply(
                        now(env.client),
                        &mut hlc,
                        &acceptor_id(env.acceptor),
                        reply.clone(),
                    );
                    round != before || hlc.last() != client.hlc
                }),
                Payload::Request(Message::Commit(m)) => {
                    let acc = &acceptors[env.acceptor];
                    let effect = handle_commit(&acc.state, m);
                    effect.state.is_some()
                        || acc.lww.as_ref().is_none_or(|(v, _)| effect.lww.0 > *v)
                }
                Payload::Request(_) => true,
            }
        });
    }
}

impl Model for Cas {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let clients = (0..self.ops.len())
            .map(|_| {
                let mut cache = ProposerCache::new();
                if self.mutant == Mutant::CacheKeptAfterFailure {
                    cache.mutant_keep_entry_after_failure();
                }
                Client {
                    hlc: Timestamp::ZERO,
                    cache,
                    round: None,
                    next: 0,
                }
            })
            .collect();
        let mut state = State {
            acceptors: vec![Acceptor::default(); ACCEPTORS],
            net: Vec::new(),
            clients,
            crashes: 0,
            history: LinearizabilityTester::new(Register::default()),
            seen: 0,
            gc: None,
            collects: 0,
        };
        if self.warm_start {
            self.start(&mut state, 0);
            let mut fifo: std::collections::VecDeque<Envelope> = std::mem::take(&mut state.net)
                .into_iter()
                .map(|(_, e)| e)
                .collect();
            while let Some(env) = fifo.pop_front() {
                self.deliver(&mut state, env);
                fifo.extend(std::mem::take(&mut state.net).into_iter().map(|(_, e)| e));
            }
            assert!(state.clients[0].round.is_none(), "the warm-up op finished");
        }
        vec![state]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for i in 0..state.net.len() {
            actions.push(Action::Deliver(i));
        }
        for (c, client) in state.clients.iter().enumerate() {
            if client.round.is_some() {
                actions.push(Action::Timeout(c));
            } else if client.next < self.ops[c].len() {
                actions.push(Action::Start(c));
            }
        }
        if state.crashes < self.max_crashes {
            // A crash restores the durable state: where that is what the
            // acceptor holds, it changes nothing (and only spends the
            // budget), so it is not offered.
            for (a, acc) in state.acceptors.iter().enumerate() {
                if acc.state != acc.durable {
                    actions.push(Action::Crash(a));
                }
            }
        }
        match &state.gc {
            None if state.collects < self.max_collects
                && state.acceptors.iter().any(|a| a.state.committed.is_some()) =>
            {
                actions.push(Action::GcStart);
            }
            None => {}
            Some(round) => {
                for a in 0..ACCEPTORS {
                    if !round.forgotten[a] {
                        actions.push(Action::GcForget(a));
                    }
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Start(c) => self.start(&mut state, c),
            Action::Deliver(i) => {
                let env = if self.duplicating {
                    state.net[i].1.clone()
                } else {
                    state.net.remove(i).1
                };
                self.deliver(&mut state, env);
            }
            Action::Timeout(c) => {
                if let Some((_, round)) = &mut state.clients[c].round {
                    round.handle_timeout(now(c));
                }
                self.pump(&mut state, c);
            }
            Action::Crash(a) => {
                let acc = &mut state.acceptors[a];
                acc.state = acc.durable.clone();
                state.crashes += 1;
                state.seen |= SAW_CRASH;
            }
            Action::GcStart => {
                // Physical time stands still here, so the floor cannot sit an
                // age behind the clock as the coordinator's does: it sits
                // just above every ballot any acceptor holds (promises
                // included, as a 1-RTT accept promises the next ballot), so
                // records become reclaimable and any round still at or below
                // it is refused from now on.
                let newest = state
                    .acceptors
                    .iter()
                    .flat_map(|a| [a.state.committed.clone(), a.state.promised.clone()])
                    .flatten()
                    .max()?;
                let floor = Ballot::new(newest.hlc, NodeId::new("zz").expect("valid id"));
                let mut reports = Vec::new();
                for acc in &mut state.acceptors {
                    acc.floor = acc.floor.clone().max(Some(floor.clone()));
                    let record = (acc.state != AcceptorState::default()).then_some(&acc.state);
                    reports.push(Report::of(record, acc.floor.as_ref().unwrap_or(&floor)));
                }
                state.gc = Some(Gc {
                    floor,
                    reports,
                    forgotten: vec![false; ACCEPTORS],
                });
            }
            Action::GcForget(a) => {
                let round = state.gc.as_mut()?;
                round.forgotten[a] = true;
                let agreed = gc::agreed(round.reports.iter());
                let acc = &mut state.acceptors[a];
                let forget = match (&agreed, self.mutant) {
                    (_, Mutant::GcForgetsAll) => true,
                    (Some(b), _) => gc::may_forget(&acc.state, b, &round.floor),
                    (None, _) => false,
                };
                if forget {
                    acc.state = AcceptorState::default();
                    acc.durable = AcceptorState::default();
                    state.seen |= SAW_FORGOTTEN;
                }
                if round.forgotten.iter().all(|f| *f) {
                    state.gc = None;
                    state.collects += 1;
                }
            }
        }
        self.collect_no_ops(&mut state);
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("linearizable", |_, s: &State| {
                s.history.serialized_history().is_some()
            }),
            Property::sometimes("an operation applied", |_, s: &State| {
                s.seen & SAW_APPLIED != 0
            }),
            Property::sometimes(
                "a read returned the other client's write",
                |_, s: &State| s.seen & SAW_READ_OTHER != 0,
            ),
            Property::sometimes("a record was collected", |_, s: &State| {
                s.seen & SAW_FORGOTTEN != 0
            }),
        ]
    }
}

// ---------------------------------------------------------------------------
// Running the checker.

/// What one bounded run found.
struct Run {
    unique: usize,
    elapsed: Duration,
    counterexample: Option<String>,
    examples: Vec<&'static str>,
}

/// Runs the checker until `bound` states were generated (or a counterexample):
/// breadth-first, or with `walks` seeded uniform random walks to final states.
fn check(model: Cas, bound: usize, walks: bool, name: &str) -> Run {
    check_seeded(model, bound, walks.then_some(WALK_SEEDS[0]), name)
}

/// Seeds of the random walks. The walk a seed takes depends on the order of
/// the network's envelopes, which is by hash, so any change to a message's
/// fields sends it elsewhere: a mutant is refuted by the first seed that
/// finds a counterexample.
const WALK_SEEDS: [u64; 12] = [7, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12];

/// Breadth-first without a seed, random walks from `seed`.
#[expect(
    clippy::disallowed_methods,
    reason = "the test reports its own wall time; the model reads no clock"
)]
fn check_seeded(model: Cas, bound: usize, seed: Option<u64>, name: &str) -> Run {
    let t = Instant::now();
    let builder = model
        .checker()
        .target_state_count(bound)
        .finish_when(HasDiscoveries::AnyFailures);
    if let Some(seed) = seed {
        summarize(
            builder.spawn_simulation(seed, UniformChooser).join(),
            t,
            name,
        )
    } else {
        summarize(builder.spawn_bfs().join(), t, name)
    }
}

fn summarize(checker: impl Checker<Cas>, t: Instant, name: &str) -> Run {
    let unique = checker.unique_state_count();
    let total = checker.state_count();
    let counterexample = checker.discovery("linearizable").map(|path| {
        let last = path.last_state().clone();
        format!(
            "{} steps: {:?}\n  history: {:?}",
            path.into_actions().len(),
            trace_actions(&checker, "linearizable"),
            last.history
        )
    });
    let mut examples = Vec::new();
    for p in [
        "an operation applied",
        "a read returned the other client's write",
        "a record was collected",
    ] {
        if checker.discovery(p).is_some() {
            examples.push(p);
        }
    }
    let run = Run {
        unique,
        elapsed: t.elapsed(),
        counterexample,
        examples,
    };
    eprintln!(
        "{name}: {} unique states ({total} generated, max depth {}) in {:.1?}, counterexample: {}",
        run.unique,
        checker.max_depth(),
        run.elapsed,
        run.counterexample.as_deref().unwrap_or("none")
    );
    run
}

fn trace_actions(checker: &impl Checker<Cas>, property: &'static str) -> Vec<String> {
    let Some(path) = checker.discovery(property) else {
        return Vec::new();
    };
    let states = path.clone().into_states();
    path.into_actions()
        .into_iter()
        .zip(states)
        .map(|(a, s)| match a {
            Action::Deliver(i) => {
                let e = &s.net[i].1;
                let what = match &e.payload {
                    Payload::Request(Message::Prepare(p)) if p.peek => "peek",
                    Payload::Request(Message::Prepare(_)) => "prepare",
                    Payload::Request(Message::Accept(_)) => "accept",
                    Payload::Request(Message::Commit(_)) => "commit",
                    Payload::Prepared(PrepareReply::Promise(_)) => "promise",
                    Payload::Prepared(PrepareReply::Peeked(_)) => "report",
                    Payload::Prepared(_) => "prepare-refusal",
                    Payload::Accepted(AcceptReply::Accepted) => "accepted",
                    Payload::Accepted(_) => "accept-refusal",
                };
                let dir = if matches!(e.payload, Payload::Request(_)) {
                    format!("p{}->a{}", e.client, e.acceptor)
                } else {
                    format!("a{}->p{}", e.acceptor, e.client)
                };
                format!("{what} {dir} (op {})", e.op)
            }
            other => format!("{other:?}"),
        })
        .collect()
}

fn cas(want: Want, new: u8) -> MOp {
    MOp::Cas { want, new }
}

/// The mutant tests' shared shape: the correct core passes the same scenario
/// (within the bound), and the mutant yields a linearizability counterexample.
fn assert_mutant_refuted(scenario: Cas, bound: usize, walks: bool, name: &str) {
    let control = Cas {
        mutant: Mutant::None,
        ..scenario.clone()
    };
    let run = check(
        control,
        bound,
        walks,
        &format!("{name} (control, no mutant)"),
    );
    assert!(
        run.counterexample.is_none(),
        "the correct core failed the scenario: {:?}",
        run.counterexample
    );
    let seeds: Vec<Option<u64>> = if walks {
        WALK_SEEDS.iter().copied().map(Some).collect()
    } else {
        vec![None]
    };
    let found = seeds.into_iter().any(|seed| {
        let label = format!("{name} (seed {seed:?})");
        check_seeded(scenario.clone(), bound, seed, &label)
            .counterexample
            .is_some()
    });
    assert!(
        found,
        "no counterexample for {name} within {bound} states on any seed"
    );
}

#[test]
fn two_clients_cas_and_read_are_linearizable_under_reordering_duplication_loss_and_a_crash() {
    let model = Cas {
        ops: vec![
            vec![cas(Want::Absent, 1), MOp::Read],
            vec![cas(Want::Absent, 2), MOp::Read],
        ],
        duplicating: true,
        max_crashes: 1,
        mutant: Mutant::None,
        warm_start: false,
        max_collects: 0,
    };
    let bfs = check(
        model.clone(),
        700_000,
        false,
        "linearizable (breadth-first)",
    );
    assert!(bfs.counterexample.is_none(), "{:?}", bfs.counterexample);
    // Random walks without duplication: with it, redelivering a request
    // often returns to the same state, which ends a walk early.
    let walks = Cas {
        duplicating: false,
        ..model.clone()
    };
    let walks = check(walks, 700_000, true, "linearizable (random walks)");
    assert!(walks.counterexample.is_none(), "{:?}", walks.counterexample);
    for p in [
        "an operation applied",
        "a read returned the other client's write",
    ] {
        assert!(
            bfs.examples.contains(&p) || walks.examples.contains(&p),
            "never reached: {p}"
        );
    }
}

#[test]
fn linearizability_is_violated_with_a_quorum_of_one() {
    let scenario = Cas {
        ops: vec![vec![cas(Want::Absent, 1)], vec![cas(Want::Absent, 2)]],
        duplicating: false,
        max_crashes: 0,
        mutant: Mutant::QuorumOfOne,
        warm_start: false,
        max_collects: 0,
    };
    assert_mutant_refuted(scenario, 1_000_000, false, "quorum of one");
}

#[test]
fn linearizability_is_violated_by_a_read_without_write_back() {
    let scenario = Cas {
        ops: vec![vec![cas(Want::Absent, 1)], vec![MOp::Read, MOp::Read]],
        duplicating: false,
        max_crashes: 0,
        mutant: Mutant::ReadWithoutWriteBack,
        warm_start: false,
        max_collects: 0,
    };
    assert_mutant_refuted(scenario, 1_000_000, true, "read without write-back");
}

#[test]
fn linearizability_is_violated_by_a_promise_not_persisted() {
    let scenario = Cas {
        ops: vec![vec![cas(Want::Absent, 1)], vec![cas(Want::Absent, 2)]],
        duplicating: false,
        max_crashes: 1,
        mutant: Mutant::PromiseNotPersisted,
        warm_start: false,
        max_collects: 0,
    };
    assert_mutant_refuted(scenario, 1_000_000, true, "promise not persisted");
}

#[test]
fn linearizability_is_violated_by_a_cache_entry_kept_after_a_failed_round() {
    let scenario = Cas {
        ops: vec![
            vec![
                cas(Want::Absent, 1),
                cas(Want::Is(1), 3),
                cas(Want::Is(1), 4),
            ],
            vec![MOp::Read],
        ],
        duplicating: false,
        max_crashes: 0,
        mutant: Mutant::CacheKeptAfterFailure,
        warm_start: true,
        max_collects: 0,
    };
    assert_mutant_refuted(scenario, 1_000_000, true, "cache kept after a failed round");
}

#[test]
fn collecting_per_key_state_keeps_linearizability_under_reordering_loss_and_a_crash() {
    // A collection round may start once anything is committed: every
    // acceptor raises its floor just above the newest decision and reports,
    // then each deletes its record if the reports agree and it still may,
    // interleaved with everything else (late accepts, commits, timeouts).
    let model = Cas {
        ops: vec![
            vec![cas(Want::Absent, 1), MOp::Read],
            vec![cas(Want::Absent, 2), MOp::Read],
        ],
        duplicating: false,
        max_crashes: 1,
        mutant: Mutant::None,
        warm_start: false,
        max_collects: 1,
    };
    let bfs = check(model.clone(), 500_000, false, "collection (breadth-first)");
    assert!(bfs.counterexample.is_none(), "{:?}", bfs.counterexample);
    let walks = check(model, 700_000, true, "collection (random walks)");
    assert!(walks.counterexample.is_none(), "{:?}", walks.counterexample);
    assert!(
        bfs.examples.contains(&"a record was collected")
            || walks.examples.contains(&"a record was collected"),
        "no record was ever collected: the test would prove nothing"
    );
}

#[test]
fn linearizability_is_violated_by_a_collection_that_deletes_records_not_agreed() {
    // A value chosen by two acceptors and committed on one: deleting the
    // other's accepted proposal loses it.
    let scenario = Cas {
        ops: vec![vec![cas(Want::Absent, 1)], vec![MOp::Read, MOp::Read]],
        duplicating: false,
        max_crashes: 0,
        mutant: Mutant::GcForgetsAll,
        warm_start: false,
        max_collects: 1,
    };
    assert_mutant_refuted(scenario, 4_000_000, true, "collection without agreement");
}
