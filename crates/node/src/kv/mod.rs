//! The local key-value service: get, put, delete, scan and watch on this
//! node, whatever protocol asked. It owns the store handle, the clock, the
//! size limits, the group-commit writer, the change feed and the node's
//! availability, and it announces the durable head of the local write log.
//!
//! Frontends (the gRPC API today, a Redis-protocol endpoint later) are thin
//! adapters over [`LocalKv`]; peer protocols call it too. It must not depend
//! on either: no `crate::api`, no `crate::peer`, no tonic.

pub(crate) mod acks;
mod availability;
mod error;
pub(crate) mod feed;
pub(crate) mod records;
pub(crate) mod writer;

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use vergent_storage::{Mutation, Record, ScanBounds, ScanPage, Store, Written};
use vergent_types::Limits;

pub(crate) use availability::Availability;
pub(crate) use error::KvError;
pub(crate) use feed::{Change, Feed};

use crate::clock::NodeClock;

/// Default and largest number of entries one scan returns.
const SCAN_DEFAULT_LIMIT: usize = 1000;
const SCAN_MAX_LIMIT: usize = 10_000;
/// About the most key and value bytes one scan returns (at least one entry).
pub(crate) const SCAN_MAX_BYTES: usize = 4 << 20;
/// Most records one scan looks at, returned or not (tombstones, expired).
const SCAN_MAX_VISITED: usize = 100_000;
/// Longest TTL accepted: 100 years, far below where expiry times overflow.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
/// The log head is announced to the truncation worker every this many entries.
const TRUNCATE_EVERY: u64 = 1024;

/// What a delete did.
#[derive(Debug)]
pub(crate) struct Deleted {
    /// The tombstone written.
    pub(crate) written: Written,
    /// Whether a live value was there before.
    pub(crate) existed: bool,
}

/// One node's key-value service; see the module docs.
#[derive(Debug)]
pub(crate) struct LocalKv {
    store: Arc<Store>,
    clock: Arc<NodeClock>,
    limits: Limits,
    feed: Arc<Feed>,
    writer: writer::Writer,
    availability: Arc<Availability>,
    shutdown: CancellationToken,
    /// Newest durable sequence number of the local write log.
    head: watch::Sender<u64>,
    /// Woken each time the head crosses a multiple of [`TRUNCATE_EVERY`].
    truncate: Arc<Notify>,
    /// What each peer acknowledged of the log (filled by the senders).
    acks: Arc<acks::LogAcks>,
}

impl LocalKv {
    /// The service over `store`, and the writer queue for [`writer::run`].
    pub(crate) fn new(
        store: Arc<Store>,
        clock: Arc<NodeClock>,
        limits: Limits,
        feed: Arc<Feed>,
        availability: Arc<Availability>,
        shutdown: CancellationToken,
    ) -> (Self, writer::Queue) {
        let (writer, queue) = writer::Writer::new();
        let head = watch::Sender::new(store.durable_log_seq());
        let kv = Self {
            store,
            clock,
            limits,
            feed,
            writer,
            availability,
            shutdown,
            head,
            truncate: Arc::new(Notify::new()),
            acks: Arc::new(acks::LogAcks::default()),
        };
        (kv, queue)
    }

    /// The store, for the peer protocols and `status`.
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The node's hybrid logical clock.
    pub(crate) fn clock(&self) -> &Arc<NodeClock> {
        &self.clock
    }

    /// Key and value size limits.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the node may serve, and why not.
    pub(crate) fn availability(&self) -> &Arc<Availability> {
        &self.availability
    }

    /// The durable head of the local write log, for the log's senders.
    pub(crate) fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// What each peer acknowledged of the local write log.
    pub(crate) fn log_acks(&self) -> &Arc<acks::LogAcks> {
        &self.acks
    }

    /// Woken every [`TRUNCATE_EVERY`] log entries, for the truncation worker.
    pub(crate) fn truncate_signal(&self) -> Arc<Notify> {
        self.truncate.clone()
    }

    /// The live record of `key`, if any.
    pub(crate) async fn get(&self, key: Vec<u8>) -> Result<Option<Record>, KvError> {
        self.limits.check_key(&key)?;
        self.availability.check_readable()?;
        let store = self.store.clone();
        // Off the async workers: a read that misses the caches waits on disk.
        let record = tokio::task::spawn_blocking(move || store.get(&key))
            .await
            .map_err(|_| KvError::ShuttingDown)??;
        let now = self.clock.physical_ms();
        Ok(record.filter(|r| r.live_value(now).is_some()))
    }

    /// Writes `value` to `key`, expiring after `ttl_ms` if given; returns
    /// once durable per the store's fsync policy.
    pub(crate) async fn put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<Written, KvError> {
        self.limits.check_key(&key)?;
        self.limits.check_value(&value)?;
        let ttl_ms = ttl_ms.filter(|t| *t > 0);
        if ttl_ms.is_some_and(|t| t > MAX_TTL_MS) {
            return Err(KvError::BadRequest(format!(
                "ttl_ms must be at most {MAX_TTL_MS} (100 years)"
            )));
        }
        self.write(key, Mutation::Put { value, ttl_ms }).await
    }

    /// Deletes `key` (writes a tombstone).
    pub(crate) async fn delete(&self, key: Vec<u8>) -> Result<Deleted, KvError> {
        self.limits.check_key(&key)?;
        let now = self.clock.physical_ms();
        let written = self.write(key, Mutation::Delete).await?;
        let existed = written
            .previous
            .as_ref()
            .is_some_and(|p| p.live_value(now).is_some());
        Ok(Deleted { written, existed })
    }

    async fn write(&self, key: Vec<u8>, mutation: Mutation) -> Result<Written, KvError> {
        if self.shutdown.is_cancelled() {
            return Err(KvError::ShuttingDown);
        }
        self.availability.check_writable()?;
        self.writer.write(key, mutation).await
    }

    /// One page of the keys under `prefix` after `start_after`, in key
    /// order: live values only, or tombstones too. `limit` 0 is the default.
    pub(crate) async fn scan(
        &self,
        prefix: Vec<u8>,
        start_after: Vec<u8>,
        limit: usize,
        include_tombstones: bool,
    ) -> Result<ScanPage, KvError> {
        self.availability.check_readable()?;
        if prefix.len() > self.limits.max_key_bytes {
            return Err(KvError::BadRequest(format!(
                "prefix is {} bytes; the key limit is {} bytes",
                prefix.len(),
                self.limits.max_key_bytes
            )));
        }
        let limit = match limit {
            0 => SCAN_DEFAULT_LIMIT,
            n => n.min(SCAN_MAX_LIMIT),
        };
        let now = self.clock.physical_ms();
        let store = self.store.clone();
        let bounds = ScanBounds {
            limit,
            max_bytes: SCAN_MAX_BYTES,
            max_visited: SCAN_MAX_VISITED,
        };
        // Off the async workers: a scan may read many blocks from disk.
        tokio::task::spawn_blocking(move || {
            let start_after = (!start_after.is_empty()).then_some(start_after.as_slice());
            store.scan_page(&prefix, start_after, bounds, |r| {
                include_tombstones || r.live_value(now).is_some()
            })
        })
        .await
        .map_err(|_| KvError::ShuttingDown)?
        .map_err(KvError::from)
    }

    /// Changes to keys under `prefix` from now on, in commit order.
    pub(crate) fn watch(&self, prefix: Vec<u8>) -> Watch {
        Watch {
            cursor: self.feed.subscribe(),
            prefix,
            shutdown: self.shutdown.clone(),
        }
    }

    /// Tells the log's senders that the durable part of the local log grew.
    fn log_appended(&self) {
        let last = self.store.durable_log_seq();
        let mut crossed = false;
        self.head.send_if_modified(|h| {
            let grew = last > *h;
            if grew {
                // A group of writes can step over a multiple at once.
                crossed = last / TRUNCATE_EVERY > *h / TRUNCATE_EVERY;
                *h = last;
            }
            grew
        });
        if crossed {
            self.truncate.notify_one();
        }
    }
}

/// A watcher's position in the change feed; see [`LocalKv::watch`].
#[derive(Debug)]
pub(crate) struct Watch {
    cursor: feed::Cursor,
    prefix: Vec<u8>,
    shutdown: CancellationToken,
}

impl Watch {
    /// The next change under the prefix. A watcher that fell behind the
    /// feed's bound gets [`KvError::WatchLagged`] and must scan again.
    pub(crate) async fn next(&mut self) -> Result<Arc<Change>, KvError> {
        loop {
            let change = tokio::select! {
                () = self.shutdown.cancelled() => return Err(KvError::ShuttingDown),
                c = self.cursor.next() => c.map_err(|feed::Lagged(n)| KvError::WatchLagged(n))?,
            };
            if change.key.starts_with(&self.prefix) {
                return Ok(change);
            }
        }
    }
}
