//! The crate's error type: why stored acceptor state could not be decoded.

use vergent_types::NodeIdError;

/// Why [`AcceptorState::decode`](crate::AcceptorState::decode) refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input holds no bytes at all, not even the format version.
    #[error("acceptor state is empty")]
    Empty,
    /// The leading format-version byte is not one this build reads.
    #[error("unknown acceptor-state format version {0}")]
    UnknownFormat(u8),
    /// The input ends in the middle of a field.
    #[error("acceptor state is truncated")]
    Truncated,
    /// A presence tag is neither 0 (absent) nor 1 (present).
    #[error("invalid presence tag {0} in acceptor state")]
    BadTag(u8),
    /// A node id inside a ballot or version is not a valid id.
    #[error("invalid node id in acceptor state: {0}")]
    BadNodeId(#[from] NodeIdError),
    /// Bytes remain after the last field.
    #[error("{0} trailing bytes after acceptor state")]
    Trailing(usize),
}
