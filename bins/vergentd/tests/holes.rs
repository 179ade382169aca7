//! The holes review found in the eventual layer, each pinned on real
//! `vergentd` processes over 127.0.0.1: a deleted key never comes back (log
//! replay to a wiped node, a node cut off longer than the grace period, a
//! member known only from before a restart), one refused record never
//! stalls a peer, a bootstrapping node never answers reads from an
//! incomplete store, and a node certificate never speaks for another node.
//!
//! Each test names the property; docs/testing.md says which failed before
//! its fix. `VERGENT_TEST_BIN_DIR` runs them against another build.

mod common;

use std::time::{Duration, Instant};

use common::{
    Cluster, DEADLINE, Proc, converged, is_bootstrapping as bootstrapping, load, preload, serving,
    signal,
};
use vergent_client::Client;

/// Every node answers `get key` with nothing (or refuses while
/// bootstrapping) for `window`; panics at the first node that returns a value.
async fn stays_deleted(clients: &[Client], key: &str, window: Duration) {
    let until = Instant::now() + window;
    while Instant::now() < until {
        for (i, c) in clients.iter().enumerate() {
            match c.get(key).await {
                Ok(None) => {}
                Err(e) if bootstrapping(&e) => {}
                Ok(Some(e)) => panic!(
                    "node {i} returned the deleted key {key:?}: {:?}",
                    String::from_utf8_lossy(&e.value)
                ),
                Err(e) => panic!("node {i}: get {key}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until every client reports at least one purge.
async fn purged_everywhere(clients: &[Client]) {
    let until = Instant::now() + DEADLINE;
    loop {
        let mut all = true;
        for c in clients {
            all &= c.status().await.expect("status").purged >= 1;
        }
        if all {
            return;
        }
        assert!(Instant::now() < until, "tombstones never purged");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn a_wiped_node_is_never_sent_a_value_whose_delete_was_purged() {
    // Node A's log keeps the put while B's log drops the delete (a small
    // log bound), and C is wiped after the grace: replaying A's log to the
    // empty C must not bring the value back to any node.
    let cluster = Cluster::with_flags(3, &["--tombstone-grace", "20s", "--repair-interval", "1s"]);
    let a = cluster.start(0);
    let b = cluster.start_with(1, &["--max-log-lag", "50"]);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        for cl in &clients {
            serving(cl).await;
        }
    });
    c.kill9();
    let deleted = rt.block_on(async {
        let (ca, cb) = (cluster.client(0).await, cluster.client(1).await);
        ca.put("k", "deleted-value").await.expect("put");
        // The delete is written through B once B holds the put.
        let until = Instant::now() + DEADLINE;
        while cb.get("k").await.expect("get").is_none() {
            assert!(Instant::now() < until, "the put never reached B");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deleted = cb.delete("k").await.expect("delete").version;
        load(&cb, "filler", 1_600).await;
        deleted
    });
    // Past the grace, with a margin for the purge sweep.
    common::wait_until_older_than(deleted.hlc, Duration::from_secs(45));
    std::fs::remove_dir_all(cluster.data_dir(2)).expect("wipe C");
    let c = cluster.start(2);
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        serving(&clients[2]).await;
        stays_deleted(&clients, "k", Duration::from_secs(20)).await;
        // Once C confirmed it holds nothing of k, the tombstone goes.
        purged_everywhere(&clients[..2]).await;
        let state = converged(&clients, |d| d.len() == 1_600).await;
        assert!(!state.iter().any(|r| r.key == b"k"));
    });
    drop((a, b, c));
}

#[test]
fn a_node_cut_off_longer_than_the_grace_brings_no_deleted_key_back_when_it_returns() {
    // C keeps running but answers nobody (SIGSTOP) while a key it holds is
    // deleted, the grace passes and A's log drops the delete (a small log
    // bound and filler writes: only repair can tell C); when C answers
    // again, the delete wins on every node.
    let cluster = Cluster::with_flags(
        3,
        &[
            "--tombstone-grace",
            "10s",
            "--repair-interval",
            "1s",
            "--max-log-lag",
            "50",
        ],
    );
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        clients[0].put("k", "old").await.expect("put");
        converged(&clients, |d| d.iter().any(|r| r.key == b"k")).await;
    });
    signal(c.pid(), "STOP");
    let deleted = rt.block_on(async {
        let ca = cluster.client(0).await;
        let v = ca.delete("k").await.expect("delete").version;
        load(&ca, "filler", 1_600).await;
        v
    });
    common::wait_until_older_than(deleted.hlc, Duration::from_secs(30));
    // What the operator is told while C is away.
    let held = rt.block_on(async {
        let s = cluster.client(0).await.status().await.expect("status");
        s.purge_held_back.map(|(why, _)| why).unwrap_or_default()
    });
    signal(c.pid(), "CONT");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        // C may serve its stale value until repair brings it the delete
        // (reads at `one`); the nodes that saw the delete never go back.
        stays_deleted(&clients[..2], "k", Duration::from_secs(15)).await;
        assert!(
            held.contains("node-2"),
            "status did not say node-2 holds purges back: {held:?}"
        );
        purged_everywhere(&clients).await;
        let state = converged(&clients, |d| {
            !d.iter().any(|r| r.key == b"k") && d.len() == 1_600
        })
        .await;
        assert_eq!(state.len(), 1_600);
    });
    drop((a, b, c));
}

#[test]
fn purges_wait_for_a_member_known_only_from_before_a_restart() {
    // A and B restart while C is unreachable: their fresh gossip views do
    // not hold C (or hold it as long dead), but C still holds the value, and
    // A's log drops the delete (small log bound, filler writes).
    let cluster = Cluster::with_flags(
        3,
        &[
            "--tombstone-grace",
            "10s",
            "--repair-interval",
            "1s",
            "--max-log-lag",
            "50",
        ],
    );
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        clients[0].put("k", "old").await.expect("put");
        converged(&clients, |d| d.iter().any(|r| r.key == b"k")).await;
    });
    signal(c.pid(), "STOP");
    a.terminate(Duration::from_secs(30));
    b.terminate(Duration::from_secs(30));
    let a = cluster.start(0);
    let b = cluster.start(1);
    let deleted = rt.block_on(async {
        let ca = cluster.client(0).await;
        let v = ca.delete("k").await.expect("delete").version;
        load(&ca, "filler", 1_600).await;
        v
    });
    // Past the grace and the purge's start-up wait of older builds.
    common::wait_until_older_than(deleted.hlc, Duration::from_secs(35));
    signal(c.pid(), "CONT");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        stays_deleted(&clients[..2], "k", Duration::from_secs(15)).await;
        let state = converged(&clients, |d| {
            !d.iter().any(|r| r.key == b"k") && d.len() == 1_600
        })
        .await;
        assert_eq!(state.len(), 1_600);
    });
    drop((a, b, c));
}

#[test]
fn one_record_a_peer_refuses_does_not_stall_the_rest_of_the_log() {
    // A takes values up to 2 MiB, B only up to 1 MiB: B refuses the large
    // one alone and keeps applying what follows.
    let cluster = Cluster::with_flags(2, &["--repair-interval", "1s"]);
    let a = cluster.start_with(0, &["--max-value-bytes", "2097152"]);
    let b = cluster.start(1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (ca, cb) = (cluster.client(0).await, cluster.client(1).await);
        serving(&cb).await;
        ca.put("large", vec![b'x'; 1_500_000])
            .await
            .expect("large put");
        ca.put("small-1", "a").await.expect("put");
        ca.put("small-2", "b").await.expect("put");
        let until = Instant::now() + DEADLINE;
        loop {
            let got = (
                cb.get("small-1").await.expect("get").is_some(),
                cb.get("small-2").await.expect("get").is_some(),
            );
            if got == (true, true) {
                break;
            }
            assert!(
                Instant::now() < until,
                "B never received the writes after the refused one"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(cb.get("large").await.expect("get").is_none());
        let sa = ca.status().await.expect("status");
        let lag: Vec<u64> = sa.replication.iter().map(|r| r.2).collect();
        assert_eq!(
            lag,
            vec![0],
            "A's log to B still lags: {:?}",
            sa.replication
        );
        let sb = cb.status().await.expect("status");
        assert!(sb.refused_records >= 1, "refusal not counted: {sb:?}");
    });
    assert!(b.log_text().contains("refused records from a peer"));
    drop((a, b));
}

#[test]
fn a_bootstrapping_node_refuses_reads_instead_of_answering_empty() {
    let cluster = Cluster::with_flags(3, &["--repair-interval", "1s"]);
    preload(&cluster, 0, 0..20_000, "value", 0, 60_000);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        converged(&clients, |d| d.len() == 20_000).await;
    });
    // B and C lose their data while A is down: they may only form a
    // cluster of their own once every seed answered, and A holds the data.
    a.kill9();
    b.kill9();
    c.kill9();
    for i in [1, 2] {
        std::fs::remove_dir_all(cluster.data_dir(i)).expect("wipe");
    }
    let b = cluster.start(1);
    let c = cluster.start(2);
    rt.block_on(async {
        let (cb, cc) = (cluster.client(1).await, cluster.client(2).await);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            for cl in [&cb, &cc] {
                match cl.get("k000042").await {
                    Err(e) if bootstrapping(&e) => {}
                    other => panic!("a wiped node answered without its peers' data: {other:?}"),
                }
                assert_eq!(cl.status().await.expect("status").state, "bootstrapping");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let a = cluster.start(0);
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        // While they fill from A, every read is a value or a refusal.
        let until = Instant::now() + DEADLINE;
        loop {
            let mut served = 0;
            for cl in &clients[1..] {
                match cl.get("k000042").await {
                    Ok(Some(_)) => served += 1,
                    Err(e) if bootstrapping(&e) => {}
                    other => panic!("answered from an incomplete store: {other:?}"),
                }
            }
            if served == 2 {
                break;
            }
            assert!(Instant::now() < until, "never served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        converged(&clients, |d| d.len() == 20_000).await;
    });
    drop((a, b, c));
}

#[test]
fn a_node_certificate_cannot_speak_for_another_nodes_id() {
    let cluster = Cluster::with_node_certs(3, &["--repair-interval", "1s"]);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        clients[0].put("before", "x").await.expect("put");
        converged(&clients, |d| d.len() == 1).await;
    });
    a.kill9();
    // A process holding node-1's certificate claims node-0's id.
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = vergent_testkit::free_ports(1)[0];
    let (p1, p2) = (cluster.addr(1), cluster.addr(2));
    let args = [
        "--node-id",
        "node-0",
        "--peers",
        p1.as_str(),
        p2.as_str(),
        "--port",
        &port.to_string(),
    ];
    let impostor = Proc::start_as(cluster.node_cert(1), &cluster.certs.ca, tmp.path(), &args);
    let impostor_addr = format!("127.0.0.1:{port}");
    rt.block_on(async {
        let own = Client::connect({
            let mut cfg = vergent_client::ClientConfig::new(
                impostor_addr.clone(),
                cluster.certs.client.clone(),
            );
            cfg.request_timeout = Duration::from_secs(10);
            cfg
        })
        .await
        .expect("connect to the impostor");
        let _ = own.put("forged", "by-impostor").await;
        let (cb, cc) = (cluster.client(1).await, cluster.client(2).await);
        // Watched for a while: the impostor gossips and replicates at once.
        let watched = Instant::now() + Duration::from_secs(10);
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            for (name, cl) in [("node-1", &cb), ("node-2", &cc)] {
                let s = cl.status().await.expect("status");
                let listed = s.members.iter().any(|m| {
                    m.node_id == "node-0" && m.addr == impostor_addr && m.state == "alive"
                });
                assert!(
                    !listed,
                    "{name} lists the impostor alive as node-0: {:?}",
                    s.members
                );
                assert!(
                    cl.get("forged").await.expect("get").is_none(),
                    "{name} took a write the impostor made as node-0"
                );
            }
            let refused_b = cb.status().await.expect("status").refused_peers;
            let refused_c = cc.status().await.expect("status").refused_peers;
            if refused_b > 0 && refused_c > 0 && Instant::now() > watched {
                break;
            }
            assert!(
                Instant::now() < until,
                "the impostor was not refused: {refused_b}, {refused_c}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(
        b.log_text().contains("belongs to certificate"),
        "node-1 does not log the refused claim"
    );
    drop((b, c, impostor));
}

#[test]
fn a_member_unseen_past_the_expiry_releases_purges_and_is_refused_until_it_returns_wiped() {
    let cluster = Cluster::with_flags(
        2,
        &[
            "--tombstone-grace",
            "2s",
            "--member-expiry",
            "10s",
            "--repair-interval",
            "1s",
        ],
    );
    let a = cluster.start(0);
    let b = cluster.start(1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(2).await;
        clients[0].put("k", "old").await.expect("put");
        converged(&clients, |d| d.len() == 1).await;
    });
    b.kill9();
    rt.block_on(async {
        let ca = cluster.client(0).await;
        ca.delete("k").await.expect("delete");
        // Purges wait for node-1 until it expires, then go ahead.
        let until = Instant::now() + DEADLINE;
        loop {
            let s = ca.status().await.expect("status");
            if s.purged >= 1 {
                assert_eq!(s.fenced, vec!["node-1".to_string()]);
                break;
            }
            assert!(
                Instant::now() < until,
                "never purged: {:?}",
                s.purge_held_back
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // node-1 comes back with its old data, which still holds k: refused.
    let b = cluster.start(1);
    rt.block_on(async {
        let ca = cluster.client(0).await;
        stays_deleted(std::slice::from_ref(&ca), "k", Duration::from_secs(10)).await;
    });
    assert!(
        b.log_text().contains("dropped from the cluster"),
        "node-1 is not told why it is refused:\n{}",
        b.log_text()
    );
    rt.block_on(async {
        // It knows, says so, and stops serving what peers will not take.
        let cb = cluster.client(1).await;
        let until = Instant::now() + DEADLINE;
        while cb.status().await.expect("status").state != "fenced" {
            assert!(
                Instant::now() < until,
                "node-1 does not report itself fenced"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let refused = cb.get("k").await.expect_err("a fenced node serves reads");
        assert!(
            matches!(
                refused,
                vergent_client::Error::Server {
                    error_code: Some(vergent_client::ErrorCode::Fenced),
                    ..
                }
            ),
            "{refused:?}"
        );
    });
    b.kill9();
    // Wiped, it is a member again and rebuilds without k.
    std::fs::remove_dir_all(cluster.data_dir(1)).expect("wipe");
    let b = cluster.start(1);
    rt.block_on(async {
        let clients = cluster.clients(2).await;
        serving(&clients[1]).await;
        let state = converged(&clients, |d| d.is_empty()).await;
        assert!(state.is_empty());
        let s = clients[0].status().await.expect("status");
        assert!(s.fenced.is_empty(), "still fenced: {:?}", s.fenced);
    });
    drop((a, b));
}
