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
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use vergent_gossip::State;
use vergent_hlc::Timestamp;
use vergent_replication::repair::{
    Initiator, InitiatorOutput, PeerCandidate, RepairConfig, RepairRecord, RepairStats, Responder,
    ResponderOutput, ToInitiator, ToResponder, next_peer,
};
use vergent_storage::Record;
use vergent_transport::{FrameReader, FrameWriter, Transport};
use vergent_types::digest::{LeafEntry, Tree};
use vergent_types::{NodeId, Version};
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::PeerCtx;
use super::convert::{decode, encode};
use super::{PeerError, accept_records};
use crate::clock::wall_ms;
use crate::kv::records::to_wire as record_to_wire;
use crate::status::PeerRepair;

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

/// Anti-entropy state shared by the scheduler, the responder and `status`.
#[derive(Debug)]
pub(crate) struct RepairState {
    pub(crate) settings: RepairSettings,
    peers: Mutex<HashMap<String, PeerRepair>>,
    /// Peers that answered a completed session while bootstrapping
    /// themselves, for the forming-cluster rule.
    bootstrapping_peers: Mutex<BTreeSet<String>>,
    /// A session with a serving peer completed (bootstrap may end).
    serving_peer_synced: std::sync::atomic::AtomicBool,
    inbound: Arc<Semaphore>,
    /// Wakes the scheduler early (a member joined or came back).
    pub(crate) trigger: Notify,
    /// The peer this node is running a session against right now, if any.
    outbound: Mutex<Option<String>>,
}

impl RepairState {
    pub(crate) fn new(settings: RepairSettings) -> Self {
        Self {
            inbound: Arc::new(Semaphore::new(settings.max_inbound_sessions.max(1))),
            settings,
            peers: Mutex::new(HashMap::new()),
            bootstrapping_peers: Mutex::new(BTreeSet::new()),
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

async fn apply(ctx: &Arc<PeerCtx>, records: Vec<(Vec<u8>, Record)>) -> Result<(), PeerError> {
    if records.is_empty() {
        return Ok(());
    }
    let store = ctx.store.clone();
    tokio::task::spawn_blocking(move || store.apply_batch(records))
        .await
        .map_err(|e| PeerError::Task(e.to_string()))??;
    Ok(())
}

/// The records a peer sent that pass this node's checks; each refused one
/// is skipped alone (counted and logged), never the whole session.
fn accepted(ctx: &PeerCtx, records: Vec<pb::Record>, from: &str) -> Vec<(Vec<u8>, Rec)> {
    accept_records(ctx, records, from)
        .into_iter()
        .map(|(k, r)| (k, Rec(r)))
        .collect()
}

async fn leaf_versions(
    ctx: &Arc<PeerCtx>,
    leaves: Vec<u16>,
) -> Result<Vec<Vec<LeafEntry>>, PeerError> {
    let store = ctx.store.clone();
    Ok(
        tokio::task::spawn_blocking(move || store.leaf_versions(&leaves))
            .await
            .map_err(|e| PeerError::Task(e.to_string()))??,
    )
}

async fn read_records(
    ctx: &Arc<PeerCtx>,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<(Vec<u8>, Rec)>, PeerError> {
    let store = ctx.store.clone();
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
    .map_err(|e| PeerError::Task(e.to_string()))?
    .map_err(PeerError::from)
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
async fn recv(reader: &mut FrameReader, bytes: &mut u64) -> Result<Body, PeerError> {
    match tokio::time::timeout(REPLY_TIMEOUT, reader.recv()).await {
        Ok(Ok(Some(frame))) => {
            *bytes += frame.len() as u64;
            Ok(decode(&frame)?)
        }
        Ok(Ok(None)) => Err(PeerError::Closed("the repair stream")),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(PeerError::Timeout("repair message")),
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
    ctx: &Arc<PeerCtx>,
    transport: &Transport,
    addr: SocketAddr,
) -> Result<Outcome, PeerError> {
    let (mut writer, mut reader) = transport.open_stream(addr).await?;
    let open = Body::RepairOpen(pb::RepairOpen {
        node_id: ctx.identity.node_id.to_string(),
        store_id: ctx.identity.store_id,
    });
    writer.send(&encode(open)).await?;
    let tree = Tree::from_leaves(ctx.store.digest());
    let mut core: Initiator<Rec> = Initiator::new(RepairConfig::default(), tree);
    let mut pacer = Pacer::new(ctx.repair.settings.max_bytes_per_sec);
    // Bytes on the wire, both ways (the core's own count is an estimate).
    let mut wire = 0u64;
    let mut peer_bootstrapping = false;
    let bootstrapping = ctx.availability.bootstrapping();
    while let Some(out) = core.poll_output() {
        match out {
            InitiatorOutput::Send(msg) => {
                let bytes = encode(message_to_wire(msg));
                wire += bytes.len() as u64;
                pacer.pace(bytes.len()).await;
                writer.send(&bytes).await?;
                let reply = match recv(&mut reader, &mut wire).await? {
                    Body::RepairDiffer(d) => {
                        peer_bootstrapping |= d.bootstrapping;
                        ToInitiator::Differ {
                            level: u8::try_from(d.level).map_err(|_| {
                                PeerError::Protocol(format!("no level {}", d.level))
                            })?,
                            nodes: d.nodes,
                        }
                    }
                    Body::RepairReply(r) => ToInitiator::LeafReply {
                        handled: r.handled,
                        records: accepted(ctx, r.records, &addr.to_string()),
                        want: r.want,
                    },
                    Body::RepairBusy(_) => return Err(PeerError::Busy),
                    Body::Refused(r) => {
                        if r.fenced {
                            ctx.fence(&r.reason);
                        }
                        return Err(PeerError::Refused(r.reason));
                    }
                    _ => {
                        return Err(PeerError::Protocol(
                            "unexpected frame in a repair session".into(),
                        ));
                    }
                };
                core.handle_message(reply)?;
                if bootstrapping {
                    let (total, left) = core.progress();
                    ctx.availability
                        .set_bootstrap_progress(total.saturating_sub(left), total);
                }
            }
            InitiatorOutput::ReadLeaves(leaves) => {
                let lists = leaf_versions(ctx, leaves).await?;
                core.handle_leaf_versions(lists);
            }
            InitiatorOutput::Apply(records) => {
                apply(ctx, records.into_iter().map(|(k, r)| (k, r.0)).collect()).await?;
            }
            InitiatorOutput::ReadRecords(keys) => {
                let records = read_records(ctx, keys).await?;
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
    Err(PeerError::Protocol("the repair session stalled".into()))
}

/// Answers one repair session opened by `peer_id`.
pub(super) async fn serve(
    ctx: Arc<PeerCtx>,
    peer_id: String,
    mut writer: FrameWriter,
    mut reader: FrameReader,
) {
    // Two nodes that start sessions against each other at once (both saw
    // the other join) would do the work twice: the smaller id's session wins.
    let crossing = ctx
        .repair
        .outbound
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_deref()
        == Some(peer_id.as_str())
        && ctx.identity.node_id.as_str() < peer_id.as_str();
    let permit = if crossing {
        None
    } else {
        ctx.repair.inbound.clone().try_acquire_owned().ok()
    };
    let Some(_permit) = permit else {
        debug!(peer_id = %peer_id, crossing, "refusing a repair session: busy");
        let _ = writer
            .send(&encode(Body::RepairBusy(pb::RepairBusy {})))
            .await;
        let _ = writer.finish();
        return;
    };
    match respond(&ctx, &peer_id, &mut writer, &mut reader).await {
        Ok(stats) => {
            log_session(&peer_id, "answered", &stats);
            ctx.repair.record(&peer_id, Ok(&stats));
        }
        Err(e) => {
            debug!(peer_id = %peer_id, error = %e, "repair session from peer ended early");
            ctx.repair.record(&peer_id, Err(&e.to_string()));
        }
    }
}

async fn respond(
    ctx: &Arc<PeerCtx>,
    peer_id: &str,
    writer: &mut FrameWriter,
    reader: &mut FrameReader,
) -> Result<RepairStats, PeerError> {
    let tree = Tree::from_leaves(ctx.store.digest());
    let mut core: Responder<Rec> =
        Responder::new(RepairConfig::default(), tree, tombstone_horizon(ctx));
    let mut pacer = Pacer::new(ctx.repair.settings.max_bytes_per_sec);
    // Bytes on the wire, both ways (the core's own count is an estimate).
    let mut wire = 0u64;
    loop {
        let msg = match recv(reader, &mut wire).await? {
            Body::RepairCompare(c) => ToResponder::Compare {
                level: u8::try_from(c.level)
                    .map_err(|_| PeerError::Protocol(format!("no level {}", c.level)))?,
                parents: c.parents,
                hashes: c.hashes,
            },
            Body::RepairLeaves(l) => ToResponder::Leaves {
                push: accepted(ctx, l.push, peer_id),
                leaves: leaves_from_wire(l.leaves)?,
                more: l.more,
            },
            _ => {
                return Err(PeerError::Protocol(
                    "unexpected frame in a repair session".into(),
                ));
            }
        };
        core.handle_message(msg)?;
        while let Some(out) = core.poll_output() {
            match out {
                ResponderOutput::Send(reply) => {
                    let bytes = encode(reply_to_wire(reply, ctx.availability.bootstrapping()));
                    wire += bytes.len() as u64;
                    pacer.pace(bytes.len()).await;
                    writer.send(&bytes).await?;
                }
                ResponderOutput::Apply(records) => {
                    apply(ctx, records.into_iter().map(|(k, r)| (k, r.0)).collect()).await?;
                }
                ResponderOutput::ReadLeaves(leaves) => {
                    let lists = leaf_versions(ctx, leaves).await?;
                    core.handle_leaf_versions(lists);
                }
                ResponderOutput::ReadRecords(keys) => {
                    let records = read_records(ctx, keys).await?;
                    core.handle_records(records);
                }
                ResponderOutput::Done(mut stats) => {
                    let _ = writer.finish();
                    stats.bytes = wire;
                    return Ok(stats);
                }
            }
        }
    }
}

/// The initiator's leaf lists, as the core takes them (the core checks
/// that each leaf exists and holds only its own keys).
fn leaves_from_wire(leaves: Vec<pb::RepairLeaf>) -> Result<Vec<(u16, Vec<LeafEntry>)>, PeerError> {
    leaves
        .into_iter()
        .map(|leaf| {
            let id = u16::try_from(leaf.leaf)
                .map_err(|_| PeerError::Protocol(format!("no leaf {}", leaf.leaf)))?;
            let entries = leaf
                .entries
                .into_iter()
                .map(|e| {
                    let origin =
                        NodeId::new(e.origin).map_err(|e| PeerError::Protocol(e.to_string()))?;
                    Ok(LeafEntry {
                        key: e.key,
                        version: Version::new(Timestamp::from_u64(e.hlc), origin),
                        tombstone: e.tombstone,
                    })
                })
                .collect::<Result<_, PeerError>>()?;
            Ok((id, entries))
        })
        .collect()
}

fn reply_to_wire(msg: ToInitiator<Rec>, bootstrapping: bool) -> Body {
    match msg {
        ToInitiator::Differ { level, nodes } => Body::RepairDiffer(pb::RepairDiffer {
            level: u32::from(level),
            nodes,
            bootstrapping,
        }),
        ToInitiator::LeafReply {
            handled,
            records,
            want,
        } => Body::RepairReply(pb::RepairReply {
            handled,
            records: records.iter().map(|(k, r)| to_wire(k, r)).collect(),
            want,
        }),
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
fn tombstone_horizon(ctx: &PeerCtx) -> Timestamp {
    let grace = ctx.repair.settings.tombstone_grace.as_millis() as u64;
    Timestamp::new(ctx.clock.physical_ms().saturating_sub(grace), 0)
}

/// The member to repair with next, by [`next_peer`]: id and address.
fn pick_peer(ctx: &PeerCtx) -> Option<(String, String)> {
    let members = ctx.members_view();
    let history = ctx.repair.lock();
    let candidates = members.iter().map(|m| PeerCandidate {
        id: &m.id,
        alive: m.state == State::Alive,
        last_attempt_ms: history.get(&m.id).map_or(0, |p| p.last_attempt_ms),
    });
    let id = next_peer(ctx.identity.node_id.as_str(), candidates)?;
    members
        .iter()
        .find(|m| m.id == id)
        .map(|m| (m.id.clone(), m.addr.clone()))
}

/// Starts repair sessions: at start, when a member joins or returns, and
/// every interval (with jitter); ends bootstrap by the rule in the module
/// docs.
pub(super) async fn run_scheduler(
    ctx: Arc<PeerCtx>,
    transport: Transport,
    shutdown: CancellationToken,
) {
    let settings = ctx.repair.settings.clone();
    loop {
        let mut repaired = false;
        if let Some((peer_id, addr)) = pick_peer(&ctx) {
            repaired = session_with(&ctx, &transport, &peer_id, &addr, &shutdown).await;
        }
        let bootstrapping = ctx.availability.bootstrapping();
        if bootstrapping && bootstrap_done(&ctx) {
            info!("bootstrap complete: this node holds its peers' data");
            if !ctx.repair.serving_peer_synced.load(Ordering::Relaxed)
                && let Some(strong) = ctx.strong.get()
            {
                // Ended by the forming rule: nobody held data to catch up on.
                strong.note_forming();
            }
            ctx.availability.end_bootstrap();
        }
        let catching_up = ctx.strong.get().is_some_and(|s| s.catching_up());
        let wait = if bootstrapping && !repaired {
            BOOTSTRAP_RETRY
        } else if ctx.availability.bootstrapping() || catching_up {
            // Sessions went through, but not with (enough) serving peers yet.
            BOOTSTRAP_RETRY
        } else {
            settings
                .interval
                .mul_f64(rand::rng().random_range(0.75..1.25))
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = ctx.repair.trigger.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Whether a bootstrapping node may serve reads: it completed a session
/// with a serving peer (recorded by [`session_with`]), or the cluster is
/// forming (see [`cluster_forming`]).
fn bootstrap_done(ctx: &PeerCtx) -> bool {
    if ctx.repair.serving_peer_synced.load(Ordering::Relaxed) {
        return true;
    }
    let answered = ctx
        .repair
        .bootstrapping_peers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let known: BTreeSet<String> = ctx
        .members_view()
        .into_iter()
        .map(|m| m.id)
        .chain(ctx.roster.ids())
        .filter(|id| id != ctx.identity.node_id.as_str())
        .collect();
    let seeds = ctx
        .identity
        .peers
        .iter()
        .filter(|p| **p != ctx.identity.advertise.to_string())
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
    ctx: &Arc<PeerCtx>,
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
    *ctx.repair
        .outbound
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(peer_id.to_string());
    let outcome = tokio::select! {
        () = shutdown.cancelled() => return false,
        r = tokio::time::timeout(SESSION_TIMEOUT, initiate(ctx, transport, addr)) => {
            r.unwrap_or(Err(PeerError::Timeout("whole session; the next one resumes")))
        }
    };
    *ctx.repair
        .outbound
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = None;
    match outcome {
        Ok(Outcome {
            stats,
            peer_bootstrapping,
        }) => {
            log_session(peer_id, "started", &stats);
            ctx.repair.record(peer_id, Ok(&stats));
            if peer_bootstrapping {
                ctx.repair
                    .bootstrapping_peers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(peer_id.to_string());
            } else if stats.unsettled_leaves == 0 {
                ctx.repair
                    .serving_peer_synced
                    .store(true, Ordering::Relaxed);
                if let Some(strong) = ctx.strong.get() {
                    strong.note_synced(peer_id);
                }
            }
            true
        }
        Err(e) => {
            debug!(peer_id, error = %e, "repair session failed");
            ctx.repair.record(peer_id, Err(&e.to_string()));
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
