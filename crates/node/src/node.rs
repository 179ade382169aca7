//! The composition root: starting, running and stopping a node. It builds
//! the layers (identity, local service, peer protocols, frontends), wires
//! them together and spawns their tasks; nothing else in the crate imports
//! this module.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vergent_storage::{Store, StoreOptions};
use vergent_types::{Limits, NodeId};
use vergent_wire::api::v1::{cluster_server::ClusterServer, kv_server::KvServer};

use crate::api::{ClusterApi, Defaults, KvApi};
use crate::clock::NodeClock;
use crate::datadir::{DirLock, prepare_and_lock};
use crate::identity::NodeIdentity;
use crate::identity::{NODE_ID_META, STORE_ID_META};
use crate::kv::{Availability, Change, Feed, LocalKv};
use crate::metrics::Metrics;
use crate::peer::PeerCtx;
use crate::workers::Workers;
use crate::{NodeConfig, StartError};

/// Present while a node that started empty has not finished bootstrapping,
/// so a crash mid-bootstrap still reports `bootstrapping` after restart.
const BOOTSTRAP_META: &str = "bootstrap_pending";
/// Requests one client connection may have in flight at once (HTTP/2
/// streams); more wait for one to finish.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// Changes a watcher may fall behind by before its stream is closed...
const WATCH_BUFFER: usize = 4096;
/// ...and the bytes the feed holds for watchers at most, whatever their number.
const WATCH_BUFFER_BYTES: usize = 64 << 20;

/// Entry point: see [`Node::start`].
#[derive(Debug)]
pub struct Node;

/// A running node. Dropping it does not stop the node; call [`NodeHandle::shutdown`].
#[derive(Debug)]
pub struct NodeHandle {
    node_id: NodeId,
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    drain_timeout: Duration,
    /// Shutdown waits until this is the last reference, then closes the
    /// store itself: watching a `Weak` is not enough, because its count
    /// drops to zero before the last holder has finished closing RocksDB,
    /// and a restart in that gap finds the database still locked.
    store: Arc<Store>,
    /// The storage failure that stopped the node, if one did.
    failure: Arc<std::sync::OnceLock<String>>,
    /// The operations endpoint, when one was asked for: its address, the
    /// token that stops it and its task.
    http: Option<(
        SocketAddr,
        CancellationToken,
        JoinHandle<std::io::Result<()>>,
    )>,
    /// Reloads the certificate, key and CA.
    tls_reload: Arc<crate::tls_reload::TlsReload>,
    _lock: DirLock,
}

impl Node {
    /// Starts a node: locks the data dir, opens the store and serves the API.
    ///
    /// Returns once the listener is bound, so clients can connect right away.
    pub async fn start(config: NodeConfig) -> Result<NodeHandle, StartError> {
        vergent_tls::install_default_provider();
        for peer in &config.peers {
            validate_peer(peer)?;
        }
        check_limits(&config.limits)?;
        // Checked before anything is created on disk.
        let identity = vergent_tls::Identity::load(&config.tls)?;
        if identity.role() != vergent_tls::Role::Node {
            return Err(StartError::NotANodeCertificate {
                path: config.tls.cert.clone(),
                role: identity.role(),
            });
        }
        let lock = prepare_and_lock(&config.data_dir)?;
        // New connections take the configuration this holds when they arrive.
        let (tls, tls_now) =
            tokio::sync::watch::channel(Arc::new(vergent_tls::server_config(&identity, &[b"h2"])?));

        let fd_limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        let (storage_files, connection_limits) =
            crate::incoming::budget(fd_limit, config.max_connections, config.max_handshakes);
        info!(
            fd_limit,
            storage_files,
            max_connections = connection_limits.max_connections,
            max_handshakes = connection_limits.max_handshakes,
            "file descriptors shared out"
        );
        let store_path = config.data_dir.join("db");
        let store_opts = StoreOptions {
            fsync: config.fsync,
            block_cache_bytes: config.block_cache_bytes,
            max_open_files: storage_files,
        };
        let store = tokio::task::spawn_blocking(move || Store::open(&store_path, &store_opts))
            .await
            .map_err(|e| StartError::Task {
                what: "opening the store",
                reason: e.to_string(),
            })??;
        let mut store = store;
        let shutdown = CancellationToken::new();
        let failure = Arc::new(std::sync::OnceLock::new());
        {
            let (shutdown, failure) = (shutdown.clone(), failure.clone());
            store.set_failure_hook(Box::new(move |what| {
                tracing::error!(
                    error = what,
                    "storage failed; stopping the node (fail-stop: after a failed fsync \
                     nothing written since the last good one can be trusted; a restart \
                     recovers from the write-ahead log)"
                );
                let _ = failure.set(what.to_string());
                shutdown.cancel();
            }));
        }
        let changes = Arc::new(Feed::new(WATCH_BUFFER, WATCH_BUFFER_BYTES));
        let publish = changes.clone();
        // Published once durable, in commit order, so watchers see one key's
        // changes in version order; a lagging watcher is told so and never
        // blocks writers.
        store.set_observer(Box::new(move |key, record, local| {
            publish.publish(Change {
                key: key.to_vec(),
                record: record.clone(),
                local,
            });
        }));
        let store = Arc::new(store);
        let node_id = resolve_node_id(&store, config.node_id.clone())?;
        let store_id = resolve_store_id(&store)?;
        if store.get_meta(crate::restore::RESTORED_META)?.is_some() {
            if !config.peers.is_empty() {
                return Err(StartError::Config(
                    "this data dir was restored from a backup (vergentd restore) and has not started yet: \
                     its first start forms a new cluster, alone. Start it without --peers, then start \
                     new nodes with --peers pointing at it"
                        .into(),
                ));
            }
            store.delete_meta(crate::restore::RESTORED_META)?;
            info!("first start of a restored data dir: forming a new cluster");
        }
        let roster = crate::peer::roster::Roster::load(&store, node_id.as_str())?;
        let bootstrapping = !config.peers.is_empty()
            && (store.is_empty()? || store.get_meta(BOOTSTRAP_META)?.is_some());
        if bootstrapping {
            store.put_meta(BOOTSTRAP_META, &[1])?;
            // Until it has synced with enough voters, level reads must not
            // count its (empty) answers.
            store.put_meta(crate::strong::levels::CATCHING_UP_META, &[1])?;
            info!("starting empty: bootstrapping from peers through repair");
        }
        let clock = NodeClock::restore(
            &store,
            node_id.clone(),
            config.max_clock_offset_ms,
            config.clock_offset_ms,
        )?;
        // Wait out a restored ceiling rather than stamp in the future; a
        // clock that went backwards while down is only reported: waiting for
        // it could take hours, and the HLC stays monotonic anyway.
        match clock.ahead_of_physical_ms() {
            0 => {}
            ahead if ahead <= clock.ceiling_window_ms() => {
                tokio::time::sleep(Duration::from_millis(ahead)).await;
            }
            ahead => tracing::warn!(
                ahead_ms = ahead,
                "the system clock is behind timestamps this node issued before it stopped; \
                 its writes carry the older clock until the system clock catches up"
            ),
        }

        // Bound before anything runs, so a taken port fails the start.
        let http_listener = match config.http_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let advertise = config.advertise.unwrap_or(local_addr);
        // The peer protocol shares the port number, over UDP.
        let udp_addr = SocketAddr::new(config.listen.ip(), local_addr.port());
        let (transport, peer_incoming) = vergent_transport::Transport::bind(
            udp_addr,
            &identity,
            vergent_transport::TransportConfig::default(),
        )?;
        let mut peer_addrs = Vec::new();
        for peer in &config.peers {
            let resolved =
                tokio::net::lookup_host(peer.as_str())
                    .await
                    .map_err(|e| StartError::BadPeer {
                        addr: peer.clone(),
                        reason: format!("cannot resolve: {e}"),
                    })?;
            peer_addrs.extend(resolved.take(1));
        }
        let identity = Arc::new(NodeIdentity {
            node_id: node_id.clone(),
            store_id,
            advertise,
            peers: config.peers.clone(),
            data_dir: config.data_dir.clone(),
            started: Instant::now(),
        });
        let availability = Arc::new(Availability::new(bootstrapping));
        let (kv, writer_queue) = LocalKv::new(
            store.clone(),
            Arc::new(clock),
            config.limits,
            changes,
            availability.clone(),
            shutdown.clone(),
        );
        let kv = Arc::new(kv);
        let metrics = Arc::new(Metrics::new());
        let workers = Workers::default();
        let tls_reload = Arc::new(crate::tls_reload::TlsReload::new(
            config.tls.clone(),
            tls,
            transport.clone(),
        ));
        workers.spawn(
            "tls-reload",
            crate::tls_reload::run(tls_reload.clone(), shutdown.clone()),
        );
        workers.spawn(
            "writer",
            crate::kv::writer::run(writer_queue, Arc::downgrade(&kv), metrics.clone()),
        );
        let peers = Arc::new(PeerCtx::new(
            &kv,
            identity.clone(),
            roster,
            crate::peer::load_sent_cursors(&store)?,
            config.max_log_lag,
            config.repair.clone(),
            workers.clone(),
        ));
        if config.unsafe_levels_of_one {
            tracing::error!(
                "testing only: writes at quorum and all are acknowledged by this node alone and \
                 do NOT keep their level's guarantees"
            );
        }
        if config.unsafe_quorum_of_one {
            tracing::error!(
                "testing only: strong operations count this node alone as a quorum and are NOT \
                 linearizable"
            );
        }
        let strong = Arc::new(
            crate::strong::Strong::new(crate::strong::StrongSetup {
                store: store.clone(),
                clock: kv.clock().clone(),
                me: node_id.clone(),
                availability: availability.clone(),
                members: peers.members.subscribe(),
                transport: transport.clone(),
                expected: u32::try_from(1 + config.peers.len()).unwrap_or(u32::MAX),
                seed: store_id ^ crate::clock::wall_ms(),
                unsafe_quorum_of_one: config.unsafe_quorum_of_one,
                unsafe_levels_of_one: config.unsafe_levels_of_one,
                gc_after: config.paxos_gc_after,
                acks: kv.log_acks().clone(),
                limits: *kv.limits(),
                metrics: metrics.clone(),
            })
            .map_err(|e| StartError::Voting(e.to_string()))?,
        );
        let _ = peers.strong.set(strong.clone());
        workers.spawn(
            "voting-formation",
            strong.clone().run_formation(shutdown.clone()),
        );
        workers.spawn("paxos-gc", strong.clone().run_gc(shutdown.clone()));
        workers.spawn("voting-join", strong.clone().run_join(shutdown.clone()));
        crate::peer::start(
            peers.clone(),
            transport,
            peer_incoming,
            config.peers.clone(),
            kv.watch_head(),
            shutdown.clone(),
        );

        let (health, health_service) = tonic_health::server::health_reporter();
        if bootstrapping {
            health.set_not_serving::<KvServer<KvApi>>().await;
            spawn_readiness(&workers, &kv, shutdown.clone(), health.clone());
        } else {
            health.set_serving::<KvServer<KvApi>>().await;
        }
        health.set_serving::<ClusterServer<ClusterApi>>().await;
        spawn_fence_watch(&workers, &availability, health.clone());
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vergent_wire::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::Reflection(e.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vergent_wire::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| StartError::Reflection(e.to_string()))?;

        // Leave room above the value limit for the key and framing, so an
        // oversized value gets our clear limit error, not a transport error.
        let limit = config
            .rate_limit
            .map(|r| Arc::new(crate::api::limit::RateLimit::new(r.per_second, r.burst)));
        let max_message = config.limits.max_value_bytes + config.limits.max_key_bytes + (64 << 10);
        let kv_server = KvServer::new(KvApi {
            kv: kv.clone(),
            strong: strong.clone(),
            defaults: Defaults::of(&config),
            metrics: metrics.clone(),
            limit: limit.clone(),
        })
        .max_decoding_message_size(max_message)
        // A get returns one value; a scan stops near its byte budget.
        .max_encoding_message_size(max_message + 2 * crate::kv::SCAN_MAX_BYTES);
        let connections = Arc::new(crate::incoming::ConnectionStats::default());
        let http = match http_listener {
            Some(listener) => {
                let addr = listener.local_addr().map_err(|source| StartError::Bind {
                    addr: config.http_addr.unwrap_or(local_addr),
                    source,
                })?;
                let state = Arc::new(crate::http::HttpState {
                    metrics: metrics.clone(),
                    identity: identity.clone(),
                    kv: Arc::downgrade(&kv),
                    strong: Arc::downgrade(&strong),
                    peers: Arc::downgrade(&peers)
                        as std::sync::Weak<dyn crate::status::StatusSource>,
                    workers: workers.clone(),
                    connections: connections.clone(),
                    shutdown: shutdown.clone(),
                    failure: failure.clone(),
                });
                // Outlives the drain, so /ready says "draining" meanwhile.
                let stop = CancellationToken::new();
                let tls = config.http_tls.then(|| tls_now.clone());
                let task = tokio::spawn(crate::http::serve(listener, state, stop.clone(), tls));
                info!(
                    addr = %addr,
                    tls = config.http_tls,
                    "operations endpoint (/metrics, /health, /ready) listening"
                );
                Some((addr, stop, task))
            }
            None => None,
        };
        let cluster = ClusterServer::new(ClusterApi {
            identity,
            kv: kv.clone(),
            peers,
            workers,
            strong,
            metrics,
            limit,
            backup: crate::api::backup::BackupGate::default(),
        });

        let incoming = crate::incoming::tls_incoming(
            listener,
            tls_now,
            connection_limits,
            connections,
            shutdown.clone(),
        );
        let signal = {
            let shutdown = shutdown.clone();
            let health = health.clone();
            async move {
                shutdown.cancelled().await;
                health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
                health.set_not_serving::<KvServer<KvApi>>().await;
                health.set_not_serving::<ClusterServer<ClusterApi>>().await;
            }
        };
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(20)))
                // Each stream may reserve its declared message size: bound
                // what one connection can ask for at once.
                .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
                .layer(crate::api::grpc_only::GrpcOnly)
                .add_service(health_service)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha)
                .add_service(kv_server)
                .add_service(cluster)
                .serve_with_incoming_shutdown(incoming, signal),
        );

        info!(
            node_id = %node_id,
            addr = %local_addr,
            advertise = %advertise,
            data_dir = %config.data_dir.display(),
            fsync = %config.fsync,
            peers = ?config.peers,
            "node started"
        );
        Ok(NodeHandle {
            node_id,
            local_addr,
            shutdown,
            server,
            drain_timeout: config.drain_timeout,
            store,
            failure,
            http,
            tls_reload,
            _lock: lock,
        })
    }
}

impl NodeHandle {
    /// Why the node stopped itself, if it did: the storage engine failed an
    /// I/O (see [`vergent_storage::Store::failure`]). Readable after shutdown
    /// through the returned handle.
    pub fn failure(&self) -> Arc<std::sync::OnceLock<String>> {
        self.failure.clone()
    }

    /// The node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The address the API is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Loads the certificate, key and CA files again (with every start-up
    /// check) and presents them on new connections, client and peer;
    /// established connections keep theirs. On an error the node keeps
    /// what it had. Reads files: call it off the async workers.
    pub fn reload_tls(&self) -> Result<crate::Presented, crate::ReloadError> {
        self.tls_reload.reload("signal")
    }

    /// The address the operations endpoint is bound to, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(addr, _, _)| *addr)
    }

    /// A token that stops the node when cancelled (e.g. from a signal handler).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the node stops by itself (server error or shutdown token).
    pub async fn wait(&mut self) {
        self.shutdown.cancelled().await;
    }

    /// Stops accepting connections, lets in-flight requests finish for up to
    /// the drain timeout, closes the store, then releases the data dir.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        match tokio::time::timeout(self.drain_timeout, &mut self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "server stopped with an error"),
            Ok(Err(e)) => warn!(error = %e, "server task failed"),
            Err(_) => {
                warn!("drain timeout reached; closing remaining connections");
                self.server.abort();
            }
        }
        // Connection and peer tasks may still hold the store for a moment
        // after the server future ends; the lock must outlive the store.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.store) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match Arc::try_unwrap(self.store) {
            Ok(store) => {
                // Closing RocksDB waits for its background work: keep it off
                // the async workers.
                if let Err(e) = tokio::task::spawn_blocking(move || drop(store)).await {
                    warn!(error = %e, "closing the store failed");
                }
            }
            Err(_) => warn!("store still referenced after shutdown; releasing the data dir anyway"),
        }
        if let Some((_, stop, task)) = self.http.take() {
            stop.cancel();
            match tokio::time::timeout(Duration::from_secs(2), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => warn!(error = %e, "operations endpoint stopped with an error"),
                Ok(Err(e)) => warn!(error = %e, "operations endpoint task failed"),
                Err(_) => warn!("operations endpoint did not stop in 2s"),
            }
        }
        info!("node stopped");
    }
}

/// Readiness of a bootstrapping node: once bootstrap is done, clears the
/// pending-bootstrap mark and turns the KV service to SERVING.
fn spawn_readiness(
    workers: &Workers,
    kv: &Arc<LocalKv>,
    shutdown: CancellationToken,
    health: tonic_health::server::HealthReporter,
) {
    let mut rx = kv.availability().watch_bootstrapping();
    let weak = Arc::downgrade(kv);
    workers.spawn("readiness", async move {
        if rx.wait_for(|bootstrapping| !*bootstrapping).await.is_err() {
            return;
        }
        let Some(kv) = weak.upgrade() else { return };
        if let Err(e) = kv.store().delete_meta(BOOTSTRAP_META) {
            warn!(error = %e, "cannot record that bootstrap finished");
        }
        // Not held across the await: shutdown waits for the last reference.
        drop(kv);
        if !shutdown.is_cancelled() {
            health.set_serving::<KvServer<KvApi>>().await;
        }
    });
}

/// Turns the KV service to NOT_SERVING once a peer fenced this node.
fn spawn_fence_watch(
    workers: &Workers,
    availability: &Availability,
    health: tonic_health::server::HealthReporter,
) {
    let mut rx = availability.watch_fenced();
    workers.spawn("fence-watch", async move {
        if rx.wait_for(Option::is_some).await.is_ok() {
            health.set_not_serving::<KvServer<KvApi>>().await;
        }
    });
}

/// The data dir's random store id, created with the dir.
fn resolve_store_id(store: &Store) -> Result<u64, StartError> {
    if let Some(raw) = store.get_meta(STORE_ID_META)?
        && let Ok(bytes) = <[u8; 8]>::try_from(raw.as_slice())
    {
        return Ok(u64::from_be_bytes(bytes));
    }
    let id = rand::random::<u64>().max(1);
    store.put_meta(STORE_ID_META, &id.to_be_bytes())?;
    Ok(id)
}

/// Bytes a peer frame needs around one record beyond its key and value.
const RECORD_OVERHEAD: usize = 64 << 10;

/// Refuses limits the peer protocol cannot carry: every record must fit one
/// frame, or replication and repair of it would fail forever.
fn check_limits(limits: &Limits) -> Result<(), StartError> {
    let room = vergent_transport::MAX_FRAME_BYTES - RECORD_OVERHEAD;
    if limits.max_key_bytes.saturating_add(limits.max_value_bytes) > room {
        return Err(StartError::Config(format!(
            "--max-value-bytes {} with --max-key-bytes {} is more than one peer message can carry; \
             keys and values together must stay within {} bytes (at most {} bytes of value with this key limit)",
            limits.max_value_bytes,
            limits.max_key_bytes,
            room,
            room.saturating_sub(limits.max_key_bytes)
        )));
    }
    Ok(())
}

/// A peer must be `host:port` with a non-zero port; hostnames are resolved later.
fn validate_peer(peer: &str) -> Result<(), StartError> {
    let bad = |reason: &str| StartError::BadPeer {
        addr: peer.to_string(),
        reason: reason.to_string(),
    };
    if peer.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = peer
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("port is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("port must not be 0"));
    }
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !host_ok {
        return Err(bad("host is not an IP address or a DNS name"));
    }
    Ok(())
}

/// The node id: the configured one, else the stored one, else a new random one.
fn resolve_node_id(store: &Store, configured: Option<NodeId>) -> Result<NodeId, StartError> {
    let stored = store
        .get_meta(NODE_ID_META)?
        .map(|b| {
            String::from_utf8(b)
                .ok()
                .and_then(|s| NodeId::new(s).ok())
                .ok_or_else(|| StartError::NodeId("stored node id is corrupt".into()))
        })
        .transpose()?;
    let id = match (stored, configured) {
        (Some(s), Some(c)) if s != c => {
            return Err(StartError::NodeId(format!(
                "this data dir belongs to node {s:?}, but the node id {c:?} was given; \
                 use --node-id {s} or another --data-dir"
            )));
        }
        (Some(s), _) => return Ok(s),
        (None, Some(c)) => c,
        (None, None) => {
            let n: u64 = rand::random();
            NodeId::new(format!("n-{:012x}", n & 0xffff_ffff_ffff))
                .map_err(|e| StartError::NodeId(e.to_string()))?
        }
    };
    store.put_meta(NODE_ID_META, id.as_str().as_bytes())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_must_be_host_and_port() {
        for ok in [
            "127.0.0.1:2001",
            "[::1]:2001",
            "node-1:2001",
            "a.example.org:9",
        ] {
            assert!(validate_peer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "node-1:",
            "node-1:0",
            "node-1:70000",
            ":2001",
            "bad host:1",
            "a..b:1",
        ] {
            assert!(validate_peer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_a_peer_message_cannot_carry_are_refused_at_start() {
        assert!(check_limits(&Limits::default()).is_ok());
        let too_big = Limits {
            max_value_bytes: 16 << 20,
            ..Limits::default()
        };
        let err = check_limits(&too_big).expect_err("above the frame limit");
        assert!(err.to_string().contains("--max-value-bytes"), "{err}");
    }

    #[test]
    fn node_id_is_generated_once_then_stable_and_a_mismatch_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
        let first = resolve_node_id(&store, None).expect("generated");
        assert_eq!(resolve_node_id(&store, None).expect("stored"), first);
        assert_eq!(
            resolve_node_id(&store, Some(first.clone())).expect("same"),
            first
        );
        let other = NodeId::new("someone-else").expect("valid");
        let err = resolve_node_id(&store, Some(other)).expect_err("mismatch");
        assert!(err.to_string().contains("belongs to node"), "{err}");
    }
}
