//! Backup and restore on real processes: `vergentctl backup` of a live
//! node, `vergentd restore` into a new data dir, the restored node as the
//! first node of a new cluster that a fresh node joins, and the guards that
//! keep a restored node away from the cluster it was taken from.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, Proc, spawn_vergentd, wait_output};
use vergent_client::{Client, Consistency, Expect, StoredRecord};

const DEADLINE: Duration = Duration::from_secs(60);

fn ctl_backup(cluster: &Cluster, node: usize, out: &std::path::Path) -> std::process::Output {
    let tls = &cluster.certs.client;
    Command::new(common::bin("vergentctl"))
        .arg("backup")
        .arg("--out")
        .arg(out)
        .args(["--endpoints", &cluster.addr(node)])
        .arg("--tls-certfile")
        .arg(&tls.cert)
        .arg("--tls-keyfile")
        .arg(&tls.key)
        .arg("--tls-cafile")
        .arg(&tls.ca)
        .output()
        .expect("run vergentctl backup")
}

fn restore(from: &std::path::Path, data_dir: &std::path::Path, id: &str) -> std::process::Output {
    Command::new(common::bin("vergentd"))
        .arg("restore")
        .arg("--from")
        .arg(from)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--node-id", id])
        .output()
        .expect("run vergentd restore")
}

async fn client_of(cluster: &Cluster, addr: &str) -> Client {
    let mut c = vergent_client::ClientConfig::new(addr.to_string(), cluster.certs.client.clone());
    c.request_timeout = Duration::from_secs(30);
    Client::connect(c).await.expect("connect")
}

/// Every record of `client`'s node once `ok` holds for it.
async fn records_when(client: &Client, ok: impl Fn(&[StoredRecord]) -> bool) -> Vec<StoredRecord> {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Ok(r) = client.scan_all_records("").await
            && ok(&r)
        {
            return r;
        }
        assert!(
            Instant::now() < until,
            "condition not met within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_as_a_new_cluster_with_every_record_and_version_and_never_rejoins_the_old_one()
 {
    let cluster = Cluster::with_flags(3, &["--repair-interval", "1s"]);
    let _nodes: Vec<Proc> = (0..3).map(|i| cluster.start(i)).collect();
    let c0 = cluster.client(0).await;
    common::formed(&c0, 3).await;
    common::load(&c0, "k/", 200).await;
    for i in 0..10 {
        c0.delete(format!("k/{i:06}")).await.expect("delete");
    }
    let cas = c0
        .compare_and_set("cas/x", Expect::Absent, Some(b"1".to_vec()))
        .await
        .expect("cas");
    assert!(cas.applied);
    // The node's records as the backup must hold them (nothing writes in
    // between).
    let at_backup = c0.scan_all_records("").await.expect("dump");
    assert_eq!(at_backup.len(), 201);

    let backup_dir = cluster.tmp.path().join("backup");
    let out = ctl_backup(&cluster, 0, &backup_dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("backup of node node-0"),
        "{}",
        text(&out)
    );
    assert!(backup_dir.join("vergent-backup.txt").exists());
    // A second backup into the same (now full) directory is refused.
    let again = ctl_backup(&cluster, 0, &backup_dir);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    // The old cluster moves on: a delete and writes the backup lacks.
    c0.delete("k/000010").await.expect("delete after");
    c0.put("new/after", "x").await.expect("put after");

    // An id of the old cluster is refused; a new one restores.
    let refused = restore(&backup_dir, &cluster.tmp.path().join("r-bad"), "node-1");
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("belongs to the cluster the backup was taken from"),
        "{}",
        text(&refused)
    );
    let data = cluster.tmp.path().join("r-0");
    let out = restore(&backup_dir, &data, "r-0");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("refuses the old cluster's nodes: node-0, node-1, node-2"),
        "{}",
        text(&out)
    );

    // Its first start must be alone.
    let ports = vergent_testkit::free_ports(2);
    let (r_port, n_port) = (ports[0].to_string(), ports[1].to_string());
    let certs = &cluster.certs;
    let node_args = |dir: &std::path::Path, port: &str, extra: &[String]| -> Vec<String> {
        let mut a = vec![
            "--port".to_string(),
            port.to_string(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--tls-certfile".into(),
            certs.node.cert.display().to_string(),
            "--tls-keyfile".into(),
            certs.node.key.display().to_string(),
            "--tls-cafile".into(),
            certs.ca.display().to_string(),
            "--repair-interval".into(),
            "1s".into(),
        ];
        a.extend(extra.iter().cloned());
        a
    };
    let with_old_peer = node_args(&data, &r_port, &["--peers".into(), cluster.addr(0)]);
    let refs: Vec<&str> = with_old_peer.iter().map(String::as_str).collect();
    let (child, log) = spawn_vergentd(&refs);
    let status = wait_output(child, DEADLINE).status;
    let log = log.lock().expect("log").clone();
    assert!(!status.success(), "{log}");
    assert!(log.contains("Start it without --peers"), "{log}");

    // Alone: every record and version of the backup, nothing after it.
    let r = Proc::start(
        certs,
        &data,
        &["--port", &r_port, "--repair-interval", "1s"],
    );
    let cr = client_of(&cluster, &r.addr).await;
    let restored = records_when(&cr, |_| true).await;
    assert_eq!(restored, at_backup);
    // Strong operations work on the new cluster's own configuration, and
    // see the value decided before the backup.
    let until = Instant::now() + DEADLINE;
    let serial = loop {
        match cr.get_with("cas/x", Some(Consistency::Serial)).await {
            Ok(v) => break v,
            Err(e) => assert!(Instant::now() < until, "serial get: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(serial.map(|e| e.value), Some(b"1".to_vec()));

    // A fresh node joins the new cluster and gets everything.
    let n_data = cluster.tmp.path().join("n-1");
    let joiner = Proc::start(
        certs,
        &n_data,
        &[
            "--port",
            &n_port,
            "--node-id",
            "n-1",
            "--repair-interval",
            "1s",
            "--peers",
            &r.addr,
        ],
    );
    let cn = client_of(&cluster, &joiner.addr).await;
    records_when(&cn, |recs| recs == restored.as_slice()).await;

    // Restarted with the old cluster as its peer (an operator's slip), the
    // restored node refuses its nodes, and neither side takes the other's
    // data. (The refusal is the restored node's own: a node of the new
    // cluster pointed at the old one would not refuse it; see
    // docs/operations.md.)
    joiner.terminate(DEADLINE);
    r.terminate(DEADLINE);
    let r = Proc::start(
        certs,
        &data,
        &[
            "--port",
            &r_port,
            "--repair-interval",
            "1s",
            "--peers",
            &cluster.addr(0),
        ],
    );
    assert!(
        common::wait_log(&r.log, DEADLINE, |l| l
            .contains("belongs to the cluster this node's data was restored from")),
        "{}",
        r.log_text()
    );
    // Three repair rounds of both sides after the first refusal.
    let settle = Instant::now() + Duration::from_secs(4);
    let cr = client_of(&cluster, &r.addr).await;
    while Instant::now() < settle {
        let s = cr.status().await.expect("status");
        assert!(
            s.members.iter().all(|m| !m.node_id.starts_with("node-")),
            "the restored node took a node of the old cluster as a member: {:?}",
            s.members
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(cr.get("new/after").await.expect("get"), None);
    let k10 = cr.get("k/000010").await.expect("get");
    assert!(k10.is_some(), "the restored node keeps its own k/000010");
    assert_eq!(
        c0.get("k/000010").await.expect("get"),
        None,
        "a key deleted on the old cluster after the backup came back there"
    );
}
