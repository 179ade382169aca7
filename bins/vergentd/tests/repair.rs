//! Anti-entropy on real `vergentd` processes over 127.0.0.1: a wiped node
//! rebuilds 100k keys, a new node gets the existing data, a peer behind the
//! truncated log converges, deleted keys never come back and their
//! tombstones are purged, and a node down past the grace period is refused.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Proc, spawn_vergentd, wait_output};
use vergent_client::{Client, StoredRecord};

const DEADLINE: Duration = Duration::from_secs(120);

/// Writes `count` keys `prefix<i>` through `client`, 64 at a time.
async fn load(client: &Client, prefix: &str, count: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    let workers = 64;
    for w in 0..workers {
        let c = client.clone();
        let prefix = prefix.to_string();
        tasks.spawn(async move {
            for i in (w..count).step_by(workers) {
                c.put(format!("{prefix}{i:06}"), format!("value-{i}"))
                    .await
                    .expect("put");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("loader task");
    }
}

/// Every record (tombstones included) of every node, once they are all
/// equal and `ok` holds for them; fails at the deadline.
async fn converged(clients: &[Client], ok: impl Fn(&[StoredRecord]) -> bool) -> Vec<StoredRecord> {
    let until = Instant::now() + DEADLINE;
    loop {
        let mut dumps = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            dumps.push(
                c.scan_all_records("")
                    .await
                    .unwrap_or_else(|e| panic!("scan of node {i}: {e}")),
            );
        }
        if dumps.iter().all(|d| *d == dumps[0]) && ok(&dumps[0]) {
            return dumps.swap_remove(0);
        }
        assert!(
            Instant::now() < until,
            "replicas did not converge within {DEADLINE:?}: sizes {:?}",
            dumps.iter().map(Vec::len).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until node `client` says it is serving (bootstrap finished).
async fn serving(client: &Client) -> vergent_client::NodeStatus {
    let until = Instant::now() + DEADLINE;
    loop {
        let s = client.status().await.expect("status");
        if s.state == "serving" {
            return s;
        }
        assert!(
            Instant::now() < until,
            "still {} after {DEADLINE:?}",
            s.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn keys_received(s: &vergent_client::NodeStatus) -> u64 {
    s.repairs.iter().map(|r| r.keys_received).sum()
}

/// Writes records straight into node `i`'s store while it is stopped, as
/// if node `i` had written them: far faster than 100k puts through a
/// debug-built server, and the other nodes still get them only through the
/// cluster. Keys are `k<n>` for each `n` in `keys`, values `<label>-<n>`
/// padded to `value_len` bytes, versions `age_ms` in the past.
fn preload(
    cluster: &Cluster,
    i: usize,
    keys: impl Iterator<Item = usize>,
    label: &str,
    value_len: usize,
    age_ms: u64,
) {
    use vergent_storage::{Record, Store, StoreOptions};
    let path = cluster.data_dir(i).join("db");
    std::fs::create_dir_all(&path).expect("data dir");
    let store = Store::open(&path, &StoreOptions::default()).expect("open store");
    let origin = vergent_types::NodeId::new(format!("node-{i}")).expect("id");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let keys: Vec<usize> = keys.collect();
    for chunk in keys.chunks(10_000) {
        let records = chunk
            .iter()
            .map(|&k| {
                let version = vergent_types::Version::new(
                    vergent_hlc::Timestamp::new(now - age_ms, k as u16),
                    origin.clone(),
                );
                let mut value = format!("{label}-{k}");
                while value.len() < value_len {
                    value.push('.');
                }
                (
                    format!("k{k:06}").into_bytes(),
                    Record::value(version, value.into_bytes(), None),
                )
            })
            .collect();
        store.apply_batch(records).expect("preload");
    }
}

#[test]
fn a_wiped_node_of_three_rebuilds_100k_keys_with_the_same_versions() {
    let cluster = Cluster::with_flags(3, &["--repair-interval", "2s"]);
    preload(&cluster, 0, 0..100_000, "value", 0, 60_000);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let before = rt.block_on(async {
        let clients = cluster.clients(3).await;
        serving(&clients[1]).await;
        serving(&clients[2]).await;
        converged(&clients, |d| d.len() == 100_000).await
    });
    c.kill9();
    std::fs::remove_dir_all(cluster.data_dir(2)).expect("wipe node-2");
    let _c = cluster.start(2);
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        serving(&clients[2]).await;
        let after = converged(&clients, |d| d.len() == 100_000).await;
        assert!(after == before, "rebuilt contents or versions differ");
        let status = clients[2].status().await.expect("status");
        assert!(
            keys_received(&status) >= 100_000,
            "only {} keys came through repair: {:?}",
            keys_received(&status),
            status.repairs
        );
    });
    drop((a, b));
}

#[test]
fn a_fourth_node_joining_a_cluster_with_data_ends_with_the_same_contents() {
    let cluster = Cluster::with_flags(4, &["--repair-interval", "2s"]);
    let nodes: Vec<Proc> = (0..3).map(|i| cluster.start(i)).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c0 = cluster.client(0).await;
        load(&c0, "a", 3_000).await;
        cluster
            .client(1)
            .await
            .delete("a000007")
            .await
            .expect("delete");
    });
    // One seed only, as an operator would add a node.
    let seed = cluster.addr(0);
    let args = [
        "--node-id",
        "node-3",
        "--peers",
        seed.as_str(),
        "--port",
        &cluster.ports[3].to_string(),
        "--repair-interval",
        "2s",
    ];
    let _d = Proc::start(&cluster.certs, &cluster.data_dir(3), &args);
    rt.block_on(async {
        let clients = cluster.clients(4).await;
        serving(&clients[3]).await;
        let state = converged(&clients, |d| d.len() == 3_000).await;
        let deleted = state
            .iter()
            .find(|r| r.key == b"a000007")
            .expect("tombstone kept");
        assert!(
            deleted.value.is_none(),
            "the deleted key reached the new node as a value"
        );
    });
    drop(nodes);
}

#[test]
fn a_peer_kept_dead_past_the_log_bound_converges_when_it_returns() {
    let cluster = Cluster::with_flags(3, &["--repair-interval", "2s", "--max-log-lag", "100"]);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = [cluster.client(0).await, cluster.client(1).await];
        load(&clients[0], "early", 200).await;
    });
    c.kill9();
    let first_seq = rt.block_on(async {
        let (c0, c1) = (cluster.client(0).await, cluster.client(1).await);
        load(&c0, "a", 3_000).await;
        load(&c1, "b", 3_000).await;
        c0.delete("early000001").await.expect("delete");
        // Wait for the bound to bite: node-0's log no longer holds what
        // node-2 missed.
        let until = Instant::now() + DEADLINE;
        loop {
            let s = c0.status().await.expect("status");
            if s.log_first_seq > 300 {
                return s.log_first_seq;
            }
            assert!(Instant::now() < until, "log never truncated: {s:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(first_seq > 300);
    let c = cluster.start(2);
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        let state = converged(&clients, |d| d.len() == 6_200).await;
        assert!(
            state
                .iter()
                .any(|r| r.key == b"early000001" && r.value.is_none())
        );
        let s = clients[2].status().await.expect("status");
        assert!(
            keys_received(&s) > 0,
            "node-2 converged without repair? {:?}",
            s.repairs
        );
    });
    drop((a, b, c));
}

#[test]
fn a_deleted_key_never_comes_back_through_repair_and_its_tombstone_is_purged_after_the_grace_period()
 {
    let cluster = Cluster::with_flags(
        3,
        &[
            "--repair-interval",
            "1s",
            "--max-log-lag",
            "10",
            "--tombstone-grace",
            "15s",
        ],
    );
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        clients[0].put("doomed", "old").await.expect("put");
        converged(&clients, |d| d.iter().any(|r| r.key == b"doomed")).await;
    });
    // node-2 keeps the old value while the key is deleted, and the log that
    // carried the delete is truncated past it: only repair can tell it.
    c.kill9();
    rt.block_on(async {
        let c0 = cluster.client(0).await;
        c0.delete("doomed").await.expect("delete");
        load(&c0, "filler", 500).await;
    });
    let c = cluster.start(2);
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        let state = converged(&clients, |d| d.len() == 501).await;
        let doomed = state
            .iter()
            .find(|r| r.key == b"doomed")
            .expect("tombstone");
        assert!(
            doomed.value.is_none(),
            "the deleted key came back: {doomed:?}"
        );
        for c in &clients {
            assert!(c.get("doomed").await.expect("get").is_none());
        }
        // After the grace period every node purges the tombstone, and the
        // old value stays gone.
        converged(&clients, |d| {
            d.len() == 500 && !d.iter().any(|r| r.key == b"doomed")
        })
        .await;
        for c in &clients {
            assert!(c.get("doomed").await.expect("get").is_none());
            assert!(c.status().await.expect("status").purged >= 1);
        }
    });
    drop((a, b, c));
}

#[test]
fn a_node_down_longer_than_the_grace_period_is_refused_until_wiped_or_forced() {
    let cluster = Cluster::with_flags(2, &["--tombstone-grace", "2s", "--repair-interval", "1s"]);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        cluster.client(1).await.put("k", "v").await.expect("put");
    });
    b.kill9();
    // The condition itself is elapsed time: being down longer than the grace.
    std::thread::sleep(Duration::from_secs(4));
    let args = cluster.args(1, &[]);
    let mut full = vec![
        "--data-dir".to_string(),
        cluster.data_dir(1).display().to_string(),
        "--tls-certfile".into(),
        cluster.certs.node.cert.display().to_string(),
        "--tls-keyfile".into(),
        cluster.certs.node.key.display().to_string(),
        "--tls-cafile".into(),
        cluster.certs.ca.display().to_string(),
    ];
    full.extend(args);
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    let (child, log) = spawn_vergentd(&refs);
    let out = wait_output(child, Duration::from_secs(30));
    assert!(!out.status.success(), "a stale node started");
    let text = log.lock().expect("log").clone();
    assert!(
        text.contains("longer than the tombstone grace period")
            && text.contains("--allow-stale-rejoin"),
        "unclear refusal:\n{text}"
    );
    let b = cluster.start_with(1, &["--allow-stale-rejoin"]);
    rt.block_on(async {
        let c1 = cluster.client(1).await;
        assert!(c1.get("k").await.expect("get").is_some());
    });
    drop((a, b));
}

/// Not a test: the repair throughput benchmark for docs/benchmarks.md (it
/// asserts only that repair finished, and prints the figures). Run with
/// `cargo test --release -p vergentd --test repair -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run in release, see docs/benchmarks.md"]
fn bench_repair_throughput() {
    let keys: usize = std::env::var("VERGENT_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let cluster = Cluster::with_flags(2, &["--repair-interval", "1s"]);
    preload(&cluster, 0, 0..keys, "value", 100, 60_000);
    let a = cluster.start(0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Rebuild: an empty node bootstraps every key.
    let started = Instant::now();
    let b = cluster.start(1);
    let full = rt.block_on(async {
        let c1 = cluster.client(1).await;
        serving(&c1).await;
        let took = started.elapsed();
        let s = c1.status().await.expect("status");
        let r = &s.repairs;
        let (got, bytes): (u64, u64) = (
            r.iter().map(|p| p.keys_received).sum(),
            r.iter().map(|p| p.bytes).sum(),
        );
        assert_eq!(s.key_count, keys as u64);
        println!(
            "rebuild: {got} keys in {:.2} s (incl. process start): {:.0} keys/s, {:.1} bytes/key on the wire",
            took.as_secs_f64(),
            got as f64 / took.as_secs_f64(),
            bytes as f64 / got as f64
        );
        bytes
    });
    // 1% divergence: node-1 misses newer versions of 1% of the keys.
    b.kill9();
    drop(a);
    preload(&cluster, 0, (0..keys).step_by(100), "newer", 100, 1_000);
    let a_restarted = cluster.start(0);
    let started = Instant::now();
    let b = cluster.start(1);
    rt.block_on(async {
        let c1 = cluster.client(1).await;
        let until = Instant::now() + DEADLINE;
        let differing = keys / 100;
        loop {
            let s = c1.status().await.expect("status");
            let got: u64 = s.repairs.iter().map(|p| p.keys_received).sum();
            if got >= differing as u64 {
                let took = started.elapsed();
                // node-1 takes part in every session and counts both
                // directions, as in the rebuild figure.
                let bytes: u64 = s.repairs.iter().map(|p| p.bytes).sum();
                println!(
                    "1% divergence: {got} keys repaired in {:.2} s (incl. process start), {bytes} bytes on the wire \
                     ({:.1} bytes per differing key; {:.2}% of the {full} bytes of the full rebuild)",
                    took.as_secs_f64(),
                    bytes as f64 / got as f64,
                    bytes as f64 * 100.0 / full as f64
                );
                break;
            }
            assert!(Instant::now() < until, "divergence not repaired: {:?}", s.repairs);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    drop((a_restarted, b));
}
