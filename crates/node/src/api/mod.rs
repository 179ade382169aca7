//! The gRPC frontend: `Kv` (get/put/delete/scan/watch) as a thin adapter
//! over the local service, and `Cluster` (status) over the subsystems'
//! status snapshots. Protocol details (messages, consistency levels, status
//! codes) live here and nowhere else.

pub(crate) mod backup;
pub(crate) mod grpc_only;
pub(crate) mod limit;
pub(crate) mod status;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};
use vergent_storage::Record;
use vergent_wire::api::v1 as pb;

use crate::identity::NodeIdentity;
use crate::kv::LocalKv;
use crate::metrics::{Metrics, RequestLabels, grpc_code_name};
use crate::status::{StatusSource, WorkerState};
use crate::strong::{Strong, StrongError};
use crate::workers::Workers;
use limit::RateLimit;
use status::{ApiError, to_status};
use vergent_consensus::Expect;
use vergent_consensus::levels::Level;

/// Implements the `Kv` service.
#[derive(Clone)]
pub(crate) struct KvApi {
    pub(crate) kv: Arc<LocalKv>,
    /// Strong (SERIAL) operations, compare-and-set, and the QUORUM/ALL levels.
    pub(crate) strong: Arc<Strong>,
    /// The levels a request that names none is served at.
    pub(crate) defaults: Defaults,
    /// Where requests are counted.
    pub(crate) metrics: Arc<Metrics>,
    /// The per-connection rate limit, if one is set.
    pub(crate) limit: Option<Arc<RateLimit>>,
}

/// The server's default consistency levels (`--default-read-consistency`,
/// `--default-write-consistency`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Defaults {
    /// For gets.
    pub(crate) read: pb::Consistency,
    /// For puts and deletes.
    pub(crate) write: pb::Consistency,
}

impl Defaults {
    /// The defaults of `config`.
    pub(crate) fn of(config: &crate::NodeConfig) -> Self {
        Self {
            read: wire_level(config.default_read_consistency),
            write: wire_level(config.default_write_consistency),
        }
    }
}

fn wire_level(l: crate::config::ConsistencyLevel) -> pb::Consistency {
    use crate::config::ConsistencyLevel as L;
    match l {
        L::One => pb::Consistency::One,
        L::Quorum => pb::Consistency::Quorum,
        L::All => pb::Consistency::All,
    }
}

/// The counting level of QUORUM and ALL; `None` for the others.
fn counted(c: pb::Consistency) -> Option<Level> {
    match c {
        pb::Consistency::Quorum => Some(Level::Quorum),
        pb::Consistency::All => Some(Level::All),
        _ => None,
    }
}

/// The stream of a watch.
type WatchEvents = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

/// Implements the `Cluster` service.
#[derive(Clone)]
pub(crate) struct ClusterApi {
    pub(crate) identity: Arc<NodeIdentity>,
    pub(crate) kv: Arc<LocalKv>,
    /// The peer subsystems' snapshots.
    pub(crate) peers: Arc<dyn StatusSource>,
    /// The node's named background tasks.
    pub(crate) workers: Workers,
    /// The voting configuration, for status.
    pub(crate) strong: Arc<Strong>,
    /// Where requests are counted.
    pub(crate) metrics: Arc<Metrics>,
    /// The per-connection rate limit, if one is set.
    pub(crate) limit: Option<Arc<RateLimit>>,
    /// Admits one backup at a time.
    pub(crate) backup: backup::BackupGate,
}

fn entry_of(key: Vec<u8>, record: Record) -> pb::Entry {
    pb::Entry {
        key,
        version: Some((&record.version).into()),
        expires_at_ms: record.expires_at_ms,
        deleted: record.is_tombstone(),
        value: record.value.unwrap_or_default(),
    }
}

fn kv_status(e: crate::kv::KvError) -> Status {
    to_status(ApiError::Kv(e))
}

fn strong_status(e: StrongError) -> Status {
    to_status(ApiError::Strong(e))
}

fn limit_status(e: vergent_types::LimitError) -> Status {
    kv_status(e.into())
}

fn voting_of(h: crate::strong::Held) -> pb::VotingConfig {
    pb::VotingConfig {
        epoch: h.config.epoch,
        voters: h.config.voters.iter().map(ToString::to_string).collect(),
        joining: h
            .config
            .joining
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect(),
        strict_prefixes: h.strict,
    }
}

/// A strong delete's attempts at "read, then CAS on the version read"
/// before it reports contention (a concurrent writer won every time).
const DELETE_ATTEMPTS: usize = 4;

impl KvApi {
    /// Refuses an eventual write under a prefix declared strict.
    fn check_not_strict(&self, key: &[u8]) -> Result<(), Status> {
        match self.strong.voting.strict_prefix_of(key) {
            Some(p) => Err(to_status(ApiError::StrictKeyspace(
                p.escape_ascii().to_string(),
            ))),
            None => Ok(()),
        }
    }

    async fn serial_get(&self, key: Vec<u8>) -> Result<pb::GetResponse, Status> {
        self.kv.limits().check_key(&key).map_err(limit_status)?;
        let (value, version) = self.strong.read(key).await.map_err(strong_status)?;
        Ok(pb::GetResponse {
            found: value.is_some(),
            value: value.unwrap_or_default(),
            version: version.as_ref().map(Into::into),
            expires_at_ms: None,
            consistency: pb::Consistency::Serial.into(),
        })
    }

    /// A strong delete: reports whether a value existed, so it reads first
    /// and deletes only if nothing changed in between.
    async fn serial_delete(&self, key: Vec<u8>) -> Result<pb::DeleteResponse, Status> {
        self.kv.limits().check_key(&key).map_err(limit_status)?;
        for _ in 0..DELETE_ATTEMPTS {
            let (value, version) = self.strong.read(key.clone()).await.map_err(strong_status)?;
            let expect = match version {
                Some(v) => Expect::Version(v),
                None => Expect::Absent,
            };
            let r = self
                .strong
                .cas(key.clone(), expect, None)
                .await
                .map_err(strong_status)?;
            if r.applied {
                return Ok(pb::DeleteResponse {
                    version: r.version.as_ref().map(Into::into),
                    existed: value.is_some(),
                    consistency: pb::Consistency::Serial.into(),
                });
            }
        }
        Err(strong_status(StrongError::Contention))
    }
}

/// The label of a request's level: what it asked for, else `default`.
fn level_label(raw: i32, default: pb::Consistency) -> &'static str {
    match ApiError::check_consistency(raw, default) {
        Ok(pb::Consistency::One) => "one",
        Ok(pb::Consistency::Quorum) => "quorum",
        Ok(pb::Consistency::All) => "all",
        Ok(pb::Consistency::Serial) => "serial",
        Ok(pb::Consistency::Unspecified) | Err(_) => "invalid",
    }
}

/// The outcome label of an answer: `OK`, else the Vergent error code, else
/// the gRPC code.
fn code_label<T>(r: &Result<T, Status>) -> &'static str {
    match r {
        Ok(_) => "OK",
        Err(st) => pb::ErrorCode::from_status(st)
            .map_or_else(|| grpc_code_name(st.code()), |c| c.as_str_name()),
    }
}

/// Refuses a request over its connection's rate limit.
fn admit<T>(limit: Option<&RateLimit>, req: &Request<T>) -> Result<(), Status> {
    let (Some(limit), Some(conn)) = (limit, req.remote_addr()) else {
        return Ok(());
    };
    limit.admit(conn).map_err(|retry_after| {
        to_status(ApiError::RateLimited {
            per_second: limit.per_second.get(),
            burst: limit.burst.get(),
            retry_after,
        })
    })
}

/// Counts and times one request, whatever its outcome.
async fn observed<T>(
    metrics: &Metrics,
    op: &'static str,
    consistency: &'static str,
    served: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let started = std::time::Instant::now();
    let r = served.await;
    metrics.request(
        RequestLabels {
            op,
            consistency,
            code: code_label(&r),
        },
        started.elapsed().as_secs_f64(),
    );
    r
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvApi {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let level = level_label(req.get_ref().consistency, self.defaults.read);
        observed(&self.metrics, "get", level, async {
            admit(self.limit.as_deref(), &req)?;
            self.serve_get(req).await
        })
        .await
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let level = level_label(req.get_ref().consistency, self.defaults.write);
        observed(&self.metrics, "put", level, async {
            admit(self.limit.as_deref(), &req)?;
            self.serve_put(req).await
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let level = level_label(req.get_ref().consistency, self.defaults.write);
        observed(&self.metrics, "delete", level, async {
            admit(self.limit.as_deref(), &req)?;
            self.serve_delete(req).await
        })
        .await
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let level = level_label(req.get_ref().consistency, pb::Consistency::One);
        observed(&self.metrics, "scan", level, async {
            admit(self.limit.as_deref(), &req)?;
            self.serve_scan(req).await
        })
        .await
    }

    async fn compare_and_set(
        &self,
        req: Request<pb::CompareAndSetRequest>,
    ) -> Result<Response<pb::CompareAndSetResponse>, Status> {
        observed(&self.metrics, "cas", "serial", async {
            admit(self.limit.as_deref(), &req)?;
            self.serve_cas(req).await
        })
        .await
    }

    type WatchStream = WatchEvents;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // Counted when opened; the stream's life is not a latency.
        observed(&self.metrics, "watch", "one", async {
            admit(self.limit.as_deref(), &req)?;
            self.serve_watch(req).await
        })
        .await
    }
}

impl KvApi {
    async fn serve_get(
        &self,
        req: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let req = req.into_inner();
        let consistency =
            ApiError::check_consistency(req.consistency, self.defaults.read).map_err(to_status)?;
        if consistency == pb::Consistency::Serial {
            return self.serial_get(req.key).await.map(Response::new);
        }
        let record = match counted(consistency) {
            Some(level) => {
                self.kv.limits().check_key(&req.key).map_err(limit_status)?;
                let now = self.kv.clock().physical_ms();
                self.strong
                    .level_read(level, req.key)
                    .await
                    .map_err(strong_status)?
                    .filter(|r| r.live_value(now).is_some())
            }
            None => self.kv.get(req.key).await.map_err(kv_status)?,
        };
        let resp = match record {
            Some(r) => pb::GetResponse {
                found: true,
                version: Some((&r.version).into()),
                expires_at_ms: r.expires_at_ms,
                value: r.value.unwrap_or_default(),
                consistency: consistency.into(),
            },
            None => pb::GetResponse {
                found: false,
                consistency: consistency.into(),
                ..Default::default()
            },
        };
        Ok(Response::new(resp))
    }

    async fn serve_put(
        &self,
        req: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        let consistency =
            ApiError::check_consistency(req.consistency, self.defaults.write).map_err(to_status)?;
        if consistency == pb::Consistency::Serial {
            if req.ttl_ms.is_some_and(|t| t > 0) {
                return Err(to_status(ApiError::BadRequest(
                    "a TTL cannot be combined with SERIAL (strong values do not expire); use ONE"
                        .into(),
                )));
            }
            self.kv.limits().check_key(&req.key).map_err(limit_status)?;
            self.kv
                .limits()
                .check_value(&req.value)
                .map_err(limit_status)?;
            let r = self
                .strong
                .cas(req.key, Expect::Any, Some(req.value))
                .await
                .map_err(strong_status)?;
            return Ok(Response::new(pb::PutResponse {
                version: r.version.as_ref().map(Into::into),
                consistency: consistency.into(),
            }));
        }
        self.check_not_strict(&req.key)?;
        // Refused before anything is written when the level cannot be met.
        let level = match counted(consistency) {
            Some(l) => Some((l, self.strong.level_precheck(l).map_err(strong_status)?)),
            None => None,
        };
        let written = self
            .kv
            .put(req.key, req.value, req.ttl_ms)
            .await
            .map_err(kv_status)?;
        if let Some((l, config)) = level {
            self.strong
                .await_durable(l, config, written.seq)
                .await
                .map_err(strong_status)?;
        }
        Ok(Response::new(pb::PutResponse {
            version: Some((&written.record.version).into()),
            consistency: consistency.into(),
        }))
    }

    async fn serve_delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let req = req.into_inner();
        let consistency =
            ApiError::check_consistency(req.consistency, self.defaults.write).map_err(to_status)?;
        if consistency == pb::Consistency::Serial {
            return self.serial_delete(req.key).await.map(Response::new);
        }
        self.check_not_strict(&req.key)?;
        let level = match counted(consistency) {
            Some(l) => Some((l, self.strong.level_precheck(l).map_err(strong_status)?)),
            None => None,
        };
        let deleted = self.kv.delete(req.key).await.map_err(kv_status)?;
        if let Some((l, config)) = level {
            self.strong
                .await_durable(l, config, deleted.written.seq)
                .await
                .map_err(strong_status)?;
        }
        Ok(Response::new(pb::DeleteResponse {
            version: Some((&deleted.written.record.version).into()),
            existed: deleted.existed,
            consistency: consistency.into(),
        }))
    }

    async fn serve_scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let req = req.into_inner();
        // Scans read this node's copy; a default level for gets does not
        // apply to them, an explicit one other than ONE is refused.
        match ApiError::check_consistency(req.consistency, pb::Consistency::One)
            .map_err(to_status)?
        {
            pb::Consistency::Serial => {
                return Err(to_status(ApiError::UnsupportedConsistency(
                    "SERIAL for scans (strong operations are per key)",
                )));
            }
            pb::Consistency::Quorum | pb::Consistency::All => {
                return Err(to_status(ApiError::UnsupportedConsistency(
                    "QUORUM and ALL for scans (levels are per key: get each key at the level)",
                )));
            }
            _ => {}
        }
        let page = self
            .kv
            .scan(
                req.prefix,
                req.start_after,
                req.limit as usize,
                req.include_tombstones,
            )
            .await
            .map_err(kv_status)?;
        Ok(Response::new(pb::ScanResponse {
            entries: page.rows.into_iter().map(|(k, r)| entry_of(k, r)).collect(),
            more: page.resume_after.is_some(),
            resume_after: page.resume_after.unwrap_or_default(),
        }))
    }

    async fn serve_cas(
        &self,
        req: Request<pb::CompareAndSetRequest>,
    ) -> Result<Response<pb::CompareAndSetResponse>, Status> {
        use pb::compare_and_set_request::Expected;
        let req = req.into_inner();
        let limits = self.kv.limits();
        limits.check_key(&req.key).map_err(limit_status)?;
        let expect = match req.expected {
            Some(Expected::ExpectedValue(v)) => Expect::Value(v),
            Some(Expected::ExpectedAbsent(_)) => Expect::Absent,
            Some(Expected::ExpectedVersion(v)) => {
                Expect::Version(vergent_types::Version::try_from(&v).map_err(|e| {
                    to_status(ApiError::BadRequest(format!("expected_version: {e}")))
                })?)
            }
            None => {
                return Err(to_status(ApiError::BadRequest(
                    "a compare-and-set needs expected_value, expected_absent or expected_version"
                        .into(),
                )));
            }
        };
        let new = if req.delete {
            None
        } else {
            limits.check_value(&req.new_value).map_err(limit_status)?;
            Some(req.new_value)
        };
        let r = self
            .strong
            .cas(req.key, expect, new)
            .await
            .map_err(strong_status)?;
        Ok(Response::new(pb::CompareAndSetResponse {
            applied: r.applied,
            found: r.value.is_some(),
            value: r.value.unwrap_or_default(),
            version: r.version.as_ref().map(Into::into),
            consistency: pb::Consistency::Serial.into(),
        }))
    }

    async fn serve_watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchEvents>, Status> {
        let watch = self.kv.watch(req.into_inner().prefix);
        // Pulled by the transport as the client reads: a watcher holds no
        // queue of its own, only its cursor into the shared, bounded feed.
        let events = futures::stream::unfold(Some(watch), |state| async move {
            let mut watch = state?;
            match watch.next().await {
                Ok(change) => {
                    let event = pb::WatchEvent {
                        key: change.key.clone(),
                        deleted: change.record.is_tombstone(),
                        value: change.record.value.clone().unwrap_or_default(),
                        version: Some((&change.record.version).into()),
                        local: change.local,
                        expires_at_ms: change.record.expires_at_ms,
                    };
                    Some((Ok(event), Some(watch)))
                }
                Err(e) => Some((Err(kv_status(e)), None)),
            }
        });
        Ok(Response::new(Box::pin(events)))
    }
}

fn change_of(change: crate::strong::ConfigChange) -> pb::ConfigChangeResponse {
    pb::ConfigChangeResponse {
        voting: Some(voting_of(change.held)),
        confirmed: change.confirmed.iter().map(ToString::to_string).collect(),
        unconfirmed: change.unconfirmed.iter().map(ToString::to_string).collect(),
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterApi {
    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::ConfigChangeResponse>, Status> {
        observed(
            &self.metrics,
            "remove_member",
            "",
            self.serve_remove_member(req),
        )
        .await
    }

    async fn declare_strict(
        &self,
        req: Request<pb::DeclareStrictRequest>,
    ) -> Result<Response<pb::ConfigChangeResponse>, Status> {
        observed(
            &self.metrics,
            "declare_strict",
            "",
            self.serve_declare_strict(req),
        )
        .await
    }

    type BackupStream = backup::BackupChunks;

    async fn backup(
        &self,
        req: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        // Counted when admitted; taking and streaming it is not a latency.
        observed(&self.metrics, "backup", "", async {
            admit(self.limit.as_deref(), &req)?;
            // A node still filling from its peers (or fenced) would back up
            // a partial store.
            self.kv
                .availability()
                .check_readable()
                .map_err(|e| to_status(ApiError::Kv(e)))?;
            let permit = self.backup.enter().map_err(to_status)?;
            let chunks = backup::serve(
                self.kv.store().clone(),
                &self.identity.data_dir,
                self.identity.node_id.to_string(),
                self.identity.store_id,
                permit,
            );
            Ok(Response::new(chunks))
        })
        .await
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        observed(&self.metrics, "status", "", async {
            admit(self.limit.as_deref(), &req)?;
            self.serve_status(req).await
        })
        .await
    }
}

impl ClusterApi {
    async fn serve_remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::ConfigChangeResponse>, Status> {
        let id = vergent_types::NodeId::new(req.into_inner().node_id)
            .map_err(|e| to_status(ApiError::BadRequest(format!("node_id: {e}"))))?;
        let held =
            self.strong.voting.held().ok_or_else(|| {
                strong_status(StrongError::NoConfig(self.strong.voting.pending()))
            })?;
        let mut target = held.config.joining.clone().unwrap_or(held.config.voters);
        if !target.remove(&id) {
            return Err(to_status(ApiError::BadRequest(format!(
                "{id} is not a voter"
            ))));
        }
        let change = self
            .strong
            .change_voters(target)
            .await
            .map_err(strong_status)?;
        Ok(Response::new(change_of(change)))
    }

    async fn serve_declare_strict(
        &self,
        req: Request<pb::DeclareStrictRequest>,
    ) -> Result<Response<pb::ConfigChangeResponse>, Status> {
        let prefix = req.into_inner().prefix;
        self.kv
            .limits()
            .check_key(&prefix)
            .or_else(|e| match e {
                // An empty prefix is allowed: it covers every key.
                vergent_types::LimitError::EmptyKey => Ok(()),
                e => Err(e),
            })
            .map_err(limit_status)?;
        let change = self
            .strong
            .declare_strict(prefix)
            .await
            .map_err(strong_status)?;
        Ok(Response::new(change_of(change)))
    }

    async fn serve_status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let id = &self.identity;
        let store = self.kv.store();
        let storage = |e: vergent_storage::Error| kv_status(e.into());
        let key_count = store.live_keys().map_err(storage)?;
        let last = store.last_log_seq();
        let availability = self.kv.availability();
        let bootstrap = availability.bootstrap_progress();
        let p = self.peers.peer_status();
        let mut replication: Vec<pb::ReplicationPeer> = p
            .replication
            .cursors
            .into_iter()
            .map(|(node_id, cursor)| pb::ReplicationPeer {
                node_id,
                cursor,
                lag: last.saturating_sub(cursor),
            })
            .collect();
        replication.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        let m = store.memory();
        Ok(Response::new(pb::StatusResponse {
            node_id: id.node_id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_ms: id.started.elapsed().as_millis() as u64,
            key_count,
            hlc_now: self.kv.clock().last().as_u64(),
            fsync_policy: store.fsync_policy().to_string(),
            peers: id.peers.clone(),
            advertise_addr: id.advertise.to_string(),
            data_dir: id.data_dir.display().to_string(),
            log_first_seq: store.first_log_seq().map_err(storage)?.unwrap_or(0),
            log_last_seq: last,
            replication,
            members: p
                .membership
                .members
                .into_iter()
                .map(|m| pb::MemberStatus {
                    node_id: m.id,
                    addr: m.addr,
                    state: format!("{:?}", m.state).to_ascii_lowercase(),
                    incarnation: m.incarnation,
                    since_ms: m.since_ms,
                })
                .collect(),
            state: availability.state().to_string(),
            repairs: p
                .repair
                .peers
                .into_iter()
                .map(|(peer_id, r)| pb::RepairPeer {
                    peer_id,
                    last_repair_ms: r.last_repair_ms,
                    sessions: r.sessions,
                    differing_buckets: r.differing_buckets,
                    keys_received: r.keys_received,
                    keys_sent: r.keys_sent,
                    bytes: r.bytes,
                    last_error: r.last_error,
                })
                .collect(),
            purged: p.purge.purged,
            purge_held_since_ms: p.purge.held_back.as_ref().map_or(0, |(_, t)| *t),
            purge_held_back: p.purge.held_back.map(|(w, _)| w).unwrap_or_default(),
            refused_records: p.replication.refused_records,
            records_too_old_for_log: p.replication.too_old_for_log,
            refused_peers: p.roster.refused_peers,
            roster: p
                .roster
                .members
                .into_iter()
                .map(|r| pb::RosterMember {
                    node_id: r.node_id,
                    cert: r.cert,
                    store_id: if r.store_id == 0 {
                        String::new()
                    } else {
                        format!("{:016x}", r.store_id)
                    },
                    addr: r.addr,
                })
                .collect(),
            fenced: p.roster.fenced,
            bootstrap_buckets: bootstrap.map_or(0, |(_, t)| t),
            bootstrap_buckets_done: bootstrap.map_or(0, |(d, _)| d),
            workers: self
                .workers
                .snapshot()
                .into_iter()
                .map(|w| {
                    let (state, error) = match w.state {
                        WorkerState::Running => ("running", String::new()),
                        WorkerState::Stopped => ("stopped", String::new()),
                        WorkerState::Failed(e) => ("failed", e),
                    };
                    pb::WorkerStatus {
                        name: w.name,
                        state: state.to_string(),
                        since_ms: w.since_ms,
                        error,
                    }
                })
                .collect(),
            voting: self.strong.voting.held().map(voting_of),
            voting_pending: if self.strong.voting.get().is_none() {
                self.strong.voting.pending()
            } else {
                String::new()
            },
            paxos_records: self.strong.paxos_records(),
            catching_up: self.strong.catching_up(),
            storage_memory: Some(pb::StorageMemory {
                memtables: m.memtables,
                block_cache: m.block_cache,
                block_cache_capacity: m.block_cache_capacity,
                table_readers: m.table_readers,
            }),
        }))
    }
}
