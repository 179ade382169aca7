//! The gRPC API of real in-process nodes, driven through `vergent_client`.
//!
//! Every node listens on 127.0.0.1 with a free port and throwaway mTLS
//! certificates. Nothing waits with a bare sleep: conditions are polled with a
//! short interval under a hard, generous deadline.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tempfile::TempDir;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::{v1, v1alpha};
use vergent_client::{
    Client, ClientConfig, Consistency, Error, ErrorCode, PutOptions, Version, WatchEvent,
    WatchStream,
};
use vergent_node::{Node, NodeConfig, NodeHandle};
use vergent_tls::TlsFiles;
use vergent_types::NodeId;

/// Hard limit for any awaited condition; generous for a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(30);
/// Interval between two probes of a polled condition.
const POLL: Duration = Duration::from_millis(20);

/// A temporary directory with a CA, a node certificate and a client certificate.
struct Env {
    dir: TempDir,
    node_tls: TlsFiles,
    client_tls: TlsFiles,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = vergent_testkit::unencrypted_certs(&dir.path().join("certs"), "node-1");
        Self {
            dir,
            node_tls: certs.node,
            client_tls: certs.client,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A default config on a free loopback port, storing in [`Self::data_dir`].
    fn config(&self) -> NodeConfig {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        NodeConfig::new(self.data_dir(), listen, self.node_tls.clone())
    }

    async fn start(&self, config: NodeConfig) -> (NodeHandle, Client) {
        let handle = Node::start(config).await.expect("node starts");
        let client = self.connect(&handle).await;
        (handle, client)
    }

    async fn connect(&self, node: &NodeHandle) -> Client {
        let mut config = ClientConfig::new(node.local_addr().to_string(), self.client_tls.clone());
        config.connect_timeout = DEADLINE;
        config.request_timeout = DEADLINE;
        Client::connect(config).await.expect("client connects")
    }
}

/// Polls `probe` every [`POLL`] until it yields a value, failing after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The next watch event, failing after [`DEADLINE`] or if the stream ends.
async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no watch event within {DEADLINE:?}"))
        .expect("watch stream ended")
        .expect("watch event is not an error")
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn is_refused(err: &Error, want_code: Code, want: ErrorCode) -> bool {
    matches!(
        err,
        Error::Server { code, error_code: Some(ec), .. } if *code == want_code && *ec == want
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_local_puts_and_deletes_under_the_prefix_in_order_with_their_versions() {
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    let mut watch = client.watch("w/").await.expect("watch");

    // Writes outside the prefix are interleaved before the last expected event,
    // so they would show up before it if the filter let them through.
    let v1 = client.put("w/a", "1").await.expect("put w/a");
    let _ = client.put("x/outside", "no").await.expect("put x/outside");
    let v2 = client.put("w/b", "2").await.expect("put w/b");
    let _ = client.put("w", "no").await.expect("put w");
    let d3 = client.delete("w/a").await.expect("delete w/a");
    let _ = client.delete("x/outside").await.expect("delete x/outside");
    let v4 = client.put("w/b", "3").await.expect("put w/b again");
    let _ = client.put("v/zzz", "no").await.expect("put v/zzz");
    let v5 = client.put("w/z", "last").await.expect("put w/z");

    let expected: Vec<(&str, Option<&str>, Version)> = vec![
        ("w/a", Some("1"), v1),
        ("w/b", Some("2"), v2),
        ("w/a", None, d3.version),
        ("w/b", Some("3"), v4),
        ("w/z", Some("last"), v5),
    ];
    for (i, (key, value, version)) in expected.into_iter().enumerate() {
        let event = next_event(&mut watch).await;
        let want = WatchEvent {
            key: key.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
            version,
            local: true,
        };
        assert_eq!(event, want, "event #{i}");
        assert_eq!(&event.version.origin, node.node_id(), "event #{i} origin");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_service_reports_serving_for_the_server_and_the_kv_service() {
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    let mut health = HealthClient::new(client.channel());

    for service in ["", "vergent.api.v1.Kv", "vergent.api.v1.Cluster"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health check of {service:?}: {s}"))
            .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);
    node.shutdown().await;
}

/// Services listed by reflection v1.
async fn list_services_v1(client: &Client) -> Vec<String> {
    use v1::server_reflection_client::ServerReflectionClient;
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut rc = ServerReflectionClient::new(client.channel());
    let mut stream = rc
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .expect("reflection v1 call")
        .into_inner();
    let resp = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("reflection v1 answers in time")
        .expect("reflection v1 response")
        .expect("one reflection v1 message");
    match resp.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection v1 response: {other:?}"),
    }
}

/// Services listed by reflection v1alpha.
async fn list_services_v1alpha(client: &Client) -> Vec<String> {
    use v1alpha::server_reflection_client::ServerReflectionClient;
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut rc = ServerReflectionClient::new(client.channel());
    let mut stream = rc
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .expect("reflection v1alpha call")
        .into_inner();
    let resp = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("reflection v1alpha answers in time")
        .expect("reflection v1alpha response")
        .expect("one reflection v1alpha message");
    match resp.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection v1alpha response: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_the_kv_cluster_and_health_services() {
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    let expected = [
        "vergent.api.v1.Kv",
        "vergent.api.v1.Cluster",
        "grpc.health.v1.Health",
    ];
    let v1 = list_services_v1(&client).await;
    let v1alpha = list_services_v1alpha(&client).await;
    for name in expected {
        assert!(v1.iter().any(|s| s == name), "v1 lacks {name}: {v1:?}");
        assert!(
            v1alpha.iter().any(|s| s == name),
            "v1alpha lacks {name}: {v1alpha:?}"
        );
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_with_a_ttl_is_readable_until_expiry_then_absent_from_gets_and_scans() {
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    const TTL: Duration = Duration::from_millis(1500);
    let keep = client.put("t/keep", "forever").await.expect("put t/keep");
    let version = client
        .put_with(
            "t/ttl",
            "short-lived",
            PutOptions {
                ttl: Some(TTL),
                consistency: None,
            },
        )
        .await
        .expect("put with TTL");
    // The value expires TTL after its HLC time (same system clock as ours).
    let expiry_ms = version.hlc.physical_ms() + TTL.as_millis() as u64;

    // Before expiry it is readable. A stalled machine may already be past the
    // expiry; then only "never absent before expiry" can be checked.
    let got = client.get("t/ttl").await.expect("get before expiry");
    match got {
        Some(e) => {
            assert_eq!(e.value, b"short-lived");
            assert_eq!(e.version, version);
            assert_eq!(e.expires_at_ms, Some(expiry_ms));
        }
        None => assert!(wall_ms() >= expiry_ms, "absent before its expiry"),
    }
    let scanned = client.scan_all("t/").await.expect("scan before expiry");
    let keys: Vec<&[u8]> = scanned.iter().map(|e| e.key.as_slice()).collect();
    if !keys.contains(&b"t/ttl".as_slice()) {
        assert!(
            wall_ms() >= expiry_ms,
            "missing from scan before its expiry"
        );
    }

    eventually("the TTL value to expire", || async {
        client
            .get("t/ttl")
            .await
            .expect("get while waiting")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(wall_ms() >= expiry_ms, "reported absent before its expiry");

    let scanned = client.scan_all("t/").await.expect("scan after expiry");
    let keys: Vec<&[u8]> = scanned.iter().map(|e| e.key.as_slice()).collect();
    assert_eq!(keys, vec![b"t/keep".as_slice()], "only the permanent key");
    let page = client
        .scan("t/", None, 10)
        .await
        .expect("scan page after expiry");
    assert_eq!(page.entries.len(), 1);
    assert!(!page.more);
    let kept = client.get("t/keep").await.expect("get t/keep");
    assert_eq!(kept.map(|e| e.version), Some(keep));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_pages_return_every_key_under_the_prefix_exactly_once_in_key_order() {
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    // Written out of key order; neighbours of the prefix on both sides.
    let mut want = Vec::new();
    for i in 0..25u32 {
        let n = (i * 7) % 25;
        let key = format!("p/{n:02}");
        client
            .put(key.clone(), format!("val-{key}"))
            .await
            .expect("put");
        want.push(key.into_bytes());
    }
    want.sort();
    for other in ["o/1", "p", "p0", "q/1", "P/1"] {
        client.put(other, "x").await.expect("put outside");
    }

    let first = client.scan("p/", None, 10).await.expect("first page");
    assert_eq!(first.entries.len(), 10);
    assert!(first.more, "first page says more");

    let mut seen: Vec<Vec<u8>> = first.entries.iter().map(|e| e.key.clone()).collect();
    let mut page = first;
    let mut pages = 1;
    while page.more {
        assert!(pages < 10, "too many pages");
        let after = page.entries.last().expect("non-empty page").key.clone();
        page = client.scan("p/", Some(after), 10).await.expect("next page");
        pages += 1;
        seen.extend(page.entries.iter().map(|e| e.key.clone()));
    }
    assert_eq!(pages, 3, "25 keys in pages of 10");
    assert_eq!(seen, want, "every key once, in key order");

    let all = client.scan_all("p/").await.expect("scan_all");
    assert_eq!(all.len(), 25);
    for e in &all {
        assert_eq!(
            e.value,
            [b"val-".as_slice(), &e.key].concat(),
            "value of the key"
        );
    }
    let all_keys: Vec<Vec<u8>> = all.into_iter().map(|e| e.key).collect();
    assert_eq!(all_keys, want, "scan_all in key order");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_scan_returns_tombstones_with_their_versions_beside_live_values() {
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    let kept = client.put("r/kept", "v").await.expect("put kept");
    client.put("r/gone", "old").await.expect("put gone");
    let deleted = client.delete("r/gone").await.expect("delete");
    client.put("s/other", "x").await.expect("put outside");

    let records = client.scan_all_records("r/").await.expect("record scan");
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone(), r.version.clone()))
        .collect();
    let want = vec![
        (b"r/gone".to_vec(), None, deleted.version),
        (b"r/kept".to_vec(), Some(b"v".to_vec()), kept),
    ];
    assert_eq!(got, want);
    // The plain scan still hides the tombstone.
    let live = client.scan_all("r/").await.expect("scan");
    assert_eq!(live.len(), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_read_sees_a_one_write_and_a_cas_on_its_version_applies() {
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while client.status().await.expect("status").voting.is_none() {
        assert!(std::time::Instant::now() < until, "no configuration formed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = client.put("m/k", "eventual").await.expect("put at ONE");
    let read = client
        .get_with("m/k", Some(Consistency::Serial))
        .await
        .expect("serial get")
        .expect("found");
    assert_eq!(
        (read.value.as_slice(), &read.version),
        (&b"eventual"[..], &v)
    );
    let cas = client
        .compare_and_set(
            "m/k",
            vergent_client::Expect::Version(v.clone()),
            Some(b"strong".to_vec()),
        )
        .await
        .expect("cas");
    assert!(cas.applied);
    assert!(
        cas.version.expect("version") > v,
        "the CAS stamps above what it read"
    );
    let one = client.get("m/k").await.expect("get").expect("found");
    assert_eq!(one.value, b"strong");
    let scan = client
        .scan("m/", None, 10)
        .await
        .expect("scan at ONE still works");
    assert_eq!(scan.entries.len(), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_voter_serves_quorum_and_all_and_requests_naming_no_level_get_the_servers_default() {
    let env = Env::new();
    let mut config = env.config();
    config.default_read_consistency = vergent_node::ConsistencyLevel::Quorum;
    config.default_write_consistency = vergent_node::ConsistencyLevel::All;
    let (node, client) = env.start(config).await;
    // A node started alone forms a 1-voter configuration by itself.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while client.status().await.expect("status").voting.is_none() {
        assert!(std::time::Instant::now() < until, "no configuration formed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for level in [Consistency::Quorum, Consistency::All] {
        let opts = PutOptions {
            ttl: None,
            consistency: Some(level),
        };
        let written = client
            .put_with("c/k", format!("{level:?}"), opts)
            .await
            .expect("put");
        let read = client
            .get_with("c/k", Some(level))
            .await
            .expect("get")
            .expect("found");
        assert_eq!(read.value, format!("{level:?}").into_bytes());
        assert_eq!(read.version, written);
        assert_eq!(read.consistency, level, "the level served is reported");
    }
    // No level named: the server's defaults (QUORUM reads, ALL writes).
    client
        .put("c/default", "v")
        .await
        .expect("put at the default");
    let read = client.get("c/default").await.expect("get").expect("found");
    assert_eq!(read.consistency, Consistency::Quorum);
    let one = client
        .get_with("c/default", Some(Consistency::One))
        .await
        .expect("get")
        .expect("found");
    assert_eq!(one.consistency, Consistency::One, "a named level wins");
    let deleted = client
        .delete_with("c/k", Some(Consistency::Quorum))
        .await
        .expect("delete at QUORUM");
    assert!(deleted.existed);
    assert_eq!(
        client
            .get_with("c/k", Some(Consistency::All))
            .await
            .expect("get"),
        None
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_node_id_a_key_count_following_writes_an_hlc_not_behind_them_and_engine_memory()
 {
    let env = Env::new();
    let mut config = env.config();
    config.node_id = Some(NodeId::new("status-node").expect("valid id"));
    config.block_cache_bytes = 8 << 20;
    let (node, client) = env.start(config).await;
    assert_eq!(node.node_id().as_str(), "status-node");

    let status = client.status().await.expect("status");
    assert_eq!(status.node_id, "status-node");
    assert_eq!(status.key_count, 0);
    // The engine's memory is reported, and the configured cache is in force.
    assert_eq!(status.storage_memory.block_cache_capacity, 8 << 20);
    assert!(status.storage_memory.memtables > 0, "memtables hold arenas");

    let mut last = client.put("s/a", "1").await.expect("put");
    let steps: Vec<(&str, Option<&str>, u64)> = vec![
        ("s/b", Some("2"), 2),
        ("s/c", Some("3"), 3),
        ("s/a", Some("overwrite"), 3),
        ("s/b", None, 2),
        ("s/b", None, 2),
        ("s/never", None, 2),
        ("s/b", Some("again"), 3),
        ("s/c", None, 2),
    ];
    for (key, value, want) in steps {
        let version = match value {
            Some(v) => client.put(key, v).await.expect("put"),
            None => client.delete(key).await.expect("delete").version,
        };
        assert!(version > last, "versions increase");
        last = version;
        let status = client.status().await.expect("status");
        assert_eq!(status.key_count, want, "after {key} <- {value:?}");
        assert!(
            status.hlc_now >= last.hlc,
            "hlc_now {} behind last version {}",
            status.hlc_now,
            last.hlc
        );
        assert_eq!(status.node_id, "status-node");
        assert_eq!(last.origin.as_str(), "status-node");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_acknowledged_write_and_each_key_holds_its_greatest_version() {
    const TASKS: usize = 8;
    const PUTS: usize = 50;
    const KEYS: usize = 10;
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::with_capacity(PUTS);
            for n in 0..PUTS {
                let key = format!("c/{}", (t + n) % KEYS);
                let value = format!("t{t}-n{n}");
                let version = client
                    .put(key.clone(), value.clone())
                    .await
                    .unwrap_or_else(|e| panic!("put {key} from task {t}: {e}"));
                acked.push((key, value, version));
            }
            acked
        }));
    }
    let mut greatest: BTreeMap<String, (Version, String)> = BTreeMap::new();
    let mut versions = HashSet::new();
    for task in tasks {
        let acked = tokio::time::timeout(DEADLINE, task)
            .await
            .expect("writers finish in time")
            .expect("writer task");
        for (key, value, version) in acked {
            assert!(versions.insert(version.clone()), "version issued twice");
            let slot = greatest
                .entry(key)
                .or_insert_with(|| (version.clone(), value.clone()));
            if version > slot.0 {
                *slot = (version, value);
            }
        }
    }
    assert_eq!(versions.len(), TASKS * PUTS, "every put acknowledged");
    assert_eq!(greatest.len(), KEYS);

    for (key, (version, value)) in &greatest {
        let stored = client
            .get(key.clone())
            .await
            .expect("get")
            .expect("present");
        assert_eq!(&stored.version, version, "{key}: stored version");
        assert_eq!(stored.value, value.as_bytes(), "{key}: stored value");
    }
    let status = client.status().await.expect("status");
    assert_eq!(status.key_count, KEYS as u64);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_generated_id_and_stamps_above_every_earlier_version() {
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    let id = node.node_id().clone();
    assert_eq!(client.status().await.expect("status").node_id, id.as_str());

    let mut before = Vec::new();
    for i in 0..20 {
        let key = format!("r/{i:02}");
        before.push((
            key.clone(),
            client.put(key, format!("{i}")).await.expect("put"),
        ));
    }
    let deleted = client.delete("r/19").await.expect("delete").version;
    let highest = deleted.clone();
    assert!(before.iter().all(|(_, v)| *v < highest));
    drop(client);
    node.shutdown().await;

    // Restart on the same dir with a physical clock a minute behind: only the
    // persisted HLC ceiling can keep new versions above the old ones.
    let mut config = env.config();
    config.clock_offset_ms = -60_000;
    let (node, client) = env.start(config).await;
    assert_eq!(node.node_id(), &id, "same generated id");
    let status = client.status().await.expect("status after restart");
    assert_eq!(status.node_id, id.as_str());
    assert!(
        status.hlc_now >= highest.hlc,
        "HLC restored below old versions"
    );
    assert_eq!(status.key_count, 19, "data survived the restart");

    for (key, version) in &before[..19] {
        let stored = client.get(key.clone()).await.expect("get").expect("kept");
        assert_eq!(&stored.version, version, "{key} kept its version");
    }
    let fresh = client.put("r/fresh", "new").await.expect("put fresh key");
    assert!(fresh > highest, "{fresh} not above {highest}");
    assert_eq!(fresh.origin, id);
    let over = client.put("r/00", "over").await.expect("overwrite");
    assert!(over > fresh, "{over} not above {fresh}");
    let undeleted = client.put("r/19", "back").await.expect("put deleted key");
    assert!(undeleted > over);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_only_once_the_data_dir_can_be_reopened() {
    // Regression: shutdown watched a Weak whose count reached zero before
    // the last holder had closed RocksDB, so an immediate restart sometimes
    // found the database still locked.
    let env = Env::new();
    for round in 0..10 {
        let (node, client) = env.start(env.config()).await;
        for i in 0..100 {
            client
                .put(format!("round{round}/{i}"), "v")
                .await
                .expect("put");
        }
        drop(client);
        node.shutdown().await;
    }
    let (node, client) = env.start(env.config()).await;
    let kept = client.scan_all("round").await.expect("scan");
    assert_eq!(kept.len(), 1000, "every round's writes kept");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_stamps_at_real_time_not_at_its_persisted_clock_ceiling() {
    // Regression (found by the chaos suite): the clock restarts at the
    // persisted ceiling, which ran 10 s ahead, so a restarted node stamped
    // writes seconds in the future, which its peers refused.
    let env = Env::new();
    let (node, client) = env.start(env.config()).await;
    for i in 0..50 {
        client.put(format!("c/{i}"), "v").await.expect("put");
    }
    let before = client.put("c/last", "v").await.expect("put");
    drop(client);
    node.shutdown().await;

    let (node, client) = env.start(env.config()).await;
    let fresh = client.put("c/after", "v").await.expect("put after restart");
    let wall = wall_ms();
    assert!(fresh > before, "{fresh} not above {before}");
    assert!(
        fresh.hlc.physical_ms() <= wall + 100,
        "restarted node stamped {} ms ahead of real time",
        fresh.hlc.physical_ms() - wall
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_keys_and_values_are_refused_with_stable_codes_and_the_node_keeps_serving() {
    const MAX_VALUE: usize = 1024;
    let env = Env::new();
    let mut config = env.config();
    config.limits.max_value_bytes = MAX_VALUE;
    let max_key = config.limits.max_key_bytes;
    assert_eq!(max_key, 4096, "default key limit");
    let (node, client) = env.start(config).await;

    let big_key = vec![b'k'; 5000];
    let err = client
        .put(big_key.clone(), "v")
        .await
        .expect_err("big key refused");
    assert!(
        is_refused(&err, Code::InvalidArgument, ErrorCode::KeyTooLarge),
        "{err:?}"
    );
    let err = client.get(big_key.clone()).await.expect_err("big key get");
    assert!(
        is_refused(&err, Code::InvalidArgument, ErrorCode::KeyTooLarge),
        "{err:?}"
    );
    let err = client
        .delete(big_key.clone())
        .await
        .expect_err("big key delete");
    assert!(
        is_refused(&err, Code::InvalidArgument, ErrorCode::KeyTooLarge),
        "{err:?}"
    );

    let err = client
        .put("big-value", vec![b'v'; MAX_VALUE + 1])
        .await
        .expect_err("big value refused");
    assert!(
        is_refused(&err, Code::InvalidArgument, ErrorCode::ValueTooLarge),
        "{err:?}"
    );

    // Nothing was written, and input exactly at the limits is accepted.
    assert_eq!(client.get("big-value").await.expect("get"), None);
    assert_eq!(client.status().await.expect("status").key_count, 0);
    let at_limit_key = vec![b'k'; max_key];
    client
        .put(at_limit_key.clone(), "v")
        .await
        .expect("key at the limit");
    client
        .put("big-value", vec![b'v'; MAX_VALUE])
        .await
        .expect("value at the limit");
    let got = client
        .get("big-value")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.value.len(), MAX_VALUE);
    assert!(client.get(at_limit_key).await.expect("get").is_some());
    assert_eq!(client.status().await.expect("status").key_count, 2);
    node.shutdown().await;
}
