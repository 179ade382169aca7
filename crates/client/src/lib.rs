//! Async Rust client for a Vergent node, over gRPC with mutual TLS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vergent_client::Error> {
//! use vergent_client::{Client, ClientConfig};
//! use vergent_tls::TlsFiles;
//!
//! let tls = TlsFiles { cert: "client.crt".into(), key: "client.key".into(), ca: "ca.pem".into() };
//! let client = Client::connect(ClientConfig::new("127.0.0.1:2001", tls)).await?;
//! let version = client.put("foo", "bar").await?;
//! println!("stored at {}", version.hlc);
//! # Ok(()) }
//! ```
//!
//! The client speaks TLS 1.3 only and verifies the node against the cluster CA
//! alone. It depends on the wire types and TLS helpers, never on server
//! internals (node, storage), so applications embedding it stay light.

mod client;
mod error;

pub use client::{
    CasResult, Client, ClientConfig, ConfigChange, Consistency, Deleted, Entry, Expect,
    MemberStatus, NodeStatus, PutOptions, RepairStatus, RosterMember, ScanPage, StorageMemory,
    StoredRecord, VotingConfig, WatchEvent, WatchStream, WorkerStatus,
};
pub use error::Error;
pub use vergent_types::Version;
pub use vergent_wire::api::v1::ErrorCode;
