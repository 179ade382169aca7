//! A running Vergent node, embeddable in any tokio application.
//!
//! [`Node::start`] composes the pieces: it locks the data directory, opens the
//! RocksDB store, restores the node id and the HLC ceiling, loads the mTLS
//! identity and serves the gRPC API (plus health and reflection) until
//! [`NodeHandle::shutdown`]. Beside the API it runs the peer side: gossip
//! membership, log replication and anti-entropy repair (bootstrap of an
//! empty node, tombstone purge).
//!
//! Inside, `node.rs` is the composition root that nothing imports; the
//! local service (`kv`) is protocol-agnostic, the gRPC frontend (`api`) and
//! the peer protocol drivers (`peer`) call it, and the frontend reads peer
//! state only through status snapshots (`status`). Strong per-key
//! operations (`strong`) drive the consensus core: the frontend calls
//! them, the peer layer routes consensus frames to them. `xtask/src/tidy.rs`
//! enforces those edges; `docs/architecture.md` has the map and the
//! runtime view.
//!
//! Architecture invariants: this is the only crate that knows about both tonic
//! and RocksDB; all request errors become a `tonic::Status` in one function,
//! `api::status::to_status`. It must not depend on `vergent-chaos` or
//! `vergent-testkit` (tests only).

mod api;
pub mod clock;
mod config;
mod datadir;
mod error;
#[cfg(test)]
mod garble;
mod http;
mod identity;
mod incoming;
mod kv;
mod metrics;
mod node;
mod peer;
pub mod restore;
mod status;
mod strong;
mod tls_reload;
mod workers;

pub use config::{ConsistencyLevel, NodeConfig, RateLimitConfig};
pub use error::StartError;
pub use node::{Node, NodeHandle};
pub use peer::repair::RepairSettings;
pub use tls_reload::{Presented, ReloadError};
