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

/// What the peer side of a node reports, taken at one moment.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerStatus {
    /// Replication: how far each peer has this node's log, by node id.
    pub(crate) replication: Vec<(String, u64)>,
    /// Membership: the gossip view.
    pub(crate) members: Vec<MemberInfo>,
    /// Repair: the history with each peer, by node id.
    pub(crate) repairs: Vec<(String, PeerRepair)>,
    /// Purge: tombstones and expired values purged since start.
    pub(crate) purged: u64,
    /// Purge: why purges are held back and since when (wall ms).
    pub(crate) purge_held_back: Option<(String, u64)>,
    /// Records refused one by one (limits, a clock too far ahead).
    pub(crate) refused_records: u64,
    /// Replicated records too old for the log, left to repair.
    pub(crate) too_old_for_log: u64,
    /// Streams refused because of who opened them.
    pub(crate) refused_peers: u64,
    /// Every member ever learned of.
    pub(crate) roster: Vec<RosterRow>,
    /// Members this node fences.
    pub(crate) fenced_members: Vec<String>,
}

/// Where `status` reads the peer side from.
pub(crate) trait StatusSource: Send + Sync {
    /// A snapshot of every peer subsystem.
    fn peer_status(&self) -> PeerStatus;
}
