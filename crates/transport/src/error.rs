//! Transport errors.

use std::net::SocketAddr;

/// What can go wrong moving bytes to or from a peer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TLS configuration could not be built from the identity; nothing started.
    #[error("TLS: {0}")]
    Tls(#[from] vergent_tls::Error),
    /// The rustls configuration is not usable for QUIC.
    #[error("QUIC TLS setup: {0}")]
    QuicTls(String),
    /// The UDP socket could not be bound.
    #[error("could not bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Dialing was skipped because the last attempt failed recently.
    #[error("peer {0} is in reconnect backoff")]
    Backoff(SocketAddr),
    /// The connection could not be established or was lost.
    #[error("connection to {addr}: {reason}")]
    Connection {
        /// The peer address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The peer presented a certificate that is not a node certificate.
    #[error("peer {addr} is not a node (certificate role {role}); refused")]
    NotANode {
        /// The peer address.
        addr: SocketAddr,
        /// The role found in its certificate.
        role: String,
    },
    /// A frame exceeded [`crate::MAX_FRAME_BYTES`]; the stream is closed.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Announced or attempted length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Reading or writing a stream failed; the stream is unusable.
    #[error("stream: {0}")]
    Stream(String),
    /// The datagram is larger than the path allows.
    #[error("datagram: {0}")]
    Datagram(String),
}
