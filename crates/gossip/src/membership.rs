//! The membership state machine: one [`Membership`] per node, driven by
//! `handle_*` calls and drained through `poll_*` calls (the quinn shape).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vergent_types::NodeId;

use crate::broadcast::Broadcasts;
use crate::config::Config;
use crate::member::{Member, State, supersedes};
use crate::message::{Body, Event, Message, Output, Sender, Update};
use crate::suspicion::Suspicion;
use crate::timer::{Timer, Timers};

/// SWIM + Lifeguard membership of one node.
///
/// Four kinds of methods, as in quinn-proto: `handle_*` feed input in (always
/// with the current time), mutators ([`join`](Self::join), [`leave`](Self::leave))
/// start protocol actions, `poll_*` hand effects out, getters read the view.
/// After any `handle_*` or mutator call, the driver drains
/// [`poll_output`](Self::poll_output) and re-reads
/// [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Membership {
    config: Config,
    me: NodeId,
    addr: String,
    incarnation: u64,
    left: bool,
    rng: ChaCha8Rng,
    /// Every known member, this node included.
    members: BTreeMap<NodeId, Entry>,
    /// The ids of every known member but this node, in no particular order,
    /// for random sampling.
    others: Vec<NodeId>,
    /// Members per state, indexed by [`slot`].
    counts: [usize; 4],
    /// Shuffled probe order; rebuilt when exhausted.
    probe_order: Vec<NodeId>,
    probe_index: usize,
    /// The probe of the current round.
    probe: Option<Probe>,
    /// Pings sent on behalf of another member's `PingReq`, by our sequence number.
    forwards: BTreeMap<u64, Forward>,
    next_seq: u64,
    /// Lifeguard local health score, `0..max_local_health`.
    health: u32,
    broadcasts: Broadcasts,
    timers: Timers,
    outputs: VecDeque<Output>,
    seeds: Vec<String>,
    /// Addresses of dead members that were forgotten (and any the driver
    /// remembers from an earlier run): contacted now and then alongside the
    /// seeds, so two sides of a partition that outlived `dead_retention`
    /// still find each other once the network heals.
    former: VecDeque<String>,
    join_pending: bool,
    /// A post-join state exchange is waiting for its answer.
    syncing: bool,
    join_retry_armed: bool,
    join_backoff: Duration,
    /// `(id, address)` pairs already reported as conflicts.
    conflicts: BTreeSet<(NodeId, String)>,
}

/// Most remembered addresses of forgotten members (see
/// [`Membership::remember_address`]).
pub const MAX_FORMER: usize = 256;

/// What this node keeps about one member.
#[derive(Debug)]
struct Entry {
    member: Member,
    /// When the member entered its current state.
    since: Instant,
    /// Set while the member is suspect.
    suspicion: Option<Suspicion>,
}

/// The outstanding probe of the current protocol period.
#[derive(Debug)]
struct Probe {
    seq: u64,
    target: NodeId,
    acked: bool,
    expected_nacks: u32,
    nacks: u32,
}

/// A ping this node sends for another member's indirect probe.
#[derive(Debug)]
struct Forward {
    requester_addr: String,
    requester_seq: u64,
}

/// Where a claim came from: it decides how push-pull deaths are read and
/// which address mismatches are reported as conflicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// This node's own conclusion (probe failure, suspicion timeout).
    Local,
    /// A message's sender header: first-hand evidence that the sender is alive.
    Sender,
    /// Piggybacked gossip.
    Gossip,
    /// A push-pull member list.
    PushPull,
}

fn slot(state: State) -> usize {
    match state {
        State::Alive => 0,
        State::Suspect => 1,
        State::Dead => 2,
        State::Left => 3,
    }
}

impl Membership {
    /// A node `me` advertising `my_addr`, starting at `incarnation` (0 for a
    /// fresh node; the driver may persist [`incarnation`](Self::incarnation)
    /// and pass it back after a restart, though refutation makes that optional).
    /// All randomness comes from `rng_seed`. The node knows only itself until
    /// [`join`](Self::join) or a message from another member.
    ///
    /// # Panics
    ///
    /// If `config` fails [`Config::validate`]; validate it when reading it.
    pub fn new(
        config: Config,
        me: NodeId,
        my_addr: String,
        incarnation: u64,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        if let Err(e) = config.validate() {
            panic!("invalid gossip config: {e}");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
        let mut timers = Timers::default();
        // Random phases keep nodes started together from probing in lockstep.
        let jitter = |rng: &mut ChaCha8Rng, d: Duration| d.mul_f64(rng.random::<f64>());
        timers.set(now + jitter(&mut rng, config.probe_interval), Timer::Probe);
        timers.set(
            now + jitter(&mut rng, config.gossip_interval),
            Timer::Gossip,
        );
        timers.set(
            now + config.push_pull_interval + jitter(&mut rng, config.push_pull_interval),
            Timer::PushPull,
        );
        let own = Member {
            id: me.clone(),
            addr: my_addr.clone(),
            incarnation,
            state: State::Alive,
        };
        let mut broadcasts = Broadcasts::default();
        broadcasts.push(Update {
            id: me.clone(),
            addr: my_addr.clone(),
            incarnation,
            state: State::Alive,
            from: me.clone(),
        });
        let join_backoff = config.join_retry_interval;
        Self {
            config,
            members: BTreeMap::from([(
                me.clone(),
                Entry {
                    member: own,
                    since: now,
                    suspicion: None,
                },
            )]),
            others: Vec::new(),
            me,
            addr: my_addr,
            incarnation,
            left: false,
            rng,
            counts: [1, 0, 0, 0],
            probe_order: Vec::new(),
            probe_index: 0,
            probe: None,
            forwards: BTreeMap::new(),
            next_seq: 0,
            health: 0,
            broadcasts,
            timers,
            outputs: VecDeque::new(),
            seeds: Vec::new(),
            former: VecDeque::new(),
            join_pending: false,
            syncing: false,
            join_retry_armed: false,
            join_backoff,
            conflicts: BTreeSet::new(),
        }
    }

    /// Joins the cluster through `seeds` (addresses; their ids are learned from
    /// the answers): a push-pull exchange with every seed, retried with backoff
    /// until one answers. Seeds equal to this node's address are skipped, so
    /// every node can be given the same list; with no other seed this node
    /// starts a cluster of its own.
    pub fn join(&mut self, now: Instant, seeds: &[String]) {
        self.seeds.clear();
        for seed in seeds {
            if *seed != self.addr && !self.seeds.contains(seed) {
                self.seeds.push(seed.clone());
            }
        }
        if self.seeds.is_empty() || self.left {
            self.join_pending = false;
            return;
        }
        self.join_pending = true;
        self.join_backoff = self.config.join_retry_interval;
        for seed in self.seeds.clone() {
            self.send_push_pull(seed, false);
        }
        if !self.join_retry_armed {
            self.join_retry_armed = true;
            self.timers.set(now + self.join_backoff, Timer::JoinRetry);
        }
    }

    /// Handles one message received from the transport. `from_addr` is the
    /// transport's source address, informational only: replies go to the
    /// address the sender advertises, since a connection's source port may be
    /// ephemeral.
    pub fn handle_message(&mut self, now: Instant, from_addr: &str, msg: Message) {
        let _ = from_addr;
        let Message {
            from,
            body,
            updates,
        } = msg;
        if from.id == self.me {
            if from.addr != self.addr {
                self.report_conflict(&from.id.clone(), from.addr, from.incarnation);
            }
            return;
        }
        if self.left {
            // A node that left only acks pings, so that members that have not
            // heard of the leave yet do not suspect it meanwhile.
            if let Body::Ping { seq, target } = body
                && target == self.me
            {
                self.send(from.addr, Body::Ack { seq }, Vec::new());
            }
            return;
        }
        let push_pull = matches!(body, Body::PushPull { .. });
        // A push-pull answer describes this node's view before the request, as
        // in memberlist; a joiner learns from it whether it had an earlier life.
        let answer = matches!(
            body,
            Body::PushPull {
                is_reply: false,
                ..
            }
        )
        .then(|| self.member_list());
        // Claims older than what this node knows go back to the sender, so a
        // node that missed news (a leave, a refutation, its own suspicion)
        // catches up at once. A push-pull exchange carries both views anyway.
        let mut corrections = Vec::new();
        // The sender is alive at the incarnation it claims.
        let header = Update {
            id: from.id.clone(),
            addr: from.addr.clone(),
            incarnation: from.incarnation,
            state: State::Alive,
            from: from.id.clone(),
        };
        if self.apply(now, header, Origin::Sender) {
            corrections.push(from.id.clone());
        }
        for update in updates {
            let id = update.id.clone();
            if self.apply(now, update, Origin::Gossip) {
                corrections.push(id);
            }
        }
        match body {
            Body::Ping { seq, target } => {
                if target == self.me {
                    self.send(from.addr.clone(), Body::Ack { seq }, Vec::new());
                }
            }
            Body::Ack { seq } => self.on_ack(seq),
            Body::Nack { seq } => {
                if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
                    p.nacks += 1;
                }
            }
            Body::PingReq {
                seq,
                target,
                target_addr,
            } => self.on_ping_req(now, &from, seq, target, target_addr),
            Body::PushPull { members, is_reply } => {
                if is_reply && self.join_pending {
                    self.continue_earlier_life(&members);
                }
                let known = self.others.len();
                for m in members {
                    let update = Update {
                        id: m.id,
                        addr: m.addr,
                        incarnation: m.incarnation,
                        state: m.state,
                        from: from.id.clone(),
                    };
                    self.apply(now, update, Origin::PushPull);
                }
                // After a join, exchange state again with random members until
                // an exchange teaches nothing new: that catches the members
                // that joined at the same time and that gossip missed.
                let learned = self.others.len() > known;
                if is_reply && (self.join_pending || (self.syncing && learned)) {
                    self.timers
                        .set(now + self.config.join_sync_delay, Timer::JoinSync);
                }
                if is_reply {
                    self.join_pending = false;
                    self.syncing = false;
                }
                if let Some(members) = answer {
                    self.send_members(from.addr.clone(), members, true);
                }
            }
            Body::Gossip => {}
        }
        if !push_pull && !corrections.is_empty() {
            corrections.sort();
            corrections.dedup();
            corrections.truncate(self.config.max_piggyback);
            let news = corrections
                .iter()
                .filter_map(|id| self.record(id))
                .collect();
            self.send(from.addr, Body::Gossip, news);
        }
    }

    /// Runs every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Probe => self.on_probe_tick(now),
                Timer::ProbeTimeout { seq } => self.on_probe_timeout(seq),
                Timer::ForwardTimeout { seq } => {
                    if let Some(f) = self.forwards.remove(&seq) {
                        let body = Body::Nack {
                            seq: f.requester_seq,
                        };
                        self.send(f.requester_addr, body, Vec::new());
                    }
                }
                Timer::Suspicion { id } => self.on_suspicion_timeout(now, id),
                Timer::Reap { id } => self.on_reap(now, &id),
                Timer::Gossip => self.on_gossip_tick(now),
                Timer::PushPull => self.on_push_pull_tick(now),
                Timer::JoinSync => {
                    if !self.left {
                        let peer = self.random_members(1, |m| m.state.is_live());
                        if let Some((_, addr)) = peer.into_iter().next() {
                            self.syncing = true;
                            self.send_push_pull(addr, false);
                        }
                    }
                }
                Timer::JoinRetry => {
                    self.join_retry_armed = false;
                    if self.join_pending && !self.left {
                        for seed in self.seeds.clone() {
                            self.send_push_pull(seed, false);
                        }
                        self.join_backoff =
                            (self.join_backoff * 2).min(self.config.push_pull_interval);
                        self.join_retry_armed = true;
                        self.timers.set(now + self.join_backoff, Timer::JoinRetry);
                    }
                }
            }
        }
    }

    /// Remembers `addr` as a place a member once lived: like a seed, it is
    /// contacted now and then while no live member is known there, so a
    /// partition heals however long it lasted. The driver passes the
    /// addresses it persisted from an earlier run; forgotten dead members
    /// are added here by the core itself. At most [`MAX_FORMER`] are kept.
    pub fn remember_address(&mut self, addr: &str) {
        if addr == self.addr || self.former.iter().any(|a| a == addr) {
            return;
        }
        if self.former.len() >= MAX_FORMER {
            self.former.pop_front();
        }
        self.former.push_back(addr.to_string());
    }

    /// The addresses contacted to heal long partitions (see
    /// [`Self::remember_address`]), for the driver to persist.
    pub fn former_addresses(&self) -> impl Iterator<Item = &str> {
        self.former.iter().map(String::as_str)
    }

    /// Leaves gracefully: marks this node `Left`, announces it at once to a few
    /// members and keeps gossiping it until its retransmissions are spent. It
    /// stops probing, stops learning and only acks pings. The driver may exit
    /// once [`poll_timeout`](Self::poll_timeout) returns `None` (a few gossip
    /// intervals), or at its own shutdown deadline. Not undone: to rejoin,
    /// start a new `Membership`.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.left = true;
        self.probe = None;
        self.forwards.clear();
        self.join_pending = false;
        // Only the gossip of the announcement is left to do.
        self.timers = Timers::default();
        self.timers
            .set(now + self.config.gossip_interval, Timer::Gossip);
        if let Some(e) = self.members.get_mut(&self.me) {
            self.counts[slot(e.member.state)] -= 1;
            e.member.state = State::Left;
            self.counts[slot(State::Left)] += 1;
        }
        let news = self.own_update(State::Left);
        self.broadcasts.push(news);
        let fanout = self
            .config
            .gossip_fanout
            .max(self.config.indirect_probes)
            .max(1);
        for (_, addr) in self.random_members(fanout, |m| m.state.is_live()) {
            self.send(addr, Body::Gossip, Vec::new());
        }
    }

    /// The next effect for the driver, in order; `None` when drained.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    /// It may be earlier than necessary (a timer that turned out moot), never later.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Every known member in id order, this node included, in any state.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values().map(|e| &e.member)
    }

    /// The member with `id`, if known.
    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id).map(|e| &e.member)
    }

    /// How many known members, this node included, are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.counts[slot(state)]
    }

    /// This node's own incarnation; it only grows (to refute suspicion).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// This node's id.
    pub fn local_id(&self) -> &NodeId {
        &self.me
    }

    /// Lifeguard local health score: 0 when healthy; probe interval and timeout
    /// are multiplied by this plus one.
    pub fn local_health(&self) -> u32 {
        self.health
    }

    // Protocol periods.

    fn on_probe_tick(&mut self, now: Instant) {
        if self.left {
            return;
        }
        if let Some(probe) = self.probe.take() {
            self.judge_probe(now, probe);
        }
        let scale = self.health + 1;
        if let Some(target) = self.next_probe_target() {
            let seq = self.next_seq();
            let m = &self.members[&target].member;
            let addr = m.addr.clone();
            // Lifeguard buddy system: a suspect learns it from the probe itself.
            let buddy = (m.state == State::Suspect).then(|| Update {
                id: m.id.clone(),
                addr: m.addr.clone(),
                incarnation: m.incarnation,
                state: State::Suspect,
                from: self.me.clone(),
            });
            let body = Body::Ping {
                seq,
                target: target.clone(),
            };
            self.send(addr, body, buddy.into_iter().collect());
            self.probe = Some(Probe {
                seq,
                target,
                acked: false,
                expected_nacks: 0,
                nacks: 0,
            });
            self.timers.set(
                now + self.config.probe_timeout * scale,
                Timer::ProbeTimeout { seq },
            );
        }
        self.timers
            .set(now + self.config.probe_interval * scale, Timer::Probe);
    }

    /// Ends a probe round: an unanswered probe makes the target suspect and,
    /// per Lifeguard, lowers this node's health unless nacks show that the
    /// indirect probers heard it fine.
    fn judge_probe(&mut self, now: Instant, probe: Probe) {
        if probe.acked {
            return;
        }
        let delta = if probe.expected_nacks > 0 {
            probe.expected_nacks - probe.nacks.min(probe.expected_nacks)
        } else {
            1
        };
        self.health = (self.health + delta).min(self.config.max_local_health - 1);
        let Some(e) = self.members.get(&probe.target) else {
            return;
        };
        if e.member.state.is_live() {
            let suspect = Update {
                id: e.member.id.clone(),
                addr: e.member.addr.clone(),
                incarnation: e.member.incarnation,
                state: State::Suspect,
                from: self.me.clone(),
            };
            self.apply(now, suspect, Origin::Local);
        }
    }

    /// The direct ping went unanswered: ask `indirect_probes` alive members to
    /// ping the target.
    fn on_probe_timeout(&mut self, seq: u64) {
        let Some(probe) = self.probe.as_ref().filter(|p| p.seq == seq && !p.acked) else {
            return;
        };
        let target = probe.target.clone();
        let Some(target_addr) = self.members.get(&target).map(|e| e.member.addr.clone()) else {
            return;
        };
        let helpers = self.random_members(self.config.indirect_probes, |m| {
            m.state == State::Alive && m.id != target
        });
        for (_, addr) in &helpers {
            let body = Body::PingReq {
                seq,
                target: target.clone(),
                target_addr: target_addr.clone(),
            };
            self.send(addr.clone(), body, Vec::new());
        }
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = helpers.len() as u32;
        }
    }

    fn on_ack(&mut self, seq: u64) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
            if !p.acked {
                p.acked = true;
                self.health = self.health.saturating_sub(1);
            }
        } else if let Some(f) = self.forwards.remove(&seq) {
            let body = Body::Ack {
                seq: f.requester_seq,
            };
            self.send(f.requester_addr, body, Vec::new());
        }
    }

    fn on_ping_req(
        &mut self,
        now: Instant,
        from: &Sender,
        seq: u64,
        target: NodeId,
        target_addr: String,
    ) {
        if target == self.me {
            self.send(from.addr.clone(), Body::Ack { seq }, Vec::new());
            return;
        }
        let own_seq = self.next_seq();
        self.forwards.insert(
            own_seq,
            Forward {
                requester_addr: from.addr.clone(),
                requester_seq: seq,
            },
        );
        let body = Body::Ping {
            seq: own_seq,
            target,
        };
        self.send(target_addr, body, Vec::new());
        // Lifeguard: nack at 80% of the probe timeout, so the nack reaches the
        // requester before it judges the round.
        self.timers.set(
            now + self.config.probe_timeout.mul_f64(0.8),
            Timer::ForwardTimeout { seq: own_seq },
        );
    }

    fn on_suspicion_timeout(&mut self, now: Instant, id: NodeId) {
        let Some(e) = self.members.get(&id) else {
            return;
        };
        let due = e.member.state == State::Suspect
            && e.suspicion.as_ref().is_some_and(|s| s.deadline() <= now);
        if due {
            let dead = Update {
                id,
                addr: e.member.addr.clone(),
                incarnation: e.member.incarnation,
                state: State::Dead,
                from: self.me.clone(),
            };
            self.apply(now, dead, Origin::Local);
        }
    }

    fn on_reap(&mut self, now: Instant, id: &NodeId) {
        let Some(e) = self.members.get(id) else {
            return;
        };
        if matches!(e.member.state, State::Dead | State::Left)
            && e.since + self.config.dead_retention <= now
        {
            // A dead member may only be cut off: keep knocking (a leave
            // was deliberate, and a returning node rejoins through its seeds).
            if e.member.state == State::Dead {
                let addr = e.member.addr.clone();
                self.remember_address(&addr);
            }
            let e = &self.members[id];
            self.counts[slot(e.member.state)] -= 1;
            self.members.remove(id);
            if let Some(at) = self.others.iter().position(|o| o == id) {
                self.others.swap_remove(at);
            }
            self.broadcasts.remove(id);
            self.conflicts.retain(|(cid, _)| cid != id);
        }
    }

    fn on_gossip_tick(&mut self, now: Instant) {
        if !self.broadcasts.is_empty() {
            let targets = self.random_members(self.config.gossip_fanout, |m| m.state.is_live());
            for (_, addr) in targets {
                if self.broadcasts.is_empty() {
                    break;
                }
                self.send(addr, Body::Gossip, Vec::new());
            }
        }
        if !self.left || !self.broadcasts.is_empty() {
            self.timers
                .set(now + self.config.gossip_interval, Timer::Gossip);
        }
    }

    /// Full-state exchange with a random live member (or a seed when none is
    /// known), plus one with a random dead member so that the two sides of a
    /// healed partition find each other again.
    fn on_push_pull_tick(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let live = self.random_members(1, |m| m.state.is_live());
        if let Some((_, addr)) = live.into_iter().next() {
            self.send_push_pull(addr, false);
        } else if let Some(seed) = self.seeds.choose(&mut self.rng).cloned() {
            self.send_push_pull(seed, false);
        }
        let dead = self.random_members(1, |m| m.state == State::Dead);
        if let Some((_, addr)) = dead.into_iter().next() {
            self.send_push_pull(addr, false);
        }
        // And one seed or former member where no live member is known: the
        // only way back to a side of a partition that everyone here forgot
        // (Serf keeps reconnecting; HashiCorp tools re-join their seeds).
        let live: BTreeSet<&str> = self
            .members
            .values()
            .filter(|e| e.member.state.is_live())
            .map(|e| e.member.addr.as_str())
            .collect();
        let candidates: Vec<String> = self
            .seeds
            .iter()
            .chain(self.former.iter())
            .filter(|a| !live.contains(a.as_str()))
            .cloned()
            .collect();
        if let Some(addr) = candidates.choose(&mut self.rng).cloned() {
            self.send_push_pull(addr, false);
        }
        let period = self.config.push_pull_period(self.live_count());
        self.timers.set(now + period, Timer::PushPull);
    }

    // Applying news.

    /// Applies one claim about a member, following the precedence rule, and
    /// emits the events, rebroadcasts and timers that follow from it. Returns
    /// whether this node knows strictly newer news than the claim.
    fn apply(&mut self, now: Instant, mut u: Update, origin: Origin) -> bool {
        if u.id == self.me {
            return self.apply_about_me(u, origin);
        }
        let Some(e) = self.members.get(&u.id) else {
            self.insert_new(now, u);
            return false;
        };
        let cur = &e.member;
        // memberlist: a remote node's "dead" in a full-state exchange is only a
        // suspicion here, which gives the member time to refute (a healed
        // partition would otherwise kill everyone on the other side).
        if origin == Origin::PushPull && u.state == State::Dead && cur.state.is_live() {
            u.state = State::Suspect;
        }
        if !supersedes((u.incarnation, u.state), (cur.incarnation, cur.state)) {
            let stale = supersedes((cur.incarnation, cur.state), (u.incarnation, u.state));
            if u.state == State::Suspect
                && cur.state == State::Suspect
                && u.incarnation == cur.incarnation
            {
                self.confirm_suspicion(u);
            } else if origin == Origin::Sender && u.addr != cur.addr && cur.state.is_live() {
                self.report_conflict(&u.id.clone(), u.addr, u.incarnation);
            }
            return stale;
        }
        let old_state = cur.state;
        let old_addr = cur.addr.clone();
        let n = self.live_count();
        let e = self.members.get_mut(&u.id).expect("looked up above");
        e.member.addr = u.addr.clone();
        e.member.incarnation = u.incarnation;
        e.member.state = u.state;
        e.since = now;
        e.suspicion = None;
        self.counts[slot(old_state)] -= 1;
        self.counts[slot(u.state)] += 1;
        match u.state {
            State::Suspect => {
                let s = self.new_suspicion(now, &u, n);
                self.members
                    .get_mut(&u.id)
                    .expect("looked up above")
                    .suspicion = Some(s);
                if old_state != State::Suspect {
                    self.probe_soon(u.id.clone());
                }
            }
            State::Dead | State::Left => {
                self.timers.set(
                    now + self.config.dead_retention,
                    Timer::Reap { id: u.id.clone() },
                );
            }
            State::Alive => {}
        }
        let member = self.members[&u.id].member.clone();
        if matches!(old_state, State::Dead | State::Left) && member.state.is_live() {
            self.add_to_probe_order(member.id.clone());
        }
        let event = match (old_state, member.state) {
            (a, b) if a == b => {
                (member.addr != old_addr).then_some(Event::AddrChanged { member, old_addr })
            }
            (_, State::Alive) => Some(Event::Alive(member)),
            (_, State::Suspect) => Some(Event::Suspect(member)),
            (_, State::Dead) => Some(Event::Dead(member)),
            (_, State::Left) => Some(Event::Left(member)),
        };
        if let Some(event) = event {
            self.outputs.push_back(Output::Event(event));
        }
        self.rebroadcast(u);
        false
    }

    /// First news about a member: live news makes it join; dead or left news
    /// is kept silently so that stale claims about it are recognised.
    fn insert_new(&mut self, now: Instant, u: Update) {
        let member = Member {
            id: u.id.clone(),
            addr: u.addr.clone(),
            incarnation: u.incarnation,
            state: u.state,
        };
        let n = self.live_count() + 1;
        let mut entry = Entry {
            member: member.clone(),
            since: now,
            suspicion: None,
        };
        self.counts[slot(u.state)] += 1;
        match u.state {
            State::Alive | State::Suspect => {
                self.add_to_probe_order(u.id.clone());
                self.outputs
                    .push_back(Output::Event(Event::Joined(member.clone())));
                if u.state == State::Suspect {
                    entry.suspicion = Some(self.new_suspicion(now, &u, n));
                    self.probe_soon(u.id.clone());
                    self.outputs
                        .push_back(Output::Event(Event::Suspect(member)));
                }
            }
            State::Dead | State::Left => {
                self.timers.set(
                    now + self.config.dead_retention,
                    Timer::Reap { id: u.id.clone() },
                );
            }
        }
        self.members.insert(u.id.clone(), entry);
        self.others.push(u.id.clone());
        self.rebroadcast(u);
    }

    /// Another member also suspects a suspect: Lifeguard shortens the timeout
    /// and passes the confirmation on so that others count it too.
    fn confirm_suspicion(&mut self, u: Update) {
        let Some(e) = self.members.get_mut(&u.id) else {
            return;
        };
        let Some(s) = e.suspicion.as_mut() else {
            return;
        };
        if s.confirm(u.from.clone()) {
            self.timers
                .set(s.deadline(), Timer::Suspicion { id: u.id.clone() });
            self.rebroadcast(u);
        }
    }

    /// News about this node: refute suspicion, death or a stale leave by
    /// raising the incarnation above the claim; report another process that
    /// uses this node's id from another address. Returns whether the claim is
    /// older than this node's own state (after any refutation).
    fn apply_about_me(&mut self, u: Update, origin: Origin) -> bool {
        if self.left {
            return false;
        }
        match u.state {
            State::Alive => {
                if u.addr != self.addr {
                    if u.incarnation >= self.incarnation || origin == Origin::Sender {
                        self.report_conflict(&self.me.clone(), u.addr, u.incarnation);
                    }
                    return false;
                }
                if u.incarnation > self.incarnation {
                    // An earlier life of this node was known at a higher
                    // incarnation: continue above it.
                    self.refute(u.incarnation);
                }
            }
            State::Suspect | State::Dead | State::Left => {
                if u.incarnation >= self.incarnation {
                    self.refute(u.incarnation);
                    // Lifeguard: being suspected hints that this node is slow.
                    self.health = (self.health + 1).min(self.config.max_local_health - 1);
                }
            }
        }
        supersedes((self.incarnation, State::Alive), (u.incarnation, u.state))
    }

    /// A joiner found itself in a seed's answer: the cluster remembers an
    /// earlier life of this node (a restart that kept its id and address), so
    /// it continues above that incarnation and everyone sees it come back.
    fn continue_earlier_life(&mut self, members: &[Member]) {
        let earlier = members
            .iter()
            .find(|m| m.id == self.me && m.addr == self.addr)
            .map(|m| m.incarnation);
        if let Some(inc) = earlier.filter(|&inc| inc >= self.incarnation) {
            self.refute(inc);
        }
    }

    fn refute(&mut self, above: u64) {
        self.incarnation = above.saturating_add(1);
        if let Some(e) = self.members.get_mut(&self.me) {
            e.member.incarnation = self.incarnation;
        }
        let news = self.own_update(State::Alive);
        self.broadcasts.push(news);
    }

    /// Queues news that changed this node's view for dissemination, whatever
    /// its origin. News from a full-state exchange is passed on too (as in
    /// memberlist): with many simultaneous joins it is what reaches the nodes
    /// that joined before the news existed.
    fn rebroadcast(&mut self, u: Update) {
        if !self.left {
            self.broadcasts.push(u);
        }
    }

    fn report_conflict(&mut self, id: &NodeId, rejected_addr: String, rejected_incarnation: u64) {
        let Some(e) = self.members.get(id) else {
            return;
        };
        if self.conflicts.insert((id.clone(), rejected_addr.clone())) {
            let kept = e.member.clone();
            self.outputs.push_back(Output::Event(Event::Conflict {
                kept,
                rejected_addr,
                rejected_incarnation,
            }));
        }
    }

    // Helpers.

    fn live_count(&self) -> usize {
        self.counts[slot(State::Alive)] + self.counts[slot(State::Suspect)]
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn own_update(&self, state: State) -> Update {
        Update {
            id: self.me.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
            state,
            from: self.me.clone(),
        }
    }

    /// The next live member in the shuffled round-robin order, reshuffling
    /// when a round is complete.
    fn next_probe_target(&mut self) -> Option<NodeId> {
        for _ in 0..2 {
            while let Some(id) = self.probe_order.get(self.probe_index) {
                self.probe_index += 1;
                if *id != self.me
                    && self
                        .members
                        .get(id)
                        .is_some_and(|e| e.member.state.is_live())
                {
                    return Some(id.clone());
                }
            }
            self.probe_order = self
                .members
                .values()
                .filter(|e| e.member.id != self.me && e.member.state.is_live())
                .map(|e| e.member.id.clone())
                .collect();
            self.probe_order.shuffle(&mut self.rng);
            self.probe_index = 0;
        }
        None
    }

    /// Starts the suspicion claimed by `u` in a cluster of `n` live members and
    /// arms its timer.
    fn new_suspicion(&mut self, now: Instant, u: &Update, n: usize) -> Suspicion {
        let expected = self
            .config
            .suspicion_confirmations
            .min(n.saturating_sub(2) as u32);
        let s = Suspicion::new(
            now,
            u.from.clone(),
            self.config.suspicion_bounds(n),
            expected,
        );
        self.timers
            .set(s.deadline(), Timer::Suspicion { id: u.id.clone() });
        s
    }

    /// Schedules a probe of a member that just became suspect within the next
    /// `suspicion_min_mult` probe periods, shorter than any suspicion timeout.
    /// With the buddy piggyback, a live suspect thus hears of the suspicion
    /// from every suspecter, and a refutation this node missed comes back in
    /// the ack; the timeout only fires for a member silent to this node too.
    fn probe_soon(&mut self, id: NodeId) {
        let from = self.probe_index.min(self.probe_order.len());
        let to = (from + self.config.suspicion_min_mult as usize - 1).min(self.probe_order.len());
        let at = self.rng.random_range(from..=to);
        self.probe_order.insert(at, id);
    }

    /// Inserts a new member at a random place in what is left of this round,
    /// so that members that learn of it at once do not all probe it together.
    fn add_to_probe_order(&mut self, id: NodeId) {
        let at = self
            .rng
            .random_range(self.probe_index..=self.probe_order.len());
        self.probe_order.insert(at, id);
    }

    /// Up to `k` distinct random members other than this node that match
    /// `keep`, as `(id, addr)`. Samples [`Self::others`] with rejection, which
    /// costs `O(k log n)` when most members match, and falls back to a full
    /// scan when few do.
    fn random_members(
        &mut self,
        k: usize,
        keep: impl Fn(&Member) -> bool,
    ) -> Vec<(NodeId, String)> {
        let len = self.others.len();
        if k == 0 || len == 0 {
            return Vec::new();
        }
        let member = |i: usize| &self.members[&self.others[i]].member;
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        for _ in 0..4 * k + 8 {
            if picked.len() == k {
                break;
            }
            let i = self.rng.random_range(0..len);
            if !picked.contains(&i) && keep(member(i)) {
                picked.push(i);
            }
        }
        if picked.len() < k {
            let rest: Vec<usize> = (0..len)
                .filter(|i| !picked.contains(i) && keep(member(*i)))
                .collect();
            picked.extend(rest.choose_multiple(&mut self.rng, k - picked.len()));
        }
        picked
            .into_iter()
            .map(|i| {
                let m = member(i);
                (m.id.clone(), m.addr.clone())
            })
            .collect()
    }

    fn sender(&self) -> Sender {
        Sender {
            id: self.me.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
        }
    }

    /// Queues `body` for `to` with piggybacked updates: `first`, then the
    /// least-sent queued ones, up to `max_piggyback` in all. A gossip message
    /// with nothing to carry is not sent.
    fn send(&mut self, to: String, body: Body, first: Vec<Update>) {
        let limit = self.config.retransmit_limit(self.live_count());
        let mut updates = first;
        updates.truncate(self.config.max_piggyback);
        let room = self.config.max_piggyback - updates.len();
        if room > 0 {
            let except: Vec<NodeId> = updates.iter().map(|u| u.id.clone()).collect();
            updates.extend(self.broadcasts.take(room, limit, &except));
        }
        if matches!(body, Body::Gossip) && updates.is_empty() {
            return;
        }
        let msg = Message {
            from: self.sender(),
            body,
            updates,
        };
        self.outputs.push_back(Output::Send { to, msg });
    }

    /// This node's record of `id` as a claim to pass on.
    fn record(&self, id: &NodeId) -> Option<Update> {
        self.members.get(id).map(|e| Update {
            id: e.member.id.clone(),
            addr: e.member.addr.clone(),
            incarnation: e.member.incarnation,
            state: e.member.state,
            from: self.me.clone(),
        })
    }

    fn member_list(&self) -> Vec<Member> {
        self.members.values().map(|e| e.member.clone()).collect()
    }

    fn send_push_pull(&mut self, to: String, is_reply: bool) {
        let members = self.member_list();
        self.send_members(to, members, is_reply);
    }

    fn send_members(&mut self, to: String, members: Vec<Member>, is_reply: bool) {
        let msg = Message {
            from: self.sender(),
            body: Body::PushPull { members, is_reply },
            updates: Vec::new(),
        };
        self.outputs.push_back(Output::Send { to, msg });
    }
}
