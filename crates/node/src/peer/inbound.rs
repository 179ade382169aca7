//! Serves the streams peers open: dispatches each by its first frame to the
//! protocol that owns it (replication, repair, purge checks, oversized
//! gossip), and applies another node's write log as it streams in,
//! acknowledging what is durable.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vergent_replication::{Batch, Receiver, Verdict};
use vergent_transport::{FrameReader, FrameWriter, PeerIdentity};
use vergent_types::NodeId;
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::PeerCtx;
use super::convert::{decode, encode};
use super::{PeerCounters, PeerError, cert_name, read_cursor, received_cursor_key};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn serve(
    ctx: Arc<PeerCtx>,
    peer: PeerIdentity,
    writer: FrameWriter,
    reader: FrameReader,
    gossip: mpsc::Sender<(String, vergent_gossip::Message)>,
    shutdown: CancellationToken,
) {
    match serve_inner(&ctx, &peer, writer, reader, &gossip, &shutdown).await {
        Ok(()) => debug!(peer = %peer.addr, "replication stream ended"),
        Err(e) => warn!(peer = %peer.addr, error = %e, "replication stream closed"),
    }
}

/// Refuses a stream whose opener may not speak for the id it claims (or
/// runs a retired store), telling it why.
async fn refuse(
    ctx: &PeerCtx,
    peer: &PeerIdentity,
    writer: &mut FrameWriter,
    claimed: &str,
    why: &super::roster::Refusal,
) {
    super::log_refusal!(ctx, claimed, peer = %peer.addr, claimed, reason = %why, "refused a peer stream");
    let _ = writer
        .send(&encode(Body::Refused(pb::Refused {
            reason: why.to_string(),
            fenced: why.fences(),
        })))
        .await;
    let _ = writer.finish();
}

async fn serve_inner(
    ctx: &Arc<PeerCtx>,
    peer: &PeerIdentity,
    mut writer: FrameWriter,
    mut reader: FrameReader,
    gossip: &mpsc::Sender<(String, vergent_gossip::Message)>,
    shutdown: &CancellationToken,
) -> Result<(), PeerError> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, reader.recv())
        .await
        .map_err(|_| PeerError::Timeout("first frame"))??;
    let Some(bytes) = first else {
        return Ok(());
    };
    let cert = cert_name(peer);
    let (origin, origin_store) = match decode(&bytes)? {
        Body::Hello(h) => {
            if let Err(why) = ctx
                .roster
                .contact(&ctx.store, &h.node_id, Some(h.store_id), &cert)
            {
                refuse(ctx, peer, &mut writer, &h.node_id, &why).await;
                return Ok(());
            }
            (
                NodeId::new(h.node_id).map_err(|e| PeerError::Protocol(e.to_string()))?,
                h.store_id,
            )
        }
        Body::RepairOpen(o) => {
            if let Err(why) = ctx
                .roster
                .contact(&ctx.store, &o.node_id, Some(o.store_id), &cert)
            {
                refuse(ctx, peer, &mut writer, &o.node_id, &why).await;
                return Ok(());
            }
            super::repair::serve(ctx.clone(), o.node_id, writer, reader).await;
            return Ok(());
        }
        Body::PurgeCheck(c) => {
            return super::purge::serve_check(ctx.clone(), peer.clone(), c, writer, reader).await;
        }
        // A gossip message too large for a datagram.
        Body::Gossip(g) => {
            let msg = super::gossip_convert::from_wire(g)?;
            if super::admit_gossip(ctx, None, peer, &msg) {
                let _ = gossip.try_send((peer.addr.to_string(), msg));
            }
            return Ok(());
        }
        // Consensus and level reads: one request, one reply, from a node
        // whose id matches its certificate.
        body @ (Body::PaxosBatch(_)
        | Body::ConfigQuery(_)
        | Body::PaxosKeys(_)
        | Body::PaxosGcList(_)
        | Body::PaxosForget(_)
        | Body::LevelRead(_)
        | Body::LevelRepair(_)) => {
            let claimed = match &body {
                Body::LevelRead(m) => m.from.clone(),
                Body::LevelRepair(m) => m.from.clone(),
                Body::PaxosGcList(m) => m.from.clone(),
                Body::PaxosForget(m) => m.from.clone(),
                Body::PaxosKeys(m) => m.from.clone(),
                Body::PaxosBatch(m) => m.from.clone(),
                Body::ConfigQuery(m) => m.from.clone(),
                _ => String::new(),
            };
            if let Err(why) = ctx.roster.contact(&ctx.store, &claimed, None, &cert) {
                refuse(ctx, peer, &mut writer, &claimed, &why).await;
                return Ok(());
            }
            let Some(strong) = ctx.strong.get() else {
                return Ok(());
            };
            return strong
                .clone()
                .serve(body, writer)
                .await
                .map_err(|e| PeerError::Protocol(format!("consensus: {e}")));
        }
        // A peer telling this node it refuses its data for good.
        Body::Refused(r) => {
            warn!(peer = %peer.addr, reason = %r.reason, "a peer refuses this node");
            if r.fenced {
                ctx.fence(&r.reason);
            }
            return Ok(());
        }
        _ => return Err(PeerError::Protocol("first frame is not hello".into())),
    };
    let hello = Body::Hello(pb::Hello {
        node_id: ctx.identity.node_id.to_string(),
        advertise: ctx.identity.advertise.to_string(),
        store_id: ctx.identity.store_id,
    });
    writer.send(&encode(hello)).await?;
    if origin == ctx.identity.node_id {
        return Ok(());
    }
    let cursor_key = received_cursor_key(origin.as_str());
    let mut receiver = Receiver::new(read_cursor(ctx, &cursor_key, origin_store));
    let refused_key = refused_key(origin.as_str());
    let mut refused = load_refused(ctx, &refused_key, origin_store);
    // Frames are read and checked by their own task, so batches that arrive
    // while one is being applied queue up and are applied together.
    let (queued, mut batches) = mpsc::channel(QUEUED_BATCHES);
    let _reading = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(read_batches(
        reader,
        queued,
        origin.clone(),
    )));
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            b = batches.recv() => match b {
                Some(b) => b?,
                None => return Ok(()),
            },
        };
        // Take what queued meanwhile: runs that continue each other become
        // one batch (one RocksDB write, one sync, one ack).
        let mut runs = vec![first];
        let mut entries = runs[0].entries.len();
        while entries < COALESCE_ENTRIES {
            let Ok(next) = batches.try_recv() else { break };
            let next = next?;
            entries += next.entries.len();
            if let Some(last) = runs.last_mut()
                && let Err(next) = last.append(next)
            {
                runs.push(next);
            }
        }
        let mut ack = receiver.durable();
        for batch in runs {
            if batch.truncated && batch.first > receiver.durable() + 1 {
                info!(origin = %origin, cursor = receiver.durable(), first = batch.first, "origin's log was truncated past this node's cursor; repair fills the gap");
                ctx.repair.trigger.notify_one();
            }
            ack = match receiver.handle_batch(batch) {
                Verdict::Ack(c) => c,
                Verdict::Apply { entries, up_to } => {
                    let keys = Keys {
                        cursor: &cursor_key,
                        refused: &refused_key,
                    };
                    apply(
                        ctx,
                        entries,
                        &origin,
                        origin_store,
                        keys,
                        up_to,
                        &mut refused,
                    )
                    .await?;
                    receiver.handle_applied(up_to)
                }
            };
        }
        writer
            .send(&encode(Body::Ack(pb::Ack {
                up_to: ack,
                // Every ack repeats them: one lost with a session must not
                // let a later ack vouch for entries this node lacks.
                refused: refused
                    .range(ack.saturating_sub(REFUSED_WINDOW)..=ack)
                    .copied()
                    .collect(),
            })))
            .await?;
    }
}

/// Refused entries remembered (and repeated in acks) per origin: the newest.
const REFUSED_KEPT: usize = 1024;
/// Acks repeat refusals at most this many entries below the cursor: a write
/// waiting on its acknowledgements is far more recent.
const REFUSED_WINDOW: u64 = 1_000_000;

/// Meta key of the log entries of `origin` this node acknowledged without
/// storing them (refused for size or clock, or too old).
fn refused_key(origin: &str) -> String {
    format!("repl/refused/{origin}")
}

/// The meta keys one origin's apply writes with its records.
struct Keys<'a> {
    cursor: &'a str,
    refused: &'a str,
}

/// The persisted refusals of `origin_store`'s log (none for another store).
fn load_refused(ctx: &PeerCtx, key: &str, origin_store: u64) -> BTreeSet<u64> {
    let Ok(Some(bytes)) = ctx.store.get_meta(key) else {
        return BTreeSet::new();
    };
    decode_refused(&bytes, origin_store)
}

fn encode_refused(origin_store: u64, refused: &BTreeSet<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * (refused.len() + 1));
    out.extend_from_slice(&origin_store.to_be_bytes());
    for s in refused {
        out.extend_from_slice(&s.to_be_bytes());
    }
    out
}

fn decode_refused(bytes: &[u8], origin_store: u64) -> BTreeSet<u64> {
    let mut words = bytes
        .chunks_exact(8)
        .filter_map(|c| <[u8; 8]>::try_from(c).ok().map(u64::from_be_bytes));
    match words.next() {
        Some(store) if store == origin_store => words.collect(),
        _ => BTreeSet::new(),
    }
}

/// Batches queued between the frame reader and the applier.
const QUEUED_BATCHES: usize = 16;
/// Most entries taken from the queue to apply as one write.
const COALESCE_ENTRIES: usize = 4096;

/// Reads, decodes and checks the origin's batch frames into `queued`; the
/// first error is queued too and ends the stream.
async fn read_batches(
    mut reader: FrameReader,
    queued: mpsc::Sender<Result<Batch<pb::Record>, PeerError>>,
    origin: NodeId,
) {
    loop {
        let batch = match reader.recv().await {
            Ok(Some(bytes)) => next_batch(&bytes, &origin),
            Ok(None) => return,
            Err(e) => Err(e.into()),
        };
        let failed = batch.is_err();
        if queued.send(batch).await.is_err() || failed {
            return;
        }
    }
}

/// Decodes one frame, which must be a well-formed batch of the origin's
/// own writes, numbered consecutively.
fn next_batch(bytes: &[u8], origin: &NodeId) -> Result<Batch<pb::Record>, PeerError> {
    let Body::Batch(b) = decode(bytes)? else {
        return Err(PeerError::Protocol(
            "unexpected frame instead of a batch".into(),
        ));
    };
    // Every number is the peer's: checked, never trusted to fit.
    let span = b.last.checked_sub(b.first).and_then(|d| d.checked_add(1));
    let consistent = b.first >= 1
        && span == Some(b.records.len() as u64)
        && b.records.iter().zip(b.first..).all(|(r, s)| r.seq == s);
    if !consistent {
        return Err(PeerError::Protocol(format!(
            "malformed batch {}..={} of {} records from {origin}",
            b.first,
            b.last,
            b.records.len()
        )));
    }
    // A replication stream carries the origin's own writes only: a record
    // of another origin would let it speak for that node.
    if let Some(r) = b.records.iter().find(|r| r.origin != origin.as_str()) {
        return Err(PeerError::Protocol(format!(
            "batch from {origin} carries a record of {:?}",
            r.origin
        )));
    }
    Ok(Batch {
        first: b.first,
        last: b.last,
        entries: b.records,
        truncated: b.truncated,
    })
}

/// Applies a run of the origin's records with the new cursor in the same
/// RocksDB batch; returns once both are durable.
///
/// A record this node refuses (its size limits, a clock too far ahead) is
/// skipped alone, counted and logged, and the cursor moves past it: one bad
/// record never stalls the origin's log (repair offers it again later). A
/// record older than the log's horizon is skipped too and left to repair,
/// which checks against purged tombstones (see `vergent_replication::purge`).
async fn apply(
    ctx: &Arc<PeerCtx>,
    entries: Vec<pb::Record>,
    origin: &NodeId,
    origin_store: u64,
    keys: Keys<'_>,
    up_to: u64,
    remembered: &mut BTreeSet<u64>,
) -> Result<(), PeerError> {
    let apply_from = super::purge::grace(ctx).apply_from_ms(ctx.clock.physical_ms());
    let total = entries.len();
    let mut refused = Vec::new();
    let young: Vec<pb::Record> = entries
        .into_iter()
        .filter(|r| {
            let keep = vergent_hlc::Timestamp::from_u64(r.hlc).physical_ms() >= apply_from;
            if !keep {
                refused.push(r.seq);
            }
            keep
        })
        .collect();
    let too_old = (total - young.len()) as u64;
    if too_old > 0 {
        PeerCounters::add(&ctx.peer_counters.too_old_for_log, too_old);
        info!(origin = %origin, skipped = too_old, "replicated records older than the log's horizon were left to repair");
        ctx.repair.trigger.notify_one();
    }
    // A peer whose clock runs a little ahead: wait for ours rather than
    // send its records the long way round (repair).
    if let Some(wait) = super::clock_catch_up(ctx, &young) {
        tokio::time::sleep(wait).await;
    }
    let records = super::accept_records_noting(ctx, young, origin.as_str(), &mut refused);
    let store = ctx.store.clone();
    let key = keys.cursor.to_string();
    // Refusals ride in the same batch as the cursor, so no ack can ever
    // cover an entry this node lacks without naming it.
    let refusals = (!refused.is_empty()).then(|| {
        remembered.extend(refused);
        while remembered.len() > REFUSED_KEPT {
            remembered.pop_first();
        }
        (
            keys.refused.to_string(),
            encode_refused(origin_store, remembered),
        )
    });
    // The cursor rides in the records' batch: one sync covers both, and it
    // can never claim more than what is applied.
    tokio::task::spawn_blocking(move || {
        let cursor = super::encode_cursor(origin_store, up_to);
        let mut meta = vec![(key.as_str(), cursor.as_slice())];
        if let Some((k, v)) = &refusals {
            meta.push((k.as_str(), v.as_slice()));
        }
        store.apply_batch_with_meta(records, &meta).map(|_| ())
    })
    .await
    .map_err(|e| PeerError::Task(e.to_string()))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_round_trip_and_another_stores_are_void() {
        let set: BTreeSet<u64> = [3, 9, 1 << 40].into_iter().collect();
        let bytes = encode_refused(77, &set);
        assert_eq!(decode_refused(&bytes, 77), set);
        assert!(decode_refused(&bytes, 78).is_empty(), "a wiped origin");
        assert!(decode_refused(&bytes[..5], 77).is_empty(), "truncated");
    }

    fn frame(first: u64, last: u64, records: Vec<pb::Record>) -> Vec<u8> {
        encode(Body::Batch(pb::Batch {
            first,
            last,
            records,
            truncated: false,
        }))
    }

    fn record(seq: u64, origin: &str) -> pb::Record {
        pb::Record {
            seq,
            key: b"k".to_vec(),
            hlc: 1,
            origin: origin.to_string(),
            ..pb::Record::default()
        }
    }

    #[test]
    fn a_batch_whose_numbers_overflow_or_disagree_with_its_records_is_refused_not_trusted() {
        let origin = NodeId::new("a").expect("id");
        for (first, last, n) in [
            (0, u64::MAX, 0),
            (u64::MAX, u64::MAX, 0),
            (5, 4, 0),
            (1, 3, 2),
            (0, 0, 1),
        ] {
            let records = (first..).take(n).map(|s| record(s, "a")).collect();
            let got = next_batch(&frame(first, last, records), &origin);
            assert!(
                matches!(got, Err(PeerError::Protocol(_))),
                "{first}..={last} with {n} records: {got:?}"
            );
        }
        let ok = next_batch(&frame(3, 4, vec![record(3, "a"), record(4, "a")]), &origin);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn a_replication_batch_may_only_carry_its_origins_own_writes() {
        let origin = NodeId::new("a").expect("id");
        let got = next_batch(&frame(1, 1, vec![record(1, "b")]), &origin);
        assert!(matches!(got, Err(PeerError::Protocol(_))), "{got:?}");
    }
}
