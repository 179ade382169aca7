//! Anti-entropy repair sessions: compare two replicas' hash trees top-down,
//! then exchange only the records of the leaf buckets that differ.
//!
//! One side, the [`Initiator`], drives a session over one ordered stream;
//! the other, the [`Responder`], answers it. Both are sans-IO state
//! machines: the driver feeds them messages and storage reads and carries
//! out what `poll_output` returns.
//!
//! 1. `Compare` level 0 (the root). The responder answers `Differ` with the
//!    nodes of that level whose hashes differ from its own tree; for each of
//!    them the initiator sends the hashes of their children at the next
//!    level, down to the leaves. Equal subtrees are never descended into, so
//!    the hashes sent grow with the divergence, not with the data.
//! 2. For the differing leaves, in rounds of at most
//!    [`RepairConfig::leaves_per_round`], the initiator sends its
//!    `(key, version)` list of each leaf (`Leaves`). The responder answers
//!    with the records it holds newer (or the initiator lacks) and the keys
//!    it wants (`LeafReply`); the next `Leaves` message carries the wanted
//!    records back (`push`). A reply may cover only the first `handled`
//!    leaves of a round (byte budget); the rest go back on the queue.
//! 3. A final `Leaves` with no leaves carries the last push; the responder's
//!    empty reply says everything it was sent is durable, and the session is
//!    [`Done`](InitiatorOutput::Done). A push too large for one message goes
//!    in several, each but the last flagged `more`.
//!
//! Every message fits a budget ([`RepairConfig::message_budget_bytes`] for
//! the initiator's, [`RepairConfig::reply_budget_bytes`] for replies), so it
//! always fits the transport's frame: only a single record or leaf list
//! larger than the budget travels alone. A reply whose first leaf does not
//! fit settles no leaf but carries what fits; the leaf is asked again with
//! those records applied, so the session always progresses.
//!
//! Records travel through the normal last-writer-wins apply, so a record
//! written while the session runs is never overwritten by an older one.
//! A session cut short loses nothing: what was applied stays applied, and
//! the next session finds only what still differs (so bootstrap resumes).
//!
//! Tombstones older than the purge horizon are not offered to a peer that
//! lacks the key: the peer either purged it already or never had the key,
//! and both read as "absent" (see [`reconcile`]).

use std::collections::VecDeque;

use vergent_types::Version;
use vergent_types::digest::{DEPTH, FANOUT, LeafEntry, Tree, leaf_of};

/// A record as the repair core sees it: opaque, with a version and a size.
pub trait RepairRecord: Clone {
    /// The version last-writer-wins compares.
    fn version(&self) -> &Version;
    /// About how many bytes it takes on the wire, for the reply budget.
    fn wire_size(&self) -> usize;
}

/// The entries of one leaf bucket, in key order.
pub type LeafVersions = Vec<LeafEntry>;

/// A message from the initiator to the responder.
#[derive(Clone, Debug, PartialEq)]
pub enum ToResponder<R> {
    /// Hashes at `level`: the root alone for level 0, else the children of
    /// each of `parents` (nodes at `level - 1`), [`FANOUT`] per parent.
    Compare {
        /// The tree level the hashes belong to.
        level: u8,
        /// Nodes at `level - 1` whose children are sent (empty for level 0).
        parents: Vec<u32>,
        /// The hashes, in parent order.
        hashes: Vec<u64>,
    },
    /// Records the responder asked for last round, and the next leaves.
    Leaves {
        /// Records answering the previous reply's `want`.
        push: Vec<(Vec<u8>, R)>,
        /// The initiator's contents of the next differing leaves; empty
        /// ends the session unless `more` is set.
        leaves: Vec<(u16, LeafVersions)>,
        /// More pushed records follow in another message: with no leaves,
        /// this one does not end the session yet.
        more: bool,
    },
}

/// A message from the responder to the initiator.
#[derive(Clone, Debug, PartialEq)]
pub enum ToInitiator<R> {
    /// The nodes at `level` whose hashes differ.
    Differ {
        /// The tree level compared.
        level: u8,
        /// Indices of the differing nodes, ascending.
        nodes: Vec<u32>,
    },
    /// The answer to a `Leaves` round.
    LeafReply {
        /// How many leaves of the round this reply settles (the others are
        /// asked again).
        handled: u32,
        /// Records newer here than at the initiator.
        records: Vec<(Vec<u8>, R)>,
        /// Keys the initiator holds newer, to push next round.
        want: Vec<Vec<u8>>,
    },
}

impl<R: RepairRecord> ToResponder<R> {
    /// About how many bytes the message takes on the wire.
    pub fn wire_size(&self) -> usize {
        match self {
            Self::Compare {
                parents, hashes, ..
            } => 2 + 4 * parents.len() + 8 * hashes.len(),
            Self::Leaves { push, leaves, .. } => {
                records_size(push) + leaves.iter().map(|(_, l)| leaf_size(l)).sum::<usize>()
            }
        }
    }
}

impl<R: RepairRecord> ToInitiator<R> {
    /// About how many bytes the message takes on the wire.
    pub fn wire_size(&self) -> usize {
        match self {
            Self::Differ { nodes, .. } => 2 + 4 * nodes.len(),
            Self::LeafReply { records, want, .. } => {
                4 + records_size(records) + want.iter().map(|k| 2 + k.len()).sum::<usize>()
            }
        }
    }
}

fn entry_size(e: &LeafEntry) -> usize {
    5 + e.key.len() + 8 + e.version.origin.as_str().len()
}

fn leaf_size(entries: &[LeafEntry]) -> usize {
    4 + entries.iter().map(entry_size).sum::<usize>()
}

fn record_size<R: RepairRecord>(key: &[u8], r: &R) -> usize {
    2 + key.len() + r.wire_size()
}

fn records_size<R: RepairRecord>(records: &[(Vec<u8>, R)]) -> usize {
    records.iter().map(|(k, r)| record_size(k, r)).sum()
}

/// Takes records from the front of `pending` while they fit `budget` (at
/// least one, so an oversized record still travels, alone).
fn take_within<R: RepairRecord>(
    pending: &mut Vec<(Vec<u8>, R)>,
    budget: usize,
) -> Vec<(Vec<u8>, R)> {
    let mut used = 0;
    let mut n = 0;
    for (k, r) in pending.iter() {
        let size = record_size(k, r);
        if n > 0 && used + size > budget {
            break;
        }
        used += size;
        n += 1;
    }
    let rest = pending.split_off(n);
    std::mem::replace(pending, rest)
}

/// Why a peer's repair message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A level beyond the tree, or a node index beyond its level.
    #[error("node {index} does not exist at level {level}")]
    NoSuchNode {
        /// The level named.
        level: u8,
        /// The index named.
        index: u32,
    },
    /// The hash count does not match the parents.
    #[error("{hashes} hashes for {parents} parents at level {level}")]
    BadHashCount {
        /// The level named.
        level: u8,
        /// Parents sent.
        parents: usize,
        /// Hashes sent.
        hashes: usize,
    },
    /// A message that does not fit the session's current step.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// A key listed under a leaf it does not belong to.
    #[error("key listed under leaf {0}, which it does not belong to")]
    WrongLeaf(u16),
}

/// Limits of one session.
#[derive(Clone, Debug)]
pub struct RepairConfig {
    /// Differing leaves reconciled per round trip, at most.
    pub leaves_per_round: usize,
    /// Bytes a responder puts in one reply, records and wanted keys
    /// together (a single larger record still goes, alone).
    pub reply_budget_bytes: usize,
    /// Bytes the initiator puts in one `Leaves` message, pushed records and
    /// leaf lists together (a single larger one still goes, alone).
    pub message_budget_bytes: usize,
    /// Rounds in a row that may leave one leaf unsettled (its records did
    /// not fit one reply) before the session gives up on that leaf; the
    /// next session takes it up again.
    pub max_partial_rounds: u32,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            leaves_per_round: 256,
            reply_budget_bytes: 4 << 20,
            message_budget_bytes: 4 << 20,
            max_partial_rounds: 64,
        }
    }
}

/// What a finished session did, from the initiator's side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairStats {
    /// Tree hashes sent while descending.
    pub hashes_compared: u64,
    /// Leaf buckets found different.
    pub differing_leaves: u64,
    /// Records received and applied here.
    pub records_received: u64,
    /// Records pushed to the responder.
    pub records_sent: u64,
    /// Message bytes sent and received (as [`ToResponder::wire_size`] and
    /// [`ToInitiator::wire_size`] count them).
    pub bytes: u64,
    /// Differing leaves this session gave up on after
    /// [`RepairConfig::max_partial_rounds`] rounds without settling them.
    pub unsettled_leaves: u64,
}

/// What the initiator asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum InitiatorOutput<R> {
    /// Send this message to the responder.
    Send(ToResponder<R>),
    /// Read the `(key, version)` lists of these leaves and pass them to
    /// [`Initiator::handle_leaf_versions`].
    ReadLeaves(Vec<u16>),
    /// Apply these records with last-writer-wins, durably, before going on.
    Apply(Vec<(Vec<u8>, R)>),
    /// Read the records of these keys and pass them to
    /// [`Initiator::handle_records`] (missing keys are left out).
    ReadRecords(Vec<Vec<u8>>),
    /// The session is over; both sides hold the newest of every record
    /// that differed when it started.
    Done(RepairStats),
}

#[derive(Debug)]
enum Step {
    /// Waiting for `Differ` at this level.
    Descending(u8),
    /// Waiting for the driver's leaf lists for this round.
    ReadingLeaves(Vec<u16>),
    /// Waiting for the reply to this round.
    AwaitingReply(Vec<u16>),
    /// Waiting for the driver's records for the responder.
    ReadingRecords,
    /// A round without leaves was sent, carrying (part of) the last push.
    Finishing,
    Done,
}

/// The side that starts a session and walks the tree (see the module docs).
#[derive(Debug)]
pub struct Initiator<R> {
    config: RepairConfig,
    tree: Tree,
    step: Step,
    queue: VecDeque<u16>,
    /// Records the responder asked for and not yet sent.
    push: Vec<(Vec<u8>, R)>,
    /// Rounds in a row each leaf came back unsettled.
    partial: std::collections::HashMap<u16, u32>,
    outputs: VecDeque<InitiatorOutput<R>>,
    stats: RepairStats,
}

impl<R: RepairRecord> Initiator<R> {
    /// Starts a session over a snapshot of this replica's tree.
    pub fn new(config: RepairConfig, tree: Tree) -> Self {
        let mut me = Self {
            config,
            step: Step::Descending(0),
            queue: VecDeque::new(),
            push: Vec::new(),
            partial: std::collections::HashMap::new(),
            outputs: VecDeque::new(),
            stats: RepairStats::default(),
            tree,
        };
        let root = me.tree.root();
        me.send(ToResponder::Compare {
            level: 0,
            parents: Vec::new(),
            hashes: vec![root],
        });
        me
    }

    /// The next thing the driver must do, if any.
    pub fn poll_output(&mut self) -> Option<InitiatorOutput<R>> {
        self.outputs.pop_front()
    }

    /// How far the session is: differing leaves found, and how many of them
    /// are not settled yet.
    pub fn progress(&self) -> (u64, u64) {
        let in_round = match &self.step {
            Step::ReadingLeaves(r) | Step::AwaitingReply(r) => r.len(),
            _ => 0,
        };
        (
            self.stats.differing_leaves,
            (self.queue.len() + in_round) as u64,
        )
    }

    /// Whether the session is over.
    pub fn is_done(&self) -> bool {
        matches!(self.step, Step::Done)
    }

    fn send(&mut self, msg: ToResponder<R>) {
        self.stats.bytes += msg.wire_size() as u64;
        if let ToResponder::Compare { hashes, .. } = &msg {
            self.stats.hashes_compared += hashes.len() as u64;
        }
        self.outputs.push_back(InitiatorOutput::Send(msg));
    }

    /// Handles the responder's message.
    pub fn handle_message(&mut self, msg: ToInitiator<R>) -> Result<(), ProtocolError> {
        self.stats.bytes += msg.wire_size() as u64;
        match (std::mem::replace(&mut self.step, Step::Done), msg) {
            (Step::Descending(expected), ToInitiator::Differ { level, nodes }) => {
                if level != expected {
                    return Err(ProtocolError::Unexpected("differ for another level"));
                }
                let width = Tree::width(level);
                if let Some(&bad) = nodes.iter().find(|&&n| n as usize >= width) {
                    return Err(ProtocolError::NoSuchNode { level, index: bad });
                }
                if nodes.is_empty() {
                    self.finish_leaves();
                } else if level < DEPTH {
                    let hashes = nodes
                        .iter()
                        .flat_map(|&n| self.tree.children(level, n).iter().copied())
                        .collect();
                    self.step = Step::Descending(level + 1);
                    self.send(ToResponder::Compare {
                        level: level + 1,
                        parents: nodes,
                        hashes,
                    });
                } else {
                    self.stats.differing_leaves = nodes.len() as u64;
                    self.queue = nodes.into_iter().map(|n| n as u16).collect();
                    self.next_round();
                }
                Ok(())
            }
            (
                Step::AwaitingReply(round),
                ToInitiator::LeafReply {
                    handled,
                    records,
                    want,
                },
            ) => {
                let handled = (handled as usize).min(round.len());
                if handled == 0 && !round.is_empty() && records.is_empty() && want.is_empty() {
                    return Err(ProtocolError::Unexpected("a reply that makes no progress"));
                }
                for &leaf in &round[..handled] {
                    self.partial.remove(&leaf);
                }
                if let Some(&first) = round.get(handled) {
                    // The reply stopped inside this leaf: ask again, but not
                    // forever (a record this side keeps refusing would
                    // otherwise be offered again and again).
                    let tries = self.partial.entry(first).or_insert(0);
                    *tries += 1;
                    if *tries > self.config.max_partial_rounds {
                        self.partial.remove(&first);
                        self.stats.unsettled_leaves += 1;
                        for &leaf in round[handled + 1..].iter().rev() {
                            self.queue.push_front(leaf);
                        }
                    } else {
                        for &leaf in round[handled..].iter().rev() {
                            self.queue.push_front(leaf);
                        }
                    }
                }
                if !records.is_empty() {
                    self.stats.records_received += records.len() as u64;
                    self.outputs.push_back(InitiatorOutput::Apply(records));
                }
                self.step = Step::ReadingRecords;
                if want.is_empty() {
                    self.handle_records(Vec::new());
                } else {
                    self.outputs.push_back(InitiatorOutput::ReadRecords(want));
                }
                Ok(())
            }
            (Step::Finishing, ToInitiator::LeafReply { .. }) => {
                if self.push.is_empty() {
                    self.outputs
                        .push_back(InitiatorOutput::Done(self.stats.clone()));
                } else {
                    self.finish_leaves();
                }
                Ok(())
            }
            (step, _) => {
                self.step = step;
                Err(ProtocolError::Unexpected("message out of turn"))
            }
        }
    }

    /// Takes the leaf lists asked for by [`InitiatorOutput::ReadLeaves`].
    pub fn handle_leaf_versions(&mut self, lists: Vec<LeafVersions>) {
        let Step::ReadingLeaves(round) = std::mem::replace(&mut self.step, Step::Done) else {
            return;
        };
        let budget = self.config.message_budget_bytes;
        let push = take_within(&mut self.push, budget);
        // Leaf lists fill what the push left of the budget; at least one
        // goes, and the leaves that did not fit wait for the next round.
        let mut used = records_size(&push);
        let mut leaves = Vec::with_capacity(round.len());
        let mut sent = Vec::with_capacity(round.len());
        let mut rest = Vec::new();
        for (leaf, list) in round.into_iter().zip(lists) {
            let size = leaf_size(&list);
            if !rest.is_empty() || (!leaves.is_empty() && used + size > budget) {
                rest.push(leaf);
                continue;
            }
            used += size;
            sent.push(leaf);
            leaves.push((leaf, list));
        }
        for &leaf in rest.iter().rev() {
            self.queue.push_front(leaf);
        }
        let more = !self.push.is_empty();
        self.step = Step::AwaitingReply(sent);
        self.send(ToResponder::Leaves { push, leaves, more });
    }

    /// Takes the records asked for by [`InitiatorOutput::ReadRecords`].
    pub fn handle_records(&mut self, records: Vec<(Vec<u8>, R)>) {
        if !matches!(self.step, Step::ReadingRecords) {
            return;
        }
        self.stats.records_sent += records.len() as u64;
        self.push.extend(records);
        if self.queue.is_empty() {
            self.finish_leaves();
        } else {
            self.next_round();
        }
    }

    fn next_round(&mut self) {
        let n = self.config.leaves_per_round.max(1).min(self.queue.len());
        let round: Vec<u16> = self.queue.drain(..n).collect();
        self.step = Step::ReadingLeaves(round.clone());
        self.outputs.push_back(InitiatorOutput::ReadLeaves(round));
    }

    fn finish_leaves(&mut self) {
        let push = take_within(&mut self.push, self.config.message_budget_bytes);
        let more = !self.push.is_empty();
        self.step = Step::Finishing;
        self.send(ToResponder::Leaves {
            push,
            leaves: Vec::new(),
            more,
        });
    }
}

/// What the responder asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponderOutput<R> {
    /// Send this message to the initiator.
    Send(ToInitiator<R>),
    /// Apply these pushed records with last-writer-wins, durably, before
    /// reading anything else (the leaf lists must include them).
    Apply(Vec<(Vec<u8>, R)>),
    /// Read this replica's `(key, version)` lists of these leaves and pass
    /// them to [`Responder::handle_leaf_versions`].
    ReadLeaves(Vec<u16>),
    /// Read the records of these keys and pass them to
    /// [`Responder::handle_records`] (missing keys are left out).
    ReadRecords(Vec<Vec<u8>>),
    /// The initiator ended the session and everything it pushed was
    /// applied; close the stream after the last `Send`.
    Done(RepairStats),
}

/// Where a responder is in a `Leaves` round.
#[derive(Debug)]
enum Round<R> {
    /// Waiting for the next message.
    Idle,
    /// Waiting for this replica's lists of the round's leaves.
    ReadingLeaves {
        theirs: Vec<LeafVersions>,
        last: bool,
    },
    /// Waiting for the records of one leaf's plan.
    ReadingRecords {
        /// The leaves' contents on both sides, not yet added to the reply.
        leaves: VecDeque<(LeafVersions, LeafVersions)>,
        /// Keys the current leaf wants from the initiator.
        want: Vec<Vec<u8>>,
        reply: ReplyBuilder<R>,
        last: bool,
    },
    /// The session is over.
    Done,
}

/// The side that answers a session: compares hashes, reconciles leaves and
/// builds budgeted replies (see the module docs). Its counters in
/// [`RepairStats`] are from its own side: `records_received` were pushed
/// to it, `records_sent` it sent.
#[derive(Debug)]
pub struct Responder<R> {
    config: RepairConfig,
    tree: Tree,
    purge_horizon: vergent_hlc::Timestamp,
    round: Round<R>,
    outputs: VecDeque<ResponderOutput<R>>,
    stats: RepairStats,
}

impl<R: RepairRecord> Responder<R> {
    /// Answers a session over a snapshot of this replica's tree; tombstones
    /// below `purge_horizon` are not exchanged with a side lacking the key.
    pub fn new(config: RepairConfig, tree: Tree, purge_horizon: vergent_hlc::Timestamp) -> Self {
        Self {
            config,
            tree,
            purge_horizon,
            round: Round::Idle,
            outputs: VecDeque::new(),
            stats: RepairStats::default(),
        }
    }

    /// The next thing the driver must do, if any.
    pub fn poll_output(&mut self) -> Option<ResponderOutput<R>> {
        self.outputs.pop_front()
    }

    /// Whether the session is over.
    pub fn is_done(&self) -> bool {
        matches!(self.round, Round::Done)
    }

    /// What the session did so far, from this side.
    pub fn stats(&self) -> &RepairStats {
        &self.stats
    }

    fn send(&mut self, msg: ToInitiator<R>) {
        self.stats.bytes += msg.wire_size() as u64;
        self.outputs.push_back(ResponderOutput::Send(msg));
    }

    /// Handles the initiator's message. A malformed one (a node or leaf
    /// that does not exist, a key under the wrong leaf, a message out of
    /// turn) is refused and the session must be closed.
    pub fn handle_message(&mut self, msg: ToResponder<R>) -> Result<(), ProtocolError> {
        if !matches!(self.round, Round::Idle) {
            return Err(ProtocolError::Unexpected("message out of turn"));
        }
        self.stats.bytes += msg.wire_size() as u64;
        match msg {
            ToResponder::Compare {
                level,
                parents,
                hashes,
            } => {
                self.stats.hashes_compared += hashes.len() as u64;
                let nodes = respond_compare(&self.tree, level, &parents, &hashes)?;
                if level == DEPTH {
                    self.stats.differing_leaves = nodes.len() as u64;
                }
                self.send(ToInitiator::Differ { level, nodes });
            }
            ToResponder::Leaves { push, leaves, more } => {
                let width = Tree::width(DEPTH);
                for (leaf, entries) in &leaves {
                    if usize::from(*leaf) >= width {
                        return Err(ProtocolError::NoSuchNode {
                            level: DEPTH,
                            index: u32::from(*leaf),
                        });
                    }
                    if entries.iter().any(|e| leaf_of(&e.key) != *leaf) {
                        return Err(ProtocolError::WrongLeaf(*leaf));
                    }
                }
                let last = leaves.is_empty() && !more;
                if !push.is_empty() {
                    self.stats.records_received += push.len() as u64;
                    self.outputs.push_back(ResponderOutput::Apply(push));
                }
                if leaves.is_empty() {
                    self.reply(ReplyBuilder::new(self.config.reply_budget_bytes), last);
                } else {
                    let (ids, theirs) = leaves.into_iter().unzip();
                    self.round = Round::ReadingLeaves { theirs, last };
                    self.outputs.push_back(ResponderOutput::ReadLeaves(ids));
                }
            }
        }
        Ok(())
    }

    /// Takes the lists asked for by [`ResponderOutput::ReadLeaves`], one per
    /// leaf in the order asked.
    pub fn handle_leaf_versions(&mut self, mine: Vec<LeafVersions>) {
        let Round::ReadingLeaves { theirs, last } = std::mem::replace(&mut self.round, Round::Idle)
        else {
            return;
        };
        let leaves = mine.into_iter().zip(theirs).collect();
        self.round = Round::ReadingRecords {
            leaves,
            want: Vec::new(),
            reply: ReplyBuilder::new(self.config.reply_budget_bytes),
            last,
        };
        self.next_leaf();
    }

    /// Takes the records asked for by [`ResponderOutput::ReadRecords`].
    pub fn handle_records(&mut self, records: Vec<(Vec<u8>, R)>) {
        let Round::ReadingRecords { want, reply, .. } = &mut self.round else {
            return;
        };
        reply.add_leaf(records, std::mem::take(want));
        self.next_leaf();
    }

    /// Plans the next leaf of the round, or sends the reply once the round's
    /// leaves are done or the budget is spent.
    fn next_leaf(&mut self) {
        let horizon = self.purge_horizon;
        let Round::ReadingRecords {
            leaves,
            want,
            reply,
            last,
        } = &mut self.round
        else {
            return;
        };
        if reply.has_room()
            && let Some((mine, theirs)) = leaves.pop_front()
        {
            let plan = reconcile(&mine, &theirs, horizon);
            *want = plan.want;
            self.outputs
                .push_back(ResponderOutput::ReadRecords(plan.send));
            return;
        }
        let last = *last;
        let reply = std::mem::replace(reply, ReplyBuilder::new(0));
        self.reply(reply, last);
    }

    fn reply(&mut self, reply: ReplyBuilder<R>, last: bool) {
        let msg = reply.finish();
        if let ToInitiator::LeafReply { records, .. } = &msg {
            self.stats.records_sent += records.len() as u64;
        }
        self.send(msg);
        if last {
            self.round = Round::Done;
            self.outputs
                .push_back(ResponderOutput::Done(self.stats.clone()));
        } else {
            self.round = Round::Idle;
        }
    }
}

/// A member the repair scheduler may pick, as [`next_peer`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCandidate<'a> {
    /// Its node id.
    pub id: &'a str,
    /// Whether gossip sees it alive now.
    pub alive: bool,
    /// When this node last tried a session with it (0: never).
    pub last_attempt_ms: u64,
}

/// Whom to repair with next: the live member other than `me` tried longest
/// ago (never tried first), so a failing peer does not starve the others;
/// ties go to the smaller id, so the choice is a function of its inputs.
pub fn next_peer<'a>(
    me: &str,
    members: impl IntoIterator<Item = PeerCandidate<'a>>,
) -> Option<&'a str> {
    members
        .into_iter()
        .filter(|m| m.alive && m.id != me)
        .min_by_key(|m| (m.last_attempt_ms, m.id))
        .map(|m| m.id)
}

/// The responder's answer to a `Compare`: the nodes at `level` whose
/// hashes differ from its own tree (the `nodes` of a `Differ`).
pub fn respond_compare(
    tree: &Tree,
    level: u8,
    parents: &[u32],
    hashes: &[u64],
) -> Result<Vec<u32>, ProtocolError> {
    if level > DEPTH {
        return Err(ProtocolError::NoSuchNode { level, index: 0 });
    }
    let nodes: Vec<u32> = if level == 0 {
        if hashes.len() != 1 || !parents.is_empty() {
            return Err(ProtocolError::BadHashCount {
                level,
                parents: parents.len(),
                hashes: hashes.len(),
            });
        }
        if hashes[0] == tree.root() {
            Vec::new()
        } else {
            vec![0]
        }
    } else {
        if hashes.len() != parents.len() * FANOUT {
            return Err(ProtocolError::BadHashCount {
                level,
                parents: parents.len(),
                hashes: hashes.len(),
            });
        }
        let parent_width = Tree::width(level - 1);
        let mut out = Vec::new();
        for (&parent, theirs) in parents.iter().zip(hashes.chunks(FANOUT)) {
            if parent as usize >= parent_width {
                return Err(ProtocolError::NoSuchNode {
                    level: level - 1,
                    index: parent,
                });
            }
            for (i, (mine, theirs)) in tree
                .children(level - 1, parent)
                .iter()
                .zip(theirs)
                .enumerate()
            {
                if mine != theirs {
                    out.push(parent * FANOUT as u32 + i as u32);
                }
            }
        }
        out
    };
    Ok(nodes)
}

/// What the responder does about one leaf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafPlan {
    /// Keys whose local record is newer (or the initiator lacks): send them.
    pub send: Vec<Vec<u8>>,
    /// Keys the initiator holds newer (or this side lacks): ask for them.
    pub want: Vec<Vec<u8>>,
}

/// Compares one leaf's contents on both sides (both lists in key order).
///
/// A tombstone whose HLC is below `purge_horizon` is neither offered to nor
/// asked from a side that lacks the key: that side purged it or never had
/// the key, and "absent" already reads as deleted. Without this, replicas
/// that purge a few moments apart would hand the tombstone back and forth.
pub fn reconcile(
    mine: &[LeafEntry],
    theirs: &[LeafEntry],
    purge_horizon: vergent_hlc::Timestamp,
) -> LeafPlan {
    let purged = |e: &LeafEntry| e.tombstone && e.version.hlc < purge_horizon;
    let mut plan = LeafPlan::default();
    let (mut i, mut j) = (0, 0);
    loop {
        match (mine.get(i), theirs.get(j)) {
            (None, None) => break,
            (Some(m), Some(t)) if m.key == t.key => {
                if m.version > t.version {
                    plan.send.push(m.key.clone());
                } else if t.version > m.version {
                    plan.want.push(t.key.clone());
                }
                i += 1;
                j += 1;
            }
            (Some(m), t) if t.is_none_or(|t| m.key < t.key) => {
                if !purged(m) {
                    plan.send.push(m.key.clone());
                }
                i += 1;
            }
            (_, Some(t)) => {
                if !purged(t) {
                    plan.want.push(t.key.clone());
                }
                j += 1;
            }
            (Some(_), None) => unreachable!("handled by the arm above"),
        }
    }
    plan
}

/// Assembles a `LeafReply` within the byte budget: whole leaves while they
/// fit, then as much of the next leaf as fits (at least one record, so an
/// oversized record still travels, alone, and every reply progresses).
#[derive(Debug)]
pub struct ReplyBuilder<R> {
    budget: usize,
    used: usize,
    handled: u32,
    /// A leaf did not fit whole: nothing more is added.
    full: bool,
    records: Vec<(Vec<u8>, R)>,
    want: Vec<Vec<u8>>,
}

impl<R: RepairRecord> ReplyBuilder<R> {
    /// Starts a reply that may carry about `budget` bytes of records and
    /// wanted keys.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            used: 0,
            handled: 0,
            full: false,
            records: Vec::new(),
            want: Vec::new(),
        }
    }

    /// Whether another leaf may still be added.
    pub fn has_room(&self) -> bool {
        !self.full && (self.handled == 0 || self.used < self.budget)
    }

    /// Adds one leaf's records and wanted keys; returns whether the leaf was
    /// settled whole. When it does not fit, the records that fit are added
    /// (and the keys it wants), the leaf is left for the initiator to ask
    /// again, and the reply takes nothing more.
    pub fn add_leaf(&mut self, records: Vec<(Vec<u8>, R)>, want: Vec<Vec<u8>>) -> bool {
        if self.full {
            return false;
        }
        let want_bytes: usize = want.iter().map(|k| 2 + k.len()).sum();
        let whole = records_size(&records) + want_bytes;
        if self.used + whole <= self.budget {
            self.used += whole;
            self.records.extend(records);
            self.want.extend(want);
            self.handled += 1;
            return true;
        }
        self.full = true;
        let mut records = records;
        let room = self.budget.saturating_sub(self.used + want_bytes);
        let fits = take_within(&mut records, room);
        // `take_within` always takes one: keep it only when nothing is in the
        // reply yet (an oversized record travels alone) or when it fits.
        let fits: Vec<_> = if self.records.is_empty() || records_size(&fits) <= room {
            fits
        } else {
            Vec::new()
        };
        self.used += records_size(&fits) + want_bytes;
        self.records.extend(fits);
        self.want.extend(want);
        false
    }

    /// The finished reply.
    pub fn finish(self) -> ToInitiator<R> {
        ToInitiator::LeafReply {
            handled: self.handled,
            records: self.records,
            want: self.want,
        }
    }
}

#[cfg(test)]
mod tests {
    use vergent_hlc::Timestamp;
    use vergent_types::NodeId;

    use super::*;

    fn v(ms: u64) -> Version {
        Version::new(
            Timestamp::new(ms, 0),
            NodeId::new("n".to_string()).expect("id"),
        )
    }

    fn entries(items: &[(&str, u64, bool)]) -> Vec<LeafEntry> {
        items
            .iter()
            .map(|(k, t, tombstone)| LeafEntry {
                key: k.as_bytes().to_vec(),
                version: v(*t),
                tombstone: *tombstone,
            })
            .collect()
    }

    #[test]
    fn reconcile_sends_newer_and_missing_keys_and_wants_the_others() {
        let mine = entries(&[("a", 5, false), ("b", 1, false), ("d", 3, true)]);
        let theirs = entries(&[("a", 4, false), ("b", 2, true), ("c", 1, false)]);
        let plan = reconcile(&mine, &theirs, Timestamp::ZERO);
        assert_eq!(plan.send, vec![b"a".to_vec(), b"d".to_vec()]);
        assert_eq!(plan.want, vec![b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn tombstones_past_the_purge_horizon_are_not_exchanged_with_a_side_without_the_key() {
        let horizon = Timestamp::new(10, 0);
        let mine = entries(&[("old", 5, true), ("new", 50, true), ("value", 5, false)]);
        let plan = reconcile(&mine, &[], horizon);
        assert_eq!(plan.send, vec![b"new".to_vec(), b"value".to_vec()]);
        let plan = reconcile(&[], &mine, horizon);
        assert_eq!(plan.want, vec![b"new".to_vec(), b"value".to_vec()]);
        // A key both hold is settled by version as always.
        let older = entries(&[("old", 4, false)]);
        let plan = reconcile(&older, &entries(&[("old", 5, true)]), horizon);
        assert_eq!(plan.want, vec![b"old".to_vec()]);
    }

    #[test]
    fn a_compare_with_a_forged_shape_is_refused() {
        let tree = Tree::from_leaves(vec![0; vergent_types::digest::LEAVES]);
        assert!(respond_compare(&tree, 9, &[], &[1]).is_err());
        assert!(respond_compare(&tree, 1, &[0], &[1, 2]).is_err());
        assert!(respond_compare(&tree, 2, &[16], &[0; FANOUT]).is_err());
        assert_eq!(respond_compare(&tree, 0, &[], &[tree.root()]), Ok(vec![]));
    }

    fn candidate(id: &str, alive: bool, last_attempt_ms: u64) -> PeerCandidate<'_> {
        PeerCandidate {
            id,
            alive,
            last_attempt_ms,
        }
    }

    #[test]
    fn the_next_peer_is_the_live_one_tried_longest_ago_and_never_this_node() {
        let members = [
            candidate("me", true, 0),
            candidate("a", true, 300),
            candidate("b", false, 0),
            candidate("c", true, 100),
        ];
        assert_eq!(next_peer("me", members), Some("c"));
        // Never tried beats tried; equal times go to the smaller id.
        let members = [
            candidate("z", true, 0),
            candidate("y", true, 0),
            candidate("x", true, 5),
        ];
        assert_eq!(next_peer("me", members), Some("y"));
        assert_eq!(
            next_peer("me", [candidate("me", true, 0), candidate("b", false, 0)]),
            None
        );
    }
}
