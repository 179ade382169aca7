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
pub(crate) mod repair;
pub(crate) mod truncation;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;
use vergent_transport::{Incoming, Transport};

use crate::node::Shared;

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
    store: &vergent_storage::Store,
) -> Result<std::collections::HashMap<String, u64>, vergent_storage::Error> {
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

/// Drops log entries every peer has (or that a peer lagging past the bound
/// will have to get through repair).
pub(crate) fn maybe_truncate(shared: &Shared) {
    let last = shared.store.last_log_seq();
    let Ok(Some(first)) = shared.store.first_log_seq() else {
        return;
    };
    let below = {
        let progress = shared.lock_progress();
        let Some(below) = truncation::truncate_below(&progress, first, last, shared.max_log_lag)
        else {
            return;
        };
        // Truncate in steps, not on every ack.
        if below < first + TRUNCATE_STEP && below < last {
            return;
        }
        for (peer, cursor) in &progress.cursors {
            if *cursor + 1 < below {
                warn!(peer_id = %peer, cursor, truncated_below = below, "peer fell more than the log bound behind; it needs anti-entropy repair");
            }
        }
        below
    };
    if let Err(e) = shared.store.truncate_log(below) {
        warn!(error = %e, "log truncation failed");
    }
}

/// Decodes a record a peer sent (replicated or repaired) and checks it as
/// every peer record is checked: the size limits, and a timestamp no
/// further ahead of this node's clock than the max offset (one further
/// ahead would drag the clock along, so it is refused, not adopted).
fn accept_record(
    shared: &Shared,
    r: vergent_wire::peer::v1::Record,
    from: &str,
) -> Result<(Vec<u8>, vergent_storage::Record), String> {
    let (key, record) = convert::record_from_wire(r).map_err(|e| e.to_string())?;
    shared.limits.check_key(&key).map_err(|e| e.to_string())?;
    if let Some(v) = &record.value {
        shared.limits.check_value(v).map_err(|e| e.to_string())?;
    }
    shared
        .clock
        .update(record.version.hlc)
        .map_err(|e| format!("refusing writes from {from}: {e}"))?;
    Ok((key, record))
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
fn read_cursor(shared: &Shared, key: &str, other_store: u64) -> u64 {
    match shared
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
    shared: Arc<Shared>,
    transport: Transport,
    mut incoming: mpsc::Receiver<Incoming>,
    seeds: Vec<String>,
    head: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let (gossip_tx, gossip_rx) = mpsc::channel(1024);
    tokio::spawn(repair::run_scheduler(
        shared.clone(),
        transport.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(repair::run_purge(shared.clone(), shutdown.clone()));
    tokio::spawn(membership::run(
        shared.clone(),
        transport.clone(),
        gossip_rx,
        seeds,
        head,
        shutdown.clone(),
    ));
    tokio::spawn(async move {
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
                    tokio::spawn(inbound::serve(
                        shared.clone(),
                        peer,
                        writer,
                        reader,
                        gossip_tx.clone(),
                        shutdown.clone(),
                    ));
                }
                Some(Incoming::Datagram { peer, bytes }) => {
                    match <vergent_wire::peer::v1::Gossip as prost::Message>::decode(bytes)
                        .map_err(convert::DecodeError::from)
                        .and_then(gossip_convert::from_wire)
                    {
                        Ok(msg) => {
                            let _ = gossip_tx.try_send((peer.addr.to_string(), msg));
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
