//! Vergent's peer transport: QUIC over UDP on the node's port, mutual TLS 1.3
//! with the cluster CA, and only node certificates accepted.
//!
//! It moves opaque bytes: unreliable datagrams (for gossip) and
//! length-delimited frames on bidirectional streams (for replication and
//! repair). It keeps one outgoing connection per peer address, reuses it, and
//! redials with exponential backoff after a failure.
//!
//! This crate must not understand what it carries: no protobuf, no storage,
//! no protocol state. It is the only crate that depends on quinn.

mod endpoint;
mod error;
mod frame;

pub use endpoint::{Incoming, PeerIdentity, Transport, TransportConfig};
pub use error::Error;
pub use frame::{FrameReader, FrameWriter, MAX_FRAME_BYTES};
