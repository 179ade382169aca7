//! Who this node is: fixed at start, shared read-only by every layer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use vergent_types::NodeId;

/// Meta key of the node id a data dir belongs to.
pub(crate) const NODE_ID_META: &str = "node_id";
/// Meta key of the data dir's random store id.
pub(crate) const STORE_ID_META: &str = "store_id";

/// The node's identity and where it runs; never changes while it runs.
#[derive(Debug)]
pub(crate) struct NodeIdentity {
    /// Its node id (from the config, or generated once and stored).
    pub(crate) node_id: NodeId,
    /// Random id of this data dir, new when it is wiped (see `Hello`).
    pub(crate) store_id: u64,
    /// The address peers reach it at.
    pub(crate) advertise: SocketAddr,
    /// The peers it was started with.
    pub(crate) peers: Vec<String>,
    /// Its data directory.
    pub(crate) data_dir: PathBuf,
    /// When it started.
    pub(crate) started: Instant,
}
