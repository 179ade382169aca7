//! Strong per-key operations on real `vergentd` processes over loopback:
//! a lone node's SERIAL reads, writes and CAS; 20 clients incrementing one
//! counter by CAS through three nodes while one is `kill -9`ed; and honest
//! `UNAVAILABLE` with two of three voters down.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Certs, Cluster, Proc};
use vergent_client::{Client, Consistency, ErrorCode, Expect};

const DEADLINE: Duration = Duration::from_secs(60);

async fn serial_get(c: &Client, key: &str) -> Option<Vec<u8>> {
    c.get_with(key, Some(Consistency::Serial))
        .await
        .expect("serial get")
        .map(|e| e.value)
}

#[test]
fn a_lone_node_forms_by_itself_and_serves_serial_reads_writes_and_cas() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let node = Proc::start(&certs, &tmp.path().join("data"), &[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut cfg = vergent_client::ClientConfig::new(node.addr.clone(), certs.client.clone());
        cfg.request_timeout = Duration::from_secs(30);
        let c = Client::connect(cfg).await.expect("connect");
        assert_eq!(common::formed(&c, 1).await, 1);

        assert_eq!(serial_get(&c, "k").await, None);
        let created = c
            .compare_and_set("k", Expect::Absent, Some(b"1".to_vec()))
            .await
            .expect("cas");
        assert!(created.applied, "{created:?}");
        let again = c
            .compare_and_set("k", Expect::Absent, Some(b"x".to_vec()))
            .await
            .expect("cas");
        assert!(!again.applied, "the key is not absent any more");
        assert_eq!(again.value.as_deref(), Some(&b"1"[..]));

        let by_value = c
            .compare_and_set("k", Expect::Value(b"1".to_vec()), Some(b"2".to_vec()))
            .await
            .expect("cas");
        assert!(by_value.applied);
        let stale = c
            .compare_and_set(
                "k",
                Expect::Version(created.version.clone().expect("version")),
                Some(b"3".to_vec()),
            )
            .await
            .expect("cas");
        assert!(!stale.applied, "a stale version does not match");
        let by_version = c
            .compare_and_set(
                "k",
                Expect::Version(by_value.version.clone().expect("version")),
                Some(b"3".to_vec()),
            )
            .await
            .expect("cas");
        assert!(by_version.applied);
        assert_eq!(serial_get(&c, "k").await.as_deref(), Some(&b"3"[..]));
        // Strong writes land in the ordinary store: a ONE read sees them.
        assert_eq!(
            c.get("k").await.expect("get").map(|e| e.value).as_deref(),
            Some(&b"3"[..])
        );

        let put = c
            .put_with(
                "p",
                "v",
                vergent_client::PutOptions {
                    consistency: Some(Consistency::Serial),
                    ..Default::default()
                },
            )
            .await
            .expect("serial put");
        let read = c
            .get_with("p", Some(Consistency::Serial))
            .await
            .expect("serial get")
            .expect("found");
        assert_eq!((read.value, read.version), (b"v".to_vec(), put));
        let deleted = c
            .delete_with("p", Some(Consistency::Serial))
            .await
            .expect("serial delete");
        assert!(deleted.existed);
        assert_eq!(serial_get(&c, "p").await, None);
        let recreate = c
            .compare_and_set("p", Expect::Absent, Some(b"w".to_vec()))
            .await
            .expect("cas");
        assert!(recreate.applied, "a deleted key is absent");
        let delete_by_cas = c
            .compare_and_set("p", Expect::Value(b"w".to_vec()), None)
            .await
            .expect("cas delete");
        assert!(delete_by_cas.applied && delete_by_cas.value.is_none());

        // What SERIAL does not serve is refused clearly.
        let ttl = c
            .put_with(
                "t",
                "v",
                vergent_client::PutOptions {
                    consistency: Some(Consistency::Serial),
                    ttl: Some(Duration::from_secs(5)),
                },
            )
            .await
            .expect_err("a TTL with SERIAL is refused");
        assert_eq!(ttl.code(), Some(ErrorCode::BadRequest), "{ttl}");
        let empty = c
            .compare_and_set("", Expect::Absent, Some(b"x".to_vec()))
            .await
            .expect_err("the empty key is refused");
        assert_eq!(empty.code(), Some(ErrorCode::EmptyKey), "{empty}");
    });
}

/// Outcomes of the counter clients.
#[derive(Default)]
struct Tally {
    applied: AtomicU64,
    not_applied: AtomicU64,
    unknown: AtomicU64,
    refused: AtomicU64,
}

/// One client's loop: read the counter at SERIAL, CAS it from N to N+1.
async fn count(c: Client, rounds: usize, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let until = Instant::now() + DEADLINE;
    for _ in 0..rounds {
        if stop.load(Ordering::Relaxed) || Instant::now() > until {
            return;
        }
        let current = match c.get_with("counter", Some(Consistency::Serial)).await {
            Ok(e) => e.map(|e| String::from_utf8(e.value).expect("utf8")),
            // This client's node was killed: it is done.
            Err(e) if e.is_connection() => return,
            Err(_) => continue,
        };
        let n: u64 = current.as_deref().map_or(0, |s| s.parse().expect("number"));
        let expect = match current {
            Some(s) => Expect::Value(s.into_bytes()),
            None => Expect::Absent,
        };
        match c
            .compare_and_set("counter", expect, Some((n + 1).to_string().into_bytes()))
            .await
        {
            Ok(r) if r.applied => tally.applied.fetch_add(1, Ordering::Relaxed),
            Ok(_) => tally.not_applied.fetch_add(1, Ordering::Relaxed),
            Err(e)
                if matches!(
                    e.code(),
                    Some(ErrorCode::Contention | ErrorCode::NotEnoughVoters)
                ) =>
            {
                tally.refused.fetch_add(1, Ordering::Relaxed)
            }
            // Anything else may or may not have applied.
            Err(e) => {
                tally.unknown.fetch_add(1, Ordering::Relaxed);
                if e.is_connection() {
                    return;
                }
                0
            }
        };
    }
}

#[test]
fn twenty_clients_cas_one_counter_through_three_nodes_and_kill_9_of_one_loses_no_increment() {
    let cluster = Cluster::new(3);
    let mut nodes: Vec<Option<Proc>> = (0..3).map(|i| Some(cluster.start(i))).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tally = Arc::new(Tally::default());
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        for c in &clients {
            common::formed(c, 3).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let c = clients[i % 3].clone();
            tasks.spawn(count(c, 25, tally.clone(), stop.clone()));
        }
        // Kill node 2 once the loops are well under way.
        let victim = Arc::new(Mutex::new(nodes[2].take()));
        let until = Instant::now() + DEADLINE;
        while tally.applied.load(Ordering::Relaxed) < 20 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(p) = victim.lock().expect("lock").take() {
            p.kill9();
        }
        while tasks.join_next().await.is_some() {}
        let applied = tally.applied.load(Ordering::Relaxed);
        let unknown = tally.unknown.load(Ordering::Relaxed);
        let final_value: u64 = String::from_utf8(
            serial_get(&clients[0], "counter")
                .await
                .expect("the counter exists"),
        )
        .expect("utf8")
        .parse()
        .expect("number");
        eprintln!(
            "applied {applied}, not applied {}, refused {}, unknown {unknown}, final {final_value}",
            tally.not_applied.load(Ordering::Relaxed),
            tally.refused.load(Ordering::Relaxed),
        );
        assert!(applied >= 20, "too few increments applied: {applied}");
        assert!(
            applied <= final_value && final_value <= applied + unknown,
            "every applied CAS counts exactly once: applied {applied}, unknown {unknown}, final {final_value}"
        );
        // The survivors agree at ONE too once the commit reached them.
        let b = String::from_utf8(serial_get(&clients[1], "counter").await.expect("exists"))
            .expect("utf8");
        assert_eq!(b, final_value.to_string());
    });
}

#[test]
fn with_two_of_three_voters_down_cas_answers_unavailable_within_the_deadline_and_nothing_changes() {
    let cluster = Cluster::new(3);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = cluster.client(0).await;
        for i in 0..3 {
            common::formed(&cluster.client(i).await, 3).await;
        }
        let set = client
            .compare_and_set("k", Expect::Absent, Some(b"before".to_vec()))
            .await
            .expect("cas");
        assert!(set.applied);
        b.kill9();
        c.kill9();
        // "Down" as the survivor sees it: gossip has declared both dead.
        common::sees_dead(&client, 2, DEADLINE).await;
        for _ in 0..3 {
            let started = Instant::now();
            let err = client
                .compare_and_set(
                    "k",
                    Expect::Value(b"before".to_vec()),
                    Some(b"after".to_vec()),
                )
                .await
                .expect_err("no quorum");
            let took = started.elapsed();
            assert_eq!(err.code(), Some(ErrorCode::NotEnoughVoters), "{err}");
            assert!(err.to_string().contains("needed 2 of 3 voters"), "{err}");
            assert!(took < Duration::from_secs(8), "answered after {took:?}");
        }
        assert_eq!(
            client
                .get("k")
                .await
                .expect("get")
                .map(|e| e.value)
                .as_deref(),
            Some(&b"before"[..])
        );
    });
    // With a majority back, the strong view shows nothing changed.
    let _b = cluster.start(1);
    rt.block_on(async {
        let client = cluster.client(0).await;
        let until = Instant::now() + DEADLINE;
        let value = loop {
            match client.get_with("k", Some(Consistency::Serial)).await {
                Ok(v) => break v.map(|e| e.value),
                Err(e) => {
                    assert!(Instant::now() < until, "no serial read: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        assert_eq!(value.as_deref(), Some(&b"before"[..]));
    });
    drop(a);
}

#[test]
fn the_shell_cas_prints_ok_or_not_applied_with_the_current_state_and_exits_0_for_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let node = Proc::start(&certs, &tmp.path().join("data"), &[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut cfg = vergent_client::ClientConfig::new(node.addr.clone(), certs.client.clone());
        cfg.request_timeout = Duration::from_secs(30);
        common::formed(&Client::connect(cfg).await.expect("connect"), 1).await;
    });
    let out = common::ctl_script(
        &node.addr,
        &certs.client,
        "cas counter --absent 1\ncas counter 5 6\ncas counter 1 2\nget --serial counter\n\
         consistency\nconsistency serial\nput s v\nget s\ndelete s\nget s\ncas s --absent w\n\
         cas s w --delete\nget --serial s\nconsistency one\nstatus\nmembers\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The two gets of `s` after its deletes find nothing, which alone makes
    // a script's exit code 1: a CAS that did not apply does not.
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("error"), "{stderr}");
    let no_miss = common::ctl_script(
        &node.addr,
        &certs.client,
        "cas other --absent 1\ncas other 5 6\n",
    );
    assert!(
        no_miss.status.success(),
        "a CAS that did not apply is no failure: {}",
        String::from_utf8_lossy(&no_miss.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("OK hlc="), "{stdout}");
    assert!(
        lines[1].starts_with("NOT APPLIED current=1 hlc="),
        "a CAS that finds another value shows it: {stdout}"
    );
    assert!(lines[2].starts_with("OK hlc="), "{stdout}");
    assert_eq!(lines[3], "2");
    assert_eq!(lines[4], "Current consistency level is ONE.");
    assert_eq!(lines[5], "Consistency level set to SERIAL.");
    assert!(lines[6].starts_with("OK hlc="), "{stdout}");
    assert_eq!(lines[7], "v");
    assert!(lines[8].starts_with("OK hlc="), "{stdout}");
    assert_eq!(lines[9], "(nil)");
    assert!(
        lines[10].starts_with("OK hlc="),
        "a deleted key is absent: {stdout}"
    );
    assert!(lines[11].starts_with("OK hlc="), "{stdout}");
    assert_eq!(lines[12], "(nil)");
    assert_eq!(lines[13], "Consistency level set to ONE.");
    assert!(
        stdout.contains("voting:       epoch 1, voters "),
        "status shows the voting configuration: {stdout}"
    );
    assert!(
        stdout.contains("voting configuration: epoch 1"),
        "members shows it too: {stdout}"
    );

    // -e mode: a CAS that does not apply is an answer, not an error.
    let e = std::process::Command::new(common::bin("vergentctl"))
        .args(["connect", &node.addr, "--tls-certfile"])
        .arg(&certs.client.cert)
        .arg("--tls-keyfile")
        .arg(&certs.client.key)
        .arg("--tls-cafile")
        .arg(&certs.client.ca)
        .args(["-e", "cas counter 7 8"])
        .output()
        .expect("vergentctl -e");
    let e_out = String::from_utf8_lossy(&e.stdout);
    assert!(
        e.status.success(),
        "{e_out}{}",
        String::from_utf8_lossy(&e.stderr)
    );
    assert!(e_out.starts_with("NOT APPLIED current=2 hlc="), "{e_out}");
}

#[test]
fn a_strict_prefix_refuses_one_writes_on_every_node_and_still_takes_strong_ones() {
    let cluster = Cluster::new(3);
    let _nodes: Vec<Proc> = (0..3).map(|i| cluster.start(i)).collect();
    let out = {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            for i in 0..3 {
                common::formed(&cluster.client(i).await, 3).await;
            }
        });
        common::ctl_script(
            &cluster.addr(0),
            &cluster.certs.client,
            "keyspace strict locks/\n",
        )
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("OK strict prefix \"locks/\": configuration epoch 2"),
        "{stdout}"
    );
    assert!(stdout.contains("in force on every voter"), "{stdout}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        for i in 0..3 {
            let c = cluster.client(i).await;
            let err = c.put("locks/a", "x").await.expect_err("refused");
            assert_eq!(err.code(), Some(ErrorCode::StrongKeyspace), "{err}");
            assert!(
                err.to_string().contains("locks/"),
                "names the prefix: {err}"
            );
            let err = c.delete("locks/a").await.expect_err("refused");
            assert_eq!(err.code(), Some(ErrorCode::StrongKeyspace), "{err}");
            c.put(format!("free/{i}"), "x")
                .await
                .expect("other keys stay eventual");
        }
        let c = cluster.client(1).await;
        let r = c
            .compare_and_set("locks/a", Expect::Absent, Some(b"me".to_vec()))
            .await
            .expect("cas under a strict prefix");
        assert!(r.applied);
        assert_eq!(serial_get(&c, "locks/a").await.as_deref(), Some(&b"me"[..]));
        let s = c.status().await.expect("status");
        let v = s.voting.expect("formed");
        assert_eq!(v.strict_prefixes, vec![b"locks/".to_vec()]);
    });
}

/// Waits until node `client` reports exactly `voters` (no change in flight).
async fn voters_are(client: &Client, voters: &[&str]) {
    let until = Instant::now() + DEADLINE;
    loop {
        let s = client.status().await.expect("status");
        if let Some(v) = &s.voting
            && v.joining.is_empty()
            && v.voters == voters
        {
            return;
        }
        assert!(
            Instant::now() < until,
            "voters are {:?}, not {voters:?} ({})",
            s.voting,
            s.voting_pending
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_fourth_node_joins_as_a_voter_and_member_remove_of_a_killed_one_keeps_the_cluster_committing() {
    let cluster = Cluster::new(4);
    // The first three form a cluster of three; the fourth joins it later,
    // seeded with them.
    let start = |i: usize| {
        let mut args = vec![
            "--node-id".to_string(),
            format!("node-{i}"),
            "--peers".into(),
        ];
        args.extend(
            (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("127.0.0.1:{}", cluster.ports[j])),
        );
        args.extend(["--port".to_string(), cluster.ports[i].to_string()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::start_as(
            cluster.node_cert(i),
            &cluster.certs.ca,
            &cluster.data_dir(i),
            &refs,
        )
    };
    let mut nodes: Vec<Option<Proc>> = (0..3).map(|i| Some(start(i))).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        for i in 0..3 {
            common::formed(&cluster.client(i).await, 3).await;
        }
    });
    nodes.push(Some(start(3)));
    let joined = rt.block_on(async {
        let c0 = cluster.client(0).await;
        tokio::time::timeout(
            DEADLINE,
            voters_are(&c0, &["node-0", "node-1", "node-2", "node-3"]),
        )
        .await
    });
    if joined.is_err() {
        let log = nodes[3].as_ref().map(Proc::log_text).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("voting") || l.contains("voter") || l.contains("joint"))
            .collect();
        panic!("node-3 did not become a voter:\n{}", lines.join("\n"));
    }
    rt.block_on(async {
        let c0 = cluster.client(0).await;
        for i in 0..5 {
            let r = c0
                .compare_and_set(format!("k{i}"), Expect::Absent, Some(b"v".to_vec()))
                .await
                .expect("cas");
            assert!(r.applied);
        }
    });
    if let Some(p) = nodes[3].take() {
        p.kill9();
    }
    let out = common::ctl_script(
        &cluster.addr(0),
        &cluster.certs.client,
        "member remove node-3\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "OK removed node-3: voters node-0, node-1, node-2, node-3 -> node-0, node-1, node-2"
        ),
        "{stdout}"
    );
    if let Some(p) = nodes[2].take() {
        p.kill9();
    }
    rt.block_on(async {
        let c1 = cluster.client(1).await;
        voters_are(&c1, &["node-0", "node-1", "node-2"]).await;
        // Two of the three voters left: still a majority.
        for i in 0..5 {
            let r = c1
                .compare_and_set(
                    format!("k{i}"),
                    Expect::Value(b"v".to_vec()),
                    Some(b"w".to_vec()),
                )
                .await
                .expect("cas with node-2 and node-3 gone");
            assert!(r.applied, "k{i} kept its value through the change: {r:?}");
        }
    });
}

#[test]
fn a_wiped_voter_does_not_vote_with_its_lost_promises_and_is_re_added_afresh() {
    let cluster = Cluster::new(3);
    let mut nodes: Vec<Option<Proc>> = (0..3).map(|i| Some(cluster.start(i))).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        for i in 0..3 {
            common::formed(&cluster.client(i).await, 3).await;
        }
        let c = cluster.client(0).await;
        for i in 0..5 {
            let r = c
                .compare_and_set(format!("k{i}"), Expect::Absent, Some(b"v".to_vec()))
                .await
                .expect("cas");
            assert!(r.applied);
        }
    });
    if let Some(p) = nodes[2].take() {
        p.kill9();
    }
    std::fs::remove_dir_all(cluster.data_dir(2)).expect("wipe node-2");
    nodes[2] = Some(cluster.start(2));
    let log = rt.block_on(async {
        let c2 = cluster.client(2).await;
        common::serving(&c2).await;
        // It is voted out (its old vote is void), then back in afresh.
        voters_are(&c2, &["node-0", "node-1"]).await;
        voters_are(&c2, &["node-0", "node-1", "node-2"]).await;
        nodes[2].as_ref().map(Proc::log_text).unwrap_or_default()
    });
    assert!(log.contains("this store is new"), "the forfeit is logged");
    if let Some(p) = nodes[0].take() {
        p.kill9();
    }
    rt.block_on(async {
        let c1 = cluster.client(1).await;
        for i in 0..5 {
            let r = c1
                .compare_and_set(
                    format!("k{i}"),
                    Expect::Value(b"v".to_vec()),
                    Some(b"w".to_vec()),
                )
                .await
                .expect("cas with node-1 and the re-added node-2");
            assert!(r.applied, "k{i} kept its value: {r:?}");
        }
    });
}

/// Waits until every node reports at most `most` per-key consensus records.
async fn collected_to(clients: &[Client], nodes: &[Proc], most: u64) -> Vec<u64> {
    let until = Instant::now() + DEADLINE;
    loop {
        let mut held = Vec::new();
        for c in clients {
            held.push(c.status().await.expect("status").paxos_records);
        }
        if held.iter().all(|n| *n <= most) {
            return held;
        }
        if Instant::now() >= until {
            // What the collections said, for the failure report.
            let said: Vec<String> = nodes
                .iter()
                .flat_map(|n| {
                    n.log_text()
                        .lines()
                        .filter(|l| {
                            l.contains("collect") || l.contains("settle") || l.contains("keeps")
                        })
                        .rev()
                        .take(6)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            panic!(
                "per-key consensus state not collected within {DEADLINE:?}: {held:?} records held\n{}",
                said.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn per_key_consensus_state_is_collected_once_every_voter_committed_and_the_values_stay() {
    let cluster = Cluster::new(3);
    let nodes: Vec<Proc> = (0..3)
        .map(|i| cluster.start_with(i, &["--paxos-gc-after", "2s"]))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut clients = Vec::new();
        for i in 0..3 {
            let c = cluster.client(i).await;
            common::formed(&c, 3).await;
            clients.push(c);
        }
        // 30 keys decided by consensus through all three nodes, one deleted.
        // Records younger than 2 s are never collected, so the count must
        // climb while they are written.
        let mut most_held = 0;
        for k in 0..30 {
            let c = &clients[k % 3];
            let key = format!("gc/{k}");
            let r = c
                .compare_and_set(key.as_str(), Expect::Absent, Some(b"1".to_vec()))
                .await
                .expect("cas");
            assert!(r.applied, "{key}");
            let r = c
                .compare_and_set(
                    key.as_str(),
                    Expect::Value(b"1".to_vec()),
                    Some(b"2".to_vec()),
                )
                .await
                .expect("cas");
            assert!(r.applied, "{key}");
            let held = clients[0].status().await.expect("status").paxos_records;
            most_held = most_held.max(held);
        }
        clients[1]
            .delete_with("gc/7", Some(Consistency::Serial))
            .await
            .expect("serial delete");
        assert!(
            most_held >= 5,
            "records are held first: at most {most_held}"
        );
        collected_to(&clients, &nodes, 0).await;
        // What consensus decided survives collection, and consensus goes on.
        for k in 0..30 {
            let key = format!("gc/{k}");
            let want = (k != 7).then(|| b"2".to_vec());
            for c in &clients {
                assert_eq!(serial_get(c, &key).await, want, "{key}");
            }
        }
        let r = clients[2]
            .compare_and_set("gc/3", Expect::Value(b"2".to_vec()), Some(b"3".to_vec()))
            .await
            .expect("cas after collection");
        assert!(r.applied);
        let r = clients[0]
            .compare_and_set("gc/3", Expect::Value(b"2".to_vec()), Some(b"4".to_vec()))
            .await
            .expect("stale cas after collection");
        assert!(
            !r.applied,
            "a collected key still refuses a stale expectation"
        );
        assert_eq!(r.value.as_deref(), Some(&b"3"[..]));
    });
}
