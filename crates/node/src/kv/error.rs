//! Why a request to the local service failed, whatever protocol carried it.

use vergent_types::LimitError;

/// Why a get, put, delete, scan or watch failed. Frontends map it to their
/// protocol's errors in one place (the gRPC API in `api::status`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum KvError {
    /// The key or value breaks a size rule; nothing was written.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// Some other argument is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] vergent_storage::Error),
    /// The node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
    /// A watch fell behind and was closed.
    #[error("watch fell behind by {0} changes and was closed; scan and watch again")]
    WatchLagged(u64),
    /// Peers refuse this node's data for good; it must be wiped.
    #[error("this node stopped serving: {0}")]
    Fenced(String),
    /// The node is filling from its peers and refuses reads meanwhile.
    #[error(
        "this node is bootstrapping ({done} of {total} differing buckets repaired so far, waiting to finish a repair session with a serving peer) and may not hold its peers' data yet; ask another node or retry"
    )]
    Bootstrapping {
        /// Buckets repaired in the current session.
        done: u64,
        /// Differing buckets found by it.
        total: u64,
    },
}
