//! The gRPC frontend: `Kv` (get/put/delete/scan/watch) as a thin adapter
//! over the local service, and `Cluster` (status) over the subsystems'
//! status snapshots. Protocol details (messages, consistency levels, status
//! codes) live here and nowhere else.

pub(crate) mod status;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};
use vergent_storage::Record;
use vergent_wire::api::v1 as pb;

use crate::identity::NodeIdentity;
use crate::kv::LocalKv;
use crate::status::{StatusSource, WorkerState};
use crate::workers::Workers;
use status::{ApiError, to_status};

/// Implements the `Kv` service.
#[derive(Clone)]
pub(crate) struct KvApi {
    pub(crate) kv: Arc<LocalKv>,
}

/// Implements the `Cluster` service.
#[derive(Clone)]
pub(crate) struct ClusterApi {
    pub(crate) identity: Arc<NodeIdentity>,
    pub(crate) kv: Arc<LocalKv>,
    /// The peer subsystems' snapshots.
    pub(crate) peers: Arc<dyn StatusSource>,
    /// The node's named background tasks.
    pub(crate) workers: Workers,
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

#[tonic::async_trait]
impl pb::kv_server::Kv for KvApi {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let req = req.into_inner();
        let consistency = ApiError::check_consistency(req.consistency).map_err(to_status)?;
        let resp = match self.kv.get(req.key).await.map_err(kv_status)? {
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

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        let consistency = ApiError::check_consistency(req.consistency).map_err(to_status)?;
        let written = self
            .kv
            .put(req.key, req.value, req.ttl_ms)
            .await
            .map_err(kv_status)?;
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
        let deleted = self.kv.delete(req.key).await.map_err(kv_status)?;
        Ok(Response::new(pb::DeleteResponse {
            version: Some((&deleted.written.record.version).into()),
            existed: deleted.existed,
            consistency: consistency.into(),
        }))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let req = req.into_inner();
        ApiError::check_consistency(req.consistency).map_err(to_status)?;
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

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
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

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterApi {
    async fn status(
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
            storage_memory: Some(pb::StorageMemory {
                memtables: m.memtables,
                block_cache: m.block_cache,
                block_cache_capacity: m.block_cache_capacity,
                table_readers: m.table_readers,
            }),
        }))
    }
}
