//! The gRPC services: `Kv` (get/put/delete/scan/watch) and `Cluster` (status).

pub(crate) mod status;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};
use vergent_storage::{Mutation, Record};
use vergent_wire::api::v1 as pb;

use crate::node::Shared;
use status::{ApiError, to_status};

/// Default and largest number of entries one scan returns.
const SCAN_DEFAULT_LIMIT: usize = 1000;
const SCAN_MAX_LIMIT: usize = 10_000;
/// About the most key and value bytes one scan returns (at least one entry).
pub(crate) const SCAN_MAX_BYTES: usize = 4 << 20;
/// Most records one scan looks at, returned or not (tombstones, expired).
const SCAN_MAX_VISITED: usize = 100_000;
/// Longest TTL accepted: 100 years, far below where expiry times overflow.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// Implements the `Kv` service.
#[derive(Clone)]
pub(crate) struct KvApi {
    pub(crate) shared: Arc<Shared>,
}

/// Implements the `Cluster` service.
#[derive(Clone)]
pub(crate) struct ClusterApi {
    pub(crate) shared: Arc<Shared>,
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

impl KvApi {
    /// Refuses reads while the node is still filling from its peers: an
    /// empty answer from an incomplete store would be wrong, not stale.
    fn check_readable(&self) -> Result<(), Status> {
        self.check_not_fenced()?;
        match self.shared.repair.bootstrap_progress() {
            Some((done, total)) => Err(to_status(ApiError::Bootstrapping { done, total })),
            None => Ok(()),
        }
    }

    /// Refuses requests once peers refuse this node's data for good: its
    /// reads may show deleted keys, and its writes would never replicate.
    fn check_not_fenced(&self) -> Result<(), Status> {
        match self.shared.fenced.borrow().as_ref() {
            Some(why) => Err(to_status(ApiError::Fenced(why.clone()))),
            None => Ok(()),
        }
    }

    async fn write(
        &self,
        key: Vec<u8>,
        mutation: Mutation,
    ) -> Result<vergent_storage::Written, ApiError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(ApiError::ShuttingDown);
        }
        if let Some(why) = self.shared.fenced.borrow().as_ref() {
            return Err(ApiError::Fenced(why.clone()));
        }
        self.shared.writer.write(key, mutation).await
    }
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvApi {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let req = req.into_inner();
        let consistency = ApiError::check_consistency(req.consistency).map_err(to_status)?;
        self.shared
            .limits
            .check_key(&req.key)
            .map_err(|e| to_status(e.into()))?;
        self.check_readable()?;
        let store = self.shared.store.clone();
        // Off the async workers: a read that misses the caches waits on disk.
        let record = tokio::task::spawn_blocking(move || store.get(&req.key))
            .await
            .map_err(|_| to_status(ApiError::ShuttingDown))?
            .map_err(|e| to_status(e.into()))?;
        let now = self.shared.clock.physical_ms();
        let resp = match record {
            Some(r) if r.live_value(now).is_some() => pb::GetResponse {
                found: true,
                version: Some((&r.version).into()),
                expires_at_ms: r.expires_at_ms,
                value: r.value.unwrap_or_default(),
                consistency: consistency.into(),
            },
            _ => pb::GetResponse {
                found: false,
                consistency: consistency.into(),
                ..Default::default()
            },
        };
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        let consistency = ApiError::check_consistency(req.consistency).map_err(to_status)?;
        let limits = &self.shared.limits;
        limits
            .check_key(&req.key)
            .map_err(|e| to_status(e.into()))?;
        limits
            .check_value(&req.value)
            .map_err(|e| to_status(e.into()))?;
        let ttl_ms = req.ttl_ms.filter(|t| *t > 0);
        if ttl_ms.is_some_and(|t| t > MAX_TTL_MS) {
            return Err(to_status(ApiError::BadRequest(format!(
                "ttl_ms must be at most {MAX_TTL_MS} (100 years)"
            ))));
        }
        let written = self
            .write(
                req.key,
                Mutation::Put {
                    value: req.value,
                    ttl_ms,
                },
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::PutResponse {
            version: Some((&written.record.version).into()),
            consistency: consistency.into(),
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let req = req.into_inner();
        let consistency = ApiError::check_consistency(req.consistency).map_err(to_status)?;
        self.shared
            .limits
            .check_key(&req.key)
            .map_err(|e| to_status(e.into()))?;
        let now = self.shared.clock.physical_ms();
        let written = self
            .write(req.key, Mutation::Delete)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteResponse {
            version: Some((&written.record.version).into()),
            existed: written
                .previous
                .is_some_and(|p| p.live_value(now).is_some()),
            consistency: consistency.into(),
        }))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let req = req.into_inner();
        ApiError::check_consistency(req.consistency).map_err(to_status)?;
        self.check_readable()?;
        if req.prefix.len() > self.shared.limits.max_key_bytes {
            return Err(to_status(ApiError::BadRequest(format!(
                "prefix is {} bytes; the key limit is {} bytes",
                req.prefix.len(),
                self.shared.limits.max_key_bytes
            ))));
        }
        let limit = match req.limit as usize {
            0 => SCAN_DEFAULT_LIMIT,
            n => n.min(SCAN_MAX_LIMIT),
        };
        let now = self.shared.clock.physical_ms();
        let all = req.include_tombstones;
        let store = self.shared.store.clone();
        let bounds = vergent_storage::ScanBounds {
            limit,
            max_bytes: SCAN_MAX_BYTES,
            max_visited: SCAN_MAX_VISITED,
        };
        // Off the async workers: a scan may read many blocks from disk.
        let page = tokio::task::spawn_blocking(move || {
            let start_after = (!req.start_after.is_empty()).then_some(req.start_after.as_slice());
            store.scan_page(&req.prefix, start_after, bounds, |r| {
                all || r.live_value(now).is_some()
            })
        })
        .await
        .map_err(|_| to_status(ApiError::ShuttingDown))?
        .map_err(|e| to_status(e.into()))?;
        Ok(Response::new(pb::ScanResponse {
            entries: page.rows.into_iter().map(|(k, r)| entry_of(k, r)).collect(),
            more: page.resume_after.is_some(),
            resume_after: page.resume_after.unwrap_or_default(),
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let prefix = req.into_inner().prefix;
        let cursor = self.shared.changes.subscribe();
        let shutdown = self.shared.shutdown.clone();
        // Pulled by the transport as the client reads: a watcher holds no
        // queue of its own, only its cursor into the shared, bounded feed.
        let events =
            futures::stream::unfold(Some((cursor, prefix, shutdown)), |state| async move {
                let (mut cursor, prefix, shutdown) = state?;
                loop {
                    let change = tokio::select! {
                        () = shutdown.cancelled() => {
                            return Some((Err(to_status(ApiError::ShuttingDown)), None));
                        }
                        c = cursor.next() => c,
                    };
                    let change = match change {
                        Ok(c) => c,
                        Err(crate::feed::Lagged(n)) => {
                            return Some((Err(to_status(ApiError::WatchLagged(n))), None));
                        }
                    };
                    if !change.key.starts_with(&prefix) {
                        continue;
                    }
                    let event = pb::WatchEvent {
                        key: change.key.clone(),
                        deleted: change.record.is_tombstone(),
                        value: change.record.value.clone().unwrap_or_default(),
                        version: Some((&change.record.version).into()),
                        local: change.local,
                        expires_at_ms: change.record.expires_at_ms,
                    };
                    return Some((Ok(event), Some((cursor, prefix, shutdown))));
                }
            });
        Ok(Response::new(Box::pin(events)))
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterApi {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.shared;
        let key_count = s.store.live_keys().map_err(|e| to_status(e.into()))?;
        let last = s.store.last_log_seq();
        Ok(Response::new(pb::StatusResponse {
            node_id: s.node_id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_ms: s.started.elapsed().as_millis() as u64,
            key_count,
            hlc_now: s.clock.last().as_u64(),
            fsync_policy: s.store.fsync_policy().to_string(),
            peers: s.peers.clone(),
            advertise_addr: s.advertise.to_string(),
            data_dir: s.data_dir.display().to_string(),
            log_first_seq: s
                .store
                .first_log_seq()
                .map_err(|e| to_status(e.into()))?
                .unwrap_or(0),
            log_last_seq: last,
            replication: {
                let progress = s.lock_progress();
                let mut peers: Vec<pb::ReplicationPeer> = progress
                    .cursors
                    .iter()
                    .map(|(id, c)| pb::ReplicationPeer {
                        node_id: id.clone(),
                        cursor: *c,
                        lag: last.saturating_sub(*c),
                    })
                    .collect();
                peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
                peers
            },
            members: s
                .members
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|m| pb::MemberStatus {
                    node_id: m.id.clone(),
                    addr: m.addr.clone(),
                    state: format!("{:?}", m.state).to_ascii_lowercase(),
                    incarnation: m.incarnation,
                    since_ms: m.since_ms,
                })
                .collect(),
            state: if s.fenced.borrow().is_some() {
                "fenced"
            } else if *s.repair.bootstrapping.borrow() {
                "bootstrapping"
            } else {
                "serving"
            }
            .to_string(),
            repairs: s
                .repair
                .peers()
                .into_iter()
                .map(|(peer_id, p)| pb::RepairPeer {
                    peer_id,
                    last_repair_ms: p.last_repair_ms,
                    sessions: p.sessions,
                    differing_buckets: p.differing_buckets,
                    keys_received: p.keys_received,
                    keys_sent: p.keys_sent,
                    bytes: p.bytes,
                    last_error: p.last_error,
                })
                .collect(),
            purged: s.purge.purged.load(Relaxed),
            purge_held_back: s.purge.held_back().map(|(w, _)| w).unwrap_or_default(),
            purge_held_since_ms: s.purge.held_back().map_or(0, |(_, t)| t),
            refused_records: s.peer_counters.refused_records.load(Relaxed),
            records_too_old_for_log: s.peer_counters.too_old_for_log.load(Relaxed),
            refused_peers: s.peer_counters.refused_peers.load(Relaxed),
            roster: s
                .roster
                .entries()
                .into_iter()
                .map(|(node_id, e)| pb::RosterMember {
                    node_id,
                    cert: e.cert,
                    store_id: if e.store_id == 0 {
                        String::new()
                    } else {
                        format!("{:016x}", e.store_id)
                    },
                    addr: e.addr,
                })
                .collect(),
            fenced: s.roster.fenced(),
            bootstrap_buckets: s.repair.bootstrap_progress().map_or(0, |(_, t)| t),
            bootstrap_buckets_done: s.repair.bootstrap_progress().map_or(0, |(d, _)| d),
            storage_memory: {
                let m = s.store.memory();
                Some(pb::StorageMemory {
                    memtables: m.memtables,
                    block_cache: m.block_cache,
                    block_cache_capacity: m.block_cache_capacity,
                    table_readers: m.table_readers,
                })
            },
        }))
    }
}
