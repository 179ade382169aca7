//! One simulated node: the production cores (gossip membership, the
//! replication `Sender`/`Receiver`, the repair `Initiator`/`Responder`, the
//! purge gate, the HLC) over a [`MemStore`], driven the way the node's
//! drivers drive them, with virtual time and messages instead of sockets.
//!
//! Simplifications, each deliberate: one message type per exchange and no
//! wire encoding; the roster is every id this node heard of (kept across
//! crashes, lost by a wipe, as the node's persisted roster is); a node that
//! started with the cluster does not bootstrap; member expiry (72 h) is not
//! modelled. Strong operations (CASPaxos acceptor and proposer) live in
//! `node/strong.rs`.

mod levels;
mod strong;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vergent_gossip::{Event, Membership, Message, Output, State};
use vergent_hlc::{Hlc, HlcConfig, Timestamp};
use vergent_replication::purge::{CheckReply, Grace, PurgeGate};
use vergent_replication::repair::{
    Initiator, InitiatorOutput, PeerCandidate, RepairConfig, Responder, ResponderOutput,
    ToInitiator, ToResponder, next_peer,
};
use vergent_replication::{Batch, Output as SenderOutput, Receiver, Sender, SenderConfig, Verdict};
use vergent_types::{NodeId, Version};

use crate::history::{Event as HistoryEvent, History};
use crate::net::Class;
use crate::store::{LogEntry, MemStore, Rec};

pub use levels::{LEVEL_DEADLINE, LevelMsg};
pub use strong::{DEADLINE, PaxosMsg, ROUND_TIMEOUT};

/// How often a node syncs its store (its group-commit fsync).
const SYNC_EVERY: Duration = Duration::from_millis(10);
/// How often a node starts a repair session, about (±25%).
const REPAIR_EVERY: Duration = Duration::from_secs(2);
/// How often a node sweeps for tombstones to purge.
const SWEEP_EVERY: Duration = Duration::from_secs(3);
/// A repair session or purge sweep with no answer for this long is dropped.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Candidates checked in one sweep.
const SWEEP_PAGE: usize = 200;
/// Refused log entries a receiver remembers per origin.
const REFUSED_KEPT: usize = 1024;
/// The HLC ceiling is persisted this far ahead of issued timestamps.
const CEILING_WINDOW_MS: u64 = 1_000;

/// A message between simulated nodes.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Gossip, as a datagram.
    Gossip(Message),
    /// A sender greets a receiver: "this is my log, of this store"; the
    /// receiver answers with its cursor on it (an `Ack`), as `Hello` does.
    Hello {
        /// The sender's store.
        origin_store: u64,
    },
    /// A run of the origin's log.
    Batch {
        /// The store the log belongs to (new after a wipe).
        origin_store: u64,
        /// The entries.
        batch: Batch<LogEntry>,
    },
    /// The receiver holds the origin's log durably up to `up_to`.
    Ack {
        /// The receiver's store.
        receiver_store: u64,
        /// The origin store the cursor is about.
        origin_store: u64,
        /// The cursor.
        up_to: u64,
        /// Entries up to the cursor the receiver did not store (refused
        /// for their clock or age), as production's `Ack.refused`.
        refused: Vec<u64>,
    },
    /// An initiator's repair message.
    Repair {
        /// The session.
        session: u64,
        /// The message.
        msg: ToResponder<Rec>,
    },
    /// A responder's answer.
    RepairReply {
        /// The session.
        session: u64,
        /// The answer, or `None` when the session was refused or failed.
        msg: Option<ToInitiator<Rec>>,
        /// The responder is bootstrapping itself.
        bootstrapping: bool,
    },
    /// A purge check of candidates.
    PurgeCheck {
        /// The sweep.
        sweep: u64,
        /// Key and version of each candidate.
        candidates: Vec<(Vec<u8>, Version)>,
    },
    /// The answer to a purge check, once durable.
    PurgeReply {
        /// The sweep.
        sweep: u64,
        /// The answer.
        reply: CheckReply,
    },
    /// A consensus message, as a datagram.
    Paxos(PaxosMsg),
    /// A read at `QUORUM`/`ALL` asking, answering or repairing, as a datagram.
    Level(LevelMsg),
}

/// Static settings shared by every node of a world.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig {
    /// Tombstone grace, ms.
    pub grace_ms: u64,
    /// Largest clock offset accepted, ms.
    pub max_offset_ms: u64,
    /// Log entries kept at most (`--max-log-lag`): older ones are truncated
    /// whatever peers hold them back, and reach those peers through repair.
    pub max_log_entries: usize,
}

/// A write made through this node that waits for its sync to be answered.
#[derive(Clone, Debug)]
struct PendingWrite {
    id: u64,
    key: Vec<u8>,
    version: Version,
    deleted: bool,
}

struct Session {
    peer: usize,
    id: u64,
    core: Initiator<Rec>,
    deadline: Instant,
    peer_bootstrapping: bool,
}

struct Sweep {
    id: u64,
    candidates: Vec<(Vec<u8>, Version)>,
    asked: BTreeSet<String>,
    replies: BTreeMap<String, CheckReply>,
    deadline: Instant,
}

/// One simulated node; see the module docs.
pub struct SimNode {
    /// Index in the world.
    pub idx: usize,
    /// Its node id (`n{idx}`).
    pub id: NodeId,
    /// Whether the process runs.
    pub up: bool,
    /// Its store (survives a crash as far as it was synced).
    pub store: MemStore,
    /// Random id of the store, new after a wipe.
    pub store_id: u64,
    /// Filling from its peers after a wipe.
    pub bootstrapping: bool,
    /// Wall-clock offset from virtual time, ms.
    pub clock_offset_ms: i64,
    cfg: NodeConfig,
    epoch_ms: u64,
    base: Instant,
    rng: ChaCha8Rng,
    hlc: Hlc,
    gossip: Membership,
    seeds: Vec<String>,
    senders: BTreeMap<usize, (u64, Sender<LogEntry>)>,
    receivers: BTreeMap<(usize, u64), Receiver>,
    roster: BTreeSet<String>,
    gate: PurgeGate,
    session: Option<Session>,
    responders: BTreeMap<(usize, u64), Responder<Rec>>,
    sweep: Option<Sweep>,
    pending_writes: Vec<PendingWrite>,
    pending_acks: Vec<(usize, u64, u64)>,
    /// Per origin and its store: log entries this node acknowledged without
    /// storing them (the newest [`REFUSED_KEPT`]); every ack repeats them, as
    /// production persists and repeats them, so a lost ack loses none.
    recv_refused: BTreeMap<(usize, u64), BTreeSet<u64>>,
    pending_checks: Vec<(usize, u64, CheckReply)>,
    next_sync: Instant,
    next_repair: Instant,
    next_sweep: Instant,
    last_attempt: BTreeMap<String, u64>,
    outbox: Vec<(usize, Class, Msg)>,
    incarnation: u64,
    strong: strong::Strong,
    levels: levels::Levels,
    /// Nodes in the world: the voting configuration is all of them.
    pub(crate) world_size: usize,
    /// Test-only mutant: this node's rounds count only its own acceptor.
    pub(crate) self_quorum: bool,
}

fn addr(idx: usize) -> String {
    format!("n{idx}")
}

fn idx_of(addr: &str) -> Option<usize> {
    addr.strip_prefix('n')?.parse().ok()
}

impl SimNode {
    /// A node that joins through `seeds` (indices of other nodes).
    pub fn new(
        idx: usize,
        seeds: &[usize],
        cfg: NodeConfig,
        epoch_ms: u64,
        base: Instant,
        seed: u64,
        now: Instant,
    ) -> Self {
        let id = NodeId::new(addr(idx)).expect("n{idx} is a valid id");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let store_id = rng.random::<u64>() | 1;
        let mut node = Self {
            idx,
            id: id.clone(),
            up: true,
            store: MemStore::new(),
            store_id,
            bootstrapping: false,
            clock_offset_ms: 0,
            cfg,
            epoch_ms,
            base,
            hlc: Hlc::new(HlcConfig {
                max_offset_ms: cfg.max_offset_ms,
            }),
            gossip: Membership::new(
                vergent_gossip::Config::default(),
                id,
                addr(idx),
                0,
                rng.random(),
                now,
            ),
            rng,
            seeds: seeds.iter().map(|&s| addr(s)).collect(),
            senders: BTreeMap::new(),
            receivers: BTreeMap::new(),
            roster: BTreeSet::new(),
            gate: PurgeGate::new(1 << 16),
            session: None,
            responders: BTreeMap::new(),
            sweep: None,
            pending_writes: Vec::new(),
            pending_acks: Vec::new(),
            recv_refused: BTreeMap::new(),
            pending_checks: Vec::new(),
            next_sync: now,
            next_repair: now,
            next_sweep: now,
            last_attempt: BTreeMap::new(),
            outbox: Vec::new(),
            incarnation: 0,
            strong: strong::Strong::default(),
            levels: levels::Levels::default(),
            world_size: 0,
            self_quorum: false,
        };
        node.start(now);
        node
    }

    fn grace(&self) -> Grace {
        Grace {
            grace_ms: self.cfg.grace_ms,
            max_offset_ms: self.cfg.max_offset_ms,
        }
    }

    /// This node's wall clock, ms since the Unix epoch.
    pub fn physical_ms(&self, now: Instant) -> u64 {
        let virt = now.saturating_duration_since(self.base).as_millis() as i64;
        (self.epoch_ms as i64 + virt + self.clock_offset_ms).max(0) as u64
    }

    /// Starts the node's volatile state from its store (a boot).
    fn start(&mut self, now: Instant) {
        let ceiling = self.store.meta("hlc_ceiling").unwrap_or(0);
        self.hlc = Hlc::with_floor(
            HlcConfig {
                max_offset_ms: self.cfg.max_offset_ms,
            },
            Timestamp::new(ceiling, 0),
        );
        self.incarnation = self.store.meta("incarnation").unwrap_or(0) + 1;
        self.store.set_meta("incarnation", self.incarnation);
        self.store.sync();
        self.gossip = Membership::new(
            vergent_gossip::Config::default(),
            self.id.clone(),
            addr(self.idx),
            self.incarnation,
            self.rng.random(),
            now,
        );
        self.gossip.join(now, &self.seeds);
        self.senders.clear();
        self.receivers.clear();
        self.gate = PurgeGate::new(1 << 16);
        self.session = None;
        self.responders.clear();
        self.sweep = None;
        self.pending_writes.clear();
        self.pending_acks.clear();
        self.pending_checks.clear();
        self.strong = strong::Strong::default();
        self.levels.crash();
        self.next_sync = now + SYNC_EVERY;
        self.next_repair = now + self.jitter(REPAIR_EVERY);
        self.next_sweep = now + self.jitter(SWEEP_EVERY);
        self.up = true;
        self.drain_gossip(now);
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        let ms = d.as_millis() as u64;
        Duration::from_millis(self.rng.random_range(ms * 3 / 4..=ms * 5 / 4))
    }

    /// A `kill -9`: what was not synced is lost; nothing runs until
    /// [`Self::restart`].
    pub fn crash(&mut self) {
        self.store.crash();
        self.up = false;
        self.outbox.clear();
    }

    /// Boots a crashed node again.
    pub fn restart(&mut self, now: Instant) {
        self.start(now);
    }

    /// A crash, then an empty data dir: a new store, bootstrapping.
    pub fn wipe(&mut self, now: Instant) {
        self.crash();
        self.store = MemStore::new();
        self.store_id = self.rng.random::<u64>() | 1;
        self.roster.clear();
        self.last_attempt.clear();
        self.bootstrapping = true;
        self.recv_refused.clear();
        self.levels.catching_up = true;
        self.levels.synced.clear();
        self.start(now);
    }

    /// The earliest time this node has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.up {
            return None;
        }
        let mut t = self.next_repair.min(self.next_sweep);
        // The sync timer only matters when there is something to sync.
        if self.store.is_dirty()
            || !self.pending_writes.is_empty()
            || !self.pending_acks.is_empty()
            || !self.pending_checks.is_empty()
        {
            t = t.min(self.next_sync);
        }
        for at in [
            self.gossip.poll_timeout(),
            self.session.as_ref().map(|s| s.deadline),
            self.sweep.as_ref().map(|s| s.deadline),
            self.strong_timeout(),
            self.levels_timeout(),
        ]
        .into_iter()
        .flatten()
        {
            t = t.min(at);
        }
        for (_, s) in self.senders.values() {
            if let Some(at) = s.poll_timeout() {
                t = t.min(at);
            }
        }
        Some(t)
    }

    /// Messages to send, taken.
    pub fn take_outbox(&mut self) -> Vec<(usize, Class, Msg)> {
        std::mem::take(&mut self.outbox)
    }

    fn send(&mut self, to: usize, class: Class, msg: Msg) {
        self.outbox.push((to, class, msg));
    }

    /// A client write through this node; answered (in `history`) once
    /// synced. Returns the version it was stamped with.
    pub fn client_write(
        &mut self,
        now: Instant,
        id: u64,
        key: &[u8],
        value: Option<Vec<u8>>,
        history: &mut History,
    ) -> Version {
        let deleted = value.is_none();
        let (version, _) = self.stamp_and_write(now, key, value, history);
        self.pending_writes.push(PendingWrite {
            id,
            key: key.to_vec(),
            version: version.clone(),
            deleted,
        });
        version
    }

    /// Stamps a local write above what `key` holds and writes it (not yet
    /// synced); its version and log position.
    fn stamp_and_write(
        &mut self,
        now: Instant,
        key: &[u8],
        value: Option<Vec<u8>>,
        history: &mut History,
    ) -> (Version, u64) {
        if let Some(old) = self.store.get(key) {
            self.hlc.observe(old.version.hlc);
        }
        let physical = self.physical_ms(now);
        let ts = self.hlc.now(physical);
        let ceiling = self.store.meta("hlc_ceiling").unwrap_or(0);
        if ts.physical_ms() + CEILING_WINDOW_MS / 2 > ceiling {
            // Persisted before the timestamp is used, as the node does.
            self.store
                .set_meta("hlc_ceiling", ts.physical_ms() + CEILING_WINDOW_MS);
            self.store.sync();
        }
        history.push(HistoryEvent::Stamped {
            node: self.idx,
            store: self.store_id,
            hlc: ts,
        });
        let version = Version::new(ts, self.id.clone());
        let seq = self.store.write(
            key,
            Rec {
                version: version.clone(),
                value,
            },
        );
        (version, seq)
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant, history: &mut History) {
        if !self.up {
            return;
        }
        if self.gossip.poll_timeout().is_some_and(|t| t <= now) {
            self.gossip.handle_timeout(now);
            self.drain_gossip(now);
        }
        if now >= self.next_sync {
            self.next_sync = now + SYNC_EVERY;
            self.sync(now, history);
        }
        let due: Vec<usize> = self
            .senders
            .iter()
            .filter(|(_, (_, s))| s.poll_timeout().is_some_and(|t| t <= now))
            .map(|(&p, _)| p)
            .collect();
        for peer in due {
            if let Some((_, s)) = self.senders.get_mut(&peer) {
                s.handle_timeout(now);
            }
            self.drain_sender(now, peer);
        }
        if self.session.as_ref().is_some_and(|s| s.deadline <= now) {
            self.session = None;
        }
        if now >= self.next_repair {
            self.next_repair = now + self.jitter(REPAIR_EVERY);
            self.start_repair(now);
        }
        if self.sweep.as_ref().is_some_and(|s| s.deadline <= now) {
            self.finish_sweep(history);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + self.jitter(SWEEP_EVERY);
            self.start_sweep(now, history);
        }
        self.strong_handle_timeout(now, history);
        self.levels_progress(now, history);
    }

    /// The group-commit fsync: makes everything durable, then answers what
    /// waited for it.
    fn sync(&mut self, now: Instant, history: &mut History) {
        self.store.truncate_log(self.cfg.max_log_entries);
        self.store.sync();
        for w in std::mem::take(&mut self.pending_writes) {
            history.push(HistoryEvent::Acked {
                id: w.id,
                key: w.key,
                version: w.version,
                deleted: w.deleted,
            });
        }
        for (to, origin_store, up_to) in std::mem::take(&mut self.pending_acks) {
            let cursor = match self.receivers.get_mut(&(to, origin_store)) {
                Some(r) => r.handle_applied(up_to),
                None => continue,
            };
            self.store
                .set_meta(&format!("recv/{to}/{origin_store}"), cursor);
            self.send_ack(to, Class::Datagram, origin_store, cursor);
        }
        for (to, sweep, reply) in std::mem::take(&mut self.pending_checks) {
            self.send(to, Class::Stream, Msg::PurgeReply { sweep, reply });
        }
        let head = self.store.durable_log_seq();
        let peers: Vec<usize> = self.senders.keys().copied().collect();
        for peer in peers {
            if let Some((_, s)) = self.senders.get_mut(&peer) {
                s.handle_appended(now, head);
            }
            self.drain_sender(now, peer);
        }
    }

    fn drain_gossip(&mut self, now: Instant) {
        while let Some(out) = self.gossip.poll_output() {
            match out {
                Output::Send { to, msg } => {
                    if let Some(i) = idx_of(&to) {
                        self.send(i, Class::Datagram, Msg::Gossip(msg));
                    }
                }
                Output::Event(e) => self.membership_event(now, e),
            }
        }
    }

    fn membership_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Joined(m) | Event::Alive(m) => {
                let Some(peer) = idx_of(&m.addr) else { return };
                self.roster.insert(m.id.to_string());
                if m.state == State::Alive || m.state == State::Suspect {
                    self.peer_up(now, peer);
                }
            }
            Event::Dead(m) | Event::Left(m) => {
                if let Some(peer) = idx_of(&m.addr)
                    && let Some((_, s)) = self.senders.get_mut(&peer)
                {
                    s.handle_peer_down();
                }
            }
            _ => {}
        }
    }

    fn peer_up(&mut self, now: Instant, peer: usize) {
        let head = self.store.durable_log_seq();
        let sender = self
            .senders
            .entry(peer)
            .or_insert_with(|| (0, Sender::new(SenderConfig::default(), 0, head, now)));
        sender.1.handle_peer_up(now);
        self.drain_sender(now, peer);
        let origin_store = self.store_id;
        self.send(peer, Class::Stream, Msg::Hello { origin_store });
    }

    fn drain_sender(&mut self, now: Instant, peer: usize) {
        loop {
            let Some((_, s)) = self.senders.get_mut(&peer) else {
                return;
            };
            let Some(out) = s.poll_output() else { return };
            match out {
                SenderOutput::ReadLog {
                    after, max_entries, ..
                } => {
                    let entries = self.store.read_log(after, max_entries);
                    if let Some((_, s)) = self.senders.get_mut(&peer) {
                        s.handle_log(now, entries);
                    }
                }
                SenderOutput::Transmit(batch) => {
                    let origin_store = self.store_id;
                    self.send(
                        peer,
                        Class::Datagram,
                        Msg::Batch {
                            origin_store,
                            batch,
                        },
                    );
                }
                SenderOutput::PersistCursor { .. } => {}
            }
        }
    }

    /// Handles a message from node `from`.
    pub fn handle_message(&mut self, now: Instant, from: usize, msg: Msg, history: &mut History) {
        if !self.up {
            return;
        }
        match msg {
            Msg::Gossip(m) => {
                self.gossip.handle_message(now, &addr(from), m);
                self.drain_gossip(now);
            }
            Msg::Hello { origin_store } => {
                let up_to = self
                    .store
                    .meta(&format!("recv/{from}/{origin_store}"))
                    .unwrap_or(0);
                self.send_ack(from, Class::Stream, origin_store, up_to);
            }
            Msg::Batch {
                origin_store,
                batch,
            } => self.receive_batch(now, from, origin_store, batch),
            Msg::Ack {
                receiver_store,
                origin_store,
                up_to,
                refused,
            } => {
                if origin_store != self.store_id {
                    return;
                }
                self.levels_note_refused(from, receiver_store, &refused);
                let head = self.store.durable_log_seq();
                let entry = self.senders.entry(from).or_insert_with(|| {
                    (
                        receiver_store,
                        Sender::new(SenderConfig::default(), 0, head, now),
                    )
                });
                if entry.0 != receiver_store {
                    // Another store at the peer (first contact, or it was
                    // wiped): start from the cursor it holds on our log, 0
                    // for a wiped one, which is then sent the whole log (the
                    // receiver's horizon keeps records a purge made unsafe
                    // out).
                    *entry = (
                        receiver_store,
                        Sender::new(SenderConfig::default(), up_to, head, now),
                    );
                    entry.1.handle_peer_up(now);
                }
                entry.1.handle_ack(now, up_to);
                self.drain_sender(now, from);
                self.levels_progress(now, history);
            }
            Msg::Repair { session, msg } => self.respond(now, from, session, msg),
            Msg::RepairReply {
                session,
                msg,
                bootstrapping,
            } => self.repair_reply(now, from, session, msg, bootstrapping),
            Msg::PurgeCheck { sweep, candidates } => self.answer_check(from, sweep, candidates),
            Msg::Paxos(m) => self.handle_paxos(now, from, m, history),
            Msg::Level(m) => self.handle_level(now, from, m, history),
            Msg::PurgeReply { sweep, reply } => {
                if let Some(s) = self.sweep.as_mut()
                    && s.id == sweep
                {
                    s.replies.insert(addr(from), reply);
                    if s.replies.len() == s.asked.len() {
                        self.finish_sweep(history);
                    }
                }
            }
        }
    }

    /// Whether a replicated or repaired record may be applied: not beyond
    /// the clock offset, and (for the log) not older than its horizon.
    fn admit(&mut self, now: Instant, rec: &Rec, from_log: bool) -> bool {
        let physical = self.physical_ms(now);
        if from_log && rec.version.hlc.physical_ms() < self.grace().apply_from_ms(physical) {
            return false;
        }
        self.hlc.update(physical, rec.version.hlc).is_ok()
    }

    /// Applies records a repair session brought, each through the checks.
    fn apply_repaired(&mut self, now: Instant, records: Vec<(Vec<u8>, Rec)>) {
        for (k, r) in records {
            if self.admit(now, &r, false) {
                self.store.apply(&k, r);
            }
        }
    }

    fn receive_batch(
        &mut self,
        now: Instant,
        from: usize,
        origin_store: u64,
        batch: Batch<LogEntry>,
    ) {
        let cursor = self
            .store
            .meta(&format!("recv/{from}/{origin_store}"))
            .unwrap_or(0);
        let receiver = self
            .receivers
            .entry((from, origin_store))
            .or_insert_with(|| Receiver::new(cursor));
        match receiver.handle_batch(batch) {
            Verdict::Apply { entries, up_to } => {
                let first = up_to + 1 - entries.len() as u64;
                let mut refused = Vec::new();
                for (seq, e) in (first..).zip(entries) {
                    if self.admit(now, &e.rec, true) {
                        self.store.apply(&e.key, e.rec);
                    } else {
                        refused.push(seq);
                    }
                }
                if !refused.is_empty() {
                    let set = self.recv_refused.entry((from, origin_store)).or_default();
                    set.extend(refused);
                    while set.len() > REFUSED_KEPT {
                        set.pop_first();
                    }
                }
                self.pending_acks.push((from, origin_store, up_to));
            }
            Verdict::Ack(c) => self.send_ack(from, Class::Datagram, origin_store, c),
        }
    }

    /// Tells `to` how much of `origin_store`'s log is durable here.
    fn send_ack(&mut self, to: usize, class: Class, origin_store: u64, up_to: u64) {
        let receiver_store = self.store_id;
        let refused = self
            .recv_refused
            .get(&(to, origin_store))
            .map(|s| s.range(..=up_to).copied().collect())
            .unwrap_or_default();
        self.send(
            to,
            class,
            Msg::Ack {
                receiver_store,
                origin_store,
                up_to,
                refused,
            },
        );
    }

    fn start_repair(&mut self, now: Instant) {
        if self.session.is_some() {
            return;
        }
        let members: Vec<(String, bool)> = self
            .gossip
            .members()
            .map(|m| (m.addr.clone(), m.state == State::Alive))
            .collect();
        let candidates = members.iter().map(|(a, alive)| PeerCandidate {
            id: a.as_str(),
            alive: *alive,
            last_attempt_ms: self.last_attempt.get(a).copied().unwrap_or(0),
        });
        let Some(peer) = next_peer(self.id.as_str(), candidates).and_then(idx_of) else {
            return;
        };
        let physical = self.physical_ms(now);
        self.last_attempt.insert(addr(peer), physical.max(1));
        let id = self.rng.random();
        let mut core = Initiator::new(RepairConfig::default(), self.store.tree());
        let first = core.poll_output();
        self.session = Some(Session {
            peer,
            id,
            core,
            deadline: now + EXCHANGE_TIMEOUT,
            peer_bootstrapping: false,
        });
        if let Some(out) = first {
            self.initiator_output(now, out);
        }
        self.drain_initiator(now);
    }

    fn drain_initiator(&mut self, now: Instant) {
        while let Some(out) = self.session.as_mut().and_then(|s| s.core.poll_output()) {
            self.initiator_output(now, out);
        }
    }

    fn initiator_output(&mut self, now: Instant, out: InitiatorOutput<Rec>) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let (peer, session) = (s.peer, s.id);
        match out {
            InitiatorOutput::Send(msg) => {
                self.send(peer, Class::Stream, Msg::Repair { session, msg });
            }
            InitiatorOutput::ReadLeaves(leaves) => {
                let lists = self.store.leaf_versions(&leaves);
                if let Some(s) = self.session.as_mut() {
                    s.core.handle_leaf_versions(lists);
                }
            }
            InitiatorOutput::Apply(records) => self.apply_repaired(now, records),
            InitiatorOutput::ReadRecords(keys) => {
                let records = self.store.read(&keys);
                if let Some(s) = self.session.as_mut() {
                    s.core.handle_records(records);
                }
            }
            InitiatorOutput::Done(_) => {
                let peer_bootstrapping = s.peer_bootstrapping;
                let peer = s.peer;
                self.session = None;
                if !peer_bootstrapping {
                    self.levels_note_synced(peer);
                }
                if self.bootstrapping && !peer_bootstrapping {
                    // What the session applied must be durable before the
                    // node counts as filled.
                    self.store.sync();
                    self.bootstrapping = false;
                }
            }
        }
    }

    fn repair_reply(
        &mut self,
        now: Instant,
        from: usize,
        session: u64,
        msg: Option<ToInitiator<Rec>>,
        bootstrapping: bool,
    ) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        if s.id != session || s.peer != from {
            return;
        }
        s.peer_bootstrapping |= bootstrapping;
        s.deadline = now + EXCHANGE_TIMEOUT;
        let ok = msg.is_some_and(|m| s.core.handle_message(m).is_ok());
        if !ok {
            self.session = None;
            return;
        }
        self.drain_initiator(now);
    }

    fn respond(&mut self, now: Instant, from: usize, session: u64, msg: ToResponder<Rec>) {
        if !self.responders.contains_key(&(from, session)) {
            let horizon = Timestamp::new(self.grace().purge_before_ms(self.physical_ms(now)), 0);
            let core = Responder::new(RepairConfig::default(), self.store.tree(), horizon);
            self.responders.insert((from, session), core);
        }
        let Some(resp) = self.responders.get_mut(&(from, session)) else {
            return;
        };
        if resp.handle_message(msg).is_err() {
            self.responders.remove(&(from, session));
            self.send(
                from,
                Class::Stream,
                Msg::RepairReply {
                    session,
                    msg: None,
                    bootstrapping: self.bootstrapping,
                },
            );
            return;
        }
        loop {
            let Some(resp) = self.responders.get_mut(&(from, session)) else {
                return;
            };
            let Some(out) = resp.poll_output() else {
                return;
            };
            match out {
                ResponderOutput::Send(reply) => {
                    let bootstrapping = self.bootstrapping;
                    self.send(
                        from,
                        Class::Stream,
                        Msg::RepairReply {
                            session,
                            msg: Some(reply),
                            bootstrapping,
                        },
                    );
                }
                ResponderOutput::Apply(records) => self.apply_repaired(now, records),
                ResponderOutput::ReadLeaves(leaves) => {
                    let lists = self.store.leaf_versions(&leaves);
                    if let Some(r) = self.responders.get_mut(&(from, session)) {
                        r.handle_leaf_versions(lists);
                    }
                }
                ResponderOutput::ReadRecords(keys) => {
                    let records = self.store.read(&keys);
                    if let Some(r) = self.responders.get_mut(&(from, session)) {
                        r.handle_records(records);
                    }
                }
                ResponderOutput::Done(_) => {
                    self.responders.remove(&(from, session));
                }
            }
        }
    }

    fn start_sweep(&mut self, now: Instant, history: &mut History) {
        if self.sweep.is_some() || self.bootstrapping {
            return;
        }
        let before = self.grace().purge_before_ms(self.physical_ms(now));
        let candidates = self.store.tombstones_before(before, SWEEP_PAGE);
        if candidates.is_empty() {
            return;
        }
        let asked: BTreeSet<String> = self
            .roster
            .iter()
            .filter(|id| id.as_str() != self.id.as_str())
            .cloned()
            .collect();
        let id = self.rng.random();
        for peer in asked.iter().filter_map(|a| idx_of(a)) {
            self.send(
                peer,
                Class::Stream,
                Msg::PurgeCheck {
                    sweep: id,
                    candidates: candidates.clone(),
                },
            );
        }
        self.sweep = Some(Sweep {
            id,
            candidates,
            asked,
            replies: BTreeMap::new(),
            deadline: now + EXCHANGE_TIMEOUT,
        });
        if self.sweep.as_ref().is_some_and(|s| s.asked.is_empty()) {
            self.finish_sweep(history);
        }
    }

    fn finish_sweep(&mut self, history: &mut History) {
        let Some(s) = self.sweep.take() else { return };
        match self
            .gate
            .page(self.id.as_str(), &s.candidates, &s.asked, &s.replies)
        {
            Ok(purge) => {
                for i in purge {
                    let (key, version) = &s.candidates[i];
                    if self.store.purge(key, version) {
                        history.push(HistoryEvent::Purged {
                            node: self.idx,
                            key: key.clone(),
                            version: version.clone(),
                        });
                    }
                }
                self.gate.end_sweep();
            }
            Err(held) => {
                self.roster.extend(held.unknown);
                self.gate.abort_sweep();
            }
        }
    }

    fn answer_check(&mut self, from: usize, sweep: u64, candidates: Vec<(Vec<u8>, Version)>) {
        if self.bootstrapping {
            // Not filled yet: it cannot vouch for what it holds.
            return;
        }
        let mut held = Vec::with_capacity(candidates.len());
        for (key, version) in candidates {
            match self.store.get(&key) {
                Some(r) if r.version < version => {
                    // An older record: take the tombstone first; the answer
                    // leaves only once that is durable (at the next sync).
                    self.store.apply(
                        &key,
                        Rec {
                            version,
                            value: None,
                        },
                    );
                }
                _ => {}
            }
            held.push(true);
        }
        let mut roster: Vec<String> = self.roster.iter().cloned().collect();
        roster.push(self.id.to_string());
        self.pending_checks
            .push((from, sweep, CheckReply { held, roster }));
    }

    /// The connection to `peer` was reset (it restarted): the sender greets
    /// it again, as a reconnecting sender sends `Hello`.
    pub fn connection_reset(&mut self, now: Instant, peer: usize) {
        if self.up && self.senders.contains_key(&peer) {
            self.peer_up(now, peer);
        }
    }

    /// The ids this node sees alive, itself included.
    pub fn alive_view(&self) -> BTreeSet<String> {
        let mut v: BTreeSet<String> = self
            .gossip
            .members()
            .filter(|m| m.state == State::Alive)
            .map(|m| m.id.to_string())
            .collect();
        v.insert(self.id.to_string());
        v
    }

    /// The newest timestamp this node's clock issued or observed.
    pub fn hlc_last(&self) -> Timestamp {
        self.hlc.last()
    }
}
