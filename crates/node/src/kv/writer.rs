//! Group commit for client writes.
//!
//! Every put and delete goes through one queue. A task takes whatever has
//! queued up, hands it to a blocking thread as one group
//! ([`vergent_storage::Store::write_many`]: one RocksDB batch, one WAL write,
//! one fsync) and starts collecting the next group while that one syncs.
//! Under load the groups grow by themselves, so the per-write cost of the
//! WAL write, the fsync and the thread hand-off shrinks as concurrency grows;
//! a lone writer waits for nobody.

use std::sync::{Arc, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use vergent_storage::{Mutation, Written};

use super::{KvError, LocalKv};
use crate::metrics::Metrics;

/// Most writes in one group: bounds the locks a group holds and the batch a
/// slow disk can build up.
const MAX_GROUP: usize = 512;
/// About the most key and value bytes in one group (a single larger write
/// still forms a group of its own), so large values do not make one huge
/// RocksDB batch.
const MAX_GROUP_BYTES: usize = 4 << 20;
/// Groups in flight at once: one being written while the previous syncs.
const GROUPS_IN_FLIGHT: usize = 2;
/// Writes queued before handlers wait for room (back-pressure)...
const QUEUE: usize = 4096;
/// ...and key and value bytes queued or being written at most: 4096 writes
/// of 1 MiB would otherwise hold 4 GiB.
const QUEUE_BYTES: usize = 64 << 20;

/// One client mutation waiting for its group.
struct Request {
    key: Vec<u8>,
    mutation: Mutation,
    reply: oneshot::Sender<Result<Written, KvError>>,
    /// Its share of [`QUEUE_BYTES`], released once it is written.
    bytes: OwnedSemaphorePermit,
}

impl Request {
    /// Key and value bytes, for the group's size bound.
    fn size(&self) -> usize {
        self.key.len()
            + match &self.mutation {
                Mutation::Put { value, .. } => value.len(),
                Mutation::Delete => 0,
            }
    }
}

/// The handle the local service submits writes through.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Request>,
    bytes: Arc<Semaphore>,
}

impl Writer {
    /// A writer and the receiving end [`run`] drains.
    pub(crate) fn new() -> (Self, Queue) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (
            Self {
                queue,
                bytes: Arc::new(Semaphore::new(QUEUE_BYTES)),
            },
            Queue(rx),
        )
    }

    /// Writes `mutation` to `key` in the next group; returns once it is
    /// durable per the store's fsync policy.
    pub(crate) async fn write(&self, key: Vec<u8>, mutation: Mutation) -> Result<Written, KvError> {
        let (reply, done) = oneshot::channel();
        let size = key.len()
            + match &mutation {
                Mutation::Put { value, .. } => value.len(),
                Mutation::Delete => 0,
            };
        // A write larger than the whole budget waits for all of it.
        let permits = u32::try_from(size.clamp(1, QUEUE_BYTES)).unwrap_or(u32::MAX);
        let bytes = self
            .bytes
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| KvError::ShuttingDown)?;
        self.queue
            .send(Request {
                key,
                mutation,
                reply,
                bytes,
            })
            .await
            .map_err(|_| KvError::ShuttingDown)?;
        done.await.map_err(|_| KvError::ShuttingDown)?
    }
}

/// The receiving end of a [`Writer`]'s queue.
#[derive(Debug)]
pub(crate) struct Queue(mpsc::Receiver<Request>);

/// Commits queued writes in groups until every [`Writer`] is dropped.
///
/// Holds the service only weakly between groups, so it never keeps a
/// stopped node's store open.
pub(crate) async fn run(Queue(mut rx): Queue, kv: Weak<LocalKv>, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Wait for a slot before collecting: what queues up meanwhile joins
        // this group instead of waiting for the next.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.size();
        let mut group = vec![first];
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.size();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        let Some(kv) = kv.upgrade() else {
            return;
        };
        metrics.write_group(group.len());
        tokio::task::spawn_blocking(move || {
            commit(&kv, group);
            drop(slot);
        });
    }
}

/// Writes one group and answers each of its writers.
fn commit(kv: &LocalKv, group: Vec<Request>) {
    let mut ops = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    // Held until the group is written: the bytes are in memory until then.
    let mut held = Vec::with_capacity(group.len());
    for r in group {
        ops.push((r.key, r.mutation));
        replies.push(r.reply);
        held.push(r.bytes);
    }
    match kv
        .store
        .write_many(ops, |stored| kv.clock.stamp(&kv.store, stored))
    {
        Ok(results) => {
            kv.log_appended();
            for (reply, result) in replies.into_iter().zip(results) {
                // A writer that gave up (client went away) needs no answer.
                let _ = reply.send(result.map_err(KvError::from));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(KvError::Storage(e.duplicate())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn put(len: usize) -> Mutation {
        Mutation::Put {
            value: vec![0; len],
            ttl_ms: None,
        }
    }

    #[tokio::test]
    async fn queued_writes_hold_at_most_the_byte_budget() {
        let (writer, _queue) = Writer::new();
        let writer = Arc::new(writer);
        // Nobody drains the queue: the first write waits in it, holding its
        // bytes, and a second that does not fit the rest is not let in.
        let first = tokio::spawn({
            let w = writer.clone();
            async move { w.write(b"a".to_vec(), put(40 << 20)).await }
        });
        while writer.bytes.available_permits() == QUEUE_BYTES {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            writer.bytes.available_permits(),
            QUEUE_BYTES - (40 << 20) - 1
        );
        let second = writer.write(b"b".to_vec(), put(40 << 20)).now_or_never();
        assert!(second.is_none(), "a write beyond the budget was queued");
        // A small one still fits.
        assert!(writer.bytes.available_permits() > 1 << 20);
        first.abort();
    }
}
