//! Eventual reads and writes at QUORUM and ALL on real `vergentd` processes
//! over loopback, three voters: a QUORUM write with one node killed
//! succeeds and with two answers UNAVAILABLE in time, ALL with one killed
//! answers UNAVAILABLE; a QUORUM write survives `kill -9` of its coordinator
//! and the wipe of another node; a stale voter is repaired by a QUORUM read.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Proc};
use vergent_client::{Client, Consistency, ErrorCode, PutOptions};

const DEADLINE: Duration = Duration::from_secs(60);

fn at(level: Consistency) -> PutOptions {
    PutOptions {
        consistency: Some(level),
        ..Default::default()
    }
}

/// Waits until every node serves, holds a 3-voter configuration and is not
/// catching up (so each answers level reads).
async fn ready(cluster: &Cluster, nodes: &[usize]) {
    for &i in nodes {
        let c = cluster.client(i).await;
        let until = Instant::now() + DEADLINE;
        loop {
            let s = c.status().await.expect("status");
            if s.state == "serving"
                && !s.catching_up
                && s.voting.as_ref().is_some_and(|v| v.voters.len() == 3)
            {
                break;
            }
            assert!(
                Instant::now() < until,
                "node {i} not ready within {DEADLINE:?}: {} catching_up={} {:?}",
                s.state,
                s.catching_up,
                s.voting
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A read at `level` that waits (bounded) while too few voters answer yet.
async fn read_at(client: &Client, key: &str, level: Consistency) -> Option<Vec<u8>> {
    let until = Instant::now() + DEADLINE;
    loop {
        match client.get_with(key, Some(level)).await {
            Ok(e) => return e.map(|e| e.value),
            Err(e) if Instant::now() < until => {
                eprintln!("read at {level:?} not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no read of {key} at {level:?} within {DEADLINE:?}: {e}"),
        }
    }
}

#[test]
fn quorum_writes_take_one_node_down_and_answer_unavailable_with_two_and_all_with_one() {
    let cluster = Cluster::new(3);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        ready(&cluster, &[0, 1, 2]).await;
        let client = cluster.client(0).await;
        client
            .put_with("k", "all-up", at(Consistency::All))
            .await
            .expect("ALL with every voter up");
        let e = client
            .get_with("k", Some(Consistency::All))
            .await
            .expect("ALL read")
            .expect("found");
        assert_eq!(e.value, b"all-up");
        assert_eq!(
            e.consistency,
            Consistency::All,
            "the level used is reported"
        );
    });
    c.kill9();
    rt.block_on(async {
        let client = cluster.client(0).await;
        common::sees_dead(&client, 1, DEADLINE).await;
        client
            .put_with("k", "quorum", at(Consistency::Quorum))
            .await
            .expect("QUORUM with one of three down");
        let started = Instant::now();
        let err = client
            .put_with("k", "all", at(Consistency::All))
            .await
            .expect_err("ALL with one voter down");
        assert_eq!(err.code(), Some(ErrorCode::NotEnoughVoters), "{err}");
        assert!(
            err.to_string()
                .contains("needed 3 of 3 voters, reachable 2"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(8));
        let err = client
            .get_with("k", Some(Consistency::All))
            .await
            .expect_err("ALL read with one voter down");
        assert_eq!(err.code(), Some(ErrorCode::NotEnoughVoters), "{err}");
        assert_eq!(
            client
                .get_with("k", Some(Consistency::Quorum))
                .await
                .expect("QUORUM read")
                .map(|e| e.value)
                .as_deref(),
            Some(&b"quorum"[..]),
            "the refused ALL write changed nothing"
        );
    });
    b.kill9();
    rt.block_on(async {
        let client = cluster.client(0).await;
        common::sees_dead(&client, 2, DEADLINE).await;
        for _ in 0..3 {
            let started = Instant::now();
            let err = client
                .put_with("k", "lost", at(Consistency::Quorum))
                .await
                .expect_err("QUORUM with two of three down");
            assert_eq!(err.code(), Some(ErrorCode::NotEnoughVoters), "{err}");
            assert!(
                err.to_string()
                    .contains("needed 2 of 3 voters, reachable 1"),
                "{err}"
            );
            assert!(started.elapsed() < Duration::from_secs(8));
        }
        assert_eq!(
            client
                .get("k")
                .await
                .expect("ONE read")
                .map(|e| e.value)
                .as_deref(),
            Some(&b"quorum"[..]),
            "nothing was written by the refused writes"
        );
    });
    drop(a);
}

#[test]
fn a_quorum_write_survives_kill_9_of_its_coordinator_and_the_wipe_of_another_node() {
    let cluster = Cluster::new(3);
    let mut nodes: Vec<Option<Proc>> = (0..3).map(|i| Some(cluster.start(i))).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        ready(&cluster, &[0, 1, 2]).await;
        cluster
            .client(0)
            .await
            .put_with("k", "acked", at(Consistency::Quorum))
            .await
            .expect("QUORUM write");
    });
    // Right after the OK: the coordinator dies, and another node loses its disk.
    if let Some(p) = nodes[0].take() {
        p.kill9();
    }
    if let Some(p) = nodes[1].take() {
        p.kill9();
    }
    std::fs::remove_dir_all(cluster.data_dir(1)).expect("wipe node-1");
    nodes[1] = Some(cluster.start(1));
    nodes[0] = Some(cluster.start(0));
    rt.block_on(async {
        let via2 = cluster.client(2).await;
        assert_eq!(
            read_at(&via2, "k", Consistency::Quorum).await.as_deref(),
            Some(&b"acked"[..])
        );
        // The wiped node coordinates a QUORUM read too (its own empty
        // store does not count while it catches up).
        let via1 = cluster.client(1).await;
        common::serving(&via1).await;
        assert_eq!(
            read_at(&via1, "k", Consistency::Quorum).await.as_deref(),
            Some(&b"acked"[..])
        );
    });
}

#[test]
fn a_stale_voter_is_repaired_by_a_quorum_read_as_a_one_read_on_it_shows() {
    // Anti-entropy as slow as it gets, so only the read can repair.
    let cluster = Cluster::new(3);
    let mut nodes: Vec<Option<Proc>> = (0..3).map(|i| Some(cluster.start(i))).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        ready(&cluster, &[0, 1, 2]).await;
        // Not empty: a restart must not bootstrap.
        cluster
            .client(0)
            .await
            .put_with("seed", "x", at(Consistency::All))
            .await
            .expect("ALL write");
    });
    let slow = ["--repair-max-bytes-per-sec", "1"];
    for i in [1, 2] {
        if let Some(p) = nodes[i].take() {
            p.kill9();
        }
    }
    nodes[2] = Some(cluster.start_with(2, &slow));
    rt.block_on(async {
        let client = cluster.client(0).await;
        let until = Instant::now() + DEADLINE;
        // node-1 is down: the write lands on node-0 and node-2 only.
        loop {
            match client.put_with("k", "new", at(Consistency::Quorum)).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < until, "no QUORUM write: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    // The coordinator dies before it can ship the write to node-1.
    if let Some(p) = nodes[0].take() {
        p.kill9();
    }
    nodes[1] = Some(cluster.start_with(1, &slow));
    rt.block_on(async {
        let stale = cluster.client(1).await;
        common::serving(&stale).await;
        assert_eq!(
            stale.get("k").await.expect("ONE read").map(|e| e.value),
            None,
            "node-1 missed the write"
        );
        assert_eq!(
            read_at(&stale, "k", Consistency::Quorum).await.as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(
            stale
                .get("k")
                .await
                .expect("ONE read")
                .map(|e| e.value)
                .as_deref(),
            Some(&b"new"[..]),
            "the QUORUM read repaired node-1 before it answered"
        );
        assert!(
            common::keys_received(&stale.status().await.expect("status")) == 0,
            "no anti-entropy session brought it"
        );
    });
}

#[test]
fn a_quorum_write_that_the_other_voters_refuse_is_not_acknowledged_by_their_acks() {
    // Two voters take smaller values than the coordinator: they acknowledge
    // the log past the write but do not store it, and say so.
    let cluster = Cluster::new(3);
    let small = ["--max-value-bytes", "16"];
    let _a = cluster.start(0);
    let _b = cluster.start_with(1, &small);
    let _c = cluster.start_with(2, &small);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        ready(&cluster, &[0, 1, 2]).await;
        let client = cluster.client(0).await;
        client
            .put_with("fits", "small", at(Consistency::Quorum))
            .await
            .expect("a value every voter takes");
        let started = Instant::now();
        let err = client
            .put_with("big", vec![b'x'; 64], at(Consistency::Quorum))
            .await
            .expect_err("only the coordinator holds it");
        assert_eq!(err.code(), Some(ErrorCode::OutcomeUnknown), "{err}");
        assert!(err.is_outcome_unknown());
        assert!(err.to_string().contains("only 1 of the 3 voters"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(8));
        // The refused writes held nothing back: a later write still counts.
        client
            .put_with("fits", "again", at(Consistency::Quorum))
            .await
            .expect("the log moved on");
    });
}
