//! The proposer: one sans-IO state machine ([`Round`]) per strong operation on one key.
//!
//! A round prepares at every member, computes the current state from a
//! quorum of promises, applies the operation, and has a quorum accept the
//! result, which it then commits asynchronously. Two shortcuts, both from
//! the design note: a read or failed CAS whose promises show agreeing,
//! fully committed replicas returns after phase 1 (1 RTT), and a round that
//! holds a [`Cached`] promise from the previous round on the key skips
//! phase 1 (1 RTT).
//!
//! **Choosing the state.** The most recently accepted proposal (MRA) counts
//! only if its ballot is above every committed ballot reported: a commit
//! clears the acceptor's `accepted`, so an older, never-chosen proposal on
//! another acceptor could otherwise outrank the chosen one, whose only trace
//! is the committed ballot and the LWW record. The state is then the
//! greatest by [`Version`] of the MRA's `(commit, value)` and every reply's
//! LWW record.
//!
//! **Stamping.** A CAS that applies gets a fresh commit version from
//! `hlc.update` over everything observed, so it is above every version seen.
//! A write-back of an unchanged state keeps the state's own version: by
//! quorum intersection a proposal at a higher ballot than a chosen one has
//! seen the chosen one's version, and the state is the greatest seen, so the
//! LWW store keeps the latest chosen value either way. A fresh version would
//! be wrong: a write-back accepted by a minority, once completed by a later
//! round, would outrank an eventual write it never saw.
//!
//! **Completing.** An accepted proposal of another round that is the
//! state, and not known chosen, is completed first, as it was: same value,
//! same version, and its own base, so the accept guard (a voter refuses a
//! base older than its record) judges it by the state it was computed from.
//! A voter already holding it accepts whatever its record. This matters
//! when eventual writes mix in: a CAS accepted by a minority before a newer
//! eventual write arrived, then observed by strong reads, must not be
//! completed above that write later. When a blocking set of voters refuses
//! a proposal for a newer record, it can never be chosen (their records
//! only get newer): the round records it as dead, ignores it from then on
//! and looks again at a higher ballot. A CAS whose condition holds on the
//! completed proposal looks again too, and applies on top of it.
//!
//! **Honest outcomes.** Until an accept is sent nothing can be chosen, so a
//! failure is [`Outcome::Contention`] or [`Outcome::Unavailable`]. After,
//! any acceptor may hold the proposal (an `Accepted` reply can be lost, and
//! a later proposer would complete a value it finds), so a failure is
//! [`Outcome::Unknown`] unless *every* member proved it never accepted the
//! ballot.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use vergent_hlc::{ClockError, Hlc, Timestamp};
use vergent_types::{NodeId, Version};

use crate::{
    Accept, AcceptReply, Accepted, Ballot, Commit, LwwRecord, Prepare, PrepareReply, Promise,
    QuorumTracker, Value, VotingConfig,
};

/// What a CAS requires of the current state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Nothing: an unconditional strong put or delete.
    Any,
    /// The key is absent or a tombstone.
    Absent,
    /// The key holds exactly this value.
    Value(Vec<u8>),
    /// The key's record has exactly this version.
    Version(Version),
}

impl Expect {
    /// Whether the condition holds for `state` (`None`: never written).
    #[must_use]
    pub fn holds(&self, state: Option<&LwwRecord>) -> bool {
        holds(self, state)
    }
}

/// A strong operation on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A linearizable read.
    Read,
    /// Compare-and-set: write `new` (`None` deletes) if `expect` holds.
    Cas {
        /// The condition.
        expect: Expect,
        /// The value to write when it holds.
        new: Value,
    },
}

/// A message a round sends to an acceptor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// Phase 1.
    Prepare(Prepare),
    /// Phase 2.
    Accept(Accept),
    /// The decided value, sent after [`Outcome`] is known.
    Commit(Commit),
}

/// How a round ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The CAS condition held and `value` was chosen at `version`.
    Applied {
        /// The value written (`None`: deleted).
        value: Value,
        /// Its version.
        version: Version,
    },
    /// The CAS condition did not hold; this is the current state.
    NotApplied {
        /// The current value.
        value: Value,
        /// Its version (`None`: the key was never written).
        version: Option<Version>,
    },
    /// A read's result.
    Read {
        /// The current value.
        value: Value,
        /// Its version (`None`: the key was never written).
        version: Option<Version>,
    },
    /// Superseded by a higher ballot before anything of this round could be chosen: not applied; retry.
    Contention {
        /// Retry with a ballot above this one.
        retry_above: Ballot,
    },
    /// Too few members answered a prepare; nothing was proposed, so not applied.
    Unavailable {
        /// Promises needed (a majority of the voters).
        needed: usize,
        /// Members of the configuration.
        voters: usize,
        /// Members that answered at all.
        reachable: usize,
    },
    /// A proposal was sent and may have been (or may yet be) chosen; resolve with a read.
    Unknown,
    /// An acceptor has a newer configuration; nothing was proposed.
    StaleConfig {
        /// The acceptor's epoch.
        epoch: u64,
    },
    /// A version seen was too far ahead of this node's clock; nothing was proposed.
    ClockSkew(ClockError),
}

// By hand: `ClockError` (from `vergent-hlc`) has no `Hash`; this hashes
// the same fields `Eq` compares, so equal outcomes hash equally.
impl std::hash::Hash for Outcome {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Self::Applied { value, version } => (value, version).hash(state),
            Self::NotApplied { value, version } | Self::Read { value, version } => {
                (value, version).hash(state);
            }
            Self::Contention { retry_above } => retry_above.hash(state),
            Self::Unavailable {
                needed,
                voters,
                reachable,
            } => (needed, voters, reachable).hash(state),
            Self::Unknown => {}
            Self::StaleConfig { epoch } => epoch.hash(state),
            Self::ClockSkew(ClockError::RemoteTooFarAhead {
                remote,
                local_physical_ms,
                max_offset_ms,
            }) => (remote, local_physical_ms, max_offset_ms).hash(state),
        }
    }
}

/// A round's request to its driver.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RoundOutput {
    /// Send `msg` to `to`; the driver routes the reply back to this round.
    Send {
        /// The acceptor.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// Store `entry` in this node's [`ProposerCache`] for `key`.
    Cache {
        /// The key.
        key: Vec<u8>,
        /// The promise and state to start the next round on the key from.
        entry: Cached,
    },
    /// The operation's outcome; answer the client. Commit sends may follow.
    Done(Outcome),
}

/// The 1-RTT state of a key: a quorum promised `ballot` when it accepted `value` at `version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cached {
    /// The ballot a quorum promised (the previous round's `ballot.next()`).
    pub ballot: Ballot,
    /// The value that round had chosen.
    pub value: Value,
    /// Its commit version.
    pub version: Version,
}

/// A node's per-key [`Cached`] promises.
///
/// [`Self::take`] removes the entry a round starts from, so two rounds
/// never use one promised ballot, and a round that does not succeed leaves
/// none behind: any rejection or failure drops the key's entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProposerCache {
    entries: BTreeMap<Vec<u8>, Cached>,
    /// Mutant: [`Self::take`] leaves the entry in place.
    #[cfg(feature = "mutants")]
    keep_taken: bool,
}

impl ProposerCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns `key`'s entry, to start a round from.
    pub fn take(&mut self, key: &[u8]) -> Option<Cached> {
        #[cfg(feature = "mutants")]
        if self.keep_taken {
            return self.entries.get(key).cloned();
        }
        self.entries.remove(key)
    }

    /// Test-only mutant for the model checker: `take` stops removing the
    /// entry, so a cached round that is refused leaves its promise behind and
    /// the next round on the key reuses its ballot. Exists only with the
    /// `mutants` feature, which only this crate's own tests enable.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn mutant_keep_entry_after_failure(&mut self) {
        self.keep_taken = true;
    }

    /// Stores what [`RoundOutput::Cache`] returned.
    pub fn insert(&mut self, key: Vec<u8>, entry: Cached) {
        self.entries.insert(key, entry);
    }

    /// Drops `key`'s entry (on a configuration change, say).
    pub fn remove(&mut self, key: &[u8]) {
        self.entries.remove(key);
    }

    /// `key`'s entry, if any.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&Cached> {
        self.entries.get(key)
    }
}

/// What starts a [`Round`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoundRequest {
    /// The key.
    pub key: Vec<u8>,
    /// The operation.
    pub op: Op,
    /// This node, the proposer.
    pub proposer: NodeId,
    /// The voting configuration in force.
    pub config: VotingConfig,
    /// A fresh time from this node's HLC (above any `retry_above` when retrying).
    pub ballot_hlc: Timestamp,
    /// The key's entry taken from the [`ProposerCache`], if any: skips phase 1.
    pub cache: Option<Cached>,
}

/// What a round proposes and what it reports once the proposal is chosen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Proposal {
    value: Value,
    commit: Version,
    outcome: Outcome,
    /// A completion of another round's proposal, after which this round's
    /// own CAS still has to run (in a fresh phase 1).
    then_apply: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Prepare {
        tracker: QuorumTracker,
        promises: BTreeMap<NodeId, Promise>,
        /// A read's first look, promising nothing ([`Prepare::peek`]).
        peek: bool,
    },
    Accept {
        tracker: QuorumTracker,
        proposal: Proposal,
        accepted_any: bool,
        /// Members whose refusal proves they never accepted this ballot.
        never_accepted: BTreeSet<NodeId>,
        /// Members that refused because they hold a record newer than the
        /// proposal's base: they never will accept it (see [`Round::dead`]).
        stale: Box<QuorumTracker>,
    },
    Done,
}

/// One strong operation's proposer state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Round {
    key: Vec<u8>,
    op: Op,
    proposer: NodeId,
    config: VotingConfig,
    ballot: Ballot,
    /// The highest ballot a refusal reported, for [`Outcome::Contention`].
    highest_seen: Option<Ballot>,
    phase: Phase,
    out: VecDeque<RoundOutput>,
    /// The driver delivers each message at most once: see
    /// [`Self::assume_at_most_once_delivery`].
    at_most_once: bool,
    /// Commit versions of proposals this round proved can never be chosen:
    /// a blocking set of members refused them for a record newer than
    /// their base. Such a voter's record never gets older, and every
    /// completion of a proposal carries the proposal's own base, so it
    /// refuses the proposal for good; phase 1 ignores them.
    dead: BTreeSet<Version>,
    /// Commit versions of other rounds' proposals this round completed
    /// (a quorum accepted them at its ballot): chosen, so phase 1 takes them
    /// as the state without completing them again.
    completed: BTreeSet<Version>,
    /// Mutant: a read returns the state phase 1 computed without writing it back.
    #[cfg(feature = "mutants")]
    read_without_write_back: bool,
}

impl Round {
    /// Starts the round: broadcasts prepares, or with a cache entry, accepts straight away.
    pub fn new(now_ms: u64, hlc: &mut Hlc, req: RoundRequest) -> Self {
        let ballot = match &req.cache {
            Some(c) => c.ballot.clone(),
            None => Ballot::new(req.ballot_hlc, req.proposer.clone()),
        };
        let mut round = Self {
            key: req.key,
            op: req.op,
            proposer: req.proposer,
            config: req.config.clone(),
            ballot,
            highest_seen: None,
            phase: Phase::Done,
            out: VecDeque::new(),
            at_most_once: false,
            dead: BTreeSet::new(),
            completed: BTreeSet::new(),
            #[cfg(feature = "mutants")]
            read_without_write_back: false,
        };
        if req.config.members().is_empty() {
            round.finish(Outcome::Unavailable {
                needed: 1,
                voters: 0,
                reachable: 0,
            });
            return round;
        }
        match req.cache {
            Some(c) => {
                let observed = c.version.hlc;
                round.start_accept(now_ms, hlc, Some((c.version, c.value)), observed, None);
            }
            // A read first looks without promising: when the replicas
            // agree, no acceptor writes anything for it.
            None => round.start_prepare(round.op == Op::Read),
        }
        round
    }

    /// Broadcasts phase 1: a peek, or a prepare promising this round's ballot.
    fn start_prepare(&mut self, peek: bool) {
        self.phase = Phase::Prepare {
            tracker: QuorumTracker::new(self.config.clone()),
            promises: BTreeMap::new(),
            peek,
        };
        let msg = Prepare {
            key: self.key.clone(),
            ballot: self.ballot.clone(),
            epoch: self.config.epoch,
            peek,
        };
        self.broadcast(&Message::Prepare(msg));
    }

    /// Test-only mutant for the model checker: a read whose promises are not
    /// settled returns the state it computed without the write-back accept.
    /// Call before feeding any reply. Exists only with the `mutants` feature,
    /// which only this crate's own tests enable.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn mutant_read_without_write_back(&mut self) {
        self.read_without_write_back = true;
    }

    /// Declares that the driver sends each message of this round at most
    /// once to each acceptor (one stream per message, never resent), so an
    /// acceptor's refusal of our accept proves it never accepted our ballot:
    /// only this round carries the ballot, and the refusal answers the one
    /// copy it got. Without it, a refusal proves that only when the
    /// acceptor's accepted and committed ballots are both below ours (a
    /// duplicate could arrive after a commit cleared what it accepted).
    /// Call before feeding any reply.
    pub fn assume_at_most_once_delivery(&mut self) {
        self.at_most_once = true;
    }

    /// The round's ballot.
    #[must_use]
    pub fn ballot(&self) -> &Ballot {
        &self.ballot
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Whether the round has produced its [`Outcome`].
    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<RoundOutput> {
        self.out.pop_front()
    }

    /// Feeds `from`'s answer to this round's prepare; late or stray replies are ignored.
    pub fn handle_prepare_reply(
        &mut self,
        now_ms: u64,
        hlc: &mut Hlc,
        from: &NodeId,
        reply: PrepareReply,
    ) {
        let Phase::Prepare {
            tracker,
            promises,
            peek,
        } = &mut self.phase
        else {
            return;
        };
        match reply {
            // A peek's answer never counts as a promise (a late one may
            // arrive after the round prepared for real); a promise answers
            // a peek as well as a report would.
            PrepareReply::Peeked(_) if !*peek => {}
            PrepareReply::Promise(p) | PrepareReply::Peeked(p) => {
                if tracker.ok(from) {
                    promises.insert(from.clone(), p);
                }
                if tracker.is_reached() {
                    let promises = std::mem::take(promises);
                    let peek = *peek;
                    self.decide(now_ms, hlc, &promises, peek);
                }
            }
            PrepareReply::Reject { promised, accepted } => {
                if !tracker.err(from) {
                    return;
                }
                let impossible = tracker.is_impossible();
                self.saw(promised);
                self.saw(accepted);
                if impossible {
                    self.finish_contention();
                }
            }
            PrepareReply::EpochMismatch { current_epoch } => {
                if current_epoch > self.config.epoch {
                    self.finish(Outcome::StaleConfig {
                        epoch: current_epoch,
                    });
                } else if tracker.err(from) && tracker.is_impossible() {
                    // Acceptors behind our epoch: unreachable in effect.
                    self.finish_prepare_failure();
                }
            }
        }
    }

    /// Feeds `from`'s answer to this round's accept; late or stray replies are ignored.
    pub fn handle_accept_reply(
        &mut self,
        now_ms: u64,
        hlc: &mut Hlc,
        from: &NodeId,
        reply: AcceptReply,
    ) {
        let Phase::Accept {
            tracker,
            proposal,
            accepted_any,
            never_accepted,
            stale,
        } = &mut self.phase
        else {
            return;
        };
        match reply {
            AcceptReply::Accepted => {
                if !tracker.ok(from) {
                    return;
                }
                *accepted_any = true;
                if tracker.is_reached() {
                    let proposal = proposal.clone();
                    self.chosen(now_ms, hlc, proposal);
                    return;
                }
            }
            AcceptReply::Reject {
                promised,
                accepted,
                committed,
                newer_lww,
            } => {
                if !tracker.err(from) {
                    return;
                }
                if newer_lww.is_some() {
                    stale.err(from);
                }
                if stale.is_impossible() {
                    // This proposal can never be chosen: look again
                    // without it, at a higher ballot.
                    self.dead.insert(proposal.commit.clone());
                    self.saw(promised);
                    self.saw(accepted);
                    self.restart(now_ms, hlc);
                    return;
                }
                // Once an acceptor accepts a ballot, its accepted ballot or
                // (after a commit clears it) its committed ballot stays at
                // or above it; both below ours proves it never accepted.
                let ours = &self.ballot;
                let below = |b: &Option<Ballot>| b.as_ref().is_none_or(|b| b < ours);
                if self.at_most_once || (below(&accepted) && below(&committed)) {
                    never_accepted.insert(from.clone());
                }
                self.saw(promised);
                self.saw(accepted);
            }
            AcceptReply::EpochMismatch { .. } => {
                // It may have accepted before its configuration moved on.
                tracker.err(from);
            }
        }
        self.check_accept_failure();
    }

    /// The driver's deadline for this round passed: end it with the honest outcome.
    pub fn handle_timeout(&mut self, _now_ms: u64) {
        match &self.phase {
            Phase::Prepare { .. } => self.finish_prepare_failure(),
            Phase::Accept { .. } => {
                if self.all_proved_never_accepted() {
                    self.finish_contention();
                } else {
                    self.finish(Outcome::Unknown);
                }
            }
            Phase::Done => {}
        }
    }

    fn saw(&mut self, ballot: Option<Ballot>) {
        if ballot > self.highest_seen {
            self.highest_seen = ballot;
        }
    }

    fn broadcast(&mut self, msg: &Message) {
        for to in self.config.members() {
            self.out.push_back(RoundOutput::Send {
                to,
                msg: msg.clone(),
            });
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.phase = Phase::Done;
        self.out.push_back(RoundOutput::Done(outcome));
    }

    fn finish_contention(&mut self) {
        let retry_above = self
            .highest_seen
            .clone()
            .unwrap_or_else(|| self.ballot.clone())
            .max(self.ballot.clone());
        self.finish(Outcome::Contention { retry_above });
    }

    fn finish_prepare_failure(&mut self) {
        let Phase::Prepare { tracker, .. } = &self.phase else {
            return;
        };
        if self.highest_seen.is_some() {
            self.finish_contention();
        } else {
            let outcome = Outcome::Unavailable {
                needed: tracker.needed(),
                voters: self.config.members().len(),
                reachable: tracker.replied(),
            };
            self.finish(outcome);
        }
    }

    fn all_proved_never_accepted(&self) -> bool {
        match &self.phase {
            Phase::Accept { never_accepted, .. } => self
                .config
                .members()
                .iter()
                .all(|m| never_accepted.contains(m)),
            _ => false,
        }
    }

    fn check_accept_failure(&mut self) {
        let Phase::Accept {
            tracker,
            accepted_any,
            ..
        } = &self.phase
        else {
            return;
        };
        if self.all_proved_never_accepted() {
            self.finish_contention();
        } else if tracker.is_impossible() && (*accepted_any || tracker.all_replied()) {
            self.finish(Outcome::Unknown);
        }
        // Otherwise more refusals may still prove that nothing was accepted.
    }

    /// Phase 1 reached a quorum: compute the state, then answer, propose,
    /// or (after a peek that found the replicas unsettled) prepare for real.
    fn decide(
        &mut self,
        now_ms: u64,
        hlc: &mut Hlc,
        promises: &BTreeMap<NodeId, Promise>,
        peek: bool,
    ) {
        let max_committed = promises.values().filter_map(|p| p.committed.as_ref()).max();
        let mra = promises
            .values()
            .filter_map(|p| p.accepted.as_ref())
            .filter(|a| !self.dead.contains(&a.commit))
            .max_by(|a, b| a.ballot.cmp(&b.ballot))
            .filter(|a| max_committed.is_none_or(|c| a.ballot > *c));
        let mut state: Option<LwwRecord> = mra.map(|a| (a.commit.clone(), a.value.clone()));
        // Another round's proposal that is the state and not known chosen:
        // completed first, on its own terms (see "Completing" above).
        let mut adopted = mra.filter(|a| !self.completed.contains(&a.commit)).cloned();
        for p in promises.values() {
            if let Some(rec) = &p.lww
                && state.as_ref().is_none_or(|(v, _)| rec.0 > *v)
            {
                state = Some(rec.clone());
                adopted = None;
            }
        }
        let observed = promises
            .values()
            .flat_map(|p| {
                let accepted = p.accepted.as_ref().map(|a| a.commit.hlc);
                let lww = p.lww.as_ref().map(|(v, _)| v.hlc);
                accepted.into_iter().chain(lww)
            })
            .max()
            .unwrap_or(Timestamp::ZERO);

        let writes = match &self.op {
            Op::Read => false,
            Op::Cas { expect, .. } => holds(expect, state.as_ref()),
        };
        #[cfg(feature = "mutants")]
        let settled = is_settled(promises, state.as_ref())
            || (self.read_without_write_back && self.op == Op::Read);
        #[cfg(not(feature = "mutants"))]
        let settled = is_settled(promises, state.as_ref());
        if !writes && settled {
            let (version, value) = split(state);
            let outcome = match self.op {
                Op::Read => Outcome::Read { value, version },
                Op::Cas { .. } => Outcome::NotApplied { value, version },
            };
            self.finish(outcome);
            return;
        }
        if peek {
            // Writing back needs promises. The ballot is still unused: no
            // acceptor was asked to promise it.
            self.start_prepare(false);
            return;
        }
        let completing = adopted.map(|a| (a, writes));
        self.start_accept(now_ms, hlc, state, observed, completing);
    }

    /// Starts over at a higher ballot, keeping what this round learned
    /// ([`Self::dead`] proposals, completed ones).
    fn restart(&mut self, now_ms: u64, hlc: &mut Hlc) {
        let above = self
            .highest_seen
            .clone()
            .unwrap_or_else(|| self.ballot.clone())
            .max(self.ballot.clone());
        match hlc.update(now_ms, above.hlc) {
            Ok(t) => self.ballot = Ballot::new(t, self.proposer.clone()),
            Err(e) => {
                self.finish(Outcome::ClockSkew(e));
                return;
            }
        }
        self.start_prepare(false);
    }

    /// Stamps and broadcasts the proposal computed from `state`, or, when
    /// `completing` names another round's proposal, that proposal as it was
    /// (with whether this round's CAS must run after it).
    fn start_accept(
        &mut self,
        now_ms: u64,
        hlc: &mut Hlc,
        state: Option<LwwRecord>,
        observed: Timestamp,
        completing: Option<(Accepted, bool)>,
    ) {
        let next_promise = self.ballot.next();
        // Past our own ballots too, so this node's next fresh ballot is
        // above the promise the accept leaves behind.
        let floor = observed.max(next_promise.hlc);
        let stamp = match hlc.update(now_ms, floor) {
            Ok(t) => t,
            Err(e) => {
                self.finish(Outcome::ClockSkew(e));
                return;
            }
        };
        let fresh = Version::new(stamp, self.proposer.clone());
        let mut base = state.as_ref().map(|(v, _)| v.clone());
        let mut then_apply = false;
        let (value, commit, outcome) = match (completing, &self.op, state) {
            (Some((mra, apply)), op, _) => {
                // Under its own version and its own base: a voter holding a
                // record newer than the state it was computed from refuses
                // it unless it holds it already.
                base = mra.base;
                then_apply = apply;
                let version = Some(mra.commit.clone());
                let value = mra.value;
                let outcome = match op {
                    Op::Read => Outcome::Read {
                        value: value.clone(),
                        version,
                    },
                    Op::Cas { .. } => Outcome::NotApplied {
                        value: value.clone(),
                        version,
                    },
                };
                (value, mra.commit, outcome)
            }
            (None, Op::Cas { expect, new }, state) if holds(expect, state.as_ref()) => (
                new.clone(),
                fresh.clone(),
                Outcome::Applied {
                    value: new.clone(),
                    version: fresh,
                },
            ),
            (None, op, state) => {
                // A write-back re-proposes the state under its own version:
                // the round writes nothing new, and a fresh version would let
                // a write-back that landed on a minority outrank, once
                // completed, an eventual write it never saw (see "Stamping"
                // above). An absent state has no version, so its tombstone
                // takes the fresh one.
                let (commit, value) = state.unwrap_or((fresh, None));
                let version = Some(commit.clone());
                let outcome = match op {
                    Op::Read => Outcome::Read {
                        value: value.clone(),
                        version,
                    },
                    Op::Cas { .. } => Outcome::NotApplied {
                        value: value.clone(),
                        version,
                    },
                };
                (value, commit, outcome)
            }
        };
        let msg = Accept {
            key: self.key.clone(),
            ballot: self.ballot.clone(),
            epoch: self.config.epoch,
            value: value.clone(),
            commit: commit.clone(),
            base,
            next_promise: Some(next_promise),
        };
        self.phase = Phase::Accept {
            tracker: QuorumTracker::new(self.config.clone()),
            proposal: Proposal {
                value,
                commit,
                outcome,
                then_apply,
            },
            accepted_any: false,
            never_accepted: BTreeSet::new(),
            stale: Box::new(QuorumTracker::new(self.config.clone())),
        };
        self.broadcast(&Message::Accept(msg));
    }

    /// A quorum accepted: report, remember the promise for 1 RTT, commit
    /// everywhere; or, after completing another round's proposal, commit it
    /// and look again to run this round's CAS on top.
    fn chosen(&mut self, now_ms: u64, hlc: &mut Hlc, proposal: Proposal) {
        if proposal.then_apply {
            self.completed.insert(proposal.commit.clone());
            let msg = Commit {
                key: self.key.clone(),
                ballot: self.ballot.clone(),
                value: proposal.value,
                commit: proposal.commit,
            };
            self.broadcast(&Message::Commit(msg));
            self.restart(now_ms, hlc);
            return;
        }
        self.out.push_back(RoundOutput::Cache {
            key: self.key.clone(),
            entry: Cached {
                ballot: self.ballot.next(),
                value: proposal.value.clone(),
                version: proposal.commit.clone(),
            },
        });
        self.finish(proposal.outcome);
        let msg = Commit {
            key: self.key.clone(),
            ballot: self.ballot.clone(),
            value: proposal.value,
            commit: proposal.commit,
        };
        self.broadcast(&Message::Commit(msg));
    }
}

/// Whether `expect` holds for `state`.
fn holds(expect: &Expect, state: Option<&LwwRecord>) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => state.is_none_or(|(_, v)| v.is_none()),
        Expect::Value(want) => state.is_some_and(|(_, v)| v.as_deref() == Some(want.as_slice())),
        Expect::Version(want) => state.is_some_and(|(v, _)| v == want),
    }
}

/// The 1-RTT read condition: no reply holds an uncommitted proposal and
/// every LWW record is the state. Then the state was chosen (or written
/// eventually) and sits at a quorum, and it is the latest: anything chosen
/// before phase 1 looked was accepted by a majority, which shares a member
/// with this quorum, and that member would show it (pending, or as a newer
/// record). A proposal chosen later belongs to an operation that was still
/// running when we looked, so it may be ordered after us. So no accept is
/// needed, and no promise either: a read only peeks.
fn is_settled(promises: &BTreeMap<NodeId, Promise>, state: Option<&LwwRecord>) -> bool {
    let state_version = state.map(|(v, _)| v);
    promises.values().all(|p| {
        let committed = p
            .accepted
            .as_ref()
            .is_none_or(|a| p.committed.as_ref().is_some_and(|c| a.ballot <= *c));
        committed && p.lww.as_ref().map(|(v, _)| v) == state_version
    })
}

fn split(state: Option<LwwRecord>) -> (Option<Version>, Value) {
    match state {
        Some((v, value)) => (Some(v), value),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Accepted, AcceptorState, handle_accept, handle_prepare};
    use vergent_hlc::HlcConfig;

    const NOW: u64 = 1_000_000;

    fn n(name: &str) -> NodeId {
        NodeId::new(name).expect("id")
    }

    fn config() -> VotingConfig {
        VotingConfig::new(1, [n("a"), n("b"), n("c")])
    }

    fn ver(ms: u64, node: &str) -> Version {
        Version::new(Timestamp::new(ms, 0), n(node))
    }

    fn ballot(ms: u64, node: &str) -> Ballot {
        Ballot::new(Timestamp::new(ms, 0), n(node))
    }

    fn hlc() -> Hlc {
        Hlc::new(HlcConfig::default())
    }

    fn start(hlc: &mut Hlc, op: Op, cache: Option<Cached>) -> Round {
        let ballot_hlc = hlc.now(NOW);
        Round::new(
            NOW,
            hlc,
            RoundRequest {
                key: b"k".to_vec(),
                op,
                proposer: n("p"),
                config: config(),
                ballot_hlc,
                cache,
            },
        )
    }

    fn drain(r: &mut Round) -> Vec<RoundOutput> {
        std::iter::from_fn(|| r.poll_output()).collect()
    }

    fn accepts(out: &[RoundOutput]) -> Vec<&Accept> {
        out.iter()
            .filter_map(|o| match o {
                RoundOutput::Send {
                    msg: Message::Accept(a),
                    ..
                } => Some(a),
                _ => None,
            })
            .collect()
    }

    fn count(out: &[RoundOutput], pred: fn(&Message) -> bool) -> usize {
        out.iter()
            .filter(|o| matches!(o, RoundOutput::Send { msg, .. } if pred(msg)))
            .count()
    }

    fn done(out: &[RoundOutput]) -> Option<&Outcome> {
        out.iter().find_map(|o| match o {
            RoundOutput::Done(d) => Some(d),
            _ => None,
        })
    }

    fn promise(lww: Option<LwwRecord>) -> PrepareReply {
        PrepareReply::Promise(Promise {
            accepted: None,
            committed: None,
            lww,
            prior_promise: None,
        })
    }

    /// `reply` as a peek's answer.
    fn peeked(reply: &PrepareReply) -> PrepareReply {
        match reply {
            PrepareReply::Promise(p) => PrepareReply::Peeked(p.clone()),
            other => other.clone(),
        }
    }

    /// Feeds `replies` to a read's peek, which must find them unsettled and
    /// prepare for real with the same ballot, then feeds them as promises.
    fn peek_then_prepare(r: &mut Round, hlc: &mut Hlc, replies: &[(&str, PrepareReply)]) {
        let ballot = r.ballot().clone();
        for (from, reply) in replies {
            r.handle_prepare_reply(NOW, hlc, &n(from), peeked(reply));
        }
        let out = drain(r);
        assert!(accepts(&out).is_empty(), "no accept on peeks alone");
        assert_eq!(
            count(&out, |m| matches!(m, Message::Prepare(p) if !p.peek)),
            3,
            "an unsettled peek prepares for real: {out:?}"
        );
        assert_eq!(r.ballot(), &ballot);
        for (from, reply) in replies {
            r.handle_prepare_reply(NOW, hlc, &n(from), reply.clone());
        }
    }

    fn cas(expect: Expect, new: &[u8]) -> Op {
        Op::Cas {
            expect,
            new: Some(new.to_vec()),
        }
    }

    /// Runs an uncontended CAS on empty replicas; returns its outputs after each phase.
    fn uncontended(hlc: &mut Hlc) -> (Vec<RoundOutput>, Vec<RoundOutput>, Vec<RoundOutput>) {
        let mut r = start(hlc, cas(Expect::Absent, b"1"), None);
        let first = drain(&mut r);
        r.handle_prepare_reply(NOW, hlc, &n("a"), promise(None));
        r.handle_prepare_reply(NOW, hlc, &n("b"), promise(None));
        let second = drain(&mut r);
        r.handle_accept_reply(NOW, hlc, &n("a"), AcceptReply::Accepted);
        r.handle_accept_reply(NOW, hlc, &n("c"), AcceptReply::Accepted);
        (first, second, drain(&mut r))
    }

    #[test]
    fn uncontended_cas_takes_one_prepare_broadcast_and_one_accept_broadcast() {
        let mut hlc = hlc();
        let (first, second, third) = uncontended(&mut hlc);
        assert_eq!(count(&first, |m| matches!(m, Message::Prepare(_))), 3);
        assert_eq!(first.len(), 3);
        assert_eq!(count(&second, |m| matches!(m, Message::Accept(_))), 3);
        assert_eq!(second.len(), 3);
        let Some(Outcome::Applied { value, version }) = done(&third) else {
            panic!("{third:?}")
        };
        assert_eq!(value.as_deref(), Some(&b"1"[..]));
        assert_eq!(version.origin, n("p"));
        assert_eq!(count(&third, |m| matches!(m, Message::Commit(_))), 3);
        assert!(third.iter().any(|o| matches!(o, RoundOutput::Cache { .. })));
    }

    #[test]
    fn a_cached_repeat_skips_prepare_and_takes_one_round_trip() {
        let mut hlc = hlc();
        let (first, _, third) = uncontended(&mut hlc);
        let Some(RoundOutput::Cache { entry, .. }) = third
            .iter()
            .find(|o| matches!(o, RoundOutput::Cache { .. }))
        else {
            panic!("no cache entry")
        };
        let RoundOutput::Send {
            msg: Message::Prepare(p),
            ..
        } = &first[0]
        else {
            panic!()
        };
        assert_eq!(entry.ballot, p.ballot.next());
        let mut r = start(
            &mut hlc,
            cas(Expect::Value(b"1".to_vec()), b"2"),
            Some(entry.clone()),
        );
        let out = drain(&mut r);
        assert_eq!(count(&out, |m| matches!(m, Message::Prepare(_))), 0);
        let acc = accepts(&out);
        assert_eq!(acc.len(), 3);
        assert_eq!(acc[0].ballot, entry.ballot);
        assert_eq!(acc[0].base, Some(entry.version.clone()));
        assert!(acc[0].commit > entry.version);
        r.handle_accept_reply(NOW, &mut hlc, &n("b"), AcceptReply::Accepted);
        r.handle_accept_reply(NOW, &mut hlc, &n("c"), AcceptReply::Accepted);
        let out = drain(&mut r);
        assert!(matches!(done(&out), Some(Outcome::Applied { value: Some(v), .. }) if v == b"2"));
    }

    #[test]
    fn a_fresh_ballot_after_a_round_is_above_the_promise_it_left_behind() {
        let mut hlc = hlc();
        let (first, _, _) = uncontended(&mut hlc);
        let RoundOutput::Send {
            msg: Message::Prepare(p),
            ..
        } = &first[0]
        else {
            panic!()
        };
        assert!(Ballot::new(hlc.now(NOW), n("p")) > p.ballot.next());
    }

    #[test]
    fn a_read_of_agreeing_replicas_returns_after_phase_one_without_an_accept() {
        let mut hlc = hlc();
        let rec = (ver(500, "w"), Some(b"x".to_vec()));
        let mut r = start(&mut hlc, Op::Read, None);
        drain(&mut r);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(Some(rec.clone())));
        r.handle_prepare_reply(NOW, &mut hlc, &n("c"), promise(Some(rec.clone())));
        let out = drain(&mut r);
        assert!(accepts(&out).is_empty());
        assert_eq!(
            done(&out),
            Some(&Outcome::Read {
                value: Some(b"x".to_vec()),
                version: Some(rec.0)
            })
        );
        assert!(r.is_done());
    }

    #[test]
    fn a_read_peeks_first_and_returns_on_agreeing_reports_without_any_promise() {
        let mut hlc = hlc();
        let rec = (ver(500, "w"), Some(b"x".to_vec()));
        let mut r = start(&mut hlc, Op::Read, None);
        let out = drain(&mut r);
        assert_eq!(
            count(&out, |m| matches!(m, Message::Prepare(p) if p.peek)),
            3
        );
        assert_eq!(out.len(), 3);
        let report = peeked(&promise(Some(rec.clone())));
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), report.clone());
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), report);
        let out = drain(&mut r);
        assert_eq!(out.len(), 1, "nothing sent after the peek: {out:?}");
        assert_eq!(
            done(&out),
            Some(&Outcome::Read {
                value: rec.1,
                version: Some(rec.0)
            })
        );
    }

    #[test]
    fn a_late_peek_report_never_counts_as_a_promise() {
        let mut hlc = hlc();
        let old = (ver(400, "w"), Some(b"old".to_vec()));
        let new = (ver(500, "w"), Some(b"new".to_vec()));
        let mut r = start(&mut hlc, Op::Read, None);
        drain(&mut r);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), peeked(&promise(Some(old.clone()))));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), peeked(&promise(Some(new.clone()))));
        drain(&mut r);
        // `c`'s peek report arrives late, then `a`'s promise: one promise only.
        r.handle_prepare_reply(NOW, &mut hlc, &n("c"), peeked(&promise(Some(new.clone()))));
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(Some(old)));
        let out = drain(&mut r);
        assert!(out.is_empty(), "a quorum needs two promises: {out:?}");
        r.handle_prepare_reply(NOW, &mut hlc, &n("c"), promise(Some(new.clone())));
        let out = drain(&mut r);
        assert_eq!(accepts(&out).len(), 3);
        assert_eq!(accepts(&out)[0].value, new.1);
    }

    #[test]
    fn a_read_of_disagreeing_replicas_writes_the_newest_back_under_its_own_version() {
        let mut hlc = hlc();
        let old = (ver(400, "w"), Some(b"old".to_vec()));
        let new = (ver(500, "w"), Some(b"new".to_vec()));
        let mut r = start(&mut hlc, Op::Read, None);
        drain(&mut r);
        peek_then_prepare(
            &mut r,
            &mut hlc,
            &[("a", promise(Some(old))), ("b", promise(Some(new.clone())))],
        );
        let out = drain(&mut r);
        let acc = accepts(&out);
        assert_eq!(acc.len(), 3);
        assert_eq!(acc[0].value, new.1);
        assert_eq!(acc[0].base, Some(new.0.clone()));
        assert_eq!(acc[0].commit, new.0, "a write-back writes nothing new");
    }

    #[test]
    fn a_read_that_sees_an_accepted_uncommitted_proposal_writes_it_back() {
        let mut hlc = hlc();
        let committed = (ver(400, "w"), Some(b"old".to_vec()));
        let pending = Accepted {
            ballot: ballot(450, "q"),
            value: Some(b"pending".to_vec()),
            commit: ver(460, "q"),
            base: None,
        };
        let mut r = start(&mut hlc, Op::Read, None);
        drain(&mut r);
        let with_accepted = PrepareReply::Promise(Promise {
            accepted: Some(pending.clone()),
            committed: None,
            lww: Some(committed.clone()),
            prior_promise: Some(pending.ballot.clone()),
        });
        peek_then_prepare(
            &mut r,
            &mut hlc,
            &[("a", promise(Some(committed))), ("b", with_accepted)],
        );
        let out = drain(&mut r);
        let acc = accepts(&out);
        assert_eq!(acc.len(), 3, "a pending proposal forces an accept phase");
        assert_eq!(acc[0].value, pending.value);
        assert_eq!(
            acc[0].commit, pending.commit,
            "completed under its own version"
        );
        let commit = acc[0].commit.clone();
        r.handle_accept_reply(NOW, &mut hlc, &n("a"), AcceptReply::Accepted);
        r.handle_accept_reply(NOW, &mut hlc, &n("b"), AcceptReply::Accepted);
        let out = drain(&mut r);
        assert_eq!(
            done(&out),
            Some(&Outcome::Read {
                value: pending.value,
                version: Some(commit)
            })
        );
    }

    #[test]
    fn an_accepted_proposal_at_or_below_a_reported_commit_is_not_the_state() {
        // `a` committed ballot 20 (accepted cleared, LWW at 21); `b` still
        // holds a never-chosen proposal at ballot 10 stamped far higher.
        let mut hlc = hlc();
        let chosen = (ver(21_000, "q"), Some(b"chosen".to_vec()));
        let mut r = start(&mut hlc, Op::Read, None);
        drain(&mut r);
        let from_a = PrepareReply::Promise(Promise {
            accepted: None,
            committed: Some(ballot(20_000, "q")),
            lww: Some(chosen.clone()),
            prior_promise: None,
        });
        let from_b = PrepareReply::Promise(Promise {
            accepted: Some(Accepted {
                ballot: ballot(10_000, "s"),
                value: Some(b"stale".to_vec()),
                commit: ver(90_000, "s"),
                base: None,
            }),
            committed: None,
            lww: None,
            prior_promise: None,
        });
        peek_then_prepare(&mut r, &mut hlc, &[("a", from_a), ("b", from_b)]);
        let out = drain(&mut r);
        let acc = accepts(&out);
        assert_eq!(acc[0].value, chosen.1);
        assert_eq!(acc[0].commit, chosen.0, "the chosen record, as it was");
    }

    #[test]
    fn a_cas_whose_expectation_fails_returns_not_applied_with_the_current_value() {
        let mut hlc = hlc();
        let rec = (ver(500, "w"), Some(b"y".to_vec()));
        let mut r = start(&mut hlc, cas(Expect::Value(b"x".to_vec()), b"z"), None);
        drain(&mut r);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(Some(rec.clone())));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(Some(rec.clone())));
        let out = drain(&mut r);
        assert!(accepts(&out).is_empty());
        assert_eq!(
            done(&out),
            Some(&Outcome::NotApplied {
                value: rec.1,
                version: Some(rec.0)
            })
        );
    }

    #[test]
    fn expectations_on_absent_value_and_version() {
        let rec = (ver(5, "w"), Some(b"x".to_vec()));
        let tomb = (ver(6, "w"), None);
        assert!(holds(&Expect::Absent, None));
        assert!(holds(&Expect::Absent, Some(&tomb)));
        assert!(!holds(&Expect::Absent, Some(&rec)));
        assert!(holds(&Expect::Value(b"x".to_vec()), Some(&rec)));
        assert!(!holds(&Expect::Value(b"x".to_vec()), None));
        assert!(holds(&Expect::Version(ver(5, "w")), Some(&rec)));
        assert!(!holds(&Expect::Version(ver(5, "w")), Some(&tomb)));
        assert!(holds(&Expect::Any, None));
    }

    /// Three acceptors' state and LWW records, driven by the real handlers.
    struct Acceptors(BTreeMap<NodeId, (AcceptorState, Option<LwwRecord>)>);

    impl Acceptors {
        fn new(lww: Option<LwwRecord>) -> Self {
            Self(
                ["a", "b", "c"]
                    .into_iter()
                    .map(|x| (n(x), (AcceptorState::default(), lww.clone())))
                    .collect(),
            )
        }

        fn set_lww(&mut self, who: &[&str], rec: &LwwRecord) {
            for w in who {
                if let Some((_, lww)) = self.0.get_mut(&n(w)) {
                    *lww = Some(rec.clone());
                }
            }
        }

        /// Delivers `r`'s messages to the acceptors in `reach` (the others'
        /// are lost) and feeds back the replies, until the round is done
        /// or sends nothing more; applies the commits it sends.
        fn run(&mut self, r: &mut Round, hlc: &mut Hlc, reach: &[&str]) -> Option<Outcome> {
            let mut outcome = None;
            for _ in 0..20 {
                let out = drain(r);
                if out.is_empty() {
                    break;
                }
                for o in out {
                    let RoundOutput::Send { to, msg } = o else {
                        if let RoundOutput::Done(d) = o {
                            outcome = Some(d);
                        }
                        continue;
                    };
                    if !reach.contains(&to.as_str()) {
                        continue;
                    }
                    let Some((state, lww)) = self.0.get_mut(&to) else {
                        continue;
                    };
                    match msg {
                        Message::Prepare(p) => {
                            let (next, reply) = handle_prepare(state, lww.as_ref(), &p, 1);
                            if let Some(s) = next {
                                *state = s;
                            }
                            r.handle_prepare_reply(NOW, hlc, &to, reply);
                        }
                        Message::Accept(a) => {
                            let (next, reply) = handle_accept(state, lww.as_ref(), &a, 1);
                            if let Some(s) = next {
                                *state = s;
                            }
                            r.handle_accept_reply(NOW, hlc, &to, reply);
                        }
                        Message::Commit(c) => {
                            let effect = crate::handle_commit(state, &c);
                            if lww.as_ref().is_none_or(|(v, _)| effect.lww.0 > *v) {
                                *lww = Some(effect.lww.clone());
                            }
                            if let Some(s) = effect.state {
                                *state = s;
                            }
                        }
                    }
                }
            }
            outcome
        }
    }

    /// A CAS accepted by one acceptor before a newer eventual write reached
    /// the others, whose round ended unknown. A strong read of the two others
    /// returns the eventual write; a later round must not complete the CAS
    /// above it (the chaos suite's mixed workload saw exactly this on 5 of
    /// 20 seeds: the CAS's fresh version outranked the eventual write, so
    /// strong reads went from the eventual value back to the CAS's, whose
    /// condition was evaluated on the state before the eventual write).
    #[test]
    fn a_cas_accepted_by_a_minority_is_not_completed_above_a_newer_eventual_write_a_read_saw() {
        let mut hlc = hlc();
        let old = (ver(400, "w"), Some(b"old".to_vec()));
        // A CAS round whose phase 1 reaches every acceptor and its accepts `a` alone.
        let mut acc = Acceptors::new(Some(old.clone()));
        let mut cas_round = start(&mut hlc, cas(Expect::Value(b"old".to_vec()), b"cas"), None);
        let prepares = drain(&mut cas_round);
        for o in &prepares {
            if let RoundOutput::Send {
                to,
                msg: Message::Prepare(p),
            } = o
            {
                let (state, lww) = acc.0.get_mut(to).expect("acceptor");
                let (next, reply) = handle_prepare(state, lww.as_ref(), p, 1);
                *state = next.expect("promise");
                cas_round.handle_prepare_reply(NOW, &mut hlc, to, reply);
            }
        }
        acc.run(&mut cas_round, &mut hlc, &["a"]);
        cas_round.handle_timeout(NOW);
        let pending = acc.0[&n("a")]
            .0
            .accepted
            .clone()
            .expect("a accepted the CAS");
        assert_eq!(pending.value.as_deref(), Some(&b"cas"[..]));
        // An eventual write, stamped below the CAS's version (another
        // node's clock) but above its base, reaches `b` and `c`.
        let eventual = (ver(NOW - 5, "e"), Some(b"eventual".to_vec()));
        assert!(eventual.0 > old.0 && eventual.0 < pending.commit);
        acc.set_lww(&["b", "c"], &eventual);
        // A strong read through `b` and `c` returns it.
        let mut read = start(&mut hlc, Op::Read, None);
        let seen = acc.run(&mut read, &mut hlc, &["b", "c"]);
        assert_eq!(
            seen,
            Some(Outcome::Read {
                value: eventual.1.clone(),
                version: Some(eventual.0.clone())
            })
        );
        // A later read through `a` and `b` (and `c`) must not go back to the CAS.
        let mut later = start(&mut hlc, Op::Read, None);
        let seen = acc.run(&mut later, &mut hlc, &["a", "b", "c"]);
        assert_eq!(
            seen,
            Some(Outcome::Read {
                value: eventual.1.clone(),
                version: Some(eventual.0.clone())
            }),
            "the read after one that saw the eventual write went back to the CAS's value"
        );
        // And the CAS can never be chosen now: every acceptor moved past it.
        assert!(acc.0.values().all(|(s, _)| {
            s.accepted
                .as_ref()
                .is_none_or(|a| a.commit != pending.commit)
        }));
    }

    /// The same CAS accepted by a majority (`a`, `b`) before the eventual
    /// write reached `b` and `c` was chosen: a later round completes it,
    /// `b` accepting although its record is now newer than the CAS's base.
    #[test]
    fn a_chosen_cas_is_completed_although_a_newer_eventual_write_reached_its_acceptors() {
        let mut hlc = hlc();
        let old = (ver(400, "w"), Some(b"old".to_vec()));
        let mut acc = Acceptors::new(Some(old.clone()));
        let mut cas_round = start(&mut hlc, cas(Expect::Value(b"old".to_vec()), b"cas"), None);
        let prepares = drain(&mut cas_round);
        for o in &prepares {
            if let RoundOutput::Send {
                to,
                msg: Message::Prepare(p),
            } = o
            {
                let (state, lww) = acc.0.get_mut(to).expect("acceptor");
                let (next, reply) = handle_prepare(state, lww.as_ref(), p, 1);
                *state = next.expect("promise");
                cas_round.handle_prepare_reply(NOW, &mut hlc, to, reply);
            }
        }
        // The accepts reach `a` and `b`, but the replies and commits are lost.
        let accepts: Vec<Accept> = accepts(&drain(&mut cas_round))
            .into_iter()
            .cloned()
            .collect();
        for who in ["a", "b"] {
            let (state, lww) = acc.0.get_mut(&n(who)).expect("acceptor");
            let (next, reply) = handle_accept(state, lww.as_ref(), &accepts[0], 1);
            assert_eq!(reply, AcceptReply::Accepted);
            *state = next.expect("accepted");
        }
        let chosen = accepts[0].commit.clone();
        let eventual = (ver(NOW - 5, "e"), Some(b"eventual".to_vec()));
        assert!(eventual.0 < chosen);
        acc.set_lww(&["b", "c"], &eventual);
        let mut later = start(&mut hlc, Op::Read, None);
        let seen = acc.run(&mut later, &mut hlc, &["a", "b", "c"]);
        assert_eq!(
            seen,
            Some(Outcome::Read {
                value: Some(b"cas".to_vec()),
                version: Some(chosen)
            })
        );
    }

    /// A CAS whose condition holds on another round's pending proposal
    /// completes that proposal first, then applies on top of it.
    #[test]
    fn a_cas_on_top_of_a_pending_proposal_completes_it_then_applies() {
        let mut hlc = hlc();
        let old = (ver(400, "w"), Some(b"old".to_vec()));
        let mut acc = Acceptors::new(Some(old));
        let mut first = start(&mut hlc, cas(Expect::Value(b"old".to_vec()), b"one"), None);
        let prepares = drain(&mut first);
        for o in &prepares {
            if let RoundOutput::Send {
                to,
                msg: Message::Prepare(p),
            } = o
            {
                let (state, lww) = acc.0.get_mut(to).expect("acceptor");
                let (next, reply) = handle_prepare(state, lww.as_ref(), p, 1);
                *state = next.expect("promise");
                first.handle_prepare_reply(NOW, &mut hlc, to, reply);
            }
        }
        acc.run(&mut first, &mut hlc, &["a"]);
        let mut second = start(&mut hlc, cas(Expect::Value(b"one".to_vec()), b"two"), None);
        let outcome = acc.run(&mut second, &mut hlc, &["a", "b", "c"]);
        assert!(
            matches!(outcome, Some(Outcome::Applied { value: Some(ref v), .. }) if v == b"two"),
            "{outcome:?}"
        );
    }

    /// The mixed-mode resurrection the chaos suite's mixed workload found:
    /// a read's write-back that lands on a minority must not outrank an
    /// eventual write acknowledged at a quorum before a later read started.
    #[test]
    fn an_unfinished_write_back_never_outranks_a_newer_eventual_write() {
        let mut hlc = hlc();
        let old = (ver(400, "w"), Some(b"old".to_vec()));
        // Replicas disagree: `a` has `old`, `b` has not heard of it yet.
        let mut r1 = start(&mut hlc, Op::Read, None);
        drain(&mut r1);
        peek_then_prepare(
            &mut r1,
            &mut hlc,
            &[("a", promise(Some(old.clone()))), ("b", promise(None))],
        );
        let out = drain(&mut r1);
        let write_back = accepts(&out)[0].clone();
        // Before the write-back arrives, an eventual write stamped earlier
        // than the round's clock reaches `b` and `c`: a quorum acknowledges it.
        let newer = (ver(NOW - 10, "e"), Some(b"newer".to_vec()));
        let promised = AcceptorState {
            promised: Some(write_back.ballot.clone()),
            ..AcceptorState::default()
        };
        let (a_state, a_reply) = handle_accept(&promised, Some(&old), &write_back, 1);
        assert_eq!(a_reply, AcceptReply::Accepted, "`a` still holds the base");
        let (_, b_reply) = handle_accept(&promised, Some(&newer), &write_back, 1);
        assert!(matches!(b_reply, AcceptReply::Reject { .. }));
        let a_state = a_state.expect("accepted");
        // A later read asks `a` (holding the write-back) and `b` (the write).
        let mut hlc2 = Hlc::new(HlcConfig::default());
        let ballot_hlc = hlc2.now(NOW + 50);
        let mut r2 = Round::new(
            NOW + 50,
            &mut hlc2,
            RoundRequest {
                key: b"k".to_vec(),
                op: Op::Read,
                proposer: n("q"),
                config: config(),
                ballot_hlc,
                cache: None,
            },
        );
        let Some(prepare) = drain(&mut r2).into_iter().find_map(|o| match o {
            RoundOutput::Send {
                msg: Message::Prepare(p),
                ..
            } => Some(p),
            _ => None,
        }) else {
            panic!("no prepare")
        };
        assert!(prepare.peek, "a read looks first");
        let real = Prepare {
            peek: false,
            ..prepare.clone()
        };
        for p in [&prepare, &real] {
            let (_, from_a) = handle_prepare(&a_state, Some(&old), p, 1);
            let (_, from_b) = handle_prepare(&AcceptorState::default(), Some(&newer), p, 1);
            r2.handle_prepare_reply(NOW + 50, &mut hlc2, &n("a"), from_a);
            r2.handle_prepare_reply(NOW + 50, &mut hlc2, &n("b"), from_b);
        }
        let out = drain(&mut r2);
        let acc = accepts(&out);
        assert_eq!(
            acc[0].value, newer.1,
            "the newer eventual write is the state"
        );
    }

    #[test]
    fn the_commit_version_is_above_every_observed_version() {
        let mut hlc = hlc();
        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        drain(&mut r);
        // Ahead of NOW, within the 500 ms offset the clock accepts.
        let ahead = Version::new(Timestamp::new(NOW + 400, 9), n("zzz"));
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(Some((ver(10, "w"), None))));
        let with_accepted = PrepareReply::Promise(Promise {
            accepted: Some(Accepted {
                ballot: ballot(20, "q"),
                value: None,
                commit: ahead.clone(),
                base: None,
            }),
            committed: None,
            lww: None,
            prior_promise: None,
        });
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), with_accepted);
        // The pending proposal is completed first, as it was...
        let out = drain(&mut r);
        assert_eq!(accepts(&out)[0].commit, ahead);
        r.handle_accept_reply(NOW, &mut hlc, &n("a"), AcceptReply::Accepted);
        r.handle_accept_reply(NOW, &mut hlc, &n("b"), AcceptReply::Accepted);
        let out = drain(&mut r);
        assert_eq!(count(&out, |m| matches!(m, Message::Prepare(_))), 3);
        // ...then the CAS, stamped above everything seen.
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(Some((ahead.clone(), None))));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(Some((ver(10, "w"), None))));
        let out = drain(&mut r);
        let acc = accepts(&out);
        assert!(acc[0].commit > ahead);
        assert!(acc[0].commit > ver(10, "w"));
    }

    #[test]
    fn a_version_too_far_ahead_aborts_with_clock_skew_before_any_accept() {
        let mut hlc = hlc();
        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        drain(&mut r);
        let future = (ver(NOW + 60_000, "w"), None);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(Some(future.clone())));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(Some(future)));
        let out = drain(&mut r);
        assert!(accepts(&out).is_empty());
        assert!(matches!(done(&out), Some(Outcome::ClockSkew(_))));
    }

    #[test]
    fn a_timeout_after_an_accept_was_acknowledged_is_unknown_never_failure() {
        let mut hlc = hlc();
        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(None));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(None));
        r.handle_accept_reply(NOW, &mut hlc, &n("a"), AcceptReply::Accepted);
        drain(&mut r);
        r.handle_timeout(NOW + 5_000);
        assert_eq!(drain(&mut r), vec![RoundOutput::Done(Outcome::Unknown)]);
    }

    #[test]
    fn a_timeout_after_accepts_were_sent_but_unanswered_is_unknown() {
        let mut hlc = hlc();
        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(None));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(None));
        drain(&mut r);
        r.handle_timeout(NOW + 5_000);
        assert_eq!(drain(&mut r), vec![RoundOutput::Done(Outcome::Unknown)]);
    }

    fn reject_accept(promised: Ballot) -> AcceptReply {
        AcceptReply::Reject {
            promised: Some(promised),
            accepted: None,
            committed: None,
            newer_lww: None,
        }
    }

    #[test]
    fn accept_refusals_are_contention_only_when_every_member_proves_it_never_accepted() {
        let mut hlc = hlc();
        let high = ballot(NOW + 100, "q");
        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(None));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(None));
        drain(&mut r);
        r.handle_accept_reply(NOW, &mut hlc, &n("a"), reject_accept(high.clone()));
        r.handle_accept_reply(NOW, &mut hlc, &n("b"), reject_accept(high.clone()));
        assert!(!r.is_done(), "c may hold the proposal: wait for it");
        r.handle_accept_reply(NOW, &mut hlc, &n("c"), reject_accept(high.clone()));
        assert_eq!(
            drain(&mut r),
            vec![RoundOutput::Done(Outcome::Contention {
                retry_above: high.clone()
            })]
        );

        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(None));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(None));
        drain(&mut r);
        r.handle_accept_reply(NOW, &mut hlc, &n("a"), reject_accept(high.clone()));
        r.handle_accept_reply(NOW, &mut hlc, &n("b"), reject_accept(high.clone()));
        let moved_on = AcceptReply::Reject {
            promised: Some(high.clone()),
            accepted: Some(high.clone()),
            committed: None,
            newer_lww: None,
        };
        r.handle_accept_reply(NOW, &mut hlc, &n("c"), moved_on);
        assert_eq!(
            drain(&mut r),
            vec![RoundOutput::Done(Outcome::Unknown)],
            "c accepted a higher ballot since, so it may have held ours"
        );
    }

    #[test]
    fn with_at_most_once_delivery_every_refusal_proves_the_ballot_was_never_accepted() {
        let mut hlc = hlc();
        let high = ballot(NOW + 100, "q");
        let moved_on = AcceptReply::Reject {
            promised: Some(high.clone()),
            accepted: None,
            committed: Some(high.clone()),
            newer_lww: None,
        };
        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        r.assume_at_most_once_delivery();
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(None));
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(None));
        drain(&mut r);
        for m in ["a", "b"] {
            r.handle_accept_reply(NOW, &mut hlc, &n(m), moved_on.clone());
        }
        assert!(!r.is_done(), "c may still hold the proposal");
        r.handle_accept_reply(NOW, &mut hlc, &n("c"), moved_on.clone());
        assert_eq!(
            drain(&mut r),
            vec![RoundOutput::Done(Outcome::Contention { retry_above: high })]
        );
        // Without the assumption the same refusals leave the outcome unknown.
        let mut u = start(&mut hlc, cas(Expect::Any, b"v"), None);
        u.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(None));
        u.handle_prepare_reply(NOW, &mut hlc, &n("b"), promise(None));
        drain(&mut u);
        for m in ["a", "b", "c"] {
            u.handle_accept_reply(NOW, &mut hlc, &n(m), moved_on.clone());
        }
        assert_eq!(drain(&mut u), vec![RoundOutput::Done(Outcome::Unknown)]);
    }

    #[test]
    fn a_prepare_refused_by_a_majority_is_contention_above_the_highest_ballot_seen() {
        let mut hlc = hlc();
        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        drain(&mut r);
        let seen = |t| PrepareReply::Reject {
            promised: Some(ballot(t, "q")),
            accepted: None,
        };
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), seen(NOW + 5));
        assert!(!r.is_done());
        r.handle_prepare_reply(NOW, &mut hlc, &n("b"), seen(NOW + 9));
        assert_eq!(
            drain(&mut r),
            vec![RoundOutput::Done(Outcome::Contention {
                retry_above: ballot(NOW + 9, "q")
            })]
        );
    }

    #[test]
    fn a_prepare_timeout_without_a_quorum_is_unavailable() {
        let mut hlc = hlc();
        let mut r = start(&mut hlc, cas(Expect::Any, b"v"), None);
        drain(&mut r);
        r.handle_prepare_reply(NOW, &mut hlc, &n("a"), promise(None));
        r.handle_prepare_reply(NOW, &mut hlc, &n("x"), promise(None));
        r.handle_timeout(NOW + 5_000);
        assert_eq!(
            drain(&mut r),
            vec![RoundOutput::Done(Outcome::Unavailable {
                needed: 2,
                voters: 3,
                reachable: 1
            })]
        );
    }

    #[test]
    fn a_newer_epoch_at_an_acceptor_ends_the_round_as_stale_config() {
        let mut hlc = hlc();
        let mut r = start(&mut hlc, Op::Read, None);
        drain(&mut r);
        r.handle_prepare_reply(
            NOW,
            &mut hlc,
            &n("a"),
            PrepareReply::EpochMismatch { current_epoch: 2 },
        );
        assert_eq!(
            drain(&mut r),
            vec![RoundOutput::Done(Outcome::StaleConfig { epoch: 2 })]
        );
    }

    #[test]
    fn joint_config_broadcasts_to_both_voter_sets_once() {
        let mut hlc = hlc();
        let ballot_hlc = hlc.now(NOW);
        let mut r = Round::new(
            NOW,
            &mut hlc,
            RoundRequest {
                key: b"k".to_vec(),
                op: Op::Read,
                proposer: n("p"),
                config: VotingConfig::joint(4, [n("a"), n("b"), n("c")], [n("c"), n("d")]),
                ballot_hlc,
                cache: None,
            },
        );
        let out = drain(&mut r);
        assert_eq!(out.len(), 4);
    }
}
