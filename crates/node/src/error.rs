//! Why a node failed to start. Request errors live in `kv::KvError` (the
//! local service) and `api::status` (gRPC); peer errors in `peer::PeerError`.

use std::path::PathBuf;

/// A node could not start; nothing keeps running after one of these.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the data directory's lock.
    #[error(
        "data directory {path} is locked by another vergentd process{holder}; stop it or use another --data-dir"
    )]
    DataDirLocked {
        /// The directory.
        path: PathBuf,
        /// A note about the holder (its pid) when known.
        holder: String,
    },
    /// The store could not be opened.
    #[error("could not open the store: {0}")]
    Storage(#[from] vergent_storage::Error),
    /// The stored node id differs from the configured one, or is invalid.
    #[error("{0}")]
    NodeId(String),
    /// A start-up task panicked or was cancelled (opening the store runs on
    /// a blocking thread).
    #[error("{what} failed: {reason}")]
    Task {
        /// What the task was doing.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The gRPC reflection service could not be built from the descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    /// TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] vergent_tls::Error),
    /// The certificate given to the node is not a node certificate: without
    /// server authentication no client could complete a handshake with it.
    #[error(
        "TLS: {path} is not a node certificate: its extended key usage lacks server authentication \
         (a node needs both server and client authentication; this one is a {role} certificate), \
         so no client or peer could connect; create one with `vergentctl gen-cert --role node`"
    )]
    NotANodeCertificate {
        /// The certificate file.
        path: PathBuf,
        /// The role its key usage grants.
        role: vergent_tls::Role,
    },
    /// The peer transport (QUIC on the same port, UDP) could not start.
    #[error("peer transport: {0}")]
    Transport(#[from] vergent_transport::Error),
    /// A configured peer address is invalid.
    #[error("invalid peer address {addr:?}: {reason}")]
    BadPeer {
        /// What was given.
        addr: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The persisted voting configuration could not be read.
    #[error("voting configuration: {0}")]
    Voting(String),
    /// A setting the node cannot run with.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}
