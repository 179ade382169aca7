//! Node-to-node replication over QUIC: each node ships its own write log to
//! every peer (one outbound task per peer address) and applies what peers
//! ship to it (one task per inbound stream).
//!
//! The protocol logic (cursors, pipelining, retransmission, contiguous apply)
//! lives in the sans-IO `vergent-replication` core; this module only moves its
//! outputs between the store and the transport.

mod convert;
mod gossip_convert;
mod inbound;
pub(crate) mod membership;
mod outbound;
pub(crate) mod purge;
pub(crate) mod repair;
pub(crate) mod roster;
pub(crate) mod truncation;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, warn};
use vergent_storage::Store;
use vergent_transport::{Incoming, PeerIdentity, Transport};
use vergent_types::Limits;

use crate::clock::NodeClock;
use crate::identity::NodeIdentity;
use crate::kv::{Availability, LocalKv};
use crate::status::{
    MembershipStatus, PeerStatus, PurgeStatus, RepairStatus, ReplicationStatus, RosterRow,
    RosterStatus, StatusSource,
};
use crate::workers::Workers;
use membership::MemberInfo;

/// What the peer protocols share: the local service they apply to, the
/// node's identity, and the state each peer subsystem owns (log progress,
/// the membership view, repair, roster, purge, counters).
#[derive(Debug)]
pub(crate) struct PeerCtx {
    /// The store the local service owns, for applying and reading records.
    pub(crate) store: Arc<Store>,
    /// The node's clock (the local service's).
    pub(crate) clock: Arc<NodeClock>,
    /// Size limits every record from a peer is checked against.
    pub(crate) limits: Limits,
    /// Who this node is.
    pub(crate) identity: Arc<NodeIdentity>,
    /// Serving, bootstrapping or fenced: repair and refusals report here.
    pub(crate) availability: Arc<Availability>,
    /// Replication progress of each peer, for log truncation and status.
    pub(crate) progress: Mutex<truncation::Progress>,
    /// The same acknowledgements, as writes at `quorum`/`all` wait on them.
    pub(crate) log_acks: Arc<crate::kv::acks::LogAcks>,
    /// Most entries a lagging peer may hold the log back by.
    pub(crate) max_log_lag: u64,
    /// Wakes the log-truncation worker (the local service every 1024
    /// entries, the senders on acknowledgements).
    pub(crate) truncate: Arc<Notify>,
    /// The membership view, published by the gossip driver.
    pub(crate) members: watch::Sender<Arc<Vec<MemberInfo>>>,
    /// Anti-entropy repair state.
    pub(crate) repair: repair::RepairState,
    /// Every peer ever learned of, with its certificate binding and store.
    pub(crate) roster: roster::Roster,
    /// Tombstone purge state.
    pub(crate) purge: purge::PurgeState,
    /// What peers sent that this node did not take.
    pub(crate) peer_counters: PeerCounters,
    /// The node's named background tasks; the peer side spawns its own here.
    pub(crate) workers: Workers,
    /// Strong operations, which serve the consensus frames; set once at start.
    pub(crate) strong: std::sync::OnceLock<Arc<crate::strong::Strong>>,
}

impl PeerCtx {
    /// The peer side of a node over the local service `kv`.
    pub(crate) fn new(
        kv: &LocalKv,
        identity: Arc<NodeIdentity>,
        roster: roster::Roster,
        sent_cursors: HashMap<String, u64>,
        max_log_lag: u64,
        repair: repair::RepairSettings,
        workers: Workers,
    ) -> Self {
        Self {
            store: kv.store().clone(),
            clock: kv.clock().clone(),
            limits: *kv.limits(),
            identity,
            availability: kv.availability().clone(),
            progress: Mutex::new(truncation::Progress {
                cursors: sent_cursors,
                // Replication targets come from membership; a member never
                // seen has no cursor to wait for (repair brings it up to date).
                unidentified: 0,
            }),
            log_acks: kv.log_acks().clone(),
            max_log_lag,
            truncate: kv.truncate_signal(),
            members: watch::Sender::new(Arc::new(Vec::new())),
            repair: repair::RepairState::new(repair),
            roster,
            purge: purge::PurgeState::default(),
            workers,
            peer_counters: PeerCounters::default(),
            strong: std::sync::OnceLock::new(),
        }
    }

    /// The replication progress, locked.
    pub(crate) fn lock_progress(&self) -> MutexGuard<'_, truncation::Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the current membership view.
    pub(crate) fn members_view(&self) -> Vec<MemberInfo> {
        self.members.borrow().as_ref().clone()
    }

    /// A peer refuses this node's data for good: stop serving until wiped.
    pub(crate) fn fence(&self, reason: &str) {
        self.availability.fence(reason);
    }
}

impl StatusSource for PeerCtx {
    fn peer_status(&self) -> PeerStatus {
        let relaxed = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PeerStatus {
            replication: ReplicationStatus {
                cursors: self
                    .lock_progress()
                    .cursors
                    .iter()
                    .map(|(id, c)| (id.clone(), *c))
                    .collect(),
                refused_records: relaxed(&self.peer_counters.refused_records),
                too_old_for_log: relaxed(&self.peer_counters.too_old_for_log),
            },
            membership: MembershipStatus {
                members: self.members_view(),
            },
            repair: RepairStatus {
                peers: self.repair.peers(),
            },
            purge: PurgeStatus {
                purged: relaxed(&self.purge.purged),
                held_back: self.purge.held_back(),
            },
            roster: RosterStatus {
                members: self
                    .roster
                    .entries()
                    .into_iter()
                    .map(|(node_id, e)| RosterRow {
                        node_id,
                        cert: e.cert,
                        store_id: e.store_id,
                        addr: e.addr,
                    })
                    .collect(),
                fenced: self.roster.fenced(),
                refused_peers: relaxed(&self.peer_counters.refused_peers),
            },
        }
    }
}

/// Why an exchange with a peer failed: the peer misbehaved or refused, the
/// network failed, or this node did (storage), so a misbehaving peer is told
/// apart from a local fatal error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    /// A frame that does not decode.
    #[error(transparent)]
    Decode(#[from] convert::DecodeError),
    /// The peer sent something the protocol does not allow.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peer (or this node, of the peer) refused the exchange.
    #[error("refused: {0}")]
    Refused(String),
    /// The connection or stream failed.
    #[error("transport: {0}")]
    Transport(#[from] vergent_transport::Error),
    /// No answer in time.
    #[error("no {0} in time")]
    Timeout(&'static str),
    /// The peer ended the stream early.
    #[error("peer closed {0}")]
    Closed(&'static str),
    /// The peer is answering as many repair sessions as it takes.
    #[error("peer is busy with other repairs")]
    Busy,
    /// A repair message the session core refused.
    #[error("repair protocol: {0}")]
    Repair(#[from] vergent_replication::repair::ProtocolError),
    /// This node's store failed.
    #[error("storage: {0}")]
    Storage(#[from] vergent_storage::Error),
    /// A blocking task of this node failed.
    #[error("task failed: {0}")]
    Task(String),
}

/// Counters of what peers sent that this node did not take, for `status`.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    /// Records refused one by one (size limits, a clock too far ahead).
    pub(crate) refused_records: AtomicU64,
    /// Replicated records too old for the log (left to repair).
    pub(crate) too_old_for_log: AtomicU64,
    /// Streams refused because of who opened them (identity, retired store).
    pub(crate) refused_peers: AtomicU64,
    /// When each refused claim was last logged at `warn`.
    logged: Mutex<HashMap<String, std::time::Instant>>,
}

/// A refused claim is logged at `warn` at most this often (then at debug):
/// an impostor gossips several times a second.
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl PeerCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a refused peer claim; true when it should be logged at `warn`.
    fn refuse(&self, claim: &str) -> bool {
        Self::add(&self.refused_peers, 1);
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = std::time::Instant::now();
        match logged.get(claim) {
            Some(at) if now.duration_since(*at) < REFUSAL_LOG_EVERY => false,
            _ => {
                if logged.len() > 1024 {
                    logged.clear();
                }
                logged.insert(claim.to_string(), now);
                true
            }
        }
    }
}

/// Logs a refused claim at `warn` (rate-limited per claim) or `debug`.
macro_rules! log_refusal {
    ($ctx:expr, $claim:expr, $($field:tt)*) => {
        if $ctx.peer_counters.refuse($claim) {
            tracing::warn!($($field)*);
        } else {
            tracing::debug!($($field)*);
        }
    };
}
pub(crate) use log_refusal;

/// The certificate name a peer's node id is bound to (see [`roster`]).
pub(crate) fn cert_name(peer: &PeerIdentity) -> String {
    peer.cn.clone().unwrap_or_default()
}

/// Meta key of the durable cursor of what `peer` has of our log.
fn sent_cursor_key(peer: &str) -> String {
    format!("repl/sent/{peer}")
}

/// Meta key of how much of `origin`'s log is durable here.
fn received_cursor_key(origin: &str) -> String {
    format!("repl/received/{origin}")
}

/// Persisted cursors of every peer we ever replicated to, by node id.
pub(crate) fn load_sent_cursors(
    store: &Store,
) -> Result<HashMap<String, u64>, vergent_storage::Error> {
    let prefix = sent_cursor_key("");
    Ok(store
        .scan_meta(&prefix)?
        .into_iter()
        .filter_map(|(name, v)| {
            let id = name.strip_prefix(&prefix)?.to_string();
            Some((id, decode_cursor(&v)?.1))
        })
        .collect())
}

/// The log-truncation worker: drops entries every peer has, entries a peer
/// lagging past `--max-log-lag` holds back, and entries too old to ship at
/// all (see `vergent_replication::purge`). Woken by acks and appends, and
/// every few seconds for the age bound; RocksDB work runs on a blocking
/// thread.
async fn run_truncation(ctx: Arc<PeerCtx>, shutdown: CancellationToken) {
    // The age bound is searched for at most once a second; in between, the
    // last one found still holds (entries only get older).
    let mut by_age = 0;
    let mut aged_at: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = ctx.truncate.notified() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
        let age_due = aged_at.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
        if age_due {
            aged_at = Some(std::time::Instant::now());
        }
        let worker = ctx.clone();
        let known = by_age;
        match tokio::task::spawn_blocking(move || truncate_once(&worker, known, age_due)).await {
            Ok(Ok(age)) => by_age = by_age.max(age),
            Ok(Err(e)) => warn!(error = %e, "log truncation failed"),
            Err(e) => warn!(error = %e, "log truncation task failed"),
        }
    }
}

/// One truncation pass; with `search_age`, finds the age bound again, else
/// uses `known_age`. Returns the age bound used.
fn truncate_once(
    ctx: &PeerCtx,
    known_age: u64,
    search_age: bool,
) -> Result<u64, vergent_storage::Error> {
    let last = ctx.store.last_log_seq();
    let Some(first) = ctx.store.first_log_seq()? else {
        return Ok(0);
    };
    let by_progress = {
        let progress = ctx.lock_progress();
        let below = truncation::truncate_below(&progress, first, last, ctx.max_log_lag);
        if let Some(below) = below {
            for (peer, cursor) in &progress.cursors {
                if *cursor + 1 < below && below >= first + TRUNCATE_STEP {
                    warn!(peer_id = %peer, cursor, truncated_below = below, "peer fell more than the log bound behind; it needs anti-entropy repair");
                }
            }
        }
        below
    };
    let by_age = if search_age {
        let ship_from = purge::grace(ctx).ship_from_ms(ctx.clock.physical_ms());
        ctx.store.log_entries_older_than(ship_from)?
    } else {
        known_age
    };
    if let Some(below) = truncation::combine(first, last, by_progress, by_age, TRUNCATE_STEP) {
        ctx.store.truncate_log(below)?;
    }
    Ok(by_age)
}

/// Whether a gossip message may be handed to the membership core: its
/// sender id must not be bound to another certificate than the one it came
/// with (a node certificate can never speak for another node's id), nor be
/// an expired member.
///
/// An expired member is also told, on a stream of its own (at most once a
/// minute): gossip is often all it sends, and it must learn that it has to
/// be wiped.
fn admit_gossip(
    ctx: &PeerCtx,
    transport: Option<&Transport>,
    peer: &PeerIdentity,
    msg: &vergent_gossip::Message,
) -> bool {
    let claim = msg.from.id.as_str();
    let Err(refusal) = ctx
        .roster
        .contact(&ctx.store, claim, None, &cert_name(peer))
    else {
        return true;
    };
    if !ctx.peer_counters.refuse(claim) {
        tracing::debug!(peer = %peer.addr, claimed = %claim, reason = %refusal, "dropping gossip from a refused peer");
        return false;
    }
    warn!(peer = %peer.addr, claimed = %claim, reason = %refusal, "dropping gossip from a refused peer");
    if let (Some(transport), true) = (transport, refusal.fences()) {
        let (transport, addr) = (transport.clone(), peer.addr);
        let frame = convert::encode(vergent_wire::peer::v1::frame::Body::Refused(
            vergent_wire::peer::v1::Refused {
                reason: refusal.to_string(),
                fenced: true,
            },
        ));
        tokio::spawn(async move {
            if let Ok((mut w, _r)) = transport.open_stream(addr).await {
                let _ = w.send(&frame).await;
                let _ = w.finish();
            }
        });
    }
    false
}

/// Why one record a peer sent was refused; the others are still taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordRefusal {
    /// Not a valid record.
    #[error(transparent)]
    Decode(#[from] convert::DecodeError),
    /// Above this node's size limits (the peer's may be larger).
    #[error(transparent)]
    Limit(#[from] vergent_types::LimitError),
    /// Stamped further ahead of this node's clock than the max offset.
    #[error("timestamp too far ahead: {0}")]
    Clock(#[from] vergent_hlc::ClockError),
}

/// Decodes a record a peer sent (replicated or repaired) and checks it as
/// every peer record is checked: the size limits, and a timestamp no
/// further ahead of this node's clock than the max offset (one further
/// ahead would drag the clock along, so it is refused, not adopted).
fn accept_record(
    ctx: &PeerCtx,
    r: vergent_wire::peer::v1::Record,
) -> Result<(Vec<u8>, vergent_storage::Record), RecordRefusal> {
    let (key, record) = convert::record_from_wire(r)?;
    ctx.limits.check_key(&key)?;
    if let Some(v) = &record.value {
        ctx.limits.check_value(v)?;
    }
    ctx.clock.update(record.version.hlc)?;
    Ok((key, record))
}

/// Checks each record a peer sent and keeps those that pass; each refused
/// one is counted and logged (once per batch, with the first reason). A
/// record refused for its size is refused again by every later session (the
/// limits differ between the nodes); one refused for its clock is taken by a
/// later repair session once this node's clock has caught up.
fn accept_records(
    ctx: &PeerCtx,
    records: Vec<vergent_wire::peer::v1::Record>,
    from: &str,
) -> Vec<(Vec<u8>, vergent_storage::Record)> {
    accept_records_noting(ctx, records, from, &mut Vec::new())
}

/// [`accept_records`], adding the log position of each refused record to
/// `refused_seqs` (so an ack can say which it covers without holding them).
fn accept_records_noting(
    ctx: &PeerCtx,
    records: Vec<vergent_wire::peer::v1::Record>,
    from: &str,
    refused_seqs: &mut Vec<u64>,
) -> Vec<(Vec<u8>, vergent_storage::Record)> {
    let mut out = Vec::with_capacity(records.len());
    let mut refused = 0u64;
    let mut first: Option<(Vec<u8>, RecordRefusal)> = None;
    for r in records {
        let key = r.key.clone();
        let seq = r.seq;
        match accept_record(ctx, r) {
            Ok(rec) => out.push(rec),
            Err(e) => {
                refused += 1;
                refused_seqs.push(seq);
                first.get_or_insert((key, e));
            }
        }
    }
    if let Some((key, why)) = first {
        PeerCounters::add(&ctx.peer_counters.refused_records, refused);
        warn!(
            peer = from,
            refused,
            first_key = %key.escape_ascii(),
            reason = %why,
            "refused records from a peer; the others were taken"
        );
    }
    out
}

/// Longest a replicated batch waits for this node's clock to catch up with
/// a record stamped a little too far ahead, before that record is refused
/// alone (and left to repair).
const CLOCK_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);

/// How long to wait before `records` are within the clock offset, when that
/// is short (a peer whose clock runs slightly ahead); `None` when nothing
/// needs waiting or the wait would be too long (a badly skewed peer: its
/// records are refused alone rather than stall the stream).
fn clock_catch_up(
    ctx: &PeerCtx,
    records: &[vergent_wire::peer::v1::Record],
) -> Option<std::time::Duration> {
    let limit = ctx
        .clock
        .physical_ms()
        .saturating_add(ctx.clock.max_offset_ms());
    let ahead = records
        .iter()
        .map(|r| vergent_hlc::Timestamp::from_u64(r.hlc).physical_ms())
        .max()?
        .checked_sub(limit)?;
    let wait = std::time::Duration::from_millis(ahead + 10);
    (wait <= CLOCK_CATCH_UP).then_some(wait)
}

/// Entries dropped at once at the least.
const TRUNCATE_STEP: u64 = 1024;

/// A persisted cursor: the other side's store id, then the sequence number.
fn encode_cursor(store_id: u64, seq: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&store_id.to_be_bytes());
    out[8..].copy_from_slice(&seq.to_be_bytes());
    out
}

/// Reads a cursor as `(store id, seq)`; cursors written before store ids
/// existed have none.
fn decode_cursor(bytes: &[u8]) -> Option<(Option<u64>, u64)> {
    let word = |b: &[u8]| <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes);
    match bytes.len() {
        8 => Some((None, word(bytes)?)),
        16 => Some((Some(word(&bytes[..8])?), word(&bytes[8..])?)),
        _ => None,
    }
}

/// The cursor persisted under `key`, void when it was recorded against
/// another incarnation of the other side's data dir (wiped: its log
/// restarted at 1, and so must the cursor).
fn read_cursor(ctx: &PeerCtx, key: &str, other_store: u64) -> u64 {
    match ctx
        .store
        .get_meta(key)
        .ok()
        .flatten()
        .as_deref()
        .and_then(decode_cursor)
    {
        Some((Some(id), _)) if id != other_store => {
            tracing::info!(
                cursor = key,
                "the other side's data dir is new; its cursor restarts at 0"
            );
            0
        }
        Some((_, seq)) => seq,
        None => 0,
    }
}

/// Starts the peer side of the node: membership (gossip, seeded from
/// `--peers`), replication to every live member, and inbound replication.
pub(crate) fn start(
    ctx: Arc<PeerCtx>,
    transport: Transport,
    mut incoming: mpsc::Receiver<Incoming>,
    seeds: Vec<String>,
    head: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let (gossip_tx, gossip_rx) = mpsc::channel(1024);
    // Each background task runs in a span naming it, so its log lines say
    // which worker did what.
    let workers = &ctx.workers;
    workers.spawn(
        "repair-scheduler",
        repair::run_scheduler(ctx.clone(), transport.clone(), shutdown.clone()),
    );
    workers.spawn(
        "log-truncation",
        run_truncation(ctx.clone(), shutdown.clone()),
    );
    workers.spawn(
        "purge-sweeper",
        purge::run_sweeper(ctx.clone(), transport.clone(), shutdown.clone()),
    );
    workers.spawn(
        "membership",
        membership::run(
            ctx.clone(),
            transport.clone(),
            gossip_rx,
            seeds,
            head,
            shutdown.clone(),
        ),
    );
    let router_ctx = ctx.clone();
    ctx.workers.spawn("peer-router", async move {
        let ctx = router_ctx;
        loop {
            let item = tokio::select! {
                () = shutdown.cancelled() => break,
                item = incoming.recv() => item,
            };
            match item {
                None => break,
                Some(Incoming::Stream {
                    peer,
                    writer,
                    reader,
                }) => {
                    let span = tracing::info_span!("peer-stream", peer = %peer.addr);
                    tokio::spawn(
                        inbound::serve(
                            ctx.clone(),
                            peer,
                            writer,
                            reader,
                            gossip_tx.clone(),
                            shutdown.clone(),
                        )
                        .instrument(span),
                    );
                }
                Some(Incoming::Datagram { peer, bytes }) => {
                    match <vergent_wire::peer::v1::Gossip as prost::Message>::decode(bytes)
                        .map_err(convert::DecodeError::from)
                        .and_then(gossip_convert::from_wire)
                    {
                        Ok(msg) => {
                            if admit_gossip(&ctx, Some(&transport), &peer, &msg) {
                                let _ = gossip_tx.try_send((peer.addr.to_string(), msg));
                            }
                        }
                        Err(e) => {
                            warn!(peer = %peer.addr, error = %e, "dropping a malformed gossip datagram")
                        }
                    }
                }
            }
        }
        // Give the membership driver a moment to announce the leave.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        transport.shutdown().await;
    });
}
