//! Anti-entropy on real `vergentd` processes over 127.0.0.1: a wiped node
//! rebuilds 100k keys, a new node gets the existing data, a peer behind the
//! truncated log converges, deleted keys never come back and their
//! tombstones are purged, and a node down past the grace period rejoins.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, DEADLINE, Proc, converged, keys_received, load, preload, serving};

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
fn a_node_down_longer_than_the_grace_period_rejoins_with_its_data_and_no_deleted_key_returns() {
    // Peers never purge a delete a member has not confirmed, so a node may
    // stay down for any time and come back with its data (once refused at
    // start: see docs/anti-entropy.md).
    let cluster = Cluster::with_flags(2, &["--tombstone-grace", "2s", "--repair-interval", "1s"]);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(2).await;
        clients[1].put("kept", "v").await.expect("put");
        clients[1].put("deleted", "old").await.expect("put");
        converged(&clients, |d| d.len() == 2).await;
    });
    b.kill9();
    let deleted_at = rt.block_on(async {
        let c0 = cluster.client(0).await;
        c0.delete("deleted").await.expect("delete").version
    });
    // Down longer than the grace: wait until the tombstone is that old.
    common::wait_until_older_than(deleted_at.hlc, Duration::from_secs(4));
    let b = cluster.start(1);
    rt.block_on(async {
        let clients = cluster.clients(2).await;
        assert_eq!(
            common::get_serving(&clients[1], "kept")
                .await
                .map(|e| e.value),
            Some(b"v".to_vec()),
            "the rejoined node lost its data"
        );
        // The delete wins everywhere, then is purged once both confirmed it.
        let state = converged(&clients, |d| d.len() == 1 && clients_agree_deleted(d)).await;
        assert_eq!(state[0].key, b"kept");
        for c in &clients {
            assert!(c.get("deleted").await.expect("get").is_none());
        }
    });
    drop((a, b));
}

fn clients_agree_deleted(d: &[vergent_client::StoredRecord]) -> bool {
    !d.iter().any(|r| r.key == b"deleted")
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
