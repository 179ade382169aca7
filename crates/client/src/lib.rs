//! Async Rust client for a Vergent cluster, over gRPC with mutual TLS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vergent_client::Error> {
//! use vergent_client::{Client, ClientConfig};
//! use vergent_tls::TlsFiles;
//!
//! let tls = TlsFiles { cert: "client.crt".into(), key: "client.key".into(), ca: "ca.pem".into() };
//! let endpoints = vec!["10.0.0.1:2001".to_string(), "10.0.0.2:2001".into(), "10.0.0.3:2001".into()];
//! let client = Client::connect(ClientConfig::with_endpoints(endpoints, tls)).await?;
//! client.discover().await?; // add the members the node knows of
//! let version = client.put("foo", "bar").await?;
//! println!("stored at {} through {}", version.hlc, client.endpoint());
//! # Ok(()) }
//! ```
//!
//! The client speaks TLS 1.3 only and verifies each node against the cluster
//! CA alone. It depends on the wire types and TLS helpers, never on server
//! internals (node, storage), so applications embedding it stay light.
//!
//! # Endpoints and failover
//!
//! A client holds a list of endpoints ([`ClientConfig::with_endpoints`],
//! [`Client::add_endpoint`], [`Client::remove_endpoint`], and
//! [`Client::discover`], which adds the members a node sees alive) and sends
//! every call through one of them, [`Client::endpoint`]. `connect` picks the
//! first that answers. The client moves on to the next endpoint (in list
//! order, wrapping around) when a call finds its node unable to serve: no
//! connection, a connection lost or silent until the deadline, or a node
//! that says it is shutting down, bootstrapping, fenced or cut off from the
//! voters. Nothing moves it back. Each endpoint has one HTTP/2 connection,
//! made when a call first needs it, shared by every clone of the client and
//! re-established by itself. Moving to another node gives up
//! read-your-writes at ONE, which holds on one node only.
//!
//! # Retries
//!
//! A call that failed may be sent again, through the endpoint then in use,
//! after a jittered exponential wait ([`RetryConfig`]), as long as the
//! call's deadline (`request_timeout`) is not reached. Which calls:
//!
//! - Gets at any level (SERIAL too), scans, status and opening a watch,
//!   after any error that may pass, an unknown outcome included: a read
//!   changes nothing a client could tell from one call.
//! - Puts at ONE, after an error that proves nothing was applied
//!   ([`Error::is_retryable`]) and after an unknown outcome
//!   ([`Error::is_outcome_unknown`]): the same value is then written again
//!   under a newer version, which wins by last-writer-wins, and both
//!   writes fall within the call, so the key ends as the call could have
//!   left it anyway. The version returned is the last attempt's; a reader
//!   may see the value under the first version before it.
//! - Deletes at ONE, and puts and deletes that name no level (the server's
//!   default, which may be QUORUM or ALL), only after an error that proves
//!   nothing was applied (a repeated delete would report `existed` false).
//! - Never a compare-and-set, a put or delete at SERIAL, QUORUM or ALL, or a
//!   configuration change, even when the request was never sent: the caller
//!   decides with [`Error::is_retryable`] (safe to send again) and
//!   [`Error::is_outcome_unknown`] (resolve with a SERIAL read first). Such
//!   a failure still moves later calls to the next endpoint.
//!
//! A call that runs out of attempts or time reports its last error.
//! A watch stream is not resumed once open.

mod backup;
mod client;
mod error;
mod pool;
mod retry;

pub use backup::Backup;
pub use client::{
    CasResult, Client, ClientConfig, ConfigChange, Consistency, Deleted, Entry, Expect,
    MemberStatus, NodeStatus, PutOptions, RepairStatus, RosterMember, ScanPage, StorageMemory,
    StoredRecord, VotingConfig, WatchEvent, WatchStream, WorkerStatus,
};
pub use error::Error;
pub use retry::RetryConfig;
pub use vergent_types::Version;
pub use vergent_wire::api::v1::ErrorCode;
