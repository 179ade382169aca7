//! The client and its request/response types.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};
use vergent_tls::TlsFiles;
use vergent_types::Version;
use vergent_wire::api::v1 as pb;
use vergent_wire::api::v1::cluster_client::ClusterClient;
use vergent_wire::api::v1::kv_client::KvClient;

use crate::Error;

pub use pb::Consistency;

/// How to reach a node.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` of the node's API.
    pub endpoint: String,
    /// Client certificate, key and cluster CA.
    pub tls: TlsFiles,
    /// Name to verify in the node's certificate; defaults to the endpoint's host.
    pub server_name: Option<String>,
    /// Time allowed to establish the connection.
    pub connect_timeout: Duration,
    /// Time allowed for each unary call.
    pub request_timeout: Duration,
    /// This client's level for gets, puts and deletes that name none
    /// (`None`: the server's default, `--default-read-consistency` and
    /// `--default-write-consistency`, which is ONE unless set).
    pub consistency: Option<Consistency>,
}

impl ClientConfig {
    /// A config with default timeouts (5 s to connect, 10 s per call).
    pub fn new(endpoint: impl Into<String>, tls: TlsFiles) -> Self {
        Self {
            endpoint: endpoint.into(),
            tls,
            server_name: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            consistency: None,
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

/// A connection to one node. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    kv: KvClient<Channel>,
    cluster: ClusterClient<Channel>,
    channel: Channel,
    endpoint: String,
    timeout: Duration,
    consistency: Option<Consistency>,
}

fn version_of(v: Option<pb::Version>) -> Result<Version, Error> {
    let v = v.ok_or_else(|| Error::InvalidResponse("missing version".into()))?;
    Version::try_from(&v).map_err(|e| Error::InvalidResponse(e.to_string()))
}

impl Client {
    /// Connects with mutual TLS and checks the node answers.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        vergent_tls::install_default_provider();
        let identity = vergent_tls::Identity::load(&config.tls)?;
        let tls = Arc::new(vergent_tls::client_config(&identity, &[b"h2"])?);
        let (host, _port) = split_host_port(&config.endpoint)?;
        let name = config.server_name.clone().unwrap_or(host);
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| Error::BadEndpoint(config.endpoint.clone()))?;
        let endpoint = Endpoint::from_shared(format!("http://{}", config.endpoint))
            .map_err(|_| Error::BadEndpoint(config.endpoint.clone()))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let connector = TlsConnector::from(tls);
        let addr = config.endpoint.clone();
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_uri: http::Uri| {
                let connector = connector.clone();
                let server_name = server_name.clone();
                let addr = addr.clone();
                async move {
                    let tcp = TcpStream::connect(&addr).await?;
                    tcp.set_nodelay(true)?;
                    let tls = connector.connect(server_name, tcp).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(tls))
                }
            }))
            .await
            .map_err(|e| Error::Connect {
                endpoint: config.endpoint.clone(),
                reason: innermost(&e),
            })?;
        let client = Self {
            kv: KvClient::new(channel.clone()).max_decoding_message_size(usize::MAX),
            cluster: ClusterClient::new(channel.clone()),
            channel,
            endpoint: config.endpoint,
            timeout: config.request_timeout,
            consistency: config.consistency,
        };
        // In TLS 1.3 the server checks our certificate after the handshake
        // completes on our side, so a refusal only shows on the first call.
        client
            .status()
            .await
            .map_err(|e| e.into_connect(&client.endpoint))?;
        Ok(client)
    }

    /// The underlying gRPC channel, for other services on the node (health,
    /// reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(Error::Timeout(self.timeout)),
            Ok(Err(status)) => Err(Error::from_status(&self.endpoint, status)),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
        }
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
        let mut kv = self.kv.clone();
        let resp = self.call(kv.get(req)).await?;
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
        let req = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            // Round up: a TTL under 1 ms must not become 0, which means "forever".
            ttl_ms: options
                .ttl
                .map(|t| u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)),
            consistency: self.level(options.consistency).into(),
        };
        let mut kv = self.kv.clone();
        let resp = self.call(kv.put(req)).await?;
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
        let mut kv = self.kv.clone();
        let resp = self.call(kv.compare_and_set(req)).await?;
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
        let req = pb::DeleteRequest {
            key: key.into(),
            consistency: self.level(consistency).into(),
        };
        let mut kv = self.kv.clone();
        let resp = self.call(kv.delete(req)).await?;
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
        let mut kv = self.kv.clone();
        let resp = self.call(kv.scan(req)).await?;
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
        let mut kv = self.kv.clone();
        let inner = self.call(kv.watch(req)).await?;
        Ok(WatchStream {
            inner,
            endpoint: self.endpoint.clone(),
        })
    }

    /// Declares `prefix` strict: once in force on a voter, it refuses
    /// eventual (ONE) writes of keys under it with `STRONG_KEYSPACE`.
    pub async fn declare_strict(&self, prefix: impl Into<Vec<u8>>) -> Result<ConfigChange, Error> {
        let mut cluster = self.cluster.clone();
        let r = self
            .call(cluster.declare_strict(pb::DeclareStrictRequest {
                prefix: prefix.into(),
            }))
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
        let mut cluster = self.cluster.clone();
        let r = self
            .call(cluster.remove_member(pb::RemoveMemberRequest {
                node_id: node_id.into(),
            }))
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
        let mut cluster = self.cluster.clone();
        let s = self.call(cluster.status(pb::StatusRequest {})).await?;
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

fn split_host_port(endpoint: &str) -> Result<(String, u16), Error> {
    let bad = || Error::BadEndpoint(endpoint.to_string());
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn innermost(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_into_host_and_port() {
        assert_eq!(
            split_host_port("127.0.0.1:2001").ok(),
            Some(("127.0.0.1".into(), 2001))
        );
        assert_eq!(split_host_port("[::1]:9").ok(), Some(("::1".into(), 9)));
        assert_eq!(split_host_port("node-1:7").ok(), Some(("node-1".into(), 7)));
        for bad in ["nohost", ":1", "h:0", "h:x"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
