//! The operations frontend over HTTP (`--http-addr`; TLS with the node's
//! certificate and a required client certificate under `--http-tls`): Prometheus
//! `/metrics`, `/health` (the process answers) and `/ready` (this node
//! should get client traffic; 503 with the reason otherwise). Like the gRPC
//! frontend it reads peer state only through the status snapshots, and it
//! holds the node's parts weakly so it never keeps a stopped store open.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vergent_gossip::State as MemberState;

use crate::identity::NodeIdentity;
use crate::incoming::ConnectionStats;
use crate::kv::LocalKv;
use crate::metrics::Metrics;
use crate::status::{StatusSource, WorkerState};
use crate::strong::Strong;
use crate::workers::Workers;

/// What the HTTP frontend reads.
pub(crate) struct HttpState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) identity: Arc<NodeIdentity>,
    pub(crate) kv: Weak<LocalKv>,
    pub(crate) strong: Weak<Strong>,
    pub(crate) peers: Weak<dyn StatusSource>,
    pub(crate) workers: Workers,
    pub(crate) connections: Arc<ConnectionStats>,
    /// Cancelled when the node starts shutting down (it is draining then).
    pub(crate) shutdown: CancellationToken,
    /// The storage failure that stopped the node, if one did.
    pub(crate) failure: Arc<OnceLock<String>>,
}

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn router(state: Arc<HttpState>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route("/health", axum::routing::get(health))
        .route("/ready", axum::routing::get(ready))
        .with_state(state)
}

/// Connections the endpoint serves at once (TLS handshakes included);
/// more are closed at once, so a flood cannot grow tasks without bound.
const MAX_CONNECTIONS: usize = 64;

/// Serves the frontend on `listener` until `stop` is cancelled: plain HTTP,
/// or, given `tls` (the client API's configuration, which certificate
/// reloads update), HTTP/1.1 over mutual TLS.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    stop: CancellationToken,
    tls: Option<watch::Receiver<Arc<rustls::ServerConfig>>>,
) -> std::io::Result<()> {
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, say: back off instead of spinning.
                    tracing::warn!(error = %e, "operations endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(peer = %peer, "operations endpoint: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        // The API's configuration (same certificate, CA and client
        // verification, current after any reload) with HTTP/1.1's ALPN.
        let acceptor = tls.as_ref().map(|tls| {
            let mut config = rustls::ServerConfig::clone(&tls.borrow());
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let app = app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(acceptor) = acceptor else {
                return serve_connection(tcp, app, &stop, peer).await;
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve_connection(stream, app, &stop, peer).await,
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer, error = %e, "operations endpoint: TLS handshake refused");
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "operations endpoint: TLS handshake timed out");
                }
            }
        });
    }
}

/// Serves HTTP/1.1 on one connection until it ends, or gracefully until
/// `stop` is cancelled.
async fn serve_connection<S>(
    stream: S,
    app: axum::Router,
    stop: &CancellationToken,
    peer: std::net::SocketAddr,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "operations endpoint: connection ended");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    match not_ready(&s.inputs()) {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    // Reading the engine's properties and the snapshots takes locks and
    // RocksDB calls: off the async workers.
    let body = tokio::task::spawn_blocking(move || s.exposition()).await;
    match body {
        Ok(Ok(text)) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Ok(Err(_)) | Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "cannot encode the metrics\n".to_string(),
        ),
    }
}

/// What readiness depends on, read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReadyInputs {
    /// The storage failure that stopped the node.
    pub(crate) failure: Option<String>,
    /// Shutdown has begun.
    pub(crate) draining: bool,
    /// Why peers refuse this node, if they do.
    pub(crate) fenced: Option<String>,
    /// `(done, total)` buckets while the node fills from its peers.
    pub(crate) bootstrapping: Option<(u64, u64)>,
    /// Why no voting configuration is agreed yet, if none is.
    pub(crate) no_voting_config: Option<String>,
}

/// Why this node should not get client traffic now; `None` when it should.
pub(crate) fn not_ready(i: &ReadyInputs) -> Option<String> {
    if let Some(f) = &i.failure {
        return Some(format!("fail-stopped: storage failed: {f}"));
    }
    if i.draining {
        return Some("draining: the node is shutting down".into());
    }
    if let Some(f) = &i.fenced {
        return Some(format!("fenced: {f}"));
    }
    if let Some((done, total)) = i.bootstrapping {
        return Some(format!(
            "bootstrapping: filling from peers ({done} of {total} differing buckets settled)"
        ));
    }
    if let Some(p) = &i.no_voting_config {
        return Some(format!("no agreed voting configuration: {p}"));
    }
    None
}

impl HttpState {
    fn inputs(&self) -> ReadyInputs {
        let (Some(kv), Some(strong)) = (self.kv.upgrade(), self.strong.upgrade()) else {
            return ReadyInputs {
                failure: self.failure.get().cloned(),
                draining: true,
                ..ReadyInputs::default()
            };
        };
        let availability = kv.availability();
        ReadyInputs {
            failure: self.failure.get().cloned(),
            draining: self.shutdown.is_cancelled(),
            fenced: availability.fenced(),
            bootstrapping: availability
                .bootstrapping()
                .then(|| availability.bootstrap_progress().unwrap_or((0, 0))),
            no_voting_config: strong
                .voting
                .get()
                .is_none()
                .then(|| strong.voting.pending()),
        }
    }

    /// The whole exposition: event metrics, then state read now, then the
    /// process's own series.
    fn exposition(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 << 10);
        prometheus_client::encoding::text::encode_registry(&mut out, self.metrics.registry())?;
        let mut now = prometheus_client::registry::Registry::default();
        now.register_collector(Box::new(NodeNow(self.snapshot())));
        now.register_collector(Box::new(ProcessNow(process_now())));
        prometheus_client::encoding::text::encode_registry(&mut out, &now)?;
        prometheus_client::encoding::text::encode_eof(&mut out)?;
        Ok(out)
    }

    fn snapshot(&self) -> Snapshot {
        let inputs = self.inputs();
        let mut s = Snapshot {
            node_id: self.identity.node_id.to_string(),
            ready: not_ready(&inputs).is_none(),
            bootstrapping: inputs.bootstrapping.is_some(),
            uptime_seconds: self.identity.started.elapsed().as_secs_f64(),
            connections_refused: self
                .connections
                .refused_connections
                .load(std::sync::atomic::Ordering::Relaxed),
            handshakes_evicted: self
                .connections
                .evicted_handshakes
                .load(std::sync::atomic::Ordering::Relaxed),
            workers_failed: self
                .workers
                .snapshot()
                .iter()
                .filter(|w| matches!(w.state, WorkerState::Failed(_)))
                .count() as u64,
            ..Snapshot::default()
        };
        if let Some(kv) = self.kv.upgrade() {
            let store = kv.store();
            s.keys = store.live_keys().unwrap_or(0);
            s.log_last_seq = store.last_log_seq();
            s.memory = store.memory();
            s.engine = store.engine_stats();
            s.io = store.io_stats();
            s.hlc_ms = kv.clock().last().physical_ms();
        }
        if let Some(strong) = self.strong.upgrade()
            && let Some(held) = strong.voting.held()
        {
            s.voting_epoch = held.config.epoch;
            s.voters = held.config.voters.len() as u64;
            s.joint = held.config.joining.is_some();
            s.strict_prefixes = held.strict.len() as u64;
        }
        if let Some(peers) = self.peers.upgrade() {
            let p = peers.peer_status();
            s.lag = p
                .replication
                .cursors
                .into_iter()
                .map(|(peer, cursor)| (peer, s.log_last_seq.saturating_sub(cursor)))
                .collect();
            s.refused_records = p.replication.refused_records;
            s.too_old_for_log = p.replication.too_old_for_log;
            for m in &p.membership.members {
                let i = match m.state {
                    MemberState::Alive => 0,
                    MemberState::Suspect => 1,
                    MemberState::Dead => 2,
                    MemberState::Left => 3,
                };
                s.members[i] += 1;
            }
            s.repair = p
                .repair
                .peers
                .into_iter()
                .map(|(peer, r)| (peer, r.sessions, r.keys_received, r.keys_sent, r.bytes))
                .collect();
            s.purged = p.purge.purged;
            s.purge_held_back = p.purge.held_back.is_some();
            s.refused_peers = p.roster.refused_peers;
            s.fenced_members = p.roster.fenced.len() as u64;
        }
        s
    }
}

/// Node state read at scrape time.
#[derive(Debug, Default)]
struct Snapshot {
    node_id: String,
    ready: bool,
    bootstrapping: bool,
    uptime_seconds: f64,
    keys: u64,
    log_last_seq: u64,
    hlc_ms: u64,
    memory: vergent_storage::MemoryUsage,
    engine: vergent_storage::EngineStats,
    io: vergent_storage::IoStats,
    voting_epoch: u64,
    voters: u64,
    joint: bool,
    strict_prefixes: u64,
    /// Entries of this node's log each peer has yet to receive, by peer id.
    lag: Vec<(String, u64)>,
    refused_records: u64,
    too_old_for_log: u64,
    /// Members alive, suspect, dead and left.
    members: [u64; 4],
    /// (peer, sessions, keys received, keys sent, bytes).
    repair: Vec<(String, u64, u64, u64, u64)>,
    purged: u64,
    purge_held_back: bool,
    refused_peers: u64,
    fenced_members: u64,
    connections_refused: u64,
    handshakes_evicted: u64,
    workers_failed: u64,
}

/// Writes one unlabelled gauge.
fn gauge(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: f64,
) -> Result<(), std::fmt::Error> {
    e.encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// Writes one unlabelled counter (the encoder adds `_total`).
fn counter(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: f64,
) -> Result<(), std::fmt::Error> {
    e.encode_descriptor(name, help, unit, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, f64>(&v, None)
}

/// Writes a labelled family of `kind`, one series per row.
fn family<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: &[(L, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, unit, kind)?;
    for (labels, v) in rows {
        let mut s = m.encode_family(labels)?;
        match kind {
            MetricType::Counter => s.encode_counter::<NoLabelSet, _, f64>(v, None)?,
            _ => s.encode_gauge(v)?,
        }
    }
    Ok(())
}

/// Encodes a [`Snapshot`] under the `vergent_` prefix.
#[derive(Debug)]
struct NodeNow(Snapshot);

fn b(v: bool) -> f64 {
    if v { 1.0 } else { 0.0 }
}

impl prometheus_client::collector::Collector for NodeNow {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let bytes = Some(&Unit::Bytes);
        let seconds = Some(&Unit::Seconds);
        let g = MetricType::Gauge;
        let c = MetricType::Counter;
        family(
            &mut e,
            "vergent_node_info",
            "This node's id and version (always 1)",
            None,
            g,
            &[(
                [
                    ("node_id", s.node_id.as_str()),
                    ("version", env!("CARGO_PKG_VERSION")),
                ],
                1.0,
            )],
        )?;
        gauge(
            &mut e,
            "vergent_ready",
            "1 when /ready answers 200",
            None,
            b(s.ready),
        )?;
        gauge(
            &mut e,
            "vergent_bootstrapping",
            "1 while this node fills from its peers after starting empty",
            None,
            b(s.bootstrapping),
        )?;
        gauge(
            &mut e,
            "vergent_uptime",
            "Time since the node started",
            seconds,
            s.uptime_seconds,
        )?;
        gauge(
            &mut e,
            "vergent_keys",
            "Keys holding a value on this node",
            None,
            s.keys as f64,
        )?;
        gauge(
            &mut e,
            "vergent_hlc_physical",
            "Physical part of this node's hybrid logical clock, Unix time",
            seconds,
            s.hlc_ms as f64 / 1000.0,
        )?;
        gauge(
            &mut e,
            "vergent_log_last_sequence",
            "Sequence number of the newest entry of this node's replication log",
            None,
            s.log_last_seq as f64,
        )?;
        let lag: Vec<_> = s
            .lag
            .iter()
            .map(|(p, n)| ([("peer", p.as_str())], *n as f64))
            .collect();
        family(
            &mut e,
            "vergent_replication_lag_entries",
            "Entries of this node's log a peer has not durably received yet",
            None,
            g,
            &lag,
        )?;
        counter(
            &mut e,
            "vergent_replication_refused_records",
            "Replicated records this node refused one by one (limits, a clock too far ahead)",
            None,
            s.refused_records as f64,
        )?;
        counter(
            &mut e,
            "vergent_replication_records_too_old_for_log",
            "Replicated records too old for the log, left to anti-entropy repair",
            None,
            s.too_old_for_log as f64,
        )?;
        let states = ["alive", "suspect", "dead", "left"];
        let members: Vec<_> = states
            .iter()
            .zip(s.members)
            .map(|(st, n)| ([("state", *st)], n as f64))
            .collect();
        family(
            &mut e,
            "vergent_gossip_members",
            "Members of this node's gossip view by state (suspect: missed probes, not yet dead)",
            None,
            g,
            &members,
        )?;
        let mut sessions = Vec::new();
        let mut keys = Vec::new();
        let mut repair_bytes = Vec::new();
        for (peer, n, received, sent, by) in &s.repair {
            sessions.push(([("peer", peer.as_str())], *n as f64));
            keys.push((
                [("peer", peer.as_str()), ("direction", "received")],
                *received as f64,
            ));
            keys.push((
                [("peer", peer.as_str()), ("direction", "sent")],
                *sent as f64,
            ));
            repair_bytes.push(([("peer", peer.as_str())], *by as f64));
        }
        family(
            &mut e,
            "vergent_repair_sessions",
            "Anti-entropy repair sessions with a peer, both directions",
            None,
            c,
            &sessions,
        )?;
        family(
            &mut e,
            "vergent_repair_keys",
            "Keys anti-entropy repair moved, by peer and direction",
            None,
            c,
            &keys,
        )?;
        family(
            &mut e,
            "vergent_repair",
            "Bytes anti-entropy repair moved with a peer",
            bytes,
            c,
            &repair_bytes,
        )?;
        counter(
            &mut e,
            "vergent_purged",
            "Tombstones and expired values purged",
            None,
            s.purged as f64,
        )?;
        gauge(
            &mut e,
            "vergent_purge_held_back",
            "1 while purges wait (a member has not confirmed the deletes)",
            None,
            b(s.purge_held_back),
        )?;
        counter(
            &mut e,
            "vergent_refused_peer_streams",
            "Peer streams refused because of who opened them",
            None,
            s.refused_peers as f64,
        )?;
        gauge(
            &mut e,
            "vergent_fenced_members",
            "Members this node refuses until they come back wiped",
            None,
            s.fenced_members as f64,
        )?;
        gauge(
            &mut e,
            "vergent_voting_epoch",
            "Epoch of the agreed voting configuration (0: none yet)",
            None,
            s.voting_epoch as f64,
        )?;
        gauge(
            &mut e,
            "vergent_voters",
            "Voters of the agreed configuration",
            None,
            s.voters as f64,
        )?;
        gauge(
            &mut e,
            "vergent_voting_change_in_flight",
            "1 while a joint configuration change is in flight",
            None,
            b(s.joint),
        )?;
        gauge(
            &mut e,
            "vergent_strict_prefixes",
            "Key prefixes declared strict",
            None,
            s.strict_prefixes as f64,
        )?;
        family(
            &mut e,
            "vergent_storage_memory",
            "Memory the storage engine holds, by part",
            bytes,
            g,
            &[
                ([("part", "memtables")], s.memory.memtables as f64),
                ([("part", "block_cache")], s.memory.block_cache as f64),
                ([("part", "table_readers")], s.memory.table_readers as f64),
            ],
        )?;
        gauge(
            &mut e,
            "vergent_storage_block_cache_capacity",
            "Capacity of the storage engine's block cache",
            bytes,
            s.memory.block_cache_capacity as f64,
        )?;
        gauge(
            &mut e,
            "vergent_storage_pending_compaction",
            "Bytes compaction estimates it must still rewrite (compaction debt)",
            bytes,
            s.engine.pending_compaction_bytes as f64,
        )?;
        gauge(
            &mut e,
            "vergent_storage_running_compactions",
            "Compactions running now",
            None,
            s.engine.running_compactions as f64,
        )?;
        gauge(
            &mut e,
            "vergent_storage_immutable_memtables",
            "Full memtables waiting to be flushed",
            None,
            s.engine.immutable_memtables as f64,
        )?;
        gauge(
            &mut e,
            "vergent_storage_write_stopped",
            "1 while the engine stops writes until compaction catches up",
            None,
            b(s.engine.write_stopped),
        )?;
        gauge(
            &mut e,
            "vergent_storage_delayed_write_rate",
            "Bytes per second writes are slowed to (0: not slowed)",
            None,
            s.engine.delayed_write_rate as f64,
        )?;
        gauge(
            &mut e,
            "vergent_storage_sst",
            "Size of the storage engine's table files",
            bytes,
            s.engine.sst_bytes as f64,
        )?;
        counter(
            &mut e,
            "vergent_wal_syncs",
            "Group-commit syncs of the write-ahead log",
            None,
            s.io.wal_syncs as f64,
        )?;
        counter(
            &mut e,
            "vergent_wal_sync",
            "Time spent syncing the write-ahead log",
            seconds,
            s.io.wal_sync_nanos as f64 / 1e9,
        )?;
        counter(
            &mut e,
            "vergent_connections_refused",
            "Client connections refused at the connection cap",
            None,
            s.connections_refused as f64,
        )?;
        counter(
            &mut e,
            "vergent_handshakes_evicted",
            "Client TLS handshakes cut to make room for newer ones",
            None,
            s.handshakes_evicted as f64,
        )?;
        gauge(
            &mut e,
            "vergent_workers_failed",
            "Background tasks that panicked",
            None,
            s.workers_failed as f64,
        )
    }
}

/// The process's own series, named as Prometheus client libraries name them.
#[derive(Debug, Default)]
struct Process {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: u64,
    start_time_seconds: f64,
    threads: u64,
}

fn process_now() -> Option<Process> {
    let me = procfs::process::Process::myself().ok()?;
    let stat = me.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let boot = procfs::boot_time_secs().ok()? as f64;
    let max_fds = match me.limits().ok()?.max_open_files.soft_limit {
        procfs::process::LimitValue::Value(v) => v,
        procfs::process::LimitValue::Unlimited => u64::MAX,
    };
    Some(Process {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: stat.rss * procfs::page_size(),
        virtual_bytes: stat.vsize,
        open_fds: me.fd_count().ok()? as u64,
        max_fds,
        start_time_seconds: boot + stat.starttime as f64 / ticks,
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
    })
}

#[derive(Debug)]
struct ProcessNow(Option<Process>);

impl prometheus_client::collector::Collector for ProcessNow {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(p) = &self.0 else { return Ok(()) };
        let seconds = Some(&Unit::Seconds);
        let bytes = Some(&Unit::Bytes);
        counter(
            &mut e,
            "process_cpu",
            "User and system CPU time",
            seconds,
            p.cpu_seconds,
        )?;
        gauge(
            &mut e,
            "process_resident_memory",
            "Resident memory size",
            bytes,
            p.resident_bytes as f64,
        )?;
        gauge(
            &mut e,
            "process_virtual_memory",
            "Virtual memory size",
            bytes,
            p.virtual_bytes as f64,
        )?;
        gauge(
            &mut e,
            "process_open_fds",
            "Open file descriptors",
            None,
            p.open_fds as f64,
        )?;
        gauge(
            &mut e,
            "process_max_fds",
            "Most open file descriptors allowed",
            None,
            p.max_fds as f64,
        )?;
        gauge(
            &mut e,
            "process_start_time",
            "Start time of the process, Unix time",
            seconds,
            p.start_time_seconds,
        )?;
        gauge(
            &mut e,
            "process_threads",
            "OS threads",
            None,
            p.threads as f64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_the_first_reason_in_order_of_severity() {
        let ok = ReadyInputs::default();
        assert_eq!(not_ready(&ok), None);
        let boot = ReadyInputs {
            bootstrapping: Some((3, 10)),
            no_voting_config: Some("waiting for 2 of 3 voters".into()),
            ..ReadyInputs::default()
        };
        let why = not_ready(&boot).expect("bootstrapping is not ready");
        assert!(why.starts_with("bootstrapping"), "{why}");
        assert!(why.contains("3 of 10"), "{why}");
        let no_config = ReadyInputs {
            no_voting_config: Some("waiting for 2 of 3 voters".into()),
            ..ReadyInputs::default()
        };
        let why = not_ready(&no_config).expect("no configuration is not ready");
        assert!(why.contains("no agreed voting configuration"), "{why}");
        let failed = ReadyInputs {
            failure: Some("WAL sync failed".into()),
            draining: true,
            ..boot
        };
        let why = not_ready(&failed).expect("failed");
        assert!(why.starts_with("fail-stopped"), "{why}");
        let draining = ReadyInputs {
            draining: true,
            ..ReadyInputs::default()
        };
        assert!(
            not_ready(&draining)
                .expect("draining")
                .starts_with("draining")
        );
    }

    #[test]
    fn the_state_exposition_follows_prometheus_naming() {
        let mut s = Snapshot {
            node_id: "n1".into(),
            ready: true,
            lag: vec![("n2".into(), 7)],
            ..Snapshot::default()
        };
        s.members[1] = 1;
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register_collector(Box::new(NodeNow(s)));
        reg.register_collector(Box::new(ProcessNow(process_now())));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        for line in [
            r#"vergent_replication_lag_entries{peer="n2"} 7"#,
            r#"vergent_gossip_members{state="suspect"} 1"#,
            "vergent_ready 1",
            "# TYPE vergent_wal_sync_seconds counter",
            "vergent_wal_sync_seconds_total 0",
            "# TYPE vergent_storage_memory_bytes gauge",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
        assert!(out.contains("process_resident_memory_bytes "), "{out}");
        assert!(out.trim_end().ends_with("# EOF"), "{out}");
        // Every series name is a valid Prometheus name with our prefix or
        // the standard process prefix.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                name.starts_with("vergent_") || name.starts_with("process_"),
                "{line}"
            );
        }
    }
}
