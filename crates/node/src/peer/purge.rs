//! Tombstone purge: the sweep that asks every roster member about the
//! tombstones past the grace period and purges what all of them confirmed,
//! and the answer to a peer's check. The rule itself is pure and tested in
//! `vergent_replication::purge`; this module only moves its inputs and
//! outputs between the store and the network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vergent_gossip::State;
use vergent_hlc::Timestamp;
use vergent_replication::purge::{CheckReply, Grace, HeldBack, PurgeGate};
use vergent_storage::{Record, Store};
use vergent_transport::{FrameReader, FrameWriter, PeerIdentity, Transport};
use vergent_types::{NodeId, Version};
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::PeerCtx;
use super::PeerError;
use super::convert::{decode, encode};
use crate::clock::wall_ms;

/// Candidates checked with one message.
const PAGE: usize = 1000;
/// How long a peer may take to answer a check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Candidates remembered between two sweeps for their second confirmation.
const GATE_CAPACITY: usize = 1 << 20;

/// What `status` shows of the purge.
#[derive(Debug, Default)]
pub(crate) struct PurgeState {
    /// Tombstones and expired values purged since start.
    pub(crate) purged: AtomicU64,
    /// Why the last sweep purged nothing, if it was held back.
    held_back: Mutex<Option<(String, u64)>>,
}

impl PurgeState {
    /// Why purges are held back and since when (wall ms), if they are.
    pub(crate) fn held_back(&self) -> Option<(String, u64)> {
        self.held_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn hold(&self, why: String, grace_ms: u64) {
        let mut held = self
            .held_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let since = match held.as_ref() {
            Some((_, since)) => *since,
            None => wall_ms(),
        };
        if wall_ms().saturating_sub(since) > grace_ms
            && held.as_ref().is_none_or(|(old, _)| *old != why)
        {
            warn!(
                reason = %why,
                "tombstone purges have been held back for longer than the grace period; \
                 deletes keep their tombstones until every member confirms them"
            );
        }
        *held = Some((why, since));
    }

    fn release(&self) {
        *self
            .held_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The node's grace period and clock bound, as the purge rule needs them.
pub(crate) fn grace(ctx: &PeerCtx) -> Grace {
    Grace {
        grace_ms: ctx.repair.settings.tombstone_grace.as_millis() as u64,
        max_offset_ms: ctx.clock.max_offset_ms(),
    }
}

/// Sweeps every quarter of the grace period (0.5 s to 60 s).
pub(super) async fn run_sweeper(
    ctx: Arc<PeerCtx>,
    transport: Transport,
    shutdown: CancellationToken,
) {
    let every = (ctx.repair.settings.tombstone_grace / 4)
        .clamp(Duration::from_millis(500), Duration::from_secs(60));
    let mut gate = PurgeGate::new(GATE_CAPACITY);
    let expiry_ms = ctx.repair.settings.member_expiry.as_millis() as u64;
    let mut last = std::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        // A fenced node is out of the cluster until wiped: its view of who
        // is gone, and its tombstones, no longer matter.
        if ctx.availability.fenced().is_some() {
            continue;
        }
        if expiry_ms > 0 {
            // Only this node's own running time counts against a member.
            let elapsed = last.elapsed().as_millis() as u64;
            last = std::time::Instant::now();
            let alive = ctx
                .members_view()
                .into_iter()
                .filter(|m| m.state == State::Alive)
                .map(|m| m.id)
                .collect();
            let worker = ctx.clone();
            // Persisting the fence syncs: off the async workers.
            let _ = tokio::task::spawn_blocking(move || {
                worker
                    .roster
                    .expire(&worker.store, &alive, elapsed, expiry_ms)
            })
            .await;
        }
        match sweep(&ctx, &transport, &mut gate).await {
            Ok(0) => {}
            Ok(n) => {
                ctx.purge.purged.fetch_add(n, Ordering::Relaxed);
                info!(purged = n, "purged tombstones every member confirmed");
            }
            Err(e) => warn!(error = %e, "tombstone purge sweep failed"),
        }
    }
}

/// One sweep; returns how many records were purged.
async fn sweep(
    ctx: &Arc<PeerCtx>,
    transport: &Transport,
    gate: &mut PurgeGate,
) -> Result<u64, PeerError> {
    let grace = grace(ctx);
    let roster = ctx.roster.ids();
    let view = ctx.members_view();
    let mut targets = BTreeMap::new();
    let mut unreachable = Vec::new();
    for id in &roster {
        let addr = view
            .iter()
            .find(|m| &m.id == id && m.state == State::Alive)
            .and_then(|m| m.addr.parse::<SocketAddr>().ok());
        match addr {
            Some(a) => {
                targets.insert(id.clone(), a);
            }
            None => unreachable.push(id.clone()),
        }
    }
    let mut purged = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let now = ctx.clock.physical_ms();
        let store = ctx.store.clone();
        let from = after.clone();
        let page = tokio::task::spawn_blocking(move || {
            let mut page = store.scan(b"", from.as_deref(), PAGE, |r: &Record| {
                grace.purgeable(
                    now,
                    r.version.hlc.physical_ms(),
                    r.is_tombstone(),
                    r.expires_at_ms,
                )
            })?;
            let scanned = (page.len(), page.last().map(|(k, _)| k.clone()));
            page.retain(|(k, _)| !pending_proposal(&store, k));
            Ok::<_, vergent_storage::Error>((page, scanned))
        })
        .await
        .map_err(|e| PeerError::Task(e.to_string()))??;
        let (page, (scanned, scanned_last)) = page;
        if scanned == 0 {
            break;
        }
        if page.is_empty() {
            after = scanned_last;
            if scanned < PAGE {
                break;
            }
            continue;
        }
        if !unreachable.is_empty() {
            ctx.purge.hold(
                format!("waiting for {} (not reachable)", unreachable.join(", ")),
                grace.grace_ms,
            );
            gate.abort_sweep();
            return Ok(purged);
        }
        let entries: Vec<pb::LeafEntry> = page
            .iter()
            .map(|(k, r)| pb::LeafEntry {
                key: k.clone(),
                hlc: r.version.hlc.as_u64(),
                origin: r.version.origin.to_string(),
                tombstone: r.is_tombstone(),
            })
            .collect();
        let checks = targets.iter().map(|(id, addr)| {
            let entries = entries.clone();
            async move { (id.clone(), check(ctx, transport, *addr, id, entries).await) }
        });
        let mut replies = BTreeMap::new();
        let mut failed = Vec::new();
        for (id, reply) in futures::future::join_all(checks).await {
            match reply {
                Ok(r) => {
                    replies.insert(id, r);
                }
                Err(e) => {
                    debug!(peer_id = %id, error = %e, "purge check failed");
                    failed.push(format!("{id} ({e})"));
                }
            }
        }
        let candidates: Vec<(Vec<u8>, Version)> = page
            .iter()
            .map(|(k, r)| (k.clone(), r.version.clone()))
            .collect();
        match gate.page(
            ctx.identity.node_id.as_str(),
            &candidates,
            &roster,
            &replies,
        ) {
            Ok(indices) => {
                let store = ctx.store.clone();
                let doomed: Vec<(Vec<u8>, Version)> =
                    indices.into_iter().map(|i| candidates[i].clone()).collect();
                purged += tokio::task::spawn_blocking(move || {
                    let mut n = 0;
                    for (key, version) in doomed {
                        if store.purge(&key, &version)? {
                            n += 1;
                        }
                    }
                    Ok::<_, vergent_storage::Error>(n)
                })
                .await
                .map_err(|e| PeerError::Task(e.to_string()))??;
            }
            Err(HeldBack {
                unanswered,
                unknown,
            }) => {
                for id in &unknown {
                    ctx.roster.learn(&ctx.store, id, None, None, false);
                }
                let why = if unknown.is_empty() {
                    format!("waiting for {}", failed.join(", "))
                } else {
                    format!(
                        "learning of {} from peers{}",
                        unknown.join(", "),
                        if unanswered.is_empty() {
                            String::new()
                        } else {
                            format!("; waiting for {}", unanswered.join(", "))
                        }
                    )
                };
                ctx.purge.hold(why, grace.grace_ms);
                gate.abort_sweep();
                return Ok(purged);
            }
        }
        if scanned < PAGE {
            break;
        }
        after = scanned_last;
    }
    gate.end_sweep();
    ctx.purge.release();
    Ok(purged)
}

/// Whether this node's acceptor holds a proposal for `key` that no commit
/// has covered yet. A later strong round could complete it, so the key's
/// tombstone must stay: purging it would let that older value come back
/// (unreadable state counts as pending, to stay on the safe side).
fn pending_proposal(store: &Store, key: &[u8]) -> bool {
    match store.paxos_state(key) {
        Ok(None) => false,
        Ok(Some(bytes)) => {
            vergent_consensus::AcceptorState::decode(&bytes).map_or(true, |s| s.accepted.is_some())
        }
        Err(_) => true,
    }
}

/// Asks `id` at `addr` about one page of candidates.
async fn check(
    ctx: &PeerCtx,
    transport: &Transport,
    addr: SocketAddr,
    id: &str,
    entries: Vec<pb::LeafEntry>,
) -> Result<CheckReply, PeerError> {
    let expected = entries.len();
    let (mut writer, mut reader) = transport.open_stream(addr).await?;
    let body = Body::PurgeCheck(pb::PurgeCheck {
        node_id: ctx.identity.node_id.to_string(),
        store_id: ctx.identity.store_id,
        entries,
    });
    writer.send(&encode(body)).await?;
    let frame = tokio::time::timeout(CHECK_TIMEOUT, reader.recv())
        .await
        .map_err(|_| PeerError::Timeout("purge check answer"))??
        .ok_or(PeerError::Protocol("peer closed the stream".into()))?;
    let reply = match decode(&frame)? {
        Body::PurgeCheckReply(r) => r,
        Body::Refused(r) => {
            if r.fenced {
                ctx.fence(&r.reason);
            }
            return Err(PeerError::Refused(r.reason));
        }
        _ => {
            return Err(PeerError::Protocol(
                "unexpected answer to a purge check".into(),
            ));
        }
    };
    if reply.node_id != id {
        return Err(PeerError::Protocol(format!(
            "{addr} answered as {:?}, not {id}",
            reply.node_id
        )));
    }
    let cert = transport
        .peer_identity(addr)
        .map(|p| super::cert_name(&p))
        .unwrap_or_default();
    ctx.roster
        .contact(&ctx.store, id, Some(reply.store_id), &cert)
        .map_err(|e| PeerError::Refused(e.to_string()))?;
    if reply.held.len() != expected {
        return Err(PeerError::Protocol(format!(
            "{} answers for {expected} entries",
            reply.held.len()
        )));
    }
    Ok(CheckReply {
        held: reply.held,
        roster: reply.roster,
    })
}

/// Answers a peer's purge check: per entry, whether this node holds that
/// version, a newer one or nothing of the key, applying a tombstone it
/// holds older first; replies once that is durable.
pub(super) async fn serve_check(
    ctx: Arc<PeerCtx>,
    peer: PeerIdentity,
    check: pb::PurgeCheck,
    mut writer: FrameWriter,
    _reader: FrameReader,
) -> Result<(), PeerError> {
    let cert = super::cert_name(&peer);
    if let Err(refusal) =
        ctx.roster
            .contact(&ctx.store, &check.node_id, Some(check.store_id), &cert)
    {
        super::log_refusal!(ctx, &check.node_id, peer = %peer.addr, claimed = %check.node_id, reason = %refusal, "refused a purge check");
        let _ = writer
            .send(&encode(Body::Refused(pb::Refused {
                reason: refusal.to_string(),
                fenced: refusal.fences(),
            })))
            .await;
        let _ = writer.finish();
        return Ok(());
    }
    let mut entries = Vec::with_capacity(check.entries.len());
    for e in check.entries {
        let origin = NodeId::new(e.origin).map_err(|e| PeerError::Protocol(e.to_string()))?;
        entries.push((
            e.key,
            Version::new(Timestamp::from_u64(e.hlc), origin),
            e.tombstone,
        ));
    }
    let store = ctx.store.clone();
    let held = tokio::task::spawn_blocking(move || {
        let mut held = Vec::with_capacity(entries.len());
        let mut apply = Vec::new();
        for (key, version, tombstone) in entries {
            // A proposal pending here could bring an older value back once
            // the tombstone is gone: not yet.
            if pending_proposal(&store, &key) {
                held.push(false);
                continue;
            }
            let ok = match store.get(&key)? {
                None => true,
                Some(r) if r.version >= version => true,
                Some(_) if tombstone => {
                    apply.push((key, Record::tombstone(version)));
                    true
                }
                Some(_) => false,
            };
            held.push(ok);
        }
        store.apply_batch(apply)?;
        // The answer speaks for what is stored: make it durable first.
        store.sync()?;
        Ok::<_, vergent_storage::Error>(held)
    })
    .await
    .map_err(|e| PeerError::Task(e.to_string()))??;
    let reply = Body::PurgeCheckReply(pb::PurgeCheckReply {
        store_id: ctx.identity.store_id,
        held,
        roster: ctx
            .roster
            .ids()
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        node_id: ctx.identity.node_id.to_string(),
    });
    writer.send(&encode(reply)).await?;
    let _ = writer.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vergent_consensus::{Accepted, AcceptorState, Ballot};
    use vergent_storage::StoreOptions;
    use vergent_types::NodeId;

    #[test]
    fn a_tombstone_stays_while_this_acceptor_holds_an_uncommitted_proposal_for_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        let node = NodeId::new("a").expect("id");
        let ballot = Ballot::new(Timestamp::from_u64(5), node.clone());
        assert!(!pending_proposal(&store, b"k"), "no consensus state at all");
        let committed = AcceptorState {
            promised: Some(ballot.clone()),
            accepted: None,
            committed: Some(ballot.clone()),
        };
        store
            .put_paxos_state(b"k", &committed.encode())
            .expect("put");
        assert!(
            !pending_proposal(&store, b"k"),
            "everything it accepted is committed"
        );
        let pending = AcceptorState {
            accepted: Some(Accepted {
                ballot: ballot.clone(),
                value: Some(b"old".to_vec()),
                commit: Version::new(Timestamp::from_u64(6), node),
                base: None,
            }),
            ..committed
        };
        store.put_paxos_state(b"k", &pending.encode()).expect("put");
        assert!(
            pending_proposal(&store, b"k"),
            "a later round could complete the old value"
        );
        store.put_paxos_state(b"k", b"garbage").expect("put");
        assert!(
            pending_proposal(&store, b"k"),
            "unreadable counts as pending"
        );
    }
}
