//! A running Vergent node, embeddable in any tokio application.
//!
//! [`Node::start`] composes the pieces: it locks the data directory, opens the
//! RocksDB store, restores the node id and the HLC ceiling, loads the mTLS
//! identity and serves the gRPC API (plus health and reflection) until
//! [`NodeHandle::shutdown`]. Beside the API it runs the peer side: gossip
//! membership, log replication and anti-entropy repair (bootstrap of an
//! empty node, tombstone purge).
//!
//! Architecture invariants: this is the only crate that knows about both tonic
//! and RocksDB; it is the only library crate that reads the system clock (see
//! [`clock`]); all request errors become a `tonic::Status` in one function,
//! `api::status::to_status`.

mod api;
pub mod clock;
mod config;
mod datadir;
mod error;
mod feed;
mod incoming;
mod node;
mod peer;
mod writer;

pub use config::NodeConfig;
pub use error::StartError;
pub use node::{Node, NodeHandle};
pub use peer::repair::RepairSettings;
