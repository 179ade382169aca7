//! A simulated node's strong operations: the CASPaxos acceptor over the
//! node's [`MemStore`](crate::store::MemStore) and the proposer driver, with
//! the production driver's policy (`crates/node/src/strong`): one round per
//! key per node at a time; the cached 1-RTT round only for a CAS whose
//! expectation holds for the cached state; a read whose outcome is unknown
//! is asked again; contention retried with full-jitter backoff until the
//! deadline; an acceptor forgets its own node's cache entry for a key
//! another proposer prepares or accepts; commits go to every member, the
//! proposer's own applied before it answers.
//!
//! Deliberate differences: a round that hears nothing for [`ROUND_TIMEOUT`]
//! ends as if its exchanges had failed (the production driver learns that
//! from its streams); and since the simulated network may duplicate
//! messages, rounds do not assume at-most-once delivery.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;
use vergent_consensus::{
    AcceptReply, Backoff, Ballot, Commit, Message, Op, Outcome, PrepareReply, ProposerCache, Round,
    RoundOutput, RoundRequest, VotingConfig, handle_accept, handle_commit, handle_prepare,
};
use vergent_types::NodeId;

use super::{Msg, SimNode, addr};
use crate::history::{Event as HistoryEvent, History, StrongResult};
use crate::net::Class;
use crate::store::Rec;

/// How long a strong operation may take, retries included.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// A round that hears nothing for this long ends as its exchanges failed.
pub const ROUND_TIMEOUT: Duration = Duration::from_secs(1);
/// The voting configuration's epoch: fixed, the sim changes no membership.
const EPOCH: u64 = 1;
/// Contention retries, as in production: from 5 ms doubling up to 200 ms.
const BACKOFF: Backoff = Backoff {
    base_ms: 5,
    cap_ms: 200,
};

/// A consensus message between simulated nodes; `round` routes a reply to
/// the round that asked, and the ballot it echoes lets a stale reply of an
/// earlier round never count for a later one.
#[derive(Clone, Debug)]
pub enum PaxosMsg {
    /// Phase 1.
    Prepare {
        /// The asking round.
        round: u64,
        /// The request.
        msg: vergent_consensus::Prepare,
    },
    /// The answer to a prepare.
    PrepareReply {
        /// The asking round.
        round: u64,
        /// The ballot asked about.
        ballot: Ballot,
        /// The answer.
        reply: PrepareReply,
    },
    /// Phase 2.
    Accept {
        /// The asking round.
        round: u64,
        /// The request.
        msg: vergent_consensus::Accept,
    },
    /// The answer to an accept.
    AcceptReply {
        /// The asking round.
        round: u64,
        /// The ballot asked about.
        ballot: Ballot,
        /// The answer.
        reply: AcceptReply,
    },
    /// The chosen value; not answered.
    Commit(Commit),
}

/// A reply to one of this node's rounds.
enum Reply {
    Prepare(PrepareReply),
    Accept(AcceptReply),
}

/// The round an operation is in.
struct Active {
    id: u64,
    round: Round,
    timeout: Instant,
}

/// A strong operation this node proposes.
struct Pending {
    id: u64,
    op: Op,
    deadline: Instant,
    attempt: u32,
    round: Option<Active>,
    retry_at: Option<Instant>,
    prepares: u32,
    accepts: u32,
}

/// A node's volatile strong state: lost by a crash, as the node's is.
#[derive(Default)]
pub(super) struct Strong {
    cache: ProposerCache,
    /// At most one operation per key: production's per-key proposer lock.
    ops: BTreeMap<Vec<u8>, Pending>,
}

fn us_since(base: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(base).as_micros() as u64
}

impl SimNode {
    /// The voting configuration this node proposes with: every node of the
    /// world, or with the test-only mutant only itself.
    fn voting(&self) -> VotingConfig {
        if self.self_quorum {
            return VotingConfig::new(EPOCH, [self.id.clone()]);
        }
        let ids = (0..self.world_size).filter_map(|i| NodeId::new(addr(i)).ok());
        VotingConfig::new(EPOCH, ids)
    }

    /// Whether a strong operation on `key` is in flight here.
    pub fn strong_busy(&self, key: &[u8]) -> bool {
        self.strong.ops.contains_key(key)
    }

    /// Whether no strong operation is in flight here.
    pub fn strong_idle(&self) -> bool {
        self.strong.ops.is_empty()
    }

    /// A client's strong operation `op` on `key` through this node; `false`
    /// (and nothing recorded) when the node is down or `key` is busy here.
    pub fn strong_start(
        &mut self,
        now: Instant,
        id: u64,
        key: &[u8],
        op: Op,
        history: &mut History,
    ) -> bool {
        if !self.up || self.strong_busy(key) {
            return false;
        }
        history.push(HistoryEvent::StrongInvoked {
            id,
            node: self.idx,
            key: key.to_vec(),
            op: op.clone(),
            at_us: us_since(self.base, now),
        });
        self.strong.ops.insert(
            key.to_vec(),
            Pending {
                id,
                op,
                deadline: now + DEADLINE,
                attempt: 0,
                round: None,
                retry_at: None,
                prepares: 0,
                accepts: 0,
            },
        );
        self.start_round(now, key, history);
        true
    }

    /// The earliest strong timer: a retry or a round's timeout.
    pub(super) fn strong_timeout(&self) -> Option<Instant> {
        self.strong
            .ops
            .values()
            .filter_map(|p| p.round.as_ref().map(|r| r.timeout).or(p.retry_at))
            .min()
    }

    /// Runs the strong timers that are due.
    pub(super) fn strong_handle_timeout(&mut self, now: Instant, history: &mut History) {
        let due: Vec<Vec<u8>> = self
            .strong
            .ops
            .iter()
            .filter(|(_, p)| {
                p.round
                    .as_ref()
                    .map(|r| r.timeout)
                    .or(p.retry_at)
                    .is_some_and(|t| t <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let physical = self.physical_ms(now);
            let Some(p) = self.strong.ops.get_mut(&key) else {
                continue;
            };
            match p.round.as_mut() {
                Some(a) => {
                    a.round.handle_timeout(physical);
                    self.drive(now, &key, history);
                }
                None => {
                    p.retry_at = None;
                    self.start_round(now, &key, history);
                }
            }
        }
    }

    /// Persists the HLC ceiling above what the clock issued, before any
    /// ballot or version drawn from it leaves the node, so a restarted node
    /// never draws a ballot it used before.
    fn persist_ceiling(&mut self) {
        let last = self.hlc.last().physical_ms();
        let ceiling = self.store.meta("hlc_ceiling").unwrap_or(0);
        if last + super::CEILING_WINDOW_MS / 2 > ceiling {
            self.store
                .set_meta("hlc_ceiling", last + super::CEILING_WINDOW_MS);
            self.store.sync();
        }
    }

    fn start_round(&mut self, now: Instant, key: &[u8], history: &mut History) {
        let config = self.voting();
        let physical = self.physical_ms(now);
        let Some(p) = self.strong.ops.get(key) else {
            return;
        };
        // The 1-RTT path always writes, so only a CAS expected to apply takes
        // it: reads and failing CASes take phase 1, which answers without
        // writing when the replicas agree.
        let applies = match &p.op {
            Op::Read => false,
            Op::Cas { expect, .. } => self
                .strong
                .cache
                .get(key)
                .is_some_and(|c| expect.holds(Some(&(c.version.clone(), c.value.clone())))),
        };
        let cache = if applies {
            self.strong.cache.take(key)
        } else {
            None
        };
        let ballot_hlc = self.hlc.now(physical);
        let req = RoundRequest {
            key: key.to_vec(),
            op: p.op.clone(),
            proposer: self.id.clone(),
            config,
            ballot_hlc,
            cache,
        };
        let round = Round::new(physical, &mut self.hlc, req);
        let id = self.rng.random();
        if let Some(p) = self.strong.ops.get_mut(key) {
            p.round = Some(Active {
                id,
                round,
                timeout: (now + ROUND_TIMEOUT).min(p.deadline),
            });
        }
        self.drive(now, key, history);
    }

    /// Carries out the round's outputs, answering its messages to this
    /// node's own acceptor at once, until it waits for peers or is done.
    fn drive(&mut self, now: Instant, key: &[u8], history: &mut History) {
        self.persist_ceiling();
        let mut local = VecDeque::new();
        let mut commits = Vec::new();
        let mut outcome = None;
        loop {
            let Some(p) = self.strong.ops.get_mut(key) else {
                return;
            };
            let Some(a) = p.round.as_mut() else { return };
            let round_id = a.id;
            let mut sends = Vec::new();
            while let Some(out) = a.round.poll_output() {
                match out {
                    RoundOutput::Send {
                        to,
                        msg: Message::Commit(c),
                    } => commits.push((to, c)),
                    RoundOutput::Send { to, msg } => {
                        match msg {
                            Message::Prepare(_) => p.prepares += 1,
                            Message::Accept(_) => p.accepts += 1,
                            Message::Commit(_) => {}
                        }
                        sends.push((to, msg));
                    }
                    RoundOutput::Cache { key, entry } => self.strong.cache.insert(key, entry),
                    RoundOutput::Done(o) => outcome = Some(o),
                }
            }
            for (to, msg) in sends {
                if to == self.id {
                    local.push_back(match msg {
                        Message::Prepare(m) => Reply::Prepare(self.on_prepare(&m)),
                        Message::Accept(m) => Reply::Accept(self.on_accept(&m)),
                        Message::Commit(_) => continue,
                    });
                    continue;
                }
                let Some(i) = super::idx_of(to.as_str()) else {
                    continue;
                };
                let msg = match msg {
                    Message::Prepare(msg) => PaxosMsg::Prepare {
                        round: round_id,
                        msg,
                    },
                    Message::Accept(msg) => PaxosMsg::Accept {
                        round: round_id,
                        msg,
                    },
                    Message::Commit(_) => continue,
                };
                self.send(i, Class::Datagram, Msg::Paxos(msg));
            }
            if outcome.is_some() {
                break;
            }
            let Some(reply) = local.pop_front() else {
                return;
            };
            self.feed(now, key, reply);
            self.persist_ceiling();
        }
        // Our own commit first, so this node reads the value at once; the
        // others' in the background, as datagrams that may be lost (a later
        // round or repair brings the value then).
        for (to, c) in commits {
            if to == self.id {
                self.on_commit(&c);
            } else if let Some(i) = super::idx_of(to.as_str()) {
                self.send(i, Class::Datagram, Msg::Paxos(PaxosMsg::Commit(c)));
            }
        }
        if let Some(o) = outcome {
            self.round_done(now, key, o, history);
        }
    }

    fn feed(&mut self, now: Instant, key: &[u8], reply: Reply) {
        let physical = self.physical_ms(now);
        let Some(a) = self.strong.ops.get_mut(key).and_then(|p| p.round.as_mut()) else {
            return;
        };
        match reply {
            Reply::Prepare(r) => a
                .round
                .handle_prepare_reply(physical, &mut self.hlc, &self.id, r),
            Reply::Accept(r) => a
                .round
                .handle_accept_reply(physical, &mut self.hlc, &self.id, r),
        }
    }

    /// A round ended: answer the client, or retry as production does.
    fn round_done(&mut self, now: Instant, key: &[u8], outcome: Outcome, history: &mut History) {
        let physical = self.physical_ms(now);
        let Some(p) = self.strong.ops.get_mut(key) else {
            return;
        };
        p.round = None;
        let is_read = matches!(p.op, Op::Read);
        let result = match outcome {
            Outcome::Contention { retry_above } => {
                // Our next ballot must beat the one that won.
                let _ = self.hlc.update(physical, retry_above.hlc);
                None
            }
            // A read changes nothing a client can see: ask again.
            Outcome::Unknown if is_read => None,
            Outcome::Unknown => Some(StrongResult::Unknown),
            Outcome::Applied { .. } => Some(StrongResult::Applied(true)),
            Outcome::NotApplied { .. } => Some(StrongResult::Applied(false)),
            Outcome::Read { value, .. } => Some(StrongResult::Read(value)),
            // Nothing was proposed: certainly not applied. (A stale
            // configuration cannot happen with the sim's fixed one.)
            Outcome::Unavailable { .. } | Outcome::StaleConfig { .. } | Outcome::ClockSkew(_) => {
                Some(StrongResult::Failed)
            }
        };
        if let Some(result) = result {
            return self.answer(now, key, result, history);
        }
        let delay = Duration::from_millis(BACKOFF.delay_ms(p.attempt, &mut self.rng));
        p.attempt += 1;
        if now + delay >= p.deadline {
            let result = if is_read {
                StrongResult::Unknown
            } else {
                // Every round of the operation ended in proven contention.
                StrongResult::Failed
            };
            return self.answer(now, key, result, history);
        }
        p.retry_at = Some(now + delay);
        self.persist_ceiling();
    }

    fn answer(&mut self, now: Instant, key: &[u8], result: StrongResult, history: &mut History) {
        if let Some(p) = self.strong.ops.remove(key) {
            history.push(HistoryEvent::StrongReturned {
                id: p.id,
                at_us: us_since(self.base, now),
                result,
                prepares: p.prepares,
                accepts: p.accepts,
            });
        }
    }

    /// Another proposer on `key` invalidates this node's cached promise.
    fn forget_cached(&mut self, key: &[u8], proposer: &NodeId) {
        if *proposer != self.id {
            self.strong.cache.remove(key);
        }
    }

    fn lww(&self, key: &[u8]) -> Option<(vergent_types::Version, vergent_consensus::Value)> {
        self.store
            .get(key)
            .map(|r| (r.version.clone(), r.value.clone()))
    }

    /// The acceptor's prepare: its state durable before the reply.
    fn on_prepare(&mut self, m: &vergent_consensus::Prepare) -> PrepareReply {
        self.forget_cached(&m.key, &m.ballot.node);
        let state = self.store.paxos_state(&m.key);
        let (next, reply) = handle_prepare(&state, self.lww(&m.key).as_ref(), m, EPOCH);
        if let Some(s) = next {
            self.store.put_paxos_state(&m.key, s);
            self.store.sync();
        }
        reply
    }

    /// The acceptor's accept: its state durable before the reply.
    fn on_accept(&mut self, m: &vergent_consensus::Accept) -> AcceptReply {
        self.forget_cached(&m.key, &m.ballot.node);
        let state = self.store.paxos_state(&m.key);
        let (next, reply) = handle_accept(&state, self.lww(&m.key).as_ref(), m, EPOCH);
        if let Some(s) = next {
            self.store.put_paxos_state(&m.key, s);
            self.store.sync();
        }
        reply
    }

    /// The acceptor's commit: record and state in one batch, then durable.
    fn on_commit(&mut self, c: &Commit) {
        let state = self.store.paxos_state(&c.key);
        let effect = handle_commit(&state, c);
        let (version, value) = effect.lww;
        self.store
            .commit_paxos(&c.key, Rec { version, value }, effect.state);
        self.store.sync();
    }

    /// Handles a consensus message from node `from`.
    pub(super) fn handle_paxos(
        &mut self,
        now: Instant,
        from: usize,
        msg: PaxosMsg,
        history: &mut History,
    ) {
        match msg {
            PaxosMsg::Prepare { round, msg } => {
                let reply = self.on_prepare(&msg);
                let ballot = msg.ballot;
                self.send(
                    from,
                    Class::Datagram,
                    Msg::Paxos(PaxosMsg::PrepareReply {
                        round,
                        ballot,
                        reply,
                    }),
                );
            }
            PaxosMsg::Accept { round, msg } => {
                let reply = self.on_accept(&msg);
                let ballot = msg.ballot;
                self.send(
                    from,
                    Class::Datagram,
                    Msg::Paxos(PaxosMsg::AcceptReply {
                        round,
                        ballot,
                        reply,
                    }),
                );
            }
            PaxosMsg::Commit(c) => self.on_commit(&c),
            PaxosMsg::PrepareReply {
                round,
                ballot,
                reply,
            } => self.route_reply(now, from, round, &ballot, Reply::Prepare(reply), history),
            PaxosMsg::AcceptReply {
                round,
                ballot,
                reply,
            } => self.route_reply(now, from, round, &ballot, Reply::Accept(reply), history),
        }
    }

    fn route_reply(
        &mut self,
        now: Instant,
        from: usize,
        round: u64,
        ballot: &Ballot,
        reply: Reply,
        history: &mut History,
    ) {
        let Some(key) = self
            .strong
            .ops
            .iter()
            .find(|(_, p)| {
                p.round
                    .as_ref()
                    .is_some_and(|a| a.id == round && a.round.ballot() == ballot)
            })
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        let Ok(from) = NodeId::new(addr(from)) else {
            return;
        };
        let physical = self.physical_ms(now);
        if let Some(a) = self.strong.ops.get_mut(&key).and_then(|p| p.round.as_mut()) {
            match reply {
                Reply::Prepare(r) => {
                    a.round
                        .handle_prepare_reply(physical, &mut self.hlc, &from, r)
                }
                Reply::Accept(r) => a
                    .round
                    .handle_accept_reply(physical, &mut self.hlc, &from, r),
            }
        }
        self.drive(now, &key, history);
    }
}
