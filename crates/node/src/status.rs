//! Status snapshots: plain data that each subsystem fills and `status`
//! (and later `/metrics`) reads, so a frontend never reaches into another
//! layer's state. Depends on nothing else in the crate.

use vergent_gossip::State;

/// One member of the gossip view, as the membership driver publishes it.
#[derive(Clone, Debug)]
pub(crate) struct MemberInfo {
    pub(crate) id: String,
    pub(crate) addr: String,
    pub(crate) state: State,
    pub(crate) incarnation: u64,
    /// Wall time of the last state change, ms since the Unix epoch.
    pub(crate) since_ms: u64,
}

/// Repair history with one peer, both directions.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerRepair {
    pub(crate) last_repair_ms: u64,
    /// Last session attempt, completed or not: the scheduler rotates on it
    /// so one failing peer does not starve the others.
    pub(crate) last_attempt_ms: u64,
    pub(crate) sessions: u64,
    pub(crate) differing_buckets: u64,
    pub(crate) keys_received: u64,
    pub(crate) keys_sent: u64,
    pub(crate) bytes: u64,
    pub(crate) last_error: String,
}

/// One roster member: an id this node ever learned of.
#[derive(Clone, Debug)]
pub(crate) struct RosterRow {
    pub(crate) node_id: String,
    /// Certificate name its id is bound to; empty until first seen.
    pub(crate) cert: String,
    /// The store it runs; 0 until first contact.
    pub(crate) store_id: u64,
    pub(crate) addr: String,
}

/// Replication's counters: how far each peer has this node's log, and the
/// records it refused or left to repair.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReplicationStatus {
    /// How far each peer has durably received this node's log, by node id.
    pub(crate) cursors: Vec<(String, u64)>,
    /// Records refused one by one (limits, a clock too far ahead).
    pub(crate) refused_records: u64,
    /// Replicated records too old for the log, left to repair.
    pub(crate) too_old_for_log: u64,
}

/// Membership: the gossip view as the membership driver last published it.
#[derive(Clone, Debug, Default)]
pub(crate) struct MembershipStatus {
    /// Every member of the view, this node included.
    pub(crate) members: Vec<MemberInfo>,
}

/// Repair: the session history with each peer.
#[derive(Clone, Debug, Default)]
pub(crate) struct RepairStatus {
    /// By node id.
    pub(crate) peers: Vec<(String, PeerRepair)>,
}

/// Purge: what the sweeper did and what holds it back.
#[derive(Clone, Debug, Default)]
pub(crate) struct PurgeStatus {
    /// Tombstones and expired values purged since start.
    pub(crate) purged: u64,
    /// Why purges are held back and since when (wall ms).
    pub(crate) held_back: Option<(String, u64)>,
}

/// The roster: every member ever learned of, and whom this node refuses.
#[derive(Clone, Debug, Default)]
pub(crate) struct RosterStatus {
    /// Every member ever learned of.
    pub(crate) members: Vec<RosterRow>,
    /// Members this node fences.
    pub(crate) fenced: Vec<String>,
    /// Streams refused because of who opened them.
    pub(crate) refused_peers: u64,
}

/// What the peer side of a node reports, one snapshot per subsystem, taken
/// at one moment.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerStatus {
    pub(crate) replication: ReplicationStatus,
    pub(crate) membership: MembershipStatus,
    pub(crate) repair: RepairStatus,
    pub(crate) purge: PurgeStatus,
    pub(crate) roster: RosterStatus,
}

/// What a named background task is doing, as the worker registry saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WorkerState {
    /// Running (busy or waiting for work).
    Running,
    /// Returned: the node is shutting down, or its work is done.
    Stopped,
    /// Panicked; the text is the panic's message.
    Failed(String),
}

/// One named background task.
#[derive(Clone, Debug)]
pub(crate) struct WorkerStatus {
    /// The worker's name, as its log lines carry it (`worker{name=…}`).
    pub(crate) name: String,
    pub(crate) state: WorkerState,
    /// Wall time of the last state change, ms since the Unix epoch.
    pub(crate) since_ms: u64,
}

/// Where `status` reads the peer side from.
pub(crate) trait StatusSource: Send + Sync {
    /// A snapshot of every peer subsystem.
    fn peer_status(&self) -> PeerStatus;
}
