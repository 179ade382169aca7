//! Strong per-key operations: the node's driver of the sans-IO consensus
//! core (`vergent-consensus`); and, counted over the same voting
//! configuration, eventual reads and writes at `QUORUM` and `ALL`
//! ([`levels`]).
//!
//! A strong operation runs one CASPaxos [`Round`] at a time per key on this
//! node (behind a striped lock), sends what the round asks for over QUIC
//! (one stream per message) or to this node's own acceptor directly, feeds
//! the replies back, and retries contention with jittered backoff until
//! its deadline. The acceptor side ([`acceptor`]) persists its state before
//! any reply leaves the node. Quorums are counted over the agreed
//! [`voting`] configuration; gossip only says who looks reachable, for the
//! "nothing sent" pre-check.
//!
//! This module depends on the local service's store, clock and
//! availability, on the transport and on the status types; the peer layer
//! routes consensus frames here, and the gRPC frontend calls it. It must
//! not depend on `api` or `peer`.

pub(crate) mod acceptor;
mod batch;
mod change;
mod gc;
pub(crate) mod levels;
pub(crate) mod voting;
mod wire;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::debug;
use vergent_consensus::{
    AcceptReply, Backoff, Ballot, Expect, Message, Op, Outcome, PrepareReply, ProposerCache, Round,
    RoundOutput, RoundRequest, Value, VotingConfig,
};
use vergent_storage::Store;
use vergent_transport::Transport;
use vergent_types::{Limits, NodeId, Version};
use vergent_wire::peer::v1::frame::Body;

use crate::clock::NodeClock;
use crate::kv::acks::LogAcks;
use crate::kv::{Availability, KvError};
use crate::metrics::Metrics;
use crate::status::MemberInfo;
pub(crate) use voting::{Held, Voting};

/// How long a strong operation may take, retries included, before its
/// outcome is reported as it stands (unknown once a proposal was sent).
pub(crate) const STRONG_DEADLINE: Duration = Duration::from_secs(5);
/// Contention retries: full jitter from 5 ms, doubling up to 200 ms.
const BACKOFF: Backoff = Backoff {
    base_ms: 5,
    cap_ms: 200,
};
/// Stripes of the per-key proposer and acceptor locks.
const STRIPES: usize = 1024;

/// Why a strong operation did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StrongError {
    /// The local service refuses (bootstrapping, fenced, shutting down).
    #[error(transparent)]
    Kv(#[from] KvError),
    /// No voting configuration is formed yet.
    #[error("no voting configuration yet: {0}")]
    NoConfig(String),
    /// Too few voters reachable; nothing was sent, nothing applied.
    #[error("needed {needed} of {voters} voters, reachable {reachable}; nothing was applied")]
    Unavailable {
        /// A majority of the voters.
        needed: usize,
        /// Voters in the configuration.
        voters: usize,
        /// Voters that look reachable (or answered).
        reachable: usize,
    },
    /// Lost to concurrent operations on the key until the deadline; not applied.
    #[error("lost to concurrent operations on this key; not applied, retry")]
    Contention,
    /// A proposal was sent but its fate is not known.
    #[error(
        "the outcome is unknown: the operation may or may not have applied; read the key at SERIAL to find out"
    )]
    Unknown,
    /// A version the round saw is too far ahead of this node's clock.
    #[error(transparent)]
    ClockSkew(#[from] vergent_hlc::ClockError),
    /// This node's store failed.
    #[error("storage: {0}")]
    Storage(#[from] vergent_storage::Error),
    /// Stored consensus data does not decode.
    #[error("corrupt consensus state: {0}")]
    Corrupt(String),
    /// A peer's consensus message made no sense.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// Reaching a peer failed.
    #[error("transport: {0}")]
    Transport(#[from] vergent_transport::Error),
    /// A peer ended the exchange without answering.
    #[error("peer {0} did not answer")]
    NoAnswer(String),
    /// A blocking task failed.
    #[error("task failed: {0}")]
    Task(String),
    /// This store's vote is forfeit (a wiped voter not yet re-added).
    #[error("this node's store is new and may not vote until it is re-added")]
    Forfeit,
    /// A configuration change that cannot be made.
    #[error("{0}")]
    BadChange(String),
    /// A write at QUORUM or ALL is durable here but too few voters
    /// acknowledged it before the deadline.
    #[error(
        "the outcome is unknown: the write is durable on this node but only {held} of the {voters} voters acknowledged it in time, too few for {level}; it may yet reach them (it converges either way); read it at {level} to find out"
    )]
    LevelUnknown {
        /// The level asked for.
        level: &'static str,
        /// Voters known to hold the write (this node included if it votes).
        held: usize,
        /// Voters in the configuration.
        voters: usize,
    },
    /// A read at QUORUM or ALL did not hear from or repair enough voters in time.
    #[error(
        "a read at {level} heard from {heard} voters and could not complete before its deadline; nothing was changed but older copies; retry"
    )]
    ReadTimeout {
        /// The level asked for.
        level: &'static str,
        /// Voters that reported their version.
        heard: usize,
    },
}

/// The result of a compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CasResult {
    /// Whether the condition held and the write applied.
    pub(crate) applied: bool,
    /// The key's value after the operation (`None`: absent or deleted).
    pub(crate) value: Value,
    /// Its version (`None`: never written).
    pub(crate) version: Option<Version>,
}

/// A configuration change that was decided, and who confirmed holding it.
#[derive(Clone, Debug)]
pub(crate) struct ConfigChange {
    /// The configuration now in force.
    pub(crate) held: Held,
    /// Voters that report holding it (this node included).
    pub(crate) confirmed: Vec<NodeId>,
    /// Voters that did not confirm before the deadline.
    pub(crate) unconfirmed: Vec<NodeId>,
}

/// How long a configuration change waits for every voter to confirm it.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(10);

/// A reply routed back to the round that asked.
enum Reply {
    Prepare(NodeId, PrepareReply),
    Accept(NodeId, AcceptReply),
}

/// Strong operations on this node: proposer driver, acceptor, configuration.
pub(crate) struct Strong {
    store: Arc<Store>,
    clock: Arc<NodeClock>,
    me: NodeId,
    availability: Arc<Availability>,
    /// The agreed voting configuration.
    pub(crate) voting: Voting,
    members: watch::Receiver<Arc<Vec<MemberInfo>>>,
    transport: Transport,
    cache: Mutex<ProposerCache>,
    proposer_locks: Vec<tokio::sync::Mutex<()>>,
    acceptor_locks: Vec<Mutex<()>>,
    rng: Mutex<ChaCha8Rng>,
    /// Test-only mutant (see `NodeConfig::unsafe_quorum_of_one`).
    unsafe_quorum_of_one: bool,
    /// Test-only mutant (see `NodeConfig::unsafe_levels_of_one`).
    pub(super) unsafe_levels_of_one: bool,
    /// Garbage-collection floor (see `vergent_consensus::gc`), persisted.
    floor: Mutex<Option<Ballot>>,
    /// How old a decision must be before its per-key state is collected.
    gc_after: Duration,
    /// What each peer acknowledged of this node's log (writes at a level).
    acks: Arc<LogAcks>,
    /// Size limits a read repair's record is checked against.
    limits: Limits,
    /// This store started empty and may lack quorum-acknowledged writes
    /// (`levels::CATCHING_UP_META`): silent to level reads until caught up.
    catching_up: std::sync::atomic::AtomicBool,
    /// Serving voters this node completed a repair session with since start.
    synced: Mutex<BTreeSet<NodeId>>,
    /// Consensus messages waiting for the next batch to each acceptor.
    outboxes: batch::Outboxes,
    /// Rounds and their round trips, for `/metrics`.
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Strong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strong")
            .field("me", &self.me)
            .field("voting", &self.voting)
            .finish_non_exhaustive()
    }
}

/// What [`Strong::new`] is built from.
pub(crate) struct StrongSetup {
    pub(crate) store: Arc<Store>,
    pub(crate) clock: Arc<NodeClock>,
    pub(crate) me: NodeId,
    pub(crate) availability: Arc<Availability>,
    pub(crate) members: watch::Receiver<Arc<Vec<MemberInfo>>>,
    pub(crate) transport: Transport,
    /// 1 + the number of `--peers`.
    pub(crate) expected: u32,
    /// Seeds the backoff jitter.
    pub(crate) seed: u64,
    /// Test-only mutant: rounds ask this node's acceptor alone.
    pub(crate) unsafe_quorum_of_one: bool,
    pub(crate) unsafe_levels_of_one: bool,
    /// How old a decision must be before its per-key state is collected.
    pub(crate) gc_after: Duration,
    /// What each peer acknowledged of this node's log.
    pub(crate) acks: Arc<LogAcks>,
    /// Size limits of the local service.
    pub(crate) limits: Limits,
    /// Where rounds are counted.
    pub(crate) metrics: Arc<Metrics>,
}

/// How a round ended, as `/metrics` labels it.
fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Applied { .. } => "applied",
        Outcome::NotApplied { .. } => "not_applied",
        Outcome::Read { .. } => "read",
        Outcome::Contention { .. } => "contention",
        Outcome::Unavailable { .. } => "unavailable",
        Outcome::Unknown => "unknown",
        Outcome::StaleConfig { .. } => "stale_config",
        Outcome::ClockSkew(_) => "clock_skew",
    }
}

fn stripe(key: &[u8]) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % STRIPES
}

impl Strong {
    /// The strong side of a node, with the configuration persisted in its store.
    pub(crate) fn new(setup: StrongSetup) -> Result<Self, StrongError> {
        let floor = match setup.store.get_meta(acceptor::FLOOR_META)? {
            None => None,
            Some(bytes) => {
                let b: vergent_wire::peer::v1::Ballot = prost::Message::decode(bytes.as_slice())
                    .map_err(|e| StrongError::Corrupt(format!("the stored floor: {e}")))?;
                Some(wire::ballot_from(b)?)
            }
        };
        Ok(Self {
            floor: Mutex::new(floor),
            gc_after: setup.gc_after,
            acks: setup.acks,
            limits: setup.limits,
            catching_up: std::sync::atomic::AtomicBool::new(
                setup.store.get_meta(levels::CATCHING_UP_META)?.is_some(),
            ),
            synced: Mutex::new(BTreeSet::new()),
            outboxes: batch::Outboxes::default(),
            metrics: setup.metrics,
            voting: Voting::load(&setup.store, setup.me.clone(), setup.expected)?,
            store: setup.store,
            clock: setup.clock,
            me: setup.me,
            availability: setup.availability,
            members: setup.members,
            transport: setup.transport,
            cache: Mutex::new(ProposerCache::new()),
            proposer_locks: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            acceptor_locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(setup.seed)),
            unsafe_quorum_of_one: setup.unsafe_quorum_of_one,
            unsafe_levels_of_one: setup.unsafe_levels_of_one,
        })
    }

    /// A linearizable read of `key`: its value and version.
    pub(crate) async fn read(
        self: &Arc<Self>,
        key: Vec<u8>,
    ) -> Result<(Value, Option<Version>), StrongError> {
        self.availability.check_readable()?;
        match self.execute(key, Op::Read).await? {
            Outcome::Read { value, version } => Ok((value, version)),
            other => Err(unexpected(&other)),
        }
    }

    /// Writes `new` (`None` deletes) if `expect` holds, linearizably.
    pub(crate) async fn cas(
        self: &Arc<Self>,
        key: Vec<u8>,
        expect: Expect,
        new: Value,
    ) -> Result<CasResult, StrongError> {
        self.availability.check_writable()?;
        match self.execute(key, Op::Cas { expect, new }).await? {
            Outcome::Applied { value, version } => Ok(CasResult {
                applied: true,
                value,
                version: Some(version),
            }),
            Outcome::NotApplied { value, version } => Ok(CasResult {
                applied: false,
                value,
                version,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Declares `prefix` strict: the register moves to a new epoch with the
    /// same voters and the prefix added, decided by consensus; returns once
    /// every voter holds it, or the deadline passed (reported per voter).
    pub(crate) async fn declare_strict(
        self: &Arc<Self>,
        prefix: Vec<u8>,
    ) -> Result<ConfigChange, StrongError> {
        self.availability.check_writable()?;
        let mut attempts = 0;
        let next = loop {
            let held = self
                .voting
                .held()
                .ok_or_else(|| StrongError::NoConfig(self.voting.pending()))?;
            let mut next = held.clone();
            next.config.epoch += 1;
            if !next.strict.contains(&prefix) {
                next.strict.push(prefix.clone());
                next.strict.sort();
            }
            let op = Op::Cas {
                expect: Expect::Value(voting::encode_config(&held)),
                new: Some(voting::encode_config(&next)),
            };
            match self.execute(voting::CONFIG_KEY.to_vec(), op).await? {
                Outcome::Applied { .. } => break next,
                // The register moved on (another change): learn it, retry.
                Outcome::NotApplied {
                    value: Some(bytes), ..
                } if attempts < 3 => {
                    attempts += 1;
                    if let Ok(h) = voting::decode_config(&bytes) {
                        self.voting.adopt(&self.store, &h)?;
                    }
                }
                _ => return Err(StrongError::Contention),
            }
        };
        Ok(self.confirm(next).await)
    }

    /// Asks every voter until each holds `held`'s epoch, or the deadline.
    async fn confirm(self: &Arc<Self>, held: Held) -> ConfigChange {
        let deadline = Instant::now() + CONFIRM_DEADLINE;
        let mut confirmed = vec![self.me.clone()];
        let mut waiting: Vec<NodeId> = held
            .config
            .members()
            .into_iter()
            .filter(|id| *id != self.me)
            .collect();
        while !waiting.is_empty() && Instant::now() < deadline {
            let mut still = Vec::new();
            for id in waiting {
                let epoch = tokio::time::timeout(Duration::from_secs(1), self.query(&id))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|a| a.config)
                    .map_or(0, |c| c.epoch());
                if epoch >= held.epoch() {
                    confirmed.push(id);
                } else {
                    still.push(id);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        ConfigChange {
            held,
            confirmed,
            unconfirmed: waiting,
        }
    }

    /// Runs `op` on `key` to a final outcome: retries contention and stale
    /// configurations until the deadline, maps the rest to errors.
    async fn execute(self: &Arc<Self>, key: Vec<u8>, op: Op) -> Result<Outcome, StrongError> {
        let deadline = Instant::now() + STRONG_DEADLINE;
        // One round per key at a time on this node: rounds of one node on
        // one key would only preempt each other.
        let _turn = tokio::time::timeout_at(deadline, self.proposer_locks[stripe(&key)].lock())
            .await
            .map_err(|_| StrongError::Contention)?;
        let mut attempt = 0u32;
        loop {
            let mut config = self
                .voting
                .held()
                .ok_or_else(|| StrongError::NoConfig(self.voting.pending()))?;
            if self.unsafe_quorum_of_one {
                // The broken core the chaos suite must catch: same epoch,
                // this node its only voter.
                config.config = VotingConfig::new(config.config.epoch, [self.me.clone()]);
            }
            self.precheck(&config.config)?;
            let outcome = self.run_round(&key, &op, &config, deadline).await?;
            let delay = match outcome {
                Outcome::Contention { retry_above } => {
                    // Our next ballot must beat the one that won.
                    let _ = self.clock.update(retry_above.hlc);
                    let ms = BACKOFF.delay_ms(
                        attempt,
                        &mut *self.rng.lock().unwrap_or_else(PoisonError::into_inner),
                    );
                    Duration::from_millis(ms)
                }
                // The round adopted the newer configuration it was shown.
                Outcome::StaleConfig { epoch } if self.voting.epoch() >= epoch => Duration::ZERO,
                Outcome::StaleConfig { .. } => Duration::from_millis(50),
                Outcome::Unavailable {
                    needed,
                    voters,
                    reachable,
                } => {
                    return Err(StrongError::Unavailable {
                        needed,
                        voters,
                        reachable,
                    });
                }
                // A read changes nothing a client can see: ask again.
                Outcome::Unknown if matches!(op, Op::Read) => {
                    Duration::from_millis(BACKOFF.delay_ms(
                        attempt,
                        &mut *self.rng.lock().unwrap_or_else(PoisonError::into_inner),
                    ))
                }
                Outcome::Unknown => return Err(StrongError::Unknown),
                Outcome::ClockSkew(e) => return Err(StrongError::ClockSkew(e)),
                done => return Ok(done),
            };
            attempt += 1;
            if Instant::now() + delay >= deadline {
                return Err(if matches!(op, Op::Read) {
                    StrongError::Unknown
                } else {
                    StrongError::Contention
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Refuses before sending anything when gossip shows too few voters alive.
    fn precheck(&self, config: &VotingConfig) -> Result<(), StrongError> {
        Ok(vergent_consensus::levels::Level::Quorum.precheck(config, &self.reachable())?)
    }

    /// One round: start it, carry out its outputs, feed it replies until it is done.
    async fn run_round(
        self: &Arc<Self>,
        key: &[u8],
        op: &Op,
        config: &Held,
        deadline: Instant,
    ) -> Result<Outcome, StrongError> {
        let cache = {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            // The 1-RTT path always writes (it has no phase 1 to learn that
            // nothing needs writing). So it is taken only by a CAS expected
            // to apply: reads and failing CASes take phase 1, which answers
            // without writing when the replicas agree.
            let applies = match op {
                Op::Read => false,
                Op::Cas { expect, .. } => cache
                    .get(key)
                    .is_some_and(|c| expect.holds(Some(&(c.version.clone(), c.value.clone())))),
            };
            if applies { cache.take(key) } else { None }
        };
        let mut round = self.clock.with_hlc(&self.store, |hlc, now| {
            let ballot_hlc = hlc.now(now);
            Round::new(
                now,
                hlc,
                RoundRequest {
                    key: key.to_vec(),
                    op: op.clone(),
                    proposer: self.me.clone(),
                    config: config.config.clone(),
                    ballot_hlc,
                    cache,
                },
            )
        })?;
        // `exchange` sends each message once, on a stream of its own.
        round.assume_at_most_once_delivery();
        let members = config.config.members().len();
        let (tx, mut rx) = mpsc::channel(2 * members + 2);
        // Dropped with the round: sends still in flight are aborted.
        let mut sends = JoinSet::new();
        let mut commits = Vec::new();
        let mut outcome = None;
        // Round trips: each switch between prepares and accepts starts one.
        let (mut phase, mut round_trips) = (None, 0u32);
        loop {
            while let Some(out) = round.poll_output() {
                match out {
                    RoundOutput::Send {
                        to,
                        msg: Message::Commit(c),
                    } => commits.push((to, c)),
                    RoundOutput::Send { to, msg } => {
                        let this_phase = matches!(msg, Message::Accept(_));
                        if phase != Some(this_phase) {
                            phase = Some(this_phase);
                            round_trips += 1;
                        }
                        let (this, tx, config) = (self.clone(), tx.clone(), config.clone());
                        sends.spawn(async move { this.exchange(to, msg, config, tx).await });
                    }
                    RoundOutput::Cache { key, entry } => {
                        self.cache
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(key, entry);
                    }
                    RoundOutput::Done(o) => outcome = Some(o),
                }
            }
            if let Some(o) = outcome {
                drop(sends);
                self.metrics.consensus_round(outcome_name(&o), round_trips);
                self.commit(commits).await?;
                return Ok(o);
            }
            // Once every exchange has ended, no more replies can come: what
            // is queued is all there is, and then the round's deadline is now.
            let reply = if sends.is_empty() {
                rx.try_recv().ok()
            } else {
                tokio::select! {
                    r = rx.recv() => r,
                    () = tokio::time::sleep_until(deadline) => None,
                    () = all_done(&mut sends) => rx.try_recv().ok(),
                }
            };
            self.clock.with_hlc(&self.store, |hlc, now| match reply {
                Some(Reply::Prepare(from, r)) => round.handle_prepare_reply(now, hlc, &from, r),
                Some(Reply::Accept(from, r)) => round.handle_accept_reply(now, hlc, &from, r),
                None => round.handle_timeout(now),
            })?;
        }
    }

    /// Applies the decided value here before answering (so this node reads
    /// it at once) and sends it to every other member with their next
    /// batches. What was chosen is durable already (a quorum accepted it),
    /// so the answer does not wait for this node's commit to sync; watchers
    /// hear of it once it has.
    async fn commit(
        self: &Arc<Self>,
        commits: Vec<(NodeId, vergent_consensus::Commit)>,
    ) -> Result<(), StrongError> {
        let mut local = None;
        for (to, c) in commits {
            if to == self.me {
                local = Some(c);
                continue;
            }
            let item = batch::Item {
                msg: Message::Commit(c),
                config: None,
            };
            // Not delivered: a later round, or repair, brings it.
            self.tell(&to, item).await;
        }
        if let Some(c) = local {
            let this = self.clone();
            let unsynced = tokio::task::spawn_blocking(move || this.commit_unsynced(&c))
                .await
                .map_err(|e| StrongError::Task(e.to_string()))??;
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.wait_synced(unsynced) {
                    debug!(error = %e, "a commit did not sync");
                }
            });
        }
        Ok(())
    }

    /// Sends one prepare or accept to `to` with its next batch and routes
    /// the answer back; no answer is silence (the round's quorum logic and
    /// deadline decide).
    async fn exchange(
        self: Arc<Self>,
        to: NodeId,
        msg: Message,
        config: Held,
        tx: mpsc::Sender<Reply>,
    ) {
        let item = batch::Item {
            msg,
            config: Some(config),
        };
        let reply = match self.ask(&to, item).await {
            Some(batch::ItemReply::Prepare(r)) => Reply::Prepare(to, r),
            Some(batch::ItemReply::Accept(r)) => Reply::Accept(to, r),
            Some(batch::ItemReply::Committed) | None => return,
        };
        let _ = tx.send(reply).await;
    }

    /// One request-reply exchange with `to` over a stream of its own.
    async fn remote(&self, to: &NodeId, body: Body) -> Result<Body, StrongError> {
        let addr = self.addr_of(to)?;
        let (mut w, mut r) = self.transport.open_stream(addr).await?;
        w.send(&wire::encode(body)).await?;
        let _ = w.finish();
        let bytes = r
            .recv()
            .await?
            .ok_or_else(|| StrongError::NoAnswer(to.to_string()))?;
        Ok(wire::decode(&bytes)?)
    }

    /// Where gossip says `id` is.
    fn addr_of(&self, id: &NodeId) -> Result<SocketAddr, StrongError> {
        let addr = self
            .members
            .borrow()
            .iter()
            .find(|m| m.id == id.as_str())
            .map(|m| m.addr.clone())
            .ok_or_else(|| StrongError::NoAnswer(format!("{id} (not in the membership view)")))?;
        addr.parse()
            .map_err(|_| StrongError::NoAnswer(format!("{id} (address {addr:?})")))
    }
}

/// Waits until every task of `set` has ended (their results are replies
/// already sent on the channel).
async fn all_done(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

fn unexpected(o: &Outcome) -> StrongError {
    StrongError::Task(format!("unexpected outcome {o:?}"))
}
