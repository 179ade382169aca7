//! The client and its request/response types.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;
use tonic::transport::Channel;
use vergent_tls::TlsFiles;
use vergent_types::Version;
use vergent_wire::api::v1 as pb;
use vergent_wire::api::v1::cluster_client::ClusterClient;
use vergent_wire::api::v1::kv_client::KvClient;

use crate::Error;
use crate::pool::{Connector, Pool, Slot};
use crate::retry::{self, Op, RetryConfig};

pub use pb::Consistency;

/// How to reach the cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` of nodes' APIs, in the order to try them: the client
    /// uses the first that answers and fails over to the next when it cannot
    /// serve (see the crate documentation).
    pub endpoints: Vec<String>,
    /// Client certificate, key and cluster CA.
    pub tls: TlsFiles,
    /// Name to verify in every node's certificate; defaults to each
    /// endpoint's host.
    pub server_name: Option<String>,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for each call, every retry and wait included.
    pub request_timeout: Duration,
    /// This client's level for gets, puts and deletes that name none
    /// (`None`: the server's default, `--default-read-consistency` and
    /// `--default-write-consistency`, which is ONE unless set).
    pub consistency: Option<Consistency>,
    /// How failed calls that may be repeated are repeated.
    pub retry: RetryConfig,
}

impl ClientConfig {
    /// A config for one node, with default timeouts (5 s to connect, 10 s
    /// per call) and retries ([`RetryConfig::default`]).
    pub fn new(endpoint: impl Into<String>, tls: TlsFiles) -> Self {
        Self::with_endpoints(vec![endpoint.into()], tls)
    }

    /// A config for several nodes, tried in this order, with default
    /// timeouts and retries.
    pub fn with_endpoints(endpoints: Vec<String>, tls: TlsFiles) -> Self {
        Self {
            endpoints,
            tls,
            server_name: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            consistency: None,
            retry: RetryConfig::default(),
        }
    }
}

/// Options of a put.
#[derive(Clone, Copy, Debug, Default)]
pub struct PutOptions {
    /// Expire the value this long after the write.
    pub ttl: Option<Duration>,
    /// Consistency level (default ONE).
    pub consistency: Option<Consistency>,
}

/// A stored value and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The version that wrote it.
    pub version: Version,
    /// When it expires (ms since the Unix epoch), if it has a TTL.
    pub expires_at_ms: Option<u64>,
    /// The level the read was served at (a scan's entries: ONE).
    pub consistency: Consistency,
}

/// A record as a replica stores it: a value or a tombstone, with its version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredRecord {
    /// The key.
    pub key: Vec<u8>,
    /// The value, or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The version that wrote it.
    pub version: Version,
    /// When the value expires (ms since the Unix epoch), if it has a TTL.
    pub expires_at_ms: Option<u64>,
}

/// The result of a delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The version of the tombstone.
    pub version: Version,
    /// Whether a live value existed.
    pub existed: bool,
}

/// One page of a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanPage {
    /// Entries in key order.
    pub entries: Vec<Entry>,
    /// More entries may follow the last one.
    pub more: bool,
    /// Where the next page starts (pass it as `start_after`): the last key
    /// the node looked at, which may lie past the last entry returned.
    pub resume_after: Option<Vec<u8>>,
}

/// A change observed by [`Client::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The key.
    pub key: Vec<u8>,
    /// The new value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
    /// The version of the change.
    pub version: Version,
    /// Made on the watched node (true) or replicated from another (false).
    pub local: bool,
}

/// What a node reports about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's id.
    pub node_id: String,
    /// Its software version.
    pub version: String,
    /// Time since it started.
    pub uptime: Duration,
    /// Keys holding a live value.
    pub key_count: u64,
    /// Its current HLC.
    pub hlc_now: vergent_hlc::Timestamp,
    /// Its durability policy.
    pub fsync_policy: String,
    /// Peers it was started with.
    pub peers: Vec<String>,
    /// Its advertised address.
    pub advertise_addr: String,
    /// Its data directory.
    pub data_dir: String,
    /// Oldest entry of its replication log (0 when empty).
    pub log_first_seq: u64,
    /// Newest entry of its replication log.
    pub log_last_seq: u64,
    /// How far each peer has durably received its log: (peer id, cursor, lag).
    pub replication: Vec<(String, u64, u64)>,
    /// Its view of the cluster, itself included.
    pub members: Vec<MemberStatus>,
    /// `serving`, or `bootstrapping` while an empty node fills from peers.
    pub state: String,
    /// Anti-entropy repair with each peer.
    pub repairs: Vec<RepairStatus>,
    /// Tombstones and expired values purged since the node started.
    pub purged: u64,
    /// Memory the node's storage engine holds.
    pub storage_memory: StorageMemory,
    /// Why tombstone purges are held back, and since when (ms since the
    /// Unix epoch); `None` when they are not.
    pub purge_held_back: Option<(String, u64)>,
    /// Records peers sent that the node refused one by one.
    pub refused_records: u64,
    /// Replicated records older than the log's horizon, left to repair.
    pub records_too_old_for_log: u64,
    /// Peer streams refused for who opened them.
    pub refused_peers: u64,
    /// Every peer the node ever learned of.
    pub roster: Vec<RosterMember>,
    /// Members dropped after `--member-expiry` unseen (refused unless wiped).
    pub fenced: Vec<String>,
    /// The node's named background tasks.
    pub workers: Vec<WorkerStatus>,
    /// The agreed voting configuration the node holds, once formed.
    pub voting: Option<VotingConfig>,
    /// Why no voting configuration is formed yet (empty once it is).
    pub voting_pending: String,
    /// Per-key consensus records the node holds (not yet collected).
    pub paxos_records: u64,
    /// The node's store started empty and is not yet synced with enough
    /// voters to answer QUORUM/ALL reads as one of them.
    pub catching_up: bool,
}

/// The voters whose majorities strong operations need: epoch, voters and,
/// during a change, the incoming set.
pub type VotingConfig = pb::VotingConfig;

/// A decided change of the voting configuration register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange {
    /// The configuration in force after it.
    pub voting: VotingConfig,
    /// Voters that confirmed holding it.
    pub confirmed: Vec<String>,
    /// Voters that had not confirmed it when the node answered.
    pub unconfirmed: Vec<String>,
}

/// What a compare-and-set requires of the key's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this value.
    Value(Vec<u8>),
    /// No live value: absent, deleted or expired.
    Absent,
    /// Exactly this version.
    Version(Version),
}

/// The answer to a compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasResult {
    /// Whether the condition held and the write was applied.
    pub applied: bool,
    /// The key's value after the operation (`None`: absent or deleted).
    pub value: Option<Vec<u8>>,
    /// Its version (`None`: the key was never written).
    pub version: Option<Version>,
}

/// A peer in a node's roster.
pub type RosterMember = pb::RosterMember;

/// One named background task of a node: name, `running`/`stopped`/`failed`,
/// since when, and a failure's message.
pub type WorkerStatus = pb::WorkerStatus;

/// Memory held by a node's storage engine, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageMemory {
    /// Active and immutable memtables.
    pub memtables: u64,
    /// Blocks in the block cache.
    pub block_cache: u64,
    /// The block cache's capacity.
    pub block_cache_capacity: u64,
    /// Table readers outside the block cache.
    pub table_readers: u64,
}

/// Anti-entropy repair between a node and one peer.
pub type RepairStatus = pb::RepairPeer;

/// One member in a node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member's node id.
    pub node_id: String,
    /// Its advertised address.
    pub addr: String,
    /// alive, suspect, dead or left.
    pub state: String,
    /// Its incarnation number.
    pub incarnation: u64,
    /// Last state change seen, ms since the Unix epoch (0: since the node started).
    pub since_ms: u64,
}

/// A client of the cluster through one endpoint at a time, failing over to
/// the others. Cheap to clone; clones share the endpoints, the one in use
/// and the connections.
#[derive(Clone, Debug)]
pub struct Client {
    pool: Arc<Pool>,
    timeout: Duration,
    retry: RetryConfig,
    consistency: Option<Consistency>,
}

fn version_of(v: Option<pb::Version>) -> Result<Version, Error> {
    let v = v.ok_or_else(|| Error::InvalidResponse("missing version".into()))?;
    Version::try_from(&v).map_err(|e| Error::InvalidResponse(e.to_string()))
}

fn kv(channel: Channel) -> KvClient<Channel> {
    KvClient::new(channel).max_decoding_message_size(usize::MAX)
}

pub(crate) fn cluster(channel: Channel) -> ClusterClient<Channel> {
    ClusterClient::new(channel)
}

impl Client {
    /// Connects with mutual TLS to the first endpoint that answers, in the
    /// configured order, and checks it answers. When none does, the error
    /// is the last endpoint's.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        vergent_tls::install_default_provider();
        let identity = vergent_tls::Identity::load(&config.tls)?;
        let tls = Arc::new(vergent_tls::client_config(&identity, &[b"h2"])?);
        let connector = Connector {
            tls,
            server_name: config.server_name,
            connect_timeout: config.connect_timeout,
        };
        let client = Self {
            pool: Arc::new(Pool::new(connector, config.endpoints)?),
            timeout: config.request_timeout,
            retry: config.retry,
            consistency: config.consistency,
        };
        let mut last = None;
        for slot in client.pool.slots() {
            // In TLS 1.3 the server checks our certificate after the
            // handshake completes on our side, so a refusal only shows on
            // the first call.
            let deadline = Instant::now() + client.timeout;
            match client
                .attempt(&slot, deadline, |ch| async move {
                    cluster(ch).status(pb::StatusRequest {}).await
                })
                .await
            {
                Ok(_) => {
                    client.pool.use_slot(&slot);
                    return Ok(client);
                }
                Err(e) => last = Some(e.into_connect(&slot.addr)),
            }
        }
        Err(last.unwrap_or_else(|| Error::BadEndpoint(String::new())))
    }

    /// The gRPC channel of the endpoint in use, for other services on the
    /// node (health, reflection). It stays on that endpoint.
    pub fn channel(&self) -> Channel {
        // Every endpoint was checked to be a valid `host:port` when added.
        self.pool
            .channel_now()
            .expect("endpoints in the pool are valid")
    }

    /// The endpoint in use: calls go there until it fails.
    pub fn endpoint(&self) -> String {
        self.pool.current().addr.clone()
    }

    /// Every endpoint, in the order they are tried.
    pub fn endpoints(&self) -> Vec<String> {
        self.pool.slots().iter().map(|s| s.addr.clone()).collect()
    }

    /// Adds an endpoint, tried after the others; returns whether it is new.
    /// Its connection is made when a call first needs it.
    pub fn add_endpoint(&self, endpoint: impl Into<String>) -> Result<bool, Error> {
        self.pool.add(endpoint.into())
    }

    /// Removes an endpoint; returns false if it is not there or is the only
    /// one (a client keeps at least one). Calls under way on it finish; if
    /// it was in use, the next endpoint is.
    pub fn remove_endpoint(&self, endpoint: &str) -> bool {
        self.pool.remove(endpoint)
    }

    /// Learns endpoints from the cluster: asks the node in use for its view
    /// of the members and adds the address of every one that is alive or
    /// suspect. Returns the endpoints added. (A node's advertised address
    /// serves both its peers and clients.)
    pub async fn discover(&self) -> Result<Vec<String>, Error> {
        let status = self.status().await?;
        let mut added = Vec::new();
        for m in status.members {
            if matches!(m.state.as_str(), "alive" | "suspect")
                && !m.addr.is_empty()
                && self.pool.add(m.addr.clone()).unwrap_or(false)
            {
                added.push(m.addr);
            }
        }
        Ok(added)
    }

    /// Runs one call of kind `op`: sends it through the endpoint in use,
    /// and after a failure fails over and repeats it as [`retry::decide`]
    /// says, all before the call's deadline.
    async fn run<T, F, Fut>(&self, op: Op, send: F) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.run_on(op, send).await.map(|(resp, _)| resp)
    }

    /// [`Self::run`], also returning the endpoint that answered.
    pub(crate) async fn run_on<T, F, Fut>(
        &self,
        op: Op,
        mut send: F,
    ) -> Result<(T, Arc<Slot>), Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let slot = self.pool.current();
            let error = match self.attempt(&slot, deadline, &mut send).await {
                Ok(resp) => return Ok((resp, slot)),
                Err(e) => e,
            };
            let time_left = deadline.saturating_duration_since(Instant::now());
            let decision =
                retry::decide(&self.retry, op, &error, attempts, time_left, rand::random());
            if decision.fail_over {
                self.pool.fail_over(&slot);
            }
            match decision.retry_after {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(error),
            }
        }
    }

    /// One attempt through `slot`, connecting it first if needed, ending by
    /// `deadline`.
    async fn attempt<T, F, Fut>(
        &self,
        slot: &Slot,
        deadline: Instant,
        mut send: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let call = async {
            let channel = self.pool.channel(slot).await?;
            send(channel)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| Error::from_status(&slot.addr, status))
        };
        tokio::time::timeout_at(deadline, call)
            .await
            .unwrap_or(Err(Error::Timeout(self.timeout)))
    }

    /// The level a call asks for: its own, else this client's, else none
    /// (the server's default).
    fn level(&self, explicit: Option<Consistency>) -> Consistency {
        explicit
            .or(self.consistency)
            .unwrap_or(Consistency::Unspecified)
    }

    /// Reads a key; `None` when absent, deleted or expired.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<Entry>, Error> {
        self.get_with(key, None).await
    }

    /// Reads a key at a consistency level.
    pub async fn get_with(
        &self,
        key: impl Into<Vec<u8>>,
        consistency: Option<Consistency>,
    ) -> Result<Option<Entry>, Error> {
        let key = key.into();
        let req = pb::GetRequest {
            key: key.clone(),
            consistency: self.level(consistency).into(),
        };
        let resp = self
            .run(Op::Read, |ch| {
                let req = req.clone();
                async move { kv(ch).get(req).await }
            })
            .await?;
        if !resp.found {
            return Ok(None);
        }
        let consistency = resp.consistency();
        Ok(Some(Entry {
            key,
            value: resp.value,
            version: version_of(resp.version)?,
            expires_at_ms: resp.expires_at_ms,
            consistency,
        }))
    }

    /// Writes a value; returns the version it was stamped with.
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<Version, Error> {
        self.put_with(key, value, PutOptions::default()).await
    }

    /// Writes a value with options (TTL, consistency).
    pub async fn put_with(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: PutOptions,
    ) -> Result<Version, Error> {
        let level = self.level(options.consistency);
        let req = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            // Round up: a TTL under 1 ms must not become 0, which means "forever".
            ttl_ms: options
                .ttl
                .map(|t| u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)),
            consistency: level.into(),
        };
        let resp = self
            .run(Op::put(level), |ch| {
                let req = req.clone();
                async move { kv(ch).put(req).await }
            })
            .await?;
        version_of(resp.version)
    }

    /// Deletes a key (writes a tombstone).
    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<Deleted, Error> {
        self.delete_with(key, None).await
    }

    /// Writes `new` (`None` deletes the key) if the key's current state
    /// matches `expect`, by per-key consensus; returns whether it applied
    /// and the key's state after it.
    ///
    /// Never retried by the client: on an error for which
    /// [`Error::is_outcome_unknown`] holds, the write may or may not have
    /// applied; read the key at [`Consistency::Serial`] to find out.
    pub async fn compare_and_set(
        &self,
        key: impl Into<Vec<u8>>,
        expect: Expect,
        new: Option<Vec<u8>>,
    ) -> Result<CasResult, Error> {
        use pb::compare_and_set_request::Expected;
        let expected = match expect {
            Expect::Value(v) => Expected::ExpectedValue(v),
            Expect::Absent => Expected::ExpectedAbsent(pb::Absent {}),
            Expect::Version(v) => Expected::ExpectedVersion((&v).into()),
        };
        let req = pb::CompareAndSetRequest {
            key: key.into(),
            expected: Some(expected),
            delete: new.is_none(),
            new_value: new.unwrap_or_default(),
        };
        let resp = self
            .run(Op::Once, |ch| {
                let req = req.clone();
                async move { kv(ch).compare_and_set(req).await }
            })
            .await?;
        Ok(CasResult {
            applied: resp.applied,
            value: resp.found.then_some(resp.value),
            version: resp.version.map(|v| version_of(Some(v))).transpose()?,
        })
    }

    /// Deletes a key at a consistency level (SERIAL: a strong delete).
    pub async fn delete_with(
        &self,
        key: impl Into<Vec<u8>>,
        consistency: Option<Consistency>,
    ) -> Result<Deleted, Error> {
        let level = self.level(consistency);
        let req = pb::DeleteRequest {
            key: key.into(),
            consistency: level.into(),
        };
        let resp = self
            .run(Op::delete(level), |ch| {
                let req = req.clone();
                async move { kv(ch).delete(req).await }
            })
            .await?;
        Ok(Deleted {
            version: version_of(resp.version)?,
            existed: resp.existed,
        })
    }

    /// Lists live entries whose key starts with `prefix`, after `start_after`.
    pub async fn scan(
        &self,
        prefix: impl Into<Vec<u8>>,
        start_after: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<ScanPage, Error> {
        let (entries, more, resume_after) = self
            .scan_raw(prefix.into(), start_after, limit, false)
            .await?;
        let entries = entries
            .into_iter()
            .map(|e| {
                Ok(Entry {
                    key: e.key,
                    value: e.value,
                    version: version_of(e.version)?,
                    expires_at_ms: e.expires_at_ms,
                    consistency: Consistency::One,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(ScanPage {
            entries,
            more,
            resume_after,
        })
    }

    /// Lists every live entry under `prefix`, following pages.
    pub async fn scan_all(&self, prefix: impl Into<Vec<u8>>) -> Result<Vec<Entry>, Error> {
        let prefix = prefix.into();
        let mut out: Vec<Entry> = Vec::new();
        let mut after = None;
        loop {
            let page = self.scan(prefix.clone(), after, 0).await?;
            out.extend(page.entries);
            if !page.more {
                return Ok(out);
            }
            after = page.resume_after;
        }
    }

    /// Lists every record under `prefix`, tombstones and expired values
    /// included, with versions: the node's whole replica state, for comparing
    /// replicas.
    pub async fn scan_all_records(
        &self,
        prefix: impl Into<Vec<u8>>,
    ) -> Result<Vec<StoredRecord>, Error> {
        let prefix = prefix.into();
        let mut out: Vec<StoredRecord> = Vec::new();
        let mut after = None;
        loop {
            let (entries, more, resume_after) =
                self.scan_raw(prefix.clone(), after, 0, true).await?;
            after = resume_after;
            for e in entries {
                out.push(StoredRecord {
                    version: version_of(e.version)?,
                    value: (!e.deleted).then_some(e.value),
                    key: e.key,
                    expires_at_ms: e.expires_at_ms,
                });
            }
            if !more {
                return Ok(out);
            }
        }
    }

    async fn scan_raw(
        &self,
        prefix: Vec<u8>,
        start_after: Option<Vec<u8>>,
        limit: u32,
        include_tombstones: bool,
    ) -> Result<(Vec<pb::Entry>, bool, Option<Vec<u8>>), Error> {
        let req = pb::ScanRequest {
            prefix,
            limit,
            start_after: start_after.unwrap_or_default(),
            consistency: Consistency::One.into(),
            include_tombstones,
        };
        let resp = self
            .run(Op::Read, |ch| {
                let req = req.clone();
                async move { kv(ch).scan(req).await }
            })
            .await?;
        // A node that predates resume_after: resume after the last entry.
        let resume = if resp.resume_after.is_empty() {
            resp.entries.last().map(|e| e.key.clone())
        } else {
            Some(resp.resume_after)
        };
        Ok((resp.entries, resp.more, resume.filter(|_| resp.more)))
    }

    /// Streams changes applied on the node to keys under `prefix`.
    pub async fn watch(&self, prefix: impl Into<Vec<u8>>) -> Result<WatchStream, Error> {
        let req = pb::WatchRequest {
            prefix: prefix.into(),
        };
        let (inner, slot) = self
            .run_on(Op::Read, |ch| {
                let req = req.clone();
                async move { kv(ch).watch(req).await }
            })
            .await?;
        Ok(WatchStream {
            inner,
            endpoint: slot.addr.clone(),
        })
    }

    /// Declares `prefix` strict: once in force on a voter, it refuses
    /// eventual (ONE) writes of keys under it with `STRONG_KEYSPACE`.
    pub async fn declare_strict(&self, prefix: impl Into<Vec<u8>>) -> Result<ConfigChange, Error> {
        let req = pb::DeclareStrictRequest {
            prefix: prefix.into(),
        };
        let r = self
            .run(Op::Once, |ch| {
                let req = req.clone();
                async move { cluster(ch).declare_strict(req).await }
            })
            .await?;
        Ok(ConfigChange {
            voting: r
                .voting
                .ok_or_else(|| Error::InvalidResponse("missing configuration".into()))?,
            confirmed: r.confirmed,
            unconfirmed: r.unconfirmed,
        })
    }

    /// Removes voter `node_id` (a dead node, say) by a joint change of the
    /// voting configuration; returns the configuration after it.
    pub async fn remove_member(&self, node_id: impl Into<String>) -> Result<ConfigChange, Error> {
        let req = pb::RemoveMemberRequest {
            node_id: node_id.into(),
        };
        let r = self
            .run(Op::Once, |ch| {
                let req = req.clone();
                async move { cluster(ch).remove_member(req).await }
            })
            .await?;
        Ok(ConfigChange {
            voting: r
                .voting
                .ok_or_else(|| Error::InvalidResponse("missing configuration".into()))?,
            confirmed: r.confirmed,
            unconfirmed: r.unconfirmed,
        })
    }

    /// Asks the node about itself.
    pub async fn status(&self) -> Result<NodeStatus, Error> {
        let s = self
            .run(Op::Read, |ch| async move {
                cluster(ch).status(pb::StatusRequest {}).await
            })
            .await?;
        Ok(NodeStatus {
            node_id: s.node_id,
            version: s.version,
            uptime: Duration::from_millis(s.uptime_ms),
            key_count: s.key_count,
            hlc_now: vergent_hlc::Timestamp::from_u64(s.hlc_now),
            fsync_policy: s.fsync_policy,
            peers: s.peers,
            advertise_addr: s.advertise_addr,
            data_dir: s.data_dir,
            log_first_seq: s.log_first_seq,
            log_last_seq: s.log_last_seq,
            replication: s
                .replication
                .into_iter()
                .map(|r| (r.node_id, r.cursor, r.lag))
                .collect(),
            members: s
                .members
                .into_iter()
                .map(|m| MemberStatus {
                    node_id: m.node_id,
                    addr: m.addr,
                    state: m.state,
                    incarnation: m.incarnation,
                    since_ms: m.since_ms,
                })
                .collect(),
            state: s.state,
            repairs: s.repairs,
            purged: s.purged,
            purge_held_back: (!s.purge_held_back.is_empty())
                .then(|| (s.purge_held_back.clone(), s.purge_held_since_ms)),
            refused_records: s.refused_records,
            records_too_old_for_log: s.records_too_old_for_log,
            refused_peers: s.refused_peers,
            roster: s.roster.clone(),
            fenced: s.fenced.clone(),
            workers: s.workers.clone(),
            voting: s.voting.clone(),
            voting_pending: s.voting_pending.clone(),
            paxos_records: s.paxos_records,
            catching_up: s.catching_up,
            storage_memory: s
                .storage_memory
                .map(|m| StorageMemory {
                    memtables: m.memtables,
                    block_cache: m.block_cache,
                    block_cache_capacity: m.block_cache_capacity,
                    table_readers: m.table_readers,
                })
                .unwrap_or_default(),
        })
    }
}

/// A stream of [`WatchEvent`]s; ends when the node closes it.
#[derive(Debug)]
pub struct WatchStream {
    inner: tonic::Streaming<pb::WatchEvent>,
    endpoint: String,
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let endpoint = self.endpoint.clone();
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|r| match r {
                Err(status) => Err(Error::from_status(&endpoint, status)),
                Ok(e) => Ok(WatchEvent {
                    key: e.key,
                    value: (!e.deleted).then_some(e.value),
                    version: version_of(e.version)?,
                    local: e.local,
                }),
            })
        })
    }
}
