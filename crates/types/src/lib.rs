//! Shared vocabulary of Vergent: node identities, record versions, the
//! stored record and its on-disk encodings, request limits, and the backup
//! manifest.
//!
//! Every other crate speaks in these types, so they stay small and pure.
//! This crate must not depend on I/O, async runtimes, protobuf or RocksDB; it
//! depends only on `vergent-hlc` for the timestamp inside a [`Version`].

pub mod backup;
pub mod digest;
mod limits;
mod node_id;
pub mod record;
mod version;

pub use limits::{LimitError, Limits};
pub use node_id::{MAX_NODE_ID_LEN, NodeId, NodeIdError};
pub use version::Version;
