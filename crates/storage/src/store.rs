//! The RocksDB-backed store: open, read, write, apply and scan records.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, ErrorKind, IteratorMode, MergeOperands, Options, WriteBatch, WriteOptions,
};
use vergent_types::Version;
use vergent_types::digest::{LEAVES, LeafEntry, leaf_of, record_hash};
use vergent_types::record::{decode_index, decode_log_value, encode_index, encode_log_value};

use crate::locks::StripedLocks;
use crate::sync::GroupSync;
use crate::{Error, Record, StampError};

const CF_DATA: &str = "data";
const CF_LOG: &str = "log";
const CF_META: &str = "meta";
/// `leaf:u16 | key` → `tombstone:u8 | hlc:u64 | origin`: lists a digest
/// bucket's keys and versions without reading values.
const CF_INDEX: &str = "index";
/// `leaf:u16` → `u64`, the XOR of the bucket's record hashes (merge: XOR).
const CF_DIGEST: &str = "digest";
/// `key` → the key's per-key consensus (Paxos acceptor) state, opaque here:
/// the consensus crate encodes it. Separate from the data so a scan, the
/// digest and repair never see it.
const CF_PAXOS: &str = "paxos";
const META_LIVE_KEYS: &[u8] = b"live_keys";
/// Set once the index and digest cover every record (see `build_digest_once`).
const META_DIGEST_BUILT: &str = "digest_built";
const LOCK_STRIPES: usize = 1024;
/// Memory for all memtables together (see `Store::open`).
const MEMTABLE_BUDGET: usize = 64 << 20;

/// A key and its consensus state, as [`Store::paxos_states`] lists them.
pub type KeyState = (Vec<u8>, Vec<u8>);

/// When a write is forced to stable storage before it is acknowledged.
///
/// Every policy writes the RocksDB WAL before acknowledging, so every
/// acknowledged write survives a crash of the process (`kill -9`). The policies
/// differ in what survives a crash of the machine (power loss).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync the WAL before acknowledging; writers that arrive together share
    /// one fsync (group commit), and the next group is written while one
    /// syncs. Survives power loss; the default.
    #[default]
    Group,
    /// fsync inside every RocksDB write (`sync = true`) before acknowledging:
    /// the guarantee of [`Self::Group`] without overlapping a sync with the
    /// next write. A group of client writes is one RocksDB write and shares
    /// its sync; each replicated batch syncs on its own.
    PerWrite,
    /// Never fsync explicitly; the OS flushes when it likes. Survives `kill -9`
    /// but may lose recent writes on power loss.
    Off,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "group" => Ok(Self::Group),
            "per-write" | "always" => Ok(Self::PerWrite),
            "off" | "never" => Ok(Self::Off),
            other => Err(format!(
                "unknown fsync policy {other:?}; expected group, per-write or off"
            )),
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Group => "group",
            Self::PerWrite => "per-write",
            Self::Off => "off",
        })
    }
}

/// Tuning knobs for [`Store::open`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Durability of acknowledged writes.
    pub fsync: FsyncPolicy,
    /// Size of the shared block cache in bytes.
    pub block_cache_bytes: usize,
    /// Most table files the engine keeps open (file descriptors it may use
    /// for them); a process serving network clients bounds this so the
    /// network can never take the descriptors storage needs.
    pub max_open_files: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::default(),
            block_cache_bytes: 32 << 20,
            max_open_files: 1024,
        }
    }
}

/// A change requested by a client on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Set the value, optionally expiring `ttl_ms` after the write's HLC time.
    Put {
        /// The new value.
        value: Vec<u8>,
        /// Time to live in milliseconds.
        ttl_ms: Option<u64>,
    },
    /// Delete the key (writes a tombstone).
    Delete,
}

/// The result of a local write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The record now stored.
    pub record: Record,
    /// The record it replaced, if any.
    pub previous: Option<Record>,
    /// Its entry in this node's replication log: a peer that acknowledged
    /// the log up to here holds it (or something newer of the key).
    pub seq: u64,
}

/// The result of applying a replicated record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record was newer and is now stored.
    Stored {
        /// The record it replaced, if any.
        previous: Option<Record>,
    },
    /// The stored version was the same or newer; nothing changed.
    NotNewer,
}

/// Writes made but not yet known to be on stable storage: what
/// [`Store::wait_synced`] waits for. Several combine with [`Unsynced::and`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use = "a write is not durable until wait_synced returns for it"]
pub struct Unsynced(Option<u64>);

impl Unsynced {
    /// Nothing to wait for.
    pub const NONE: Self = Self(None);

    /// Both `self`'s writes and `other`'s.
    pub fn and(self, other: Self) -> Self {
        Self(self.0.max(other.0))
    }
}

/// Called with every record the store commits (key, new record, whether it
/// came from a local write), under the key's lock, so calls for one key arrive
/// in version order. It must not block.
pub type Observer = Box<dyn Fn(&[u8], &Record, bool) + Send + Sync>;

/// Called once with a description of the first I/O failure of the engine.
pub type FailureHook = Box<dyn Fn(&str) + Send + Sync>;

/// Called before every group WAL sync; fault-injection tests use it to hold
/// a sync open and look at what is visible meanwhile.
#[doc(hidden)]
pub type SyncHook = Box<dyn Fn() + Send + Sync>;

/// A committed change waiting for the sync that makes it durable before the
/// observer hears of it.
struct PendingChange {
    ticket: u64,
    key: Vec<u8>,
    record: Record,
    local: bool,
}

/// The versioned store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    db: DB,
    path: PathBuf,
    locks: StripedLocks,
    fsync: FsyncPolicy,
    group: GroupSync,
    observer: Option<Observer>,
    /// Set by the first write or sync the engine failed with an I/O error;
    /// from then on every write is refused (fail-stop, see [`Self::failure`]).
    failure: OnceLock<String>,
    failure_hook: Option<FailureHook>,
    /// In-memory copy of the persisted bucket digests, updated after each
    /// commit; XOR commutes, so concurrent writers need no ordering.
    leaves: Box<[AtomicU64]>,
    /// Oldest entry still in the log (0: empty), kept in memory so the hot
    /// path never seeks to the log's start over truncation tombstones.
    first_seq: AtomicU64,
    /// Next replication log sequence number. Held across the RocksDB write so
    /// that log order is commit order: a reader never sees seq n+1 before n.
    log_seq: Mutex<u64>,
    /// Newest log entry that is durable per the fsync policy: the log is
    /// read only up to here, so no peer ever holds an entry that a power
    /// loss could take back (and that the origin would then reuse the
    /// sequence number of).
    durable_seq: AtomicU64,
    /// Changes committed under the `Group` policy whose sync has not finished,
    /// in commit order per key; published once durable.
    pending: Mutex<VecDeque<PendingChange>>,
    sync_hook: Option<SyncHook>,
    /// WAL syncs of group commit since open, and the nanoseconds they took.
    wal_syncs: AtomicU64,
    wal_sync_nanos: AtomicU64,
}

/// The write-ahead log's syncs since the store opened (see [`Store::io_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Group-commit syncs of the WAL (each covers every write before it).
    pub wal_syncs: u64,
    /// Time spent in those syncs, in nanoseconds.
    pub wal_sync_nanos: u64,
}

/// What the storage engine's background work looks like now (see
/// [`Store::engine_stats`]): compaction debt and write stalls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Bytes compaction estimates it must rewrite to reach its shape.
    pub pending_compaction_bytes: u64,
    /// Compactions running now.
    pub running_compactions: u64,
    /// Memtable flushes running now.
    pub running_flushes: u64,
    /// Memtables full and waiting to be flushed, over every column family.
    pub immutable_memtables: u64,
    /// Whether writes are stopped until compaction catches up.
    pub write_stopped: bool,
    /// The rate writes are slowed to, bytes per second (0: not slowed).
    pub delayed_write_rate: u64,
    /// Size of every table file, in bytes.
    pub sst_bytes: u64,
}

/// Memory held by the storage engine, in bytes (see [`Store::memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Active and immutable memtables of every column family.
    pub memtables: u64,
    /// Blocks held in the block cache.
    pub block_cache: u64,
    /// The block cache's capacity.
    pub block_cache_capacity: u64,
    /// Table readers (index and filter blocks) held outside the block cache.
    pub table_readers: u64,
}

/// The entries of one digest bucket, in key order.
pub type LeafVersions = Vec<LeafEntry>;

/// How much one [`Store::scan_page`] call may return and look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanBounds {
    /// Most records returned.
    pub limit: usize,
    /// About the most key and value bytes returned (at least one record).
    pub max_bytes: usize,
    /// Most records looked at, kept or not.
    pub max_visited: usize,
}

/// One page of [`Store::scan_page`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// The records kept, in key order.
    pub rows: Vec<(Vec<u8>, Record)>,
    /// Where the next page starts (exclusive), when this one stopped at a
    /// bound with more to come; `None` when the prefix is exhausted.
    pub resume_after: Option<Vec<u8>>,
}

/// One entry of the replication log: a local write, in commit order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in the log, starting at 1.
    pub seq: u64,
    /// The key written.
    pub key: Vec<u8>,
    /// The record written.
    pub record: Record,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("fsync", &self.fsync)
            .finish_non_exhaustive()
    }
}

fn xor_u64(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let decode = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_be_bytes).unwrap_or(0);
    let mut acc = existing.map(decode).unwrap_or(0);
    for op in operands.iter() {
        acc ^= decode(op);
    }
    Some(acc.to_be_bytes().to_vec())
}

fn add_i64(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let decode = |b: &[u8]| <[u8; 8]>::try_from(b).map(i64::from_be_bytes).unwrap_or(0);
    let mut sum = existing.map(decode).unwrap_or(0);
    for op in operands.iter() {
        sum = sum.wrapping_add(decode(op));
    }
    Some(sum.to_be_bytes().to_vec())
}

impl Store {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self, Error> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        db_opts.set_keep_log_file_num(5);
        db_opts.set_max_open_files(
            i32::try_from(options.max_open_files)
                .unwrap_or(i32::MAX)
                .max(16),
        );
        db_opts.set_max_log_file_size(16 << 20);
        // A torn last WAL record after a crash is dropped; everything before it
        // (every acknowledged write) is replayed.
        db_opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        // Five column families take writes; with RocksDB's default of 64 MiB
        // per memtable (two each) they held most of a node's memory (350 MiB
        // peak RSS at 1M keys) and made restarts replay a long WAL. One
        // budget for all memtables, flushed largest-first, and a bound on the
        // WAL keep both small.
        db_opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        db_opts.set_max_total_wal_size(4 * MEMTABLE_BUDGET as u64);

        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);

        // Point lookups (the stored version a write or an acceptor reads
        // first) mostly ask for keys the memtable lacks: a whole-key bloom
        // filter answers those without walking the skiplist.
        let point_lookups = |o: &mut Options| {
            o.set_memtable_whole_key_filtering(true);
            o.set_memtable_prefix_bloom_ratio(0.1);
        };
        let mut data_opts = Options::default();
        point_lookups(&mut data_opts);
        data_opts.set_block_based_table_factory(&table);
        data_opts.set_write_buffer_size(MEMTABLE_BUDGET / 2);
        data_opts.set_compression_type(DBCompressionType::Lz4);
        data_opts.set_bottommost_compression_type(DBCompressionType::Zstd);

        let mut meta_opts = Options::default();
        meta_opts.set_merge_operator_associative("vergent.add_i64", add_i64);

        let mut index_opts = Options::default();
        index_opts.set_block_based_table_factory(&table);
        index_opts.set_compression_type(DBCompressionType::Lz4);
        let mut digest_opts = Options::default();
        digest_opts.set_merge_operator_associative("vergent.xor_u64", xor_u64);

        let small = |mut o: Options| {
            o.set_write_buffer_size(MEMTABLE_BUDGET / 4);
            o
        };
        let mut paxos_opts = Options::default();
        point_lookups(&mut paxos_opts);
        paxos_opts.set_block_based_table_factory(&table);
        let (log_opts, meta_opts, index_opts, digest_opts, paxos_opts) = (
            small(Options::default()),
            small(meta_opts),
            small(index_opts),
            small(digest_opts),
            small(paxos_opts),
        );
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_DATA, data_opts),
            ColumnFamilyDescriptor::new(CF_LOG, log_opts),
            ColumnFamilyDescriptor::new(CF_META, meta_opts),
            ColumnFamilyDescriptor::new(CF_INDEX, index_opts),
            ColumnFamilyDescriptor::new(CF_DIGEST, digest_opts),
            // Added to data dirs made before it by `create_missing_column_families`.
            ColumnFamilyDescriptor::new(CF_PAXOS, paxos_opts),
        ];
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)
            .map_err(|e| classify_open_error(path, e))?;
        // What the WAL replayed after a crash may still sit in the page cache
        // only: sync it once, so the whole recovered log is durable before
        // any of it is shipped.
        db.flush_wal(true)?;
        let last_seq = last_log_seq(&db)?;
        let first_seq = first_log_seq(&db)?;
        build_digest_once(&db)?;
        let leaves = load_leaves(&db)?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
            locks: StripedLocks::new(LOCK_STRIPES),
            fsync: options.fsync,
            group: GroupSync::default(),
            observer: None,
            failure: OnceLock::new(),
            failure_hook: None,
            leaves,
            first_seq: AtomicU64::new(first_seq),
            log_seq: Mutex::new(last_seq + 1),
            durable_seq: AtomicU64::new(last_seq),
            wal_syncs: AtomicU64::new(0),
            wal_sync_nanos: AtomicU64::new(0),
            pending: Mutex::new(VecDeque::new()),
            sync_hook: None,
        })
    }

    /// Installs the observer of committed records (e.g. to feed watchers).
    pub fn set_observer(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    /// Installs the function told, once, that the engine failed an I/O.
    pub fn set_failure_hook(&mut self, hook: FailureHook) {
        self.failure_hook = Some(hook);
    }

    /// Installs a function run before every group WAL sync (tests only).
    #[doc(hidden)]
    pub fn set_sync_hook(&mut self, hook: SyncHook) {
        self.sync_hook = Some(hook);
    }

    /// The I/O failure that stopped this store, if any.
    ///
    /// After a failed fsync the state of the page cache is unknown (a later
    /// successful fsync does not mean the earlier data reached the disk), and
    /// RocksDB refuses further writes; the only safe continuation is to stop
    /// and recover from the WAL on reopen, as PostgreSQL and etcd do. So the
    /// first such failure is recorded, reported through the hook, and every
    /// later write is refused with [`Error::Failed`].
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    fn fail(&self, what: String) {
        if self.failure.set(what).is_ok()
            && let (Some(hook), Some(what)) = (&self.failure_hook, self.failure.get())
        {
            hook(what);
        }
    }

    /// Refuses writes once the store has failed.
    fn check_failed(&self) -> Result<(), Error> {
        match self.failure.get() {
            Some(what) => Err(Error::Failed(what.clone())),
            None => Ok(()),
        }
    }

    /// Passes an engine result through, recording an I/O error as fatal.
    fn io<T>(&self, result: Result<T, rocksdb::Error>) -> Result<T, Error> {
        result.map_err(|e| {
            if e.kind() == ErrorKind::IOError {
                self.fail(e.to_string());
            }
            Error::Engine(e)
        })
    }

    /// Tells the observer of a committed change, at once when the policy
    /// made it durable already (or never will), else once its sync is done:
    /// a watcher must not announce a write that a crash can take back.
    fn notify(&self, ticket: Option<u64>, key: &[u8], record: &Record, local: bool) {
        let Some(observe) = &self.observer else {
            return;
        };
        match ticket {
            None => observe(key, record, local),
            Some(ticket) => self
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(PendingChange {
                    ticket,
                    key: key.to_vec(),
                    record: record.clone(),
                    local,
                }),
        }
    }

    /// Publishes pending changes a finished sync made durable, in order.
    fn publish_durable(&self) {
        let Some(observe) = &self.observer else {
            return;
        };
        let synced = self.group.synced();
        // Held while publishing, so changes reach the observer in commit order.
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        while pending.front().is_some_and(|c| c.ticket <= synced) {
            if let Some(c) = pending.pop_front() {
                observe(&c.key, &c.record, c.local);
            }
        }
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability policy in force.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.fsync
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// Reads the stored record of `key`, tombstones and expired values included.
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>, Error> {
        match self.db.get_pinned_cf(self.cf(CF_DATA), key)? {
            None => Ok(None),
            Some(bytes) => {
                Record::decode(&bytes)
                    .map(Some)
                    .map_err(|source| Error::CorruptRecord {
                        key: escape(key),
                        source,
                    })
            }
        }
    }

    /// Writes a client mutation on this node.
    ///
    /// Under the key's lock, `stamp` is shown the stored version (if any) and
    /// must return a version above it; the new record is then written and made
    /// durable per the [`FsyncPolicy`].
    pub fn write(
        &self,
        key: &[u8],
        mutation: Mutation,
        stamp: impl FnOnce(Option<&Version>) -> Result<Version, StampError>,
    ) -> Result<Written, Error> {
        // One mutation: the group calls `stamp` at most once.
        let mut stamp = Some(stamp);
        let mut out = self.write_many(vec![(key.to_vec(), mutation)], |stored| {
            let stamp = stamp.take().ok_or("stamp called twice for one write")?;
            stamp(stored)
        })?;
        out.pop()
            .unwrap_or_else(|| Err(Error::Stamp("the write produced no result".into())))
    }

    /// Writes many client mutations as one group: one RocksDB batch, one log
    /// append per mutation in order, and one durability wait for all.
    ///
    /// This is the write path's group commit: writers that arrive while a
    /// batch is being written or synced share the next batch, so the cost of
    /// a WAL write and an fsync is spread over all of them. `stamp` is called
    /// once per mutation, in order, under the keys' locks, with the version
    /// stored for that key (including one written earlier in the same group).
    /// A mutation whose stamp fails is skipped with its own error; the outer
    /// error means nothing of the group was written.
    pub fn write_many(
        &self,
        ops: Vec<(Vec<u8>, Mutation)>,
        mut stamp: impl FnMut(Option<&Version>) -> Result<Version, StampError>,
    ) -> Result<Vec<Result<Written, Error>>, Error> {
        self.check_failed()?;
        let mut results: Vec<Result<Written, Error>> = Vec::with_capacity(ops.len());
        let (keys, mutations): (Vec<Vec<u8>>, Vec<Mutation>) = ops.into_iter().unzip();
        let ticket = {
            let _guards = self.locks.lock_many(keys.iter().map(Vec::as_slice));
            // The group's latest successful write of each key: a later
            // mutation of the same key must see it as its previous version.
            let mut latest: HashMap<&[u8], usize> = HashMap::new();
            let mut batch = WriteBatch::default();
            let mut changes = Vec::with_capacity(keys.len());
            for (i, (key, mutation)) in keys.iter().zip(mutations).enumerate() {
                let previous = match latest.get(key.as_slice()) {
                    Some(&j) => results[j].as_ref().ok().map(|w: &Written| w.record.clone()),
                    None => self.get(key)?,
                };
                let version = match stamp(previous.as_ref().map(|r| &r.version)) {
                    Ok(v) => v,
                    Err(e) => {
                        results.push(Err(Error::Stamp(e)));
                        continue;
                    }
                };
                if let Some(prev) = &previous
                    && version <= prev.version
                {
                    results.push(Err(Error::StaleStamp {
                        new: version.to_string(),
                        stored: prev.version.to_string(),
                    }));
                    continue;
                }
                let record = match mutation {
                    Mutation::Put { value, ttl_ms } => {
                        let expires = ttl_ms.map(|t| version.hlc.physical_ms().saturating_add(t));
                        Record::value(version, value, expires)
                    }
                    Mutation::Delete => Record::tombstone(version),
                };
                changes.push(self.stage(&mut batch, key, &record, previous.as_ref()));
                latest.insert(key.as_slice(), i);
                results.push(Ok(Written {
                    record,
                    previous,
                    seq: 0,
                }));
            }
            if changes.is_empty() {
                return Ok(results);
            }
            // Every successful write gets the next log entry, in group order.
            let written = || {
                keys.iter()
                    .zip(&results)
                    .filter_map(|(k, r)| r.as_ref().ok().map(|w| (k, &w.record)))
            };
            let mut first_seq = 0;
            let ticket = self.commit_logged(batch, |batch, mut seq| {
                first_seq = seq;
                for (key, record) in written() {
                    batch.put_cf(
                        self.cf(CF_LOG),
                        seq.to_be_bytes(),
                        encode_log_value(key, record),
                    );
                    seq += 1;
                }
                seq
            })?;
            self.fold_digest(&changes);
            for (key, record) in written() {
                self.notify(ticket, key, record, true);
            }
            for (seq, w) in (first_seq..).zip(results.iter_mut().filter_map(|r| r.as_mut().ok())) {
                w.seq = seq;
            }
            ticket
        };
        // Wait for durability outside the key locks so that writers of other
        // keys in the same stripes are not held up by the fsync.
        self.wait_durable(ticket)?;
        Ok(results)
    }

    /// Applies a record from another node with last-writer-wins.
    pub fn apply(&self, key: &[u8], record: Record) -> Result<Applied, Error> {
        let mut out = self.apply_batch(vec![(key.to_vec(), record)])?;
        Ok(out.pop().unwrap_or(Applied::NotNewer))
    }

    /// Applies many replicated records atomically: one RocksDB batch, one sync.
    ///
    /// Each record is stored only if its version is above the stored one (or
    /// above an earlier record for the same key in this batch).
    pub fn apply_batch(&self, records: Vec<(Vec<u8>, Record)>) -> Result<Vec<Applied>, Error> {
        self.apply_batch_with_meta(records, &[])
    }

    /// [`Self::apply_batch`], writing the metadata entries `meta` in the same
    /// atomic batch and under the same sync (e.g. a replication cursor that
    /// must never say more than what is applied, and need not cost a sync of
    /// its own).
    pub fn apply_batch_with_meta(
        &self,
        records: Vec<(Vec<u8>, Record)>,
        meta: &[(&str, &[u8])],
    ) -> Result<Vec<Applied>, Error> {
        self.apply_staged(
            records,
            |batch| {
                for (name, value) in meta {
                    batch.put_cf(self.cf(CF_META), meta_key(name), value);
                }
            },
            false,
        )
    }

    /// Reads the consensus (Paxos acceptor) state of `key`, as
    /// [`Self::put_paxos_state`] or [`Self::commit_paxos`] last stored it.
    pub fn paxos_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.db.get_cf(self.cf(CF_PAXOS), key)?)
    }

    /// Stores the consensus state of `key` and returns once it is on stable
    /// storage, whatever the [`FsyncPolicy`]: a promise or an accept that a
    /// crash takes back would let two different values be chosen, so the
    /// safety of strong operations never depends on the policy. Concurrent
    /// callers share one sync (group commit).
    pub fn put_paxos_state(&self, key: &[u8], state: &[u8]) -> Result<(), Error> {
        let unsynced = self.put_paxos_state_unsynced(key, state)?;
        self.wait_synced(unsynced)
    }

    /// Like [`Self::put_paxos_state`], but returns once the state is
    /// written (readable), before it is durable: [`Self::wait_synced`] on
    /// the result waits for that, so a caller answering for many keys at
    /// once syncs once for all of them.
    pub fn put_paxos_state_unsynced(&self, key: &[u8], state: &[u8]) -> Result<Unsynced, Error> {
        self.check_failed()?;
        let _guard = self.locks.lock(key);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_PAXOS), key, state);
        Ok(Unsynced(self.commit_synced(batch)?))
    }

    /// Everything written to this store so far, as one [`Unsynced`]: once
    /// [`Self::wait_synced`] returns for it, whatever a reader saw before
    /// this call is durable.
    pub fn written(&self) -> Unsynced {
        Unsynced(match self.fsync {
            FsyncPolicy::PerWrite => None,
            FsyncPolicy::Group | FsyncPolicy::Off => Some(self.group.written()),
        })
    }

    /// Returns once the writes `unsynced` stands for are on stable storage
    /// (one group sync covers every caller waiting at the time).
    pub fn wait_synced(&self, unsynced: Unsynced) -> Result<(), Error> {
        self.wait_durable(unsynced.0)
    }

    /// How many keys have consensus state, counting at most `limit`.
    pub fn paxos_state_count(&self, limit: usize) -> Result<usize, Error> {
        let mut n = 0;
        for item in self.db.iterator_cf(self.cf(CF_PAXOS), IteratorMode::Start) {
            item?;
            n += 1;
            if n >= limit {
                break;
            }
        }
        Ok(n)
    }

    /// Deletes the consensus state of `key` (its garbage collection) and
    /// returns once that is on stable storage. The caller re-checks, under
    /// its own per-key lock, that the record may go.
    pub fn delete_paxos_state(&self, key: &[u8]) -> Result<(), Error> {
        self.check_failed()?;
        let ticket = {
            let _guard = self.locks.lock(key);
            let mut batch = WriteBatch::default();
            batch.delete_cf(self.cf(CF_PAXOS), key);
            self.commit_synced(batch)?
        };
        self.wait_durable(ticket)
    }

    /// Applies a value consensus decided: `record` through last-writer-wins
    /// (watchers see it as a replicated change) and the key's new consensus
    /// state (`None` removes it) in one atomic batch, durable on return
    /// whatever the [`FsyncPolicy`], as [`Self::put_paxos_state`].
    pub fn commit_paxos(
        &self,
        key: &[u8],
        record: Record,
        state: Option<&[u8]>,
    ) -> Result<Applied, Error> {
        let (applied, unsynced) = self.commit_paxos_unsynced(key, record, state)?;
        self.wait_synced(unsynced)?;
        Ok(applied)
    }

    /// Like [`Self::commit_paxos`], but returns once the batch is written
    /// (readable), before it is durable ([`Self::wait_synced`] waits). A
    /// commit lost in a crash loses nothing chosen: the acceptor state it
    /// replaced still holds the accepted value, which the next round
    /// completes.
    pub fn commit_paxos_unsynced(
        &self,
        key: &[u8],
        record: Record,
        state: Option<&[u8]>,
    ) -> Result<(Applied, Unsynced), Error> {
        let (mut out, ticket) = self.apply_staged_unsynced(
            vec![(key.to_vec(), record)],
            |batch| match state {
                Some(state) => batch.put_cf(self.cf(CF_PAXOS), key, state),
                None => batch.delete_cf(self.cf(CF_PAXOS), key),
            },
            true,
        )?;
        Ok((out.pop().unwrap_or(Applied::NotNewer), Unsynced(ticket)))
    }

    /// Keys holding consensus state after `start_after` (exclusive), in key
    /// order, at most `limit`, with their states.
    pub fn paxos_states(
        &self,
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyState>, Error> {
        let mode = match start_after {
            Some(k) => IteratorMode::From(k, Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_PAXOS), mode) {
            let (k, v) = item?;
            if start_after.is_some_and(|s| *k == *s) {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// The body of [`Self::apply_batch_with_meta`] and
    /// [`Self::commit_paxos`]: LWW-applies `records` and whatever `extra`
    /// adds, in one batch; `always_sync` makes it durable whatever the
    /// policy.
    fn apply_staged(
        &self,
        records: Vec<(Vec<u8>, Record)>,
        extra: impl FnOnce(&mut WriteBatch),
        always_sync: bool,
    ) -> Result<Vec<Applied>, Error> {
        let (results, ticket) = self.apply_staged_unsynced(records, extra, always_sync)?;
        self.wait_durable(ticket)?;
        Ok(results)
    }

    /// [`Self::apply_staged`] up to the write: returns the results and the
    /// sync ticket the caller must wait on before relying on durability.
    fn apply_staged_unsynced(
        &self,
        records: Vec<(Vec<u8>, Record)>,
        extra: impl FnOnce(&mut WriteBatch),
        always_sync: bool,
    ) -> Result<(Vec<Applied>, Option<u64>), Error> {
        self.check_failed()?;
        let mut results = Vec::with_capacity(records.len());
        let ticket = {
            let _guards = self
                .locks
                .lock_many(records.iter().map(|(k, _)| k.as_slice()));
            let mut pending: HashMap<&[u8], &Record> = HashMap::new();
            let mut batch = WriteBatch::default();
            let mut changes = Vec::new();
            for (key, record) in &records {
                let current = match pending.get(key.as_slice()) {
                    Some(r) => Some((*r).clone()),
                    None => self.get(key)?,
                };
                if current
                    .as_ref()
                    .is_some_and(|c| c.version >= record.version)
                {
                    results.push(Applied::NotNewer);
                    continue;
                }
                changes.push(self.stage(&mut batch, key, record, current.as_ref()));
                pending.insert(key.as_slice(), record);
                results.push(Applied::Stored { previous: current });
            }
            extra(&mut batch);
            if batch.is_empty() {
                return Ok((results, None));
            }
            let ticket = self.commit_as(batch, always_sync)?;
            self.fold_digest(&changes);
            for (key, record) in &records {
                if pending
                    .get(key.as_slice())
                    .is_some_and(|r| std::ptr::eq(*r, record))
                {
                    self.notify(ticket, key, record, false);
                }
            }
            ticket
        };
        Ok((results, ticket))
    }

    /// Scans keys starting with `prefix`, in key order, after `start_after`
    /// (exclusive) when given, returning at most `limit` records that `keep`
    /// accepts.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> Result<Vec<(Vec<u8>, Record)>, Error> {
        let from = match start_after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        let iter = self.db.iterator_cf(
            self.cf(CF_DATA),
            IteratorMode::From(from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (key, bytes) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            if start_after.is_some_and(|after| &*key <= after) {
                continue;
            }
            let record = Record::decode(&bytes).map_err(|source| Error::CorruptRecord {
                key: escape(&key),
                source,
            })?;
            if keep(&record) {
                out.push((key.into_vec(), record));
            }
        }
        Ok(out)
    }

    /// One bounded page of a scan: keys starting with `prefix` after
    /// `start_after`, in key order, keeping at most `limit` records that
    /// `keep` accepts and about `max_bytes` of them (at least one), and
    /// looking at no more than `max_visited` records in all (a long run of
    /// tombstones costs a bounded amount per call). `resume_after` says where
    /// the next page starts when this one stopped at a bound.
    pub fn scan_page(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        bounds: ScanBounds,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> Result<ScanPage, Error> {
        let from = match start_after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        let iter = self.db.iterator_cf(
            self.cf(CF_DATA),
            IteratorMode::From(from, Direction::Forward),
        );
        let mut page = ScanPage::default();
        let mut bytes = 0;
        let mut visited = 0;
        let mut last: Option<Vec<u8>> = None;
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                return Ok(page);
            }
            if start_after.is_some_and(|after| &*key <= after) {
                continue;
            }
            let full = page.rows.len() >= bounds.limit
                || (!page.rows.is_empty() && bytes >= bounds.max_bytes)
                || visited >= bounds.max_visited;
            if full {
                // Something follows: resume after the last record looked at.
                page.resume_after = last;
                return Ok(page);
            }
            visited += 1;
            let record = Record::decode(&value).map_err(|source| Error::CorruptRecord {
                key: escape(&key),
                source,
            })?;
            if keep(&record) {
                bytes += key.len() + value.len();
                page.rows.push((key.to_vec(), record));
            }
            last = Some(key.into_vec());
        }
        Ok(page)
    }

    /// A snapshot of the [`LEAVES`] bucket digests (see
    /// [`vergent_types::digest`]), as maintained on every write and apply.
    pub fn digest(&self) -> Vec<u64> {
        self.leaves
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .collect()
    }

    /// Recomputes the bucket digests from every stored record: a full scan,
    /// for verification (the maintained digest must always equal it).
    pub fn recompute_digest(&self) -> Result<Vec<u64>, Error> {
        let mut out = vec![0u64; LEAVES];
        each_record(&self.db, |key, record| {
            out[leaf_of(key) as usize] ^= record_hash(key, &record.version);
            Ok(())
        })?;
        Ok(out)
    }

    /// The keys, versions and tombstone flags stored in each of `leaves`, in
    /// key order, read from the index (values are not read).
    pub fn leaf_versions(&self, leaves: &[u16]) -> Result<Vec<LeafVersions>, Error> {
        let mut out = Vec::with_capacity(leaves.len());
        for &leaf in leaves {
            let start = leaf.to_be_bytes();
            let iter = self.db.iterator_cf(
                self.cf(CF_INDEX),
                IteratorMode::From(&start, Direction::Forward),
            );
            let mut entries = Vec::new();
            for item in iter {
                let (k, v) = item?;
                if !k.starts_with(&start) {
                    break;
                }
                let (version, tombstone) =
                    decode_index(&v).map_err(|source| Error::CorruptRecord {
                        key: escape(&k[2..]),
                        source,
                    })?;
                entries.push(LeafEntry {
                    key: k[2..].to_vec(),
                    version,
                    tombstone,
                });
            }
            out.push(entries);
        }
        Ok(out)
    }

    /// Whether no record (value or tombstone) is stored.
    pub fn is_empty(&self) -> Result<bool, Error> {
        let mut iter = self.db.iterator_cf(self.cf(CF_DATA), IteratorMode::Start);
        Ok(match iter.next() {
            None => true,
            Some(item) => {
                item?;
                false
            }
        })
    }

    /// Removes the record of `key` if it is still exactly `version` (a
    /// tombstone or expired value whose purge the caller decided is safe);
    /// returns whether it was removed. Purges are local: they are not logged
    /// or replicated, each replica purges on its own.
    pub fn purge(&self, key: &[u8], version: &Version) -> Result<bool, Error> {
        self.check_failed()?;
        let ticket = {
            let _guard = self.locks.lock(key);
            let Some(current) = self.get(key)? else {
                return Ok(false);
            };
            if &current.version != version {
                return Ok(false);
            }
            let leaf = leaf_of(key);
            let delta = record_hash(key, version);
            let mut batch = WriteBatch::default();
            batch.delete_cf(self.cf(CF_DATA), key);
            batch.delete_cf(self.cf(CF_INDEX), index_key(leaf, key));
            batch.merge_cf(self.cf(CF_DIGEST), leaf.to_be_bytes(), delta.to_be_bytes());
            if !current.is_tombstone() {
                batch.merge_cf(self.cf(CF_META), META_LIVE_KEYS, (-1i64).to_be_bytes());
            }
            let ticket = self.commit(batch)?;
            self.fold_digest(&[(leaf, delta)]);
            ticket
        };
        self.wait_durable(ticket)?;
        Ok(true)
    }

    /// Number of keys whose latest version is a value (tombstones excluded;
    /// expired values count until they are purged).
    pub fn live_keys(&self) -> Result<u64, Error> {
        let raw = self.db.get_cf(self.cf(CF_META), META_LIVE_KEYS)?;
        let n = raw
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(i64::from_be_bytes)
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Memory the engine holds now: memtables, block cache, table readers.
    pub fn memory(&self) -> MemoryUsage {
        let prop = |cf: &str, name: &str| {
            self.db
                .property_int_value_cf(self.cf(cf), name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        let all = [CF_DATA, CF_LOG, CF_META, CF_INDEX, CF_DIGEST, CF_PAXOS];
        MemoryUsage {
            memtables: all
                .iter()
                .map(|cf| prop(cf, "rocksdb.size-all-mem-tables"))
                .sum(),
            // One cache is shared by the column families that read through it.
            block_cache: prop(CF_DATA, "rocksdb.block-cache-usage"),
            block_cache_capacity: prop(CF_DATA, "rocksdb.block-cache-capacity"),
            table_readers: all
                .iter()
                .map(|cf| prop(cf, "rocksdb.estimate-table-readers-mem"))
                .sum(),
        }
    }

    /// The WAL syncs group commit did since the store opened.
    pub fn io_stats(&self) -> IoStats {
        IoStats {
            wal_syncs: self.wal_syncs.load(Ordering::Relaxed),
            wal_sync_nanos: self.wal_sync_nanos.load(Ordering::Relaxed),
        }
    }

    /// Compaction debt and write stalls, as the engine reports them now.
    pub fn engine_stats(&self) -> EngineStats {
        let all = [CF_DATA, CF_LOG, CF_META, CF_INDEX, CF_DIGEST, CF_PAXOS];
        let prop = |cf: &str, name: &str| {
            self.db
                .property_int_value_cf(self.cf(cf), name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        let sum = |name: &str| all.iter().map(|cf| prop(cf, name)).sum::<u64>();
        EngineStats {
            pending_compaction_bytes: sum("rocksdb.estimate-pending-compaction-bytes"),
            // Database-wide properties: any column family reads them.
            running_compactions: prop(CF_DATA, "rocksdb.num-running-compactions"),
            running_flushes: prop(CF_DATA, "rocksdb.num-running-flushes"),
            immutable_memtables: sum("rocksdb.num-immutable-mem-table"),
            write_stopped: prop(CF_DATA, "rocksdb.is-write-stopped") != 0,
            delayed_write_rate: prop(CF_DATA, "rocksdb.actual-delayed-write-rate"),
            sst_bytes: sum("rocksdb.total-sst-files-size"),
        }
    }

    /// Lists metadata entries whose name starts with `prefix`.
    pub fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let start = meta_key(prefix);
        let iter = self.db.iterator_cf(
            self.cf(CF_META),
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&start) {
                break;
            }
            let name = String::from_utf8_lossy(&k[2..]).into_owned();
            out.push((name, v.into_vec()));
        }
        Ok(out)
    }

    /// Reads a node metadata entry (node id, HLC ceiling, ...).
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.db.get_cf(self.cf(CF_META), meta_key(name))?)
    }

    /// Writes a node metadata entry without waiting for an fsync: it is in
    /// the WAL (so it survives `kill -9`) but may be lost with the page cache
    /// on power loss. For progress markers whose loss only causes redone
    /// work, such as a peer's replication cursor.
    pub fn put_meta_relaxed(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.check_failed()?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), meta_key(name), value);
        self.io(self.db.write(batch))?;
        Ok(())
    }

    /// Writes a node metadata entry and syncs it before returning, whatever the
    /// fsync policy: metadata such as the HLC ceiling must survive power loss.
    pub fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.check_failed()?;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), meta_key(name), value);
        self.io(self.db.write_opt(batch, &opts))?;
        Ok(())
    }

    /// Removes a node metadata entry (synced, like [`Self::put_meta`]).
    pub fn delete_meta(&self, name: &str) -> Result<(), Error> {
        self.check_failed()?;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_META), meta_key(name));
        self.io(self.db.write_opt(batch, &opts))?;
        Ok(())
    }

    /// Adds the record, its index entry, its digest change and the live-key
    /// delta to `batch`; returns the digest change to fold into memory once
    /// the batch is committed.
    fn stage(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        new: &Record,
        old: Option<&Record>,
    ) -> (u16, u64) {
        batch.put_cf(self.cf(CF_DATA), key, new.encode());
        let leaf = leaf_of(key);
        batch.put_cf(self.cf(CF_INDEX), index_key(leaf, key), encode_index(new));
        let digest_delta =
            record_hash(key, &new.version) ^ old.map_or(0, |o| record_hash(key, &o.version));
        batch.merge_cf(
            self.cf(CF_DIGEST),
            leaf.to_be_bytes(),
            digest_delta.to_be_bytes(),
        );
        let was_live = old.is_some_and(|r| !r.is_tombstone());
        let delta: i64 = match (was_live, !new.is_tombstone()) {
            (false, true) => 1,
            (true, false) => -1,
            _ => 0,
        };
        if delta != 0 {
            batch.merge_cf(self.cf(CF_META), META_LIVE_KEYS, delta.to_be_bytes());
        }
        (leaf, digest_delta)
    }

    /// Folds committed digest changes into the in-memory copy.
    fn fold_digest(&self, changes: &[(u16, u64)]) {
        for &(leaf, delta) in changes {
            self.leaves[leaf as usize].fetch_xor(delta, Ordering::Relaxed);
        }
    }

    /// Writes the batch to the WAL and memtable; returns a group-commit ticket
    /// when the policy needs a sync afterwards.
    fn commit(&self, batch: WriteBatch) -> Result<Option<u64>, Error> {
        self.commit_as(batch, false)
    }

    /// Like [`Self::commit`], but durable whatever the policy: synced inside
    /// the write under `per-write`, else through a group sync ticket.
    fn commit_synced(&self, batch: WriteBatch) -> Result<Option<u64>, Error> {
        self.commit_as(batch, true)
    }

    /// Writes `batch`; under `off`, `always_durable` asks for a group sync
    /// ticket all the same.
    fn commit_as(&self, batch: WriteBatch, always_durable: bool) -> Result<Option<u64>, Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.fsync == FsyncPolicy::PerWrite);
        self.io(self.db.write_opt(batch, &opts))?;
        let ticket = match self.fsync {
            FsyncPolicy::PerWrite => false,
            FsyncPolicy::Group => true,
            FsyncPolicy::Off => always_durable,
        };
        Ok(ticket.then(|| self.group.ticket()))
    }

    /// Like [`Self::commit`], appending local writes to the replication log
    /// in the same batch, so a write is in the log exactly when it is in the
    /// data. `append` is given the next sequence number, adds the entries and
    /// returns the one after its last.
    fn commit_logged(
        &self,
        mut batch: WriteBatch,
        append: impl FnOnce(&mut WriteBatch, u64) -> u64,
    ) -> Result<Option<u64>, Error> {
        let mut next = self.log_seq.lock().unwrap_or_else(PoisonError::into_inner);
        let first = *next;
        let after = append(&mut batch, first);
        let ticket = self.commit(batch)?;
        let _ = self
            .first_seq
            .compare_exchange(0, first, Ordering::Relaxed, Ordering::Relaxed);
        *next = after;
        if ticket.is_none() {
            // Durable as the policy promises once written (`per-write`
            // synced inside the write; `off` promises no more).
            self.durable_seq.fetch_max(after - 1, Ordering::Release);
        }
        Ok(ticket)
    }

    /// Writes a consistent copy of the whole store, every column family as
    /// of one instant, into `dir` (which must not exist yet): a RocksDB
    /// checkpoint. On the same file system its table files are hard links,
    /// so it costs little space and no copying while the store changes;
    /// the memtables are flushed first, so the copy needs no WAL replay.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), Error> {
        self.check_failed()?;
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db)?;
        checkpoint.create_checkpoint(dir)?;
        Ok(())
    }

    /// The sequence number of the newest log entry (0 when the log is empty
    /// and nothing was ever written).
    pub fn last_log_seq(&self) -> u64 {
        *self.log_seq.lock().unwrap_or_else(PoisonError::into_inner) - 1
    }

    /// Makes everything written so far durable per the fsync policy: a
    /// group sync under `group` (shared with concurrent writers), nothing
    /// more under `per-write` (every write synced already) or `off`.
    pub fn sync(&self) -> Result<(), Error> {
        self.check_failed()?;
        if self.fsync != FsyncPolicy::Group {
            return Ok(());
        }
        let ticket = self.group.ticket();
        self.wait_durable(Some(ticket))
    }

    /// The newest log entry that is durable per the fsync policy; the log is
    /// readable up to here (see [`Self::read_log`]).
    pub fn durable_log_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// Reads durable log entries after `after` (exclusive), at most
    /// `max_entries` and about `max_bytes` (at least one entry is returned
    /// when any exists). Entries written but not yet synced are not read.
    pub fn read_log(
        &self,
        after: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>, Error> {
        let durable = self.durable_log_seq();
        if after >= durable {
            return Ok(Vec::new());
        }
        let start = (after + 1).to_be_bytes();
        let iter = self.db.iterator_cf(
            self.cf(CF_LOG),
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in iter {
            if out.len() >= max_entries || (bytes >= max_bytes && !out.is_empty()) {
                break;
            }
            let (k, v) = item?;
            let seq = <[u8; 8]>::try_from(&*k)
                .map(u64::from_be_bytes)
                .map_err(|_| Error::CorruptRecord {
                    key: escape(&k),
                    source: crate::DecodeError::Truncated,
                })?;
            if seq > durable {
                break;
            }
            let (key, record) = decode_log_value(&v).map_err(|source| Error::CorruptRecord {
                key: format!("log#{seq}"),
                source,
            })?;
            bytes += v.len();
            out.push(LogEntry { seq, key, record });
        }
        Ok(out)
    }

    /// The sequence number of the first log entry whose HLC physical time
    /// is at or after `physical_ms` (the last entry's number when none is):
    /// entries below it are older. A binary search over point reads, since
    /// log order follows HLC order (up to a few concurrent groups, which
    /// only blurs the boundary by as many entries).
    pub fn log_entries_older_than(&self, physical_ms: u64) -> Result<u64, Error> {
        let first = self.first_seq.load(Ordering::Relaxed);
        let last = self.last_log_seq();
        if first == 0 || last < first {
            return Ok(first);
        }
        let (mut lo, mut hi) = (first, last);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let young = match self.db.get_pinned_cf(self.cf(CF_LOG), mid.to_be_bytes())? {
                Some(v) => {
                    let (_, record) =
                        decode_log_value(&v).map_err(|source| Error::CorruptRecord {
                            key: format!("log#{mid}"),
                            source,
                        })?;
                    record.version.hlc.physical_ms() >= physical_ms
                }
                // Truncated meanwhile: older than anything kept.
                None => false,
            };
            if young {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// The oldest entry still in the log (None when it is empty).
    pub fn first_log_seq(&self) -> Result<Option<u64>, Error> {
        Ok(match self.first_seq.load(Ordering::Relaxed) {
            0 => None,
            seq => Some(seq),
        })
    }

    /// Drops log entries with `seq < below`: every peer that matters has them.
    ///
    /// The newest entry is always kept, so sequence numbers continue after a
    /// restart instead of starting again at 1 below the peers' cursors.
    /// Entries are deleted one by one, not with a range delete: every range
    /// tombstone in the memtable is re-fragmented by every new iterator, and
    /// with one truncation per acknowledgement that came to dominate the
    /// node's CPU (profile in docs/benchmarks.md).
    pub fn truncate_log(&self, below: u64) -> Result<(), Error> {
        let below = below.min(self.last_log_seq());
        let first = self.first_seq.load(Ordering::Relaxed);
        if below <= 1 || first == 0 || below <= first {
            return Ok(());
        }
        self.check_failed()?;
        // In bounded batches: a peer that caught up from far behind can free
        // millions of entries at once.
        let mut from = first;
        while from < below {
            let to = below.min(from + 65_536);
            let mut batch = WriteBatch::default();
            for seq in from..to {
                batch.delete_cf(self.cf(CF_LOG), seq.to_be_bytes());
            }
            self.io(self.db.write(batch))?;
            self.first_seq.fetch_max(to, Ordering::Relaxed);
            from = to;
        }
        Ok(())
    }

    fn wait_durable(&self, ticket: Option<u64>) -> Result<(), Error> {
        let Some(ticket) = ticket else {
            return Ok(());
        };
        self.group
            .wait(ticket, || {
                // Every entry up to here was written before the sync began,
                // so the sync covers it (the log mutex orders the two).
                let covered = self.last_log_seq();
                if let Some(hook) = &self.sync_hook {
                    hook();
                }
                let started = std::time::Instant::now();
                self.db.flush_wal(true).map_err(|e| e.to_string())?;
                let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.wal_syncs.fetch_add(1, Ordering::Relaxed);
                self.wal_sync_nanos.fetch_add(took, Ordering::Relaxed);
                self.durable_seq.fetch_max(covered, Ordering::Release);
                Ok(())
            })
            .map_err(|e| {
                self.fail(format!("WAL sync failed: {e}"));
                Error::WalSync(e)
            })?;
        self.publish_durable();
        Ok(())
    }
}

/// The lowest sequence number in the log (0 when it is empty), read once at open.
fn first_log_seq(db: &DB) -> Result<u64, Error> {
    let cf = db
        .cf_handle(CF_LOG)
        .expect("column families are created at open");
    let mut iter = db.iterator_cf(cf, IteratorMode::Start);
    match iter.next() {
        None => Ok(0),
        Some(item) => {
            let (k, _) = item?;
            Ok(<[u8; 8]>::try_from(&*k)
                .map(u64::from_be_bytes)
                .unwrap_or(0))
        }
    }
}

/// The highest sequence number in the log; truncation always keeps the newest
/// entry, so numbers are never reused across restarts.
fn last_log_seq(db: &DB) -> Result<u64, Error> {
    let cf = db
        .cf_handle(CF_LOG)
        .expect("column families are created at open");
    let mut iter = db.iterator_cf(cf, IteratorMode::End);
    let from_log = match iter.next() {
        Some(item) => {
            let (k, _) = item?;
            <[u8; 8]>::try_from(&*k)
                .map(u64::from_be_bytes)
                .unwrap_or(0)
        }
        None => 0,
    };
    Ok(from_log)
}

fn index_key(leaf: u16, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.len());
    k.extend_from_slice(&leaf.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Calls `f` with every stored record, in key order.
fn each_record(
    db: &DB,
    mut f: impl FnMut(&[u8], &Record) -> Result<(), Error>,
) -> Result<(), Error> {
    let cf = db
        .cf_handle(CF_DATA)
        .expect("column families are created at open");
    for item in db.iterator_cf(cf, IteratorMode::Start) {
        let (key, bytes) = item?;
        let record = Record::decode(&bytes).map_err(|source| Error::CorruptRecord {
            key: escape(&key),
            source,
        })?;
        f(&key, &record)?;
    }
    Ok(())
}

/// Data dirs written before the digest existed get their index and bucket
/// digests built from the data once (a full scan); a meta marker records it.
fn build_digest_once(db: &DB) -> Result<(), Error> {
    let cf = |name| {
        db.cf_handle(name)
            .expect("column families are created at open")
    };
    let marker = meta_key(META_DIGEST_BUILT);
    if db.get_cf(cf(CF_META), &marker)?.is_some() {
        return Ok(());
    }
    let mut digest = vec![0u64; LEAVES];
    let mut batch = WriteBatch::default();
    each_record(db, |key, record| {
        let leaf = leaf_of(key);
        digest[leaf as usize] ^= record_hash(key, &record.version);
        batch.put_cf(cf(CF_INDEX), index_key(leaf, key), encode_index(record));
        if batch.len() >= 10_000 {
            db.write(std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    for (leaf, value) in digest.iter().enumerate() {
        if *value != 0 {
            batch.put_cf(
                cf(CF_DIGEST),
                (leaf as u16).to_be_bytes(),
                value.to_be_bytes(),
            );
        }
    }
    batch.put_cf(cf(CF_META), marker, [1u8]);
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    Ok(())
}

/// Reads the persisted bucket digests (at most [`LEAVES`] small entries).
fn load_leaves(db: &DB) -> Result<Box<[AtomicU64]>, Error> {
    let leaves: Box<[AtomicU64]> = (0..LEAVES).map(|_| AtomicU64::new(0)).collect();
    let cf = db
        .cf_handle(CF_DIGEST)
        .expect("column families are created at open");
    for item in db.iterator_cf(cf, IteratorMode::Start) {
        let (k, v) = item?;
        let (Ok(leaf), Ok(value)) = (<[u8; 2]>::try_from(&*k), <[u8; 8]>::try_from(&*v)) else {
            return Err(Error::CorruptRecord {
                key: format!("digest/{}", escape(&k)),
                source: crate::DecodeError::Truncated,
            });
        };
        leaves[u16::from_be_bytes(leaf) as usize]
            .store(u64::from_be_bytes(value), Ordering::Relaxed);
    }
    Ok(leaves)
}

fn meta_key(name: &str) -> Vec<u8> {
    let mut k = b"m/".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn classify_open_error(path: &Path, e: rocksdb::Error) -> Error {
    let detail = e.to_string();
    let path = path.display().to_string();
    if detail.contains("lock") && e.kind() == ErrorKind::IOError {
        Error::Locked { path, detail }
    } else if e.kind() == ErrorKind::Corruption {
        Error::CorruptDir { path, detail }
    } else {
        Error::Engine(e)
    }
}

/// Shows a key as UTF-8 where it is printable, escaping other bytes.
fn escape(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}
