//! Anti-entropy: drives the sans-IO repair core (`vergent_replication::repair`)
//! over QUIC streams, picks whom to repair with from gossip, tracks
//! bootstrap, and purges tombstones once every replica holds them.
//!
//! Purge rule (Garage's, with Cassandra's grace): a tombstone or expired
//! value is removed only when it is older than the grace period AND older
//! than the start of the last completed repair session with every member
//! that has been alive within the grace period. Such a session leaves the
//! peer holding every record this node held when it began, so no peer can
//! still hold the older value the tombstone deleted. A member gone longer
//! than the grace period no longer holds purges back; it must not rejoin
//! with its old data (see `check_stale_rejoin`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vergent_gossip::State;
use vergent_hlc::Timestamp;
use vergent_replication::repair::{
    Initiator, InitiatorOutput, RepairConfig, RepairRecord, RepairStats, ReplyBuilder, ToInitiator,
    ToResponder, reconcile, respond_compare,
};
use vergent_storage::Record;
use vergent_transport::{FrameReader, FrameWriter, Transport};
use vergent_types::digest::{LEAVES, LeafEntry, Tree, leaf_of};
use vergent_types::{NodeId, Version};
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::accept_record;
use super::convert::{decode, encode, record_to_wire};
use crate::clock::wall_ms;
use crate::node::Shared;

/// How long one reply may take before the session is abandoned.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a whole session may run; the next one resumes where it stopped.
const SESSION_TIMEOUT: Duration = Duration::from_secs(600);
/// Retry delay while bootstrapping and no peer could be repaired with.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(1);
/// Uptime before a clustered node purges anything: time for gossip to
/// list every member (dead ones included), so none is missed by the rule.
const PURGE_AFTER_UPTIME: Duration = Duration::from_secs(20);
/// Meta key of the wall time this node was last known running.
const LAST_ALIVE_META: &str = "last_alive_ms";

/// Anti-entropy settings.
#[derive(Clone, Debug)]
pub struct RepairSettings {
    /// Time between repair sessions this node starts (±25% jitter).
    pub interval: Duration,
    /// How long a tombstone is kept at least, and how long a node may be
    /// down before it must be wiped instead of rejoining with its data.
    pub tombstone_grace: Duration,
    /// Repair sessions other nodes may run against this one at once.
    pub max_inbound_sessions: usize,
    /// Bytes per second one session may send (0: unlimited).
    pub max_bytes_per_sec: u64,
}

impl Default for RepairSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            tombstone_grace: Duration::from_secs(24 * 3600),
            max_inbound_sessions: 2,
            max_bytes_per_sec: 64 << 20,
        }
    }
}

/// Repair history with one peer, both directions.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerRepair {
    pub(crate) last_repair_ms: u64,
    /// Last session attempt, completed or not: the scheduler rotates on it
    /// so one failing peer does not starve the others.
    pub(crate) last_attempt_ms: u64,
    /// Start of the last completed session: the peer held every record this
    /// node held at that time.
    pub(crate) synced_from_ms: u64,
    pub(crate) sessions: u64,
    pub(crate) differing_buckets: u64,
    pub(crate) keys_received: u64,
    pub(crate) keys_sent: u64,
    pub(crate) bytes: u64,
    pub(crate) last_error: String,
}

/// Anti-entropy state shared by the scheduler, the responder and `status`.
#[derive(Debug)]
pub(crate) struct RepairState {
    pub(crate) settings: RepairSettings,
    peers: Mutex<HashMap<String, PeerRepair>>,
    /// True until a node that started empty completes a session.
    pub(crate) bootstrapping: watch::Sender<bool>,
    pub(crate) purged: AtomicU64,
    inbound: Arc<Semaphore>,
    /// Wakes the scheduler early (a member joined or came back).
    pub(crate) trigger: Notify,
    started_any: AtomicBool,
    /// The peer this node is running a session against right now, if any.
    outbound: Mutex<Option<String>>,
}

impl RepairState {
    pub(crate) fn new(settings: RepairSettings, bootstrapping: bool) -> Self {
        Self {
            inbound: Arc::new(Semaphore::new(settings.max_inbound_sessions.max(1))),
            settings,
            peers: Mutex::new(HashMap::new()),
            bootstrapping: watch::Sender::new(bootstrapping),
            purged: AtomicU64::new(0),
            trigger: Notify::new(),
            started_any: AtomicBool::new(false),
            outbound: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerRepair>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the per-peer history, for `status`.
    pub(crate) fn peers(&self) -> Vec<(String, PeerRepair)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn record(&self, peer: &str, started_ms: u64, outcome: Result<&RepairStats, &str>) {
        let mut peers = self.lock();
        let p = peers.entry(peer.to_string()).or_default();
        p.last_attempt_ms = wall_ms();
        match outcome {
            Ok(s) => {
                p.last_repair_ms = wall_ms();
                p.synced_from_ms = p.synced_from_ms.max(started_ms);
                p.sessions += 1;
                p.differing_buckets += s.differing_leaves;
                p.keys_received += s.records_received;
                p.keys_sent += s.records_sent;
                p.bytes += s.bytes;
                p.last_error.clear();
            }
            Err(e) => e.clone_into(&mut p.last_error),
        }
    }
}

/// A stored record as the repair core sees it.
#[derive(Clone, Debug)]
struct Rec(Record);

impl RepairRecord for Rec {
    fn version(&self) -> &Version {
        &self.0.version
    }
    fn wire_size(&self) -> usize {
        16 + self.0.version.origin.as_str().len() + self.0.value.as_ref().map_or(0, Vec::len)
    }
}

fn to_wire(key: &[u8], rec: &Rec) -> pb::Record {
    record_to_wire(0, key, &rec.0)
}

async fn apply(shared: &Arc<Shared>, records: Vec<(Vec<u8>, Record)>) -> Result<(), String> {
    if records.is_empty() {
        return Ok(());
    }
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || store.apply_batch(records))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn leaf_versions(
    shared: &Arc<Shared>,
    leaves: Vec<u16>,
) -> Result<Vec<Vec<LeafEntry>>, String> {
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || store.leaf_versions(&leaves))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

async fn read_records(
    shared: &Arc<Shared>,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<(Vec<u8>, Rec)>, String> {
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(r) = store.get(&key)? {
                out.push((key, Rec(r)));
            }
        }
        Ok::<_, vergent_storage::Error>(out)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Keeps a session under the byte rate: sleeps once it is ahead of it.
struct Pacer {
    start: Instant,
    sent: u64,
    rate: u64,
}

impl Pacer {
    fn new(rate: u64) -> Self {
        Self {
            start: Instant::now(),
            sent: 0,
            rate,
        }
    }

    async fn pace(&mut self, bytes: usize) {
        self.sent += bytes as u64;
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        if let Some(ahead) = due.checked_sub(self.start.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
}

fn message_to_wire(msg: ToResponder<Rec>) -> Body {
    match msg {
        ToResponder::Compare {
            level,
            parents,
            hashes,
        } => Body::RepairCompare(pb::RepairCompare {
            level: u32::from(level),
            parents,
            hashes,
        }),
        ToResponder::Leaves { push, leaves } => Body::RepairLeaves(pb::RepairLeaves {
            push: push.iter().map(|(k, r)| to_wire(k, r)).collect(),
            leaves: leaves
                .into_iter()
                .map(|(leaf, entries)| pb::RepairLeaf {
                    leaf: u32::from(leaf),
                    entries: entries
                        .into_iter()
                        .map(|e| pb::LeafEntry {
                            key: e.key,
                            hlc: e.version.hlc.as_u64(),
                            origin: e.version.origin.to_string(),
                            tombstone: e.tombstone,
                        })
                        .collect(),
                })
                .collect(),
        }),
    }
}

/// Receives one frame, adding its size to `bytes`.
async fn recv(reader: &mut FrameReader, bytes: &mut u64) -> Result<Body, String> {
    match tokio::time::timeout(REPLY_TIMEOUT, reader.recv()).await {
        Ok(Ok(Some(frame))) => {
            *bytes += frame.len() as u64;
            decode(&frame).map_err(|e| e.to_string())
        }
        Ok(Ok(None)) => Err("peer closed the repair stream".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("peer did not answer in time".into()),
    }
}

/// Runs one session against `addr` as the initiator.
async fn initiate(
    shared: &Arc<Shared>,
    transport: &Transport,
    addr: SocketAddr,
) -> Result<RepairStats, String> {
    let (mut writer, mut reader) = transport
        .open_stream(addr)
        .await
        .map_err(|e| e.to_string())?;
    let open = Body::RepairOpen(pb::RepairOpen {
        node_id: shared.node_id.to_string(),
    });
    writer
        .send(&encode(open))
        .await
        .map_err(|e| e.to_string())?;
    let tree = Tree::from_leaves(shared.store.digest());
    let mut core: Initiator<Rec> = Initiator::new(RepairConfig::default(), tree);
    let mut pacer = Pacer::new(shared.repair.settings.max_bytes_per_sec);
    // Bytes on the wire, both ways (the core's own count is an estimate).
    let mut wire = 0u64;
    while let Some(out) = core.poll_output() {
        match out {
            InitiatorOutput::Send(msg) => {
                let bytes = encode(message_to_wire(msg));
                wire += bytes.len() as u64;
                pacer.pace(bytes.len()).await;
                writer.send(&bytes).await.map_err(|e| e.to_string())?;
                let reply = match recv(&mut reader, &mut wire).await? {
                    Body::RepairDiffer(d) => ToInitiator::Differ {
                        level: u8::try_from(d.level).map_err(|_| "bad level".to_string())?,
                        nodes: d.nodes,
                    },
                    Body::RepairReply(r) => {
                        let mut records = Vec::with_capacity(r.records.len());
                        for rec in r.records {
                            let (k, rec) = accept_record(shared, rec, &addr.to_string())?;
                            records.push((k, Rec(rec)));
                        }
                        ToInitiator::LeafReply {
                            handled: r.handled,
                            records,
                            want: r.want,
                        }
                    }
                    Body::RepairBusy(_) => return Err("peer is busy with other repairs".into()),
                    _ => return Err("unexpected frame in a repair session".into()),
                };
                core.handle_message(reply).map_err(|e| e.to_string())?;
            }
            InitiatorOutput::ReadLeaves(leaves) => {
                let lists = leaf_versions(shared, leaves).await?;
                core.handle_leaf_versions(lists);
            }
            InitiatorOutput::Apply(records) => {
                apply(shared, records.into_iter().map(|(k, r)| (k, r.0)).collect()).await?;
            }
            InitiatorOutput::ReadRecords(keys) => {
                let records = read_records(shared, keys).await?;
                core.handle_records(records);
            }
            InitiatorOutput::Done(mut stats) => {
                let _ = writer.finish();
                stats.bytes = wire;
                return Ok(stats);
            }
        }
    }
    Err("repair session stalled".into())
}

/// Answers one repair session opened by `peer_id`.
pub(super) async fn serve(
    shared: Arc<Shared>,
    peer_id: String,
    mut writer: FrameWriter,
    mut reader: FrameReader,
) {
    // Two nodes that start sessions against each other at once (both saw
    // the other join) would do the work twice: the smaller id's session wins.
    let crossing = shared
        .repair
        .outbound
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_deref()
        == Some(peer_id.as_str())
        && shared.node_id.as_str() < peer_id.as_str();
    let permit = if crossing {
        None
    } else {
        shared.repair.inbound.clone().try_acquire_owned().ok()
    };
    let Some(_permit) = permit else {
        debug!(peer_id = %peer_id, crossing, "refusing a repair session: busy");
        let _ = writer
            .send(&encode(Body::RepairBusy(pb::RepairBusy {})))
            .await;
        let _ = writer.finish();
        return;
    };
    let started_ms = wall_ms();
    match respond(&shared, &peer_id, &mut writer, &mut reader).await {
        Ok(stats) => {
            log_session(&peer_id, "answered", &stats);
            shared.repair.record(&peer_id, started_ms, Ok(&stats));
        }
        Err(e) => {
            debug!(peer_id = %peer_id, error = %e, "repair session from peer ended early");
            shared.repair.record(&peer_id, started_ms, Err(&e));
        }
    }
}

async fn respond(
    shared: &Arc<Shared>,
    peer_id: &str,
    writer: &mut FrameWriter,
    reader: &mut FrameReader,
) -> Result<RepairStats, String> {
    let tree = Tree::from_leaves(shared.store.digest());
    let horizon = tombstone_horizon(shared);
    let mut stats = RepairStats::default();
    let mut pacer = Pacer::new(shared.repair.settings.max_bytes_per_sec);
    loop {
        let body = recv(reader, &mut stats.bytes).await?;
        let reply = match body {
            Body::RepairCompare(c) => {
                let level = u8::try_from(c.level).map_err(|_| "bad level".to_string())?;
                stats.hashes_compared += c.hashes.len() as u64;
                let nodes = respond_compare(&tree, level, &c.parents, &c.hashes)
                    .map_err(|e| e.to_string())?;
                if usize::from(level) == usize::from(vergent_types::digest::DEPTH) {
                    stats.differing_leaves = nodes.len() as u64;
                }
                Body::RepairDiffer(pb::RepairDiffer {
                    level: c.level,
                    nodes,
                })
            }
            Body::RepairLeaves(l) => {
                let last = l.leaves.is_empty();
                let mut push = Vec::with_capacity(l.push.len());
                for r in l.push {
                    push.push(accept_record(shared, r, peer_id)?);
                }
                stats.records_received += push.len() as u64;
                apply(shared, push).await?;
                let mut ids = Vec::with_capacity(l.leaves.len());
                let mut theirs = Vec::with_capacity(l.leaves.len());
                for leaf in l.leaves {
                    let id = u16::try_from(leaf.leaf)
                        .ok()
                        .filter(|&id| usize::from(id) < LEAVES)
                        .ok_or_else(|| format!("no leaf {}", leaf.leaf))?;
                    let mut entries = Vec::with_capacity(leaf.entries.len());
                    for e in leaf.entries {
                        if leaf_of(&e.key) != id {
                            return Err(format!("key listed under leaf {id}, not its own"));
                        }
                        let origin = NodeId::new(e.origin).map_err(|e| e.to_string())?;
                        entries.push(LeafEntry {
                            key: e.key,
                            version: Version::new(Timestamp::from_u64(e.hlc), origin),
                            tombstone: e.tombstone,
                        });
                    }
                    ids.push(id);
                    theirs.push(entries);
                }
                let mine = leaf_versions(shared, ids).await?;
                let mut reply = ReplyBuilder::new(RepairConfig::default().reply_budget_bytes);
                for (mine, theirs) in mine.iter().zip(&theirs) {
                    if !reply.has_room() {
                        break;
                    }
                    let plan = reconcile(mine, theirs, horizon);
                    let records = read_records(shared, plan.send).await?;
                    stats.records_sent += records.len() as u64;
                    reply.add_leaf(records, plan.want);
                }
                let ToInitiator::LeafReply {
                    handled,
                    records,
                    want,
                } = reply.finish()
                else {
                    unreachable!("the builder makes leaf replies");
                };
                let body = Body::RepairReply(pb::RepairReply {
                    handled,
                    records: records.iter().map(|(k, r)| to_wire(k, r)).collect(),
                    want,
                });
                if last {
                    let bytes = encode(body);
                    stats.bytes += bytes.len() as u64;
                    writer.send(&bytes).await.map_err(|e| e.to_string())?;
                    let _ = writer.finish();
                    return Ok(stats);
                }
                body
            }
            _ => return Err("unexpected frame in a repair session".into()),
        };
        let bytes = encode(reply);
        stats.bytes += bytes.len() as u64;
        pacer.pace(bytes.len()).await;
        writer.send(&bytes).await.map_err(|e| e.to_string())?;
    }
}

fn log_session(peer_id: &str, how: &str, s: &RepairStats) {
    if s.differing_leaves > 0 {
        info!(
            peer_id,
            how,
            differing_buckets = s.differing_leaves,
            keys_received = s.records_received,
            keys_sent = s.records_sent,
            bytes = s.bytes,
            "repair session repaired differences"
        );
    } else {
        debug!(
            peer_id,
            how,
            bytes = s.bytes,
            "repair session: replicas identical"
        );
    }
}

/// Tombstones older than this are not handed to a side that lacks the key.
fn tombstone_horizon(shared: &Shared) -> Timestamp {
    let grace = shared.repair.settings.tombstone_grace.as_millis() as u64;
    Timestamp::new(shared.clock.physical_ms().saturating_sub(grace), 0)
}

/// The live member to repair with next: the one tried longest ago.
fn pick_peer(shared: &Shared) -> Option<(String, String)> {
    let members = shared.members_view();
    let history = shared.repair.lock();
    members
        .into_iter()
        .filter(|m| m.id != shared.node_id.as_str() && m.state == State::Alive)
        .min_by_key(|m| history.get(&m.id).map_or(0, |p| p.last_attempt_ms))
        .map(|m| (m.id, m.addr))
}

/// Starts repair sessions: at start, when a member joins or returns, and
/// every interval (with jitter); persists that this node is alive.
pub(super) async fn run_scheduler(
    shared: Arc<Shared>,
    transport: Transport,
    shutdown: CancellationToken,
) {
    let settings = shared.repair.settings.clone();
    let alive_every =
        (settings.tombstone_grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut alive_written: Option<Instant> = None;
    loop {
        if alive_written.is_none_or(|t| t.elapsed() >= alive_every) {
            if let Err(e) = shared
                .store
                .put_meta(LAST_ALIVE_META, &wall_ms().to_be_bytes())
            {
                warn!(error = %e, "cannot record that the node is alive");
            }
            alive_written = Some(Instant::now());
        }
        let mut repaired = false;
        if let Some((peer_id, addr)) = pick_peer(&shared) {
            shared.repair.started_any.store(true, Ordering::Relaxed);
            repaired = session_with(&shared, &transport, &peer_id, &addr, &shutdown).await;
        }
        let bootstrapping = *shared.repair.bootstrapping.borrow();
        if repaired && bootstrapping {
            info!("bootstrap complete: this node holds its peers' data");
            shared.repair.bootstrapping.send_replace(false);
        }
        let wait = if bootstrapping && !repaired {
            BOOTSTRAP_RETRY
        } else {
            settings
                .interval
                .mul_f64(rand::rng().random_range(0.75..1.25))
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = shared.repair.trigger.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn session_with(
    shared: &Arc<Shared>,
    transport: &Transport,
    peer_id: &str,
    addr: &str,
    shutdown: &CancellationToken,
) -> bool {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        debug!(
            peer_id,
            addr, "cannot repair with a member whose address does not parse"
        );
        return false;
    };
    let started_ms = wall_ms();
    *shared
        .repair
        .outbound
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(peer_id.to_string());
    let outcome = tokio::select! {
        () = shutdown.cancelled() => return false,
        r = tokio::time::timeout(SESSION_TIMEOUT, initiate(shared, transport, addr)) => {
            r.unwrap_or_else(|_| Err("session took too long; the next one resumes".into()))
        }
    };
    *shared
        .repair
        .outbound
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = None;
    match outcome {
        Ok(stats) => {
            log_session(peer_id, "started", &stats);
            shared.repair.record(peer_id, started_ms, Ok(&stats));
            true
        }
        Err(e) => {
            debug!(peer_id, error = %e, "repair session failed");
            shared.repair.record(peer_id, started_ms, Err(&e));
            false
        }
    }
}

/// The HLC physical time below which tombstones may be purged, or `None`
/// while some member that counts has not completed a session with us.
fn purge_horizon_ms(shared: &Shared, now_ms: u64) -> Option<u64> {
    let grace = shared.repair.settings.tombstone_grace.as_millis() as u64;
    let mut horizon = now_ms.checked_sub(grace)?;
    let members = shared.members_view();
    let history = shared.repair.lock();
    for m in members.iter().filter(|m| m.id != shared.node_id.as_str()) {
        let gone_long = matches!(m.state, State::Dead | State::Left)
            && m.since_ms.saturating_add(grace) < now_ms;
        if gone_long {
            continue;
        }
        let synced = history.get(&m.id).map_or(0, |p| p.synced_from_ms);
        if synced == 0 {
            return None;
        }
        horizon = horizon.min(synced);
    }
    Some(horizon)
}

/// Periodically removes tombstones and expired values every replica holds.
pub(super) async fn run_purge(shared: Arc<Shared>, shutdown: CancellationToken) {
    let every = (shared.repair.settings.tombstone_grace / 4)
        .clamp(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let clustered = !shared.peers.is_empty();
        if clustered
            && (!shared.repair.started_any.load(Ordering::Relaxed)
                || shared.started.elapsed() < PURGE_AFTER_UPTIME)
        {
            continue;
        }
        let Some(horizon) = purge_horizon_ms(&shared, shared.clock.physical_ms()) else {
            continue;
        };
        let store = shared.store.clone();
        let result = tokio::task::spawn_blocking(move || purge_below(&store, horizon)).await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                shared.repair.purged.fetch_add(n, Ordering::Relaxed);
                info!(
                    purged = n,
                    horizon_ms = horizon,
                    "purged tombstones every replica holds"
                );
            }
            Ok(Err(e)) => warn!(error = %e, "tombstone purge failed"),
            Err(e) => warn!(error = %e, "tombstone purge task failed"),
        }
    }
}

fn purge_below(
    store: &vergent_storage::Store,
    horizon_ms: u64,
) -> Result<u64, vergent_storage::Error> {
    let eligible = |r: &Record| {
        r.version.hlc.physical_ms() < horizon_ms
            && (r.is_tombstone() || r.expires_at_ms.is_some_and(|at| at < horizon_ms))
    };
    let mut purged = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(b"", after.as_deref(), 1000, eligible)?;
        for (key, record) in &page {
            if store.purge(key, &record.version)? {
                purged += 1;
            }
        }
        if page.len() < 1000 {
            return Ok(purged);
        }
        after = page.last().map(|(k, _)| k.clone());
    }
}

/// Refuses to start a node that was down longer than the tombstone grace
/// period with its old data: its peers may have purged tombstones of keys
/// it still holds, which would come back.
pub(crate) fn check_stale_rejoin(
    store: &vergent_storage::Store,
    grace: Duration,
    now_ms: u64,
) -> Result<(), String> {
    let Some(bytes) = store.get_meta(LAST_ALIVE_META).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let Ok(raw) = <[u8; 8]>::try_from(bytes.as_slice()) else {
        return Ok(());
    };
    let last = u64::from_be_bytes(raw);
    let down = now_ms.saturating_sub(last);
    if down > grace.as_millis() as u64 && !store.is_empty().map_err(|e| e.to_string())? {
        return Err(format!(
            "this node was last running {} ago, longer than the tombstone grace period ({}); \
             its peers may have purged deletes it never saw, so its data could bring deleted \
             keys back. Wipe the data dir (the node rebuilds from its peers) or, if you know \
             no key was deleted meanwhile, start it with --allow-stale-rejoin",
            humantime::format_duration(Duration::from_secs(down / 1000)),
            humantime::format_duration(grace)
        ));
    }
    Ok(())
}
