//! Applies another node's write log as it streams in, acknowledging what is
//! durable.

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

use super::convert::{decode, encode};
use super::{read_cursor, received_cursor_key};
use crate::node::Shared;

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn serve(
    shared: Arc<Shared>,
    peer: PeerIdentity,
    writer: FrameWriter,
    reader: FrameReader,
    gossip: mpsc::Sender<(String, vergent_gossip::Message)>,
    shutdown: CancellationToken,
) {
    match serve_inner(&shared, &peer, writer, reader, &gossip, &shutdown).await {
        Ok(()) => debug!(peer = %peer.addr, "replication stream ended"),
        Err(e) => warn!(peer = %peer.addr, error = %e, "replication stream closed"),
    }
}

async fn serve_inner(
    shared: &Arc<Shared>,
    peer: &PeerIdentity,
    mut writer: FrameWriter,
    mut reader: FrameReader,
    gossip: &mpsc::Sender<(String, vergent_gossip::Message)>,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let (origin, origin_store) = match tokio::time::timeout(HELLO_TIMEOUT, reader.recv()).await {
        Ok(Ok(Some(bytes))) => match decode(&bytes).map_err(|e| e.to_string())? {
            Body::Hello(h) => (
                NodeId::new(h.node_id).map_err(|e| e.to_string())?,
                h.store_id,
            ),
            Body::RepairOpen(o) => {
                super::repair::serve(shared.clone(), o.node_id, writer, reader).await;
                return Ok(());
            }
            // A gossip message too large for a datagram.
            Body::Gossip(g) => {
                let msg = super::gossip_convert::from_wire(g).map_err(|e| e.to_string())?;
                let _ = gossip.try_send((peer.addr.to_string(), msg));
                return Ok(());
            }
            _ => return Err("first frame is not hello".into()),
        },
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("no hello".into()),
    };
    let hello = Body::Hello(pb::Hello {
        node_id: shared.node_id.to_string(),
        advertise: shared.advertise.to_string(),
        store_id: shared.store_id,
    });
    writer
        .send(&encode(hello))
        .await
        .map_err(|e| e.to_string())?;
    if origin == shared.node_id {
        return Ok(());
    }
    let cursor_key = received_cursor_key(origin.as_str());
    let mut receiver = Receiver::new(read_cursor(shared, &cursor_key, origin_store));
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
                shared.repair.trigger.notify_one();
            }
            ack = match receiver.handle_batch(batch) {
                Verdict::Ack(c) => c,
                Verdict::Apply { entries, up_to } => {
                    apply(shared, entries, &origin, origin_store, &cursor_key, up_to).await?;
                    receiver.handle_applied(up_to)
                }
            };
        }
        writer
            .send(&encode(Body::Ack(pb::Ack { up_to: ack })))
            .await
            .map_err(|e| e.to_string())?;
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
    queued: mpsc::Sender<Result<Batch<pb::Record>, String>>,
    origin: NodeId,
) {
    loop {
        let batch = match reader.recv().await {
            Ok(Some(bytes)) => next_batch(&bytes, &origin),
            Ok(None) => return,
            Err(e) => Err(e.to_string()),
        };
        let failed = batch.is_err();
        if queued.send(batch).await.is_err() || failed {
            return;
        }
    }
}

/// Decodes one frame, which must be a well-formed batch.
fn next_batch(bytes: &[u8], origin: &NodeId) -> Result<Batch<pb::Record>, String> {
    let Body::Batch(b) = decode(bytes).map_err(|e| e.to_string())? else {
        return Err("unexpected frame instead of a batch".into());
    };
    let consistent = b.last >= b.first
        && b.records.len() as u64 == b.last - b.first + 1
        && b.records.iter().zip(b.first..).all(|(r, s)| r.seq == s);
    if !consistent {
        return Err(format!(
            "malformed batch {}..={} from {origin}",
            b.first, b.last
        ));
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
async fn apply(
    shared: &Arc<Shared>,
    entries: Vec<pb::Record>,
    origin: &NodeId,
    origin_store: u64,
    cursor_key: &str,
    up_to: u64,
) -> Result<(), String> {
    let mut records = Vec::with_capacity(entries.len());
    for r in entries {
        // A refused record refuses the batch: unacknowledged, it is resent
        // later.
        records.push(super::accept_record(shared, r, origin.as_str())?);
    }
    let store = shared.store.clone();
    let key = cursor_key.to_string();
    // The cursor rides in the records' batch: one sync covers both, and it
    // can never claim more than what is applied.
    tokio::task::spawn_blocking(move || {
        let cursor = super::encode_cursor(origin_store, up_to);
        store
            .apply_batch_with_meta(records, &[(key.as_str(), cursor.as_slice())])
            .map(|_| ())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}
