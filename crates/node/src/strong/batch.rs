//! Consensus messages travel in batches, one per acceptor at a time.
//!
//! Every round sends each acceptor a prepare or a peek, then an accept, then
//! a commit. Sent one stream and one blocking task per message, 64 clients'
//! rounds cost each node hundreds of streams, thread hand-offs and separate
//! syncs a second. Here every message for an acceptor joins that acceptor's
//! outbox; a sender task takes whatever has queued (up to [`MAX_ITEMS`] and
//! about [`MAX_BYTES`]) as one [`pb::PaxosBatch`] on one stream, with at most
//! [`IN_FLIGHT`] batches per acceptor outstanding, so batches grow by
//! themselves under load and a lone message goes at once. The acceptor
//! handles the items in order and syncs once for all of them before it
//! answers ([`Strong::serve_items`]). This node's own acceptor has an outbox
//! too, served on a blocking thread without the network.
//!
//! A batch changes nothing a round relies on: each item is answered as if
//! sent alone, an item or a batch that gets no answer is a lost message, and
//! each message is still sent once (at most once delivery).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};
use vergent_consensus::{AcceptReply, Message, PrepareReply};
use vergent_storage::Unsynced;
use vergent_types::NodeId;
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::{Held, STRONG_DEADLINE, Strong, StrongError, wire};

/// Items per batch at most.
const MAX_ITEMS: usize = 256;
/// A batch stops taking items once their values reach this many bytes.
const MAX_BYTES: usize = 4 << 20;
/// Batches to one acceptor outstanding at once.
const IN_FLIGHT: usize = 4;
/// Messages queued for one acceptor before senders wait.
const QUEUE: usize = 4096;

/// A consensus message for one acceptor, with the configuration it is sent under.
#[derive(Debug)]
pub(super) struct Item {
    pub(super) msg: Message,
    /// Carried so an acceptor behind it adopts it (commits carry none).
    pub(super) config: Option<Held>,
}

/// An acceptor's answer to one [`Item`].
#[derive(Debug)]
pub(super) enum ItemReply {
    Prepare(PrepareReply),
    Accept(AcceptReply),
    Committed,
}

/// An item waiting in an outbox, and where its answer goes (`None`: nobody waits).
struct Queued {
    item: Item,
    reply: Option<oneshot::Sender<ItemReply>>,
}

/// One outbox per acceptor, created on first use.
#[derive(Default)]
pub(super) struct Outboxes {
    by_peer: std::sync::Mutex<HashMap<NodeId, mpsc::Sender<Queued>>>,
}

impl Strong {
    /// Sends `item` to `to` with the next batch; its answer, or `None` when
    /// none came (lost, refused, or the acceptor stayed silent).
    pub(super) async fn ask(self: &Arc<Self>, to: &NodeId, item: Item) -> Option<ItemReply> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(
            to,
            Queued {
                item,
                reply: Some(tx),
            },
        )
        .await;
        rx.await.ok()
    }

    /// Sends `item` to `to` with the next batch without waiting for its answer.
    pub(super) async fn tell(self: &Arc<Self>, to: &NodeId, item: Item) {
        self.enqueue(to, Queued { item, reply: None }).await;
    }

    async fn enqueue(self: &Arc<Self>, to: &NodeId, queued: Queued) {
        let outbox = {
            let mut by_peer = self
                .outboxes
                .by_peer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            by_peer
                .entry(to.clone())
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(run_outbox(Arc::downgrade(self), to.clone(), rx));
                    tx
                })
                .clone()
        };
        // A send fails only when the outbox's task ended (the node is going
        // away): the item is lost, as a message would be.
        let _ = outbox.send(queued).await;
    }

    /// Carries one batch to `to` and hands each answer to whoever waits for it.
    async fn send_batch(self: Arc<Self>, to: NodeId, batch: Vec<Queued>) {
        let (items, waiters): (Vec<Item>, Vec<_>) =
            batch.into_iter().map(|q| (q.item, q.reply)).unzip();
        let replies = if to == self.me {
            let this = self.clone();
            tokio::task::spawn_blocking(move || {
                this.serve_items(items.into_iter().map(Some).collect())
            })
            .await
            .unwrap_or_else(|e| {
                warn!(error = %e, "this node's acceptor task failed");
                Vec::new()
            })
        } else {
            match tokio::time::timeout(STRONG_DEADLINE, self.remote_batch(&to, &items)).await {
                Ok(Ok(replies)) => replies,
                Ok(Err(e)) => {
                    debug!(peer = %to, error = %e, "no consensus reply");
                    Vec::new()
                }
                Err(_) => {
                    debug!(peer = %to, "no consensus reply in time");
                    Vec::new()
                }
            }
        };
        for (waiter, reply) in waiters.into_iter().zip(replies) {
            if let (Some(waiter), Some(reply)) = (waiter, reply) {
                let _ = waiter.send(reply);
            }
        }
        // Waiters left without a reply see their sender dropped: no answer.
    }

    /// One batch over the network: its replies in order (`None`: unanswered).
    async fn remote_batch(
        &self,
        to: &NodeId,
        items: &[Item],
    ) -> Result<Vec<Option<ItemReply>>, StrongError> {
        let batch = pb::PaxosBatch {
            from: self.me.to_string(),
            items: items.iter().map(|i| wire::item_to(&self.me, i)).collect(),
        };
        let Body::PaxosBatchReply(reply) = self.remote(to, Body::PaxosBatch(batch)).await? else {
            return Err(wire::WireError::Unexpected("not a consensus batch reply").into());
        };
        if reply.from != to.as_str() {
            return Err(StrongError::NoAnswer(format!(
                "{to} (answered as {})",
                reply.from
            )));
        }
        let mut out = Vec::with_capacity(items.len());
        for r in reply.items.into_iter().take(items.len()) {
            out.push(self.item_reply_of(to, r)?);
        }
        Ok(out)
    }

    /// Decodes one answer of a batch and adopts a newer configuration it carries.
    fn item_reply_of(
        &self,
        to: &NodeId,
        r: pb::PaxosItemReply,
    ) -> Result<Option<ItemReply>, StrongError> {
        use pb::paxos_item_reply::Reply;
        let (from, reply, config) = match r.reply {
            None => return Ok(None),
            Some(Reply::Prepare(r)) => {
                let (from, r, c) = wire::prepare_reply_from(r)?;
                (from, ItemReply::Prepare(r), c)
            }
            Some(Reply::Accept(r)) => {
                let (from, r, c) = wire::accept_reply_from(r)?;
                (from, ItemReply::Accept(r), c)
            }
            Some(Reply::Committed(_)) => return Ok(Some(ItemReply::Committed)),
        };
        if from != *to {
            return Err(StrongError::NoAnswer(format!("{to} (answered as {from})")));
        }
        if let Some(c) = config {
            self.voting.adopt(&self.store, &c)?;
        }
        Ok(Some(reply))
    }

    /// The acceptor side of a batch: handles the items in order, then syncs
    /// once for everything they wrote before any answer leaves. `None` items
    /// (undecodable) and items that fail are not answered; if the sync
    /// fails, nothing is (the store has failed and the node stops).
    pub(super) fn serve_items(&self, items: Vec<Option<Item>>) -> Vec<Option<ItemReply>> {
        let mut unsynced = Unsynced::NONE;
        let mut replies = Vec::with_capacity(items.len());
        for item in items {
            let Some(item) = item else {
                replies.push(None);
                continue;
            };
            let config = item.config.as_ref();
            let handled = match &item.msg {
                Message::Prepare(p) => self
                    .prepare_unsynced(p, config)
                    .map(|(r, u)| (ItemReply::Prepare(r), u)),
                Message::Accept(a) => self
                    .accept_unsynced(a, config)
                    .map(|(r, u)| (ItemReply::Accept(r), u)),
                Message::Commit(c) => self.commit_unsynced(c).map(|u| (ItemReply::Committed, u)),
            };
            match handled {
                Ok((reply, u)) => {
                    unsynced = unsynced.and(u);
                    replies.push(Some(reply));
                }
                // A wiped voter's store stays silent until it is re-added.
                Err(StrongError::Forfeit) => replies.push(None),
                Err(e) => {
                    warn!(error = %e, "a consensus message failed");
                    replies.push(None);
                }
            }
        }
        if let Err(e) = self.store.wait_synced(unsynced) {
            warn!(error = %e, "consensus state not synced; no answer");
            return replies.iter().map(|_| None).collect();
        }
        replies
    }
}

/// An outbox's sender: takes what has queued as one batch whenever fewer
/// than [`IN_FLIGHT`] batches are outstanding; ends with the node.
async fn run_outbox(strong: Weak<Strong>, to: NodeId, mut rx: mpsc::Receiver<Queued>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut bytes = item_bytes(&first.item);
        let mut batch = vec![first];
        while batch.len() < MAX_ITEMS && bytes < MAX_BYTES {
            match rx.try_recv() {
                Ok(q) => {
                    bytes += item_bytes(&q.item);
                    batch.push(q);
                }
                Err(_) => break,
            }
        }
        let Some(strong) = strong.upgrade() else {
            return;
        };
        let to = to.clone();
        tokio::spawn(async move {
            strong.send_batch(to, batch).await;
            drop(permit);
        });
    }
}

/// What an item adds to a batch's size, roughly: its key and value.
fn item_bytes(item: &Item) -> usize {
    match &item.msg {
        Message::Prepare(p) => p.key.len(),
        Message::Accept(a) => a.key.len() + a.value.as_ref().map_or(0, Vec::len),
        Message::Commit(c) => c.key.len() + c.value.as_ref().map_or(0, Vec::len),
    }
}
