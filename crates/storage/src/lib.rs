//! Vergent's versioned store: last-writer-wins records on RocksDB.
//!
//! This crate owns the on-disk layout (column families `data`, `log`, `meta`,
//! and the anti-entropy `index` and `digest`),
//! the record encoding, the LWW apply rule and the durability policy.
//! A record is a value or a tombstone with its [`Version`](vergent_types::Version)
//! (`(hlc, origin)`) and an optional expiry.
//!
//! Invariants:
//! - Applying a record is idempotent and commutative: any order of the same
//!   set of versions leaves identical state.
//! - A local write is stamped under the key's lock, after the caller has seen
//!   the stored version, so it always lands above the version it overwrites.
//!
//! It is the only crate that touches RocksDB. It is synchronous (no async
//! runtime) and knows nothing about the network, protobuf or the system clock:
//! time reaches it only through the caller's stamp function.

mod error;
mod locks;
mod store;
mod sync;

pub use error::{Error, StampError};
pub use store::{
    Applied, EngineStats, FailureHook, FsyncPolicy, IoStats, KeyState, LeafVersions, LogEntry,
    MemoryUsage, Mutation, Observer, ScanBounds, ScanPage, Store, StoreOptions, SyncHook, Unsynced,
    Written,
};
pub use vergent_types::record::{DecodeError, Record};
