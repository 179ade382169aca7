//! Ships this node's write log to one peer address, reconnecting with backoff.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vergent_replication::{Output, Sender, SenderConfig};
use vergent_transport::{FrameReader, Transport};
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::PeerCtx;
use super::convert::{decode, encode, entry_to_wire};
use super::{read_cursor, sent_cursor_key};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How a session ended.
enum End {
    /// Shutdown, or the address is this node itself: stop for good.
    Stop,
    /// Something failed: retry after a backoff.
    Retry(String),
}

pub(super) async fn run(
    ctx: Arc<PeerCtx>,
    transport: Transport,
    peer: SocketAddr,
    mut head: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    let mut identified = false;
    loop {
        match session(
            &ctx,
            &transport,
            peer,
            &mut head,
            &shutdown,
            &mut identified,
        )
        .await
        {
            End::Stop => return,
            End::Retry(why) => {
                debug!(%peer, reason = %why, retry_in = ?backoff, "replication session ended");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Reads the peer's acks on a task of its own: frame reads are not
/// cancel-safe, so they must not sit in a `select!`.
fn spawn_ack_reader(mut reader: FrameReader) -> mpsc::Receiver<Result<(u64, Vec<u64>), String>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let item = match reader.recv().await {
                Ok(Some(bytes)) => match decode(&bytes) {
                    Ok(Body::Ack(a)) => Ok((a.up_to, a.refused)),
                    Ok(_) => Err("unexpected frame instead of an ack".to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Ok(None) => Err("peer closed the stream".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    rx
}

async fn session(
    ctx: &PeerCtx,
    transport: &Transport,
    peer: SocketAddr,
    head: &mut watch::Receiver<u64>,
    shutdown: &CancellationToken,
    identified: &mut bool,
) -> End {
    let retry = |e: &dyn std::fmt::Display| End::Retry(e.to_string());
    let (mut writer, mut reader) = match transport.open_stream(peer).await {
        Ok(s) => s,
        Err(e) => return retry(&e),
    };
    let hello = Body::Hello(pb::Hello {
        node_id: ctx.identity.node_id.to_string(),
        advertise: ctx.identity.advertise.to_string(),
        store_id: ctx.identity.store_id,
    });
    if let Err(e) = writer.send(&encode(hello)).await {
        return retry(&e);
    }
    let (peer_id, peer_store) = match tokio::time::timeout(HELLO_TIMEOUT, reader.recv()).await {
        Ok(Ok(Some(bytes))) => match decode(&bytes) {
            Ok(Body::Hello(h)) => (h.node_id, h.store_id),
            Ok(Body::Refused(r)) => {
                if r.fenced {
                    ctx.fence(&r.reason);
                }
                warn!(%peer, reason = %r.reason, "peer refused replication from this node");
                return End::Retry(format!("refused: {}", r.reason));
            }
            Ok(_) => return End::Retry("peer did not answer hello".into()),
            Err(e) => return retry(&e),
        },
        Ok(Ok(None)) => return End::Retry("peer closed the stream".into()),
        Ok(Err(e)) => return retry(&e),
        Err(_) => return End::Retry("no hello from peer".into()),
    };
    let first_hello = !*identified;
    *identified = true;
    if peer_id == ctx.identity.node_id.as_str() {
        info!(%peer, "peer address is this node itself; not replicating to it");
        if first_hello {
            let mut progress = ctx.lock_progress();
            progress.unidentified = progress.unidentified.saturating_sub(1);
        }
        return End::Stop;
    }
    // The answer comes from the certificate we dialed: it may not speak for
    // an id bound to another one, nor for a retired store.
    let cert = transport
        .peer_identity(peer)
        .map(|p| super::cert_name(&p))
        .unwrap_or_default();
    if let Err(why) = ctx
        .roster
        .contact(&ctx.store, &peer_id, Some(peer_store), &cert)
    {
        super::log_refusal!(ctx, &peer_id, %peer, claimed = %peer_id, reason = %why, "not replicating to a refused peer");
        let _ = writer.finish();
        return End::Retry(why.to_string());
    }
    let cursor_key = sent_cursor_key(&peer_id);
    let cursor = read_cursor(ctx, &cursor_key, peer_store);
    {
        let mut progress = ctx.lock_progress();
        if first_hello {
            progress.unidentified = progress.unidentified.saturating_sub(1);
        }
        progress.cursors.insert(peer_id.clone(), cursor);
    }
    ctx.log_acks.record(&peer_id, cursor);
    let mut sender: Sender<vergent_storage::LogEntry> = Sender::new(
        SenderConfig::default(),
        cursor,
        ctx.store.durable_log_seq(),
        Instant::now(),
    );
    info!(%peer, peer_id = %peer_id, cursor, "replicating to peer");
    let mut acks = spawn_ack_reader(reader);
    loop {
        while let Some(out) = sender.poll_output() {
            match out {
                Output::ReadLog {
                    after,
                    max_entries,
                    max_bytes,
                } => {
                    // Off the async workers: a slow disk must not stall gossip.
                    let store = ctx.store.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        store.read_log(after, max_entries, max_bytes)
                    })
                    .await;
                    let entries = match read {
                        Ok(Ok(e)) => e,
                        Ok(Err(e)) => return retry(&e),
                        Err(e) => return retry(&e),
                    };
                    if entries.first().is_some_and(|e| e.seq > after + 1) {
                        warn!(peer_id = %peer_id, cursor = after, "peer is behind the truncated log; skipping the gap, anti-entropy repair fills it");
                        ctx.repair.trigger.notify_one();
                    }
                    sender.handle_log(
                        Instant::now(),
                        entries.into_iter().map(|e| (e.seq, e)).collect(),
                    );
                }
                Output::Transmit(batch) => {
                    let body = Body::Batch(pb::Batch {
                        first: batch.first,
                        last: batch.last,
                        records: batch.entries.iter().map(entry_to_wire).collect(),
                        truncated: batch.truncated,
                    });
                    if let Err(e) = writer.send(&encode(body)).await {
                        return retry(&e);
                    }
                }
                Output::PersistCursor { cursor } => {
                    let store = ctx.store.clone();
                    let key = cursor_key.clone();
                    // Not synced: a cursor lost on power loss only means
                    // entries are sent again (applies are idempotent).
                    let put = tokio::task::spawn_blocking(move || {
                        store.put_meta_relaxed(&key, &super::encode_cursor(peer_store, cursor))
                    })
                    .await;
                    match put {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return retry(&e),
                        Err(e) => return retry(&e),
                    }
                    ctx.lock_progress().cursors.insert(peer_id.clone(), cursor);
                    ctx.truncate.notify_one();
                }
            }
        }
        let deadline = sender
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = shutdown.cancelled() => {
                let _ = writer.finish();
                return End::Stop;
            }
            changed = head.changed() => {
                if changed.is_err() {
                    return End::Stop;
                }
                let h = *head.borrow_and_update();
                sender.handle_appended(Instant::now(), h);
            }
            ack = acks.recv() => match ack {
                Some(Ok((up_to, refused))) => {
                    sender.handle_ack(Instant::now(), up_to);
                    // Before the cursor is persisted: a write at `quorum`
                    // waiting on this peer need not wait for that too.
                    ctx.log_acks.record_refused(&peer_id, &refused);
                    ctx.log_acks.record(&peer_id, sender.cursor());
                }
                Some(Err(e)) => return End::Retry(e),
                None => return End::Retry("ack reader ended".into()),
            },
            () = tokio::time::sleep_until(deadline) => sender.handle_timeout(Instant::now()),
        }
    }
}
