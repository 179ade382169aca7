//! What a node needs to start; the binary fills it from flags and a config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vergent_storage::FsyncPolicy;
use vergent_tls::TlsFiles;
use vergent_types::{Limits, NodeId};

/// Everything [`Node::start`](crate::Node::start) needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Stable node id; when `None` the id stored in the data dir is used, or a
    /// new random one is generated and stored.
    pub node_id: Option<NodeId>,
    /// Directory for the store, the lock file and node metadata.
    pub data_dir: PathBuf,
    /// Address the gRPC API listens on (TCP).
    pub listen: SocketAddr,
    /// Address of the operations endpoint (`/metrics`, `/health`,
    /// `/ready`; plain HTTP unless `http_tls`); none when `None`.
    pub http_addr: Option<SocketAddr>,
    /// Serve the operations endpoint over TLS with the node's certificate
    /// (reloaded with it), requiring a client certificate from the CA.
    pub http_tls: bool,
    /// Requests per second each client connection may sustain, and its
    /// burst; unlimited when `None`. Over it a request is refused with
    /// `RESOURCE_EXHAUSTED` (`RATE_LIMITED`) and a retry hint.
    pub rate_limit: Option<RateLimitConfig>,
    /// Address other nodes and clients should use; defaults to `listen`.
    pub advertise: Option<SocketAddr>,
    /// Seed peers (`host:port`), validated at startup.
    pub peers: Vec<String>,
    /// Certificate, key and CA of this node.
    pub tls: TlsFiles,
    /// Key and value size limits.
    pub limits: Limits,
    /// Durability policy of acknowledged writes.
    pub fsync: FsyncPolicy,
    /// Capacity of the storage engine's block cache, in bytes.
    pub block_cache_bytes: usize,
    /// Largest clock offset accepted from a remote timestamp, in ms.
    pub max_clock_offset_ms: u64,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Test-only: shift this node's physical clock by this many ms.
    pub clock_offset_ms: i64,
    /// Most replication log entries a lagging or dead peer may hold back
    /// truncation by; past it that peer needs anti-entropy repair.
    pub max_log_lag: u64,
    /// Anti-entropy repair and tombstone purge.
    pub repair: crate::RepairSettings,
    /// Most established client connections (default: what the process's
    /// file-descriptor limit leaves after the storage engine's share).
    pub max_connections: Option<usize>,
    /// Most client TLS handshakes in progress; a new one evicts the oldest
    /// (default 256, less when file descriptors are few).
    pub max_handshakes: Option<usize>,
    /// Test-only and unsafe: strong operations count this node alone as
    /// their quorum, so linearizability breaks. Exists so the chaos suite
    /// can show its checker catches a broken core on real processes.
    pub unsafe_quorum_of_one: bool,
    /// Test-only and unsafe: writes at `quorum`/`all` are acknowledged once
    /// this node alone holds them, so the level guarantees break. Exists so
    /// the chaos suite can show its level checks catch a broken tracker on
    /// real processes.
    pub unsafe_levels_of_one: bool,
    /// How long after a strong decision its per-key consensus state may be
    /// deleted, once every voter has committed it (the LWW record then holds
    /// all of it). A proposer whose ballot is older than this is refused.
    pub paxos_gc_after: Duration,
    /// The level of a get that names none.
    pub default_read_consistency: ConsistencyLevel,
    /// The level of a put or delete that names none.
    pub default_write_consistency: ConsistencyLevel,
}

/// A per-connection request rate limit (see [`NodeConfig::rate_limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per second sustained.
    pub per_second: std::num::NonZeroU32,
    /// Requests at once after a quiet spell.
    pub burst: std::num::NonZeroU32,
}

/// A default consistency level for eventual operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsistencyLevel {
    /// This node alone (replicated afterwards).
    #[default]
    One,
    /// A majority of the voters.
    Quorum,
    /// Every voter.
    All,
}

impl std::str::FromStr for ConsistencyLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "one" => Ok(Self::One),
            "quorum" => Ok(Self::Quorum),
            "all" => Ok(Self::All),
            _ => Err(format!(
                "unknown consistency level {s:?}: one, quorum or all (serial is per request)"
            )),
        }
    }
}

impl std::fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::One => "one",
            Self::Quorum => "quorum",
            Self::All => "all",
        })
    }
}

impl NodeConfig {
    /// A config with defaults for everything but the required parts.
    pub fn new(data_dir: PathBuf, listen: SocketAddr, tls: TlsFiles) -> Self {
        Self {
            node_id: None,
            data_dir,
            listen,
            http_addr: None,
            http_tls: false,
            rate_limit: None,
            advertise: None,
            peers: Vec::new(),
            tls,
            limits: Limits::default(),
            fsync: FsyncPolicy::default(),
            block_cache_bytes: vergent_storage::StoreOptions::default().block_cache_bytes,
            max_clock_offset_ms: 500,
            drain_timeout: Duration::from_secs(10),
            clock_offset_ms: 0,
            max_log_lag: 1_000_000,
            repair: crate::RepairSettings::default(),
            max_connections: None,
            max_handshakes: None,
            unsafe_quorum_of_one: false,
            unsafe_levels_of_one: false,
            paxos_gc_after: Duration::from_secs(3600),
            default_read_consistency: ConsistencyLevel::One,
            default_write_consistency: ConsistencyLevel::One,
        }
    }
}
