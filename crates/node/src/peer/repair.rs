//! Anti-entropy: drives the sans-IO repair core (`vergent_replication::repair`)
//! over QUIC streams, picks whom to repair with from gossip, and tracks
//! bootstrap. Tombstone purge is in `purge.rs`.
//!
//! Bootstrap: a node that starts empty with peers refuses reads until it
//! completes a session with a peer that is serving (not bootstrapping
//! itself), or, when the cluster is forming, until every seed and every
//! member it knows answered a session while bootstrapping too (a fresh
//! cluster: nobody holds data yet).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
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

use super::accept_records;
use super::convert::{decode, encode, record_to_wire};
use crate::clock::wall_ms;
use crate::node::Shared;

/// How long one reply may take before the session is abandoned.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a whole session may run; the next one resumes where it stopped.
const SESSION_TIMEOUT: Duration = Duration::from_secs(600);
/// Retry delay while bootstrapping and no peer could be repaired with.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(1);

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
    /// How long a member may go unseen before it stops holding purges back
    /// and is refused until it comes back wiped (zero: never).
    pub member_expiry: Duration,
}

impl Default for RepairSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            tombstone_grace: Duration::from_secs(24 * 3600),
            max_inbound_sessions: 2,
            max_bytes_per_sec: 64 << 20,
            member_expiry: Duration::from_secs(72 * 3600),
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
    /// True until a node that started empty completes a session with a
    /// serving peer (or the cluster is found to be forming).
    pub(crate) bootstrapping: watch::Sender<bool>,
    /// Peers that answered a completed session while bootstrapping
    /// themselves, for the forming-cluster rule.
    bootstrapping_peers: Mutex<BTreeSet<String>>,
    /// Bootstrap progress: differing buckets of the current session, and
    /// how many of them are settled.
    pub(crate) progress: (AtomicU64, AtomicU64),
    /// A session with a serving peer completed (bootstrap may end).
    serving_peer_synced: std::sync::atomic::AtomicBool,
    inbound: Arc<Semaphore>,
    /// Wakes the scheduler early (a member joined or came back).
    pub(crate) trigger: Notify,
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
            bootstrapping_peers: Mutex::new(BTreeSet::new()),
            progress: (AtomicU64::new(0), AtomicU64::new(0)),
            serving_peer_synced: std::sync::atomic::AtomicBool::new(false),
            trigger: Notify::new(),
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

    /// Whether reads are refused, and how far bootstrap is ("N of M
    /// differing buckets repaired").
    pub(crate) fn bootstrap_progress(&self) -> Option<(u64, u64)> {
        (*self.bootstrapping.borrow()).then(|| {
            (
                self.progress.1.load(Ordering::Relaxed),
                self.progress.0.load(Ordering::Relaxed),
            )
        })
    }

    fn record(&self, peer: &str, outcome: Result<&RepairStats, &str>) {
        let mut peers = self.lock();
        let p = peers.entry(peer.to_string()).or_default();
        p.last_attempt_ms = wall_ms();
        match outcome {
            Ok(s) => {
                p.last_repair_ms = wall_ms();
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

/// The records a peer sent that pass this node's checks; each refused one
/// is skipped alone (counted and logged), never the whole session.
fn accepted(shared: &Shared, records: Vec<pb::Record>, from: &str) -> Vec<(Vec<u8>, Rec)> {
    accept_records(shared, records, from)
        .into_iter()
        .map(|(k, r)| (k, Rec(r)))
        .collect()
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
        ToResponder::Leaves { push, leaves, more } => Body::RepairLeaves(pb::RepairLeaves {
            more,
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

/// How a session this node started went.
struct Outcome {
    stats: RepairStats,
    /// The responder said it was bootstrapping itself.
    peer_bootstrapping: bool,
}

/// Runs one session against `addr` as the initiator.
async fn initiate(
    shared: &Arc<Shared>,
    transport: &Transport,
    addr: SocketAddr,
) -> Result<Outcome, String> {
    let (mut writer, mut reader) = transport
        .open_stream(addr)
        .await
        .map_err(|e| e.to_string())?;
    let open = Body::RepairOpen(pb::RepairOpen {
        node_id: shared.node_id.to_string(),
        store_id: shared.store_id,
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
    let mut peer_bootstrapping = false;
    let bootstrapping = *shared.repair.bootstrapping.borrow();
    while let Some(out) = core.poll_output() {
        match out {
            InitiatorOutput::Send(msg) => {
                let bytes = encode(message_to_wire(msg));
                wire += bytes.len() as u64;
                pacer.pace(bytes.len()).await;
                writer.send(&bytes).await.map_err(|e| e.to_string())?;
                let reply = match recv(&mut reader, &mut wire).await? {
                    Body::RepairDiffer(d) => {
                        peer_bootstrapping |= d.bootstrapping;
                        ToInitiator::Differ {
                            level: u8::try_from(d.level).map_err(|_| "bad level".to_string())?,
                            nodes: d.nodes,
                        }
                    }
                    Body::RepairReply(r) => ToInitiator::LeafReply {
                        handled: r.handled,
                        records: accepted(shared, r.records, &addr.to_string()),
                        want: r.want,
                    },
                    Body::RepairBusy(_) => return Err("peer is busy with other repairs".into()),
                    Body::Refused(r) => {
                        if r.fenced {
                            shared.fence(&r.reason);
                        }
                        return Err(format!("refused: {}", r.reason));
                    }
                    _ => return Err("unexpected frame in a repair session".into()),
                };
                core.handle_message(reply).map_err(|e| e.to_string())?;
                if bootstrapping {
                    let (total, left) = core.progress();
                    shared.repair.progress.0.store(total, Ordering::Relaxed);
                    shared
                        .repair
                        .progress
                        .1
                        .store(total.saturating_sub(left), Ordering::Relaxed);
                }
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
                return Ok(Outcome {
                    stats,
                    peer_bootstrapping,
                });
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
    match respond(&shared, &peer_id, &mut writer, &mut reader).await {
        Ok(stats) => {
            log_session(&peer_id, "answered", &stats);
            shared.repair.record(&peer_id, Ok(&stats));
        }
        Err(e) => {
            debug!(peer_id = %peer_id, error = %e, "repair session from peer ended early");
            shared.repair.record(&peer_id, Err(&e));
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
                    bootstrapping: *shared.repair.bootstrapping.borrow(),
                })
            }
            Body::RepairLeaves(l) => {
                let last = l.leaves.is_empty() && !l.more;
                let push = accept_records(shared, l.push, peer_id);
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
                    reply.add_leaf(records, plan.want);
                }
                let ToInitiator::LeafReply {
                    handled,
                    records,
                    want,
                } = reply.finish()
                else {
                    return Err("the reply builder made something else than a leaf reply".into());
                };
                stats.records_sent += records.len() as u64;
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
/// every interval (with jitter); ends bootstrap by the rule in the module
/// docs.
pub(super) async fn run_scheduler(
    shared: Arc<Shared>,
    transport: Transport,
    shutdown: CancellationToken,
) {
    let settings = shared.repair.settings.clone();
    loop {
        let mut repaired = false;
        if let Some((peer_id, addr)) = pick_peer(&shared) {
            repaired = session_with(&shared, &transport, &peer_id, &addr, &shutdown).await;
        }
        let bootstrapping = *shared.repair.bootstrapping.borrow();
        if bootstrapping && bootstrap_done(&shared) {
            info!("bootstrap complete: this node holds its peers' data");
            shared.repair.bootstrapping.send_replace(false);
        }
        let wait = if bootstrapping && !repaired {
            BOOTSTRAP_RETRY
        } else if *shared.repair.bootstrapping.borrow() {
            // Sessions went through, but not with a serving peer yet.
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

/// Whether a bootstrapping node may serve reads: it completed a session
/// with a serving peer (recorded by [`session_with`]), or the cluster is
/// forming (see [`cluster_forming`]).
fn bootstrap_done(shared: &Shared) -> bool {
    if shared.repair.serving_peer_synced.load(Ordering::Relaxed) {
        return true;
    }
    let answered = shared
        .repair
        .bootstrapping_peers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let known: BTreeSet<String> = shared
        .members_view()
        .into_iter()
        .map(|m| m.id)
        .chain(shared.roster.ids())
        .filter(|id| id != shared.node_id.as_str())
        .collect();
    let seeds = shared
        .peers
        .iter()
        .filter(|p| **p != shared.advertise.to_string())
        .count();
    cluster_forming(&answered, &known, seeds)
}

/// The forming-cluster rule: every member this node knows of (gossip and
/// roster) answered a completed session while bootstrapping itself, and it
/// knows at least as many members as it has seeds (so every seed was heard
/// from). Nobody holds data yet, so there is nothing to wait for; a member
/// that holds data, or one not heard from, keeps the node bootstrapping.
pub(crate) fn cluster_forming(
    answered_bootstrapping: &BTreeSet<String>,
    known: &BTreeSet<String>,
    seeds: usize,
) -> bool {
    !known.is_empty() && known.len() >= seeds && known.is_subset(answered_bootstrapping)
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
        Ok(Outcome {
            stats,
            peer_bootstrapping,
        }) => {
            log_session(peer_id, "started", &stats);
            shared.repair.record(peer_id, Ok(&stats));
            if peer_bootstrapping {
                shared
                    .repair
                    .bootstrapping_peers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(peer_id.to_string());
            } else if stats.unsettled_leaves == 0 {
                shared
                    .repair
                    .serving_peer_synced
                    .store(true, Ordering::Relaxed);
            }
            true
        }
        Err(e) => {
            debug!(peer_id, error = %e, "repair session failed");
            shared.repair.record(peer_id, Err(&e));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_forming_cluster_is_one_where_every_known_member_is_bootstrapping_too() {
        // Three fresh nodes, each seeded with the other two.
        assert!(cluster_forming(&ids(&["b", "c"]), &ids(&["b", "c"]), 2));
        // One seed not heard from yet: it may hold the data.
        assert!(!cluster_forming(&ids(&["b"]), &ids(&["b"]), 2));
        // A member that answered as serving (or not at all) holds data.
        assert!(!cluster_forming(&ids(&["b"]), &ids(&["b", "c"]), 2));
        // Alone, with no member known, there is nobody to form with.
        assert!(!cluster_forming(&ids(&[]), &ids(&[]), 0));
    }
}
