//! Real `vergentd` processes replicating on 127.0.0.1: convergence, `kill -9`
//! of a node under writes, live watch of remote writes, and refusal of peers
//! that are not cluster nodes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, Proc, bin, ctl_script, wait_log};
use vergent_client::{Client, Entry};

const DEADLINE: Duration = Duration::from_secs(60);

async fn converge(clients: &[Client], expect: usize) -> Vec<Entry> {
    vergent_testkit::converge(clients, expect, DEADLINE).await
}

#[test]
fn three_processes_writing_everywhere_end_with_identical_contents() {
    let cluster = Cluster::new(3);
    let _nodes: Vec<Proc> = (0..3).map(|i| cluster.start(i)).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        for (i, c) in clients.iter().enumerate() {
            for k in 0..100 {
                c.put(format!("n{i}/{k}"), format!("{i}-{k}"))
                    .await
                    .expect("put");
            }
            c.put("contended", format!("{i}")).await.expect("put");
            c.delete(format!("n{i}/0")).await.expect("delete");
        }
        converge(&clients, 3 * 99 + 1).await;
    });
}

#[test]
fn kill_9_of_a_node_under_writes_loses_nothing_and_it_catches_up_on_restart() {
    let cluster = Cluster::new(3);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Writes acknowledged by C just before it is killed.
    let acked_on_c = rt.block_on(async {
        let cc = cluster.client(2).await;
        let mut acked = Vec::new();
        for k in 0..100 {
            acked.push((
                format!("c{k}"),
                cc.put(format!("c{k}"), "from-c").await.expect("put"),
            ));
        }
        acked
    });
    c.kill9();
    rt.block_on(async {
        let (ca, cb) = (cluster.client(0).await, cluster.client(1).await);
        for k in 0..500 {
            ca.put(format!("a{k}"), "x").await.expect("put");
            cb.put(format!("b{k}"), "y").await.expect("put");
        }
    });
    let _c = cluster.start(2);
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        let state = converge(&clients, 1100).await;
        for (key, version) in &acked_on_c {
            let e = state
                .iter()
                .find(|e| e.key == key.as_bytes())
                .unwrap_or_else(|| panic!("{key}, acknowledged by the killed node, is lost"));
            assert_eq!(&e.version, version);
        }
    });
    drop((a, b));
}

#[test]
fn vergentctl_watch_on_one_node_prints_a_put_made_on_another() {
    let cluster = Cluster::new(2);
    let _a = cluster.start(0);
    let _b = cluster.start(1);
    let tls = &cluster.certs.client;
    let mut watch = Command::new(bin("vergentctl"))
        .args(["connect", &cluster.addr(1), "--tls-certfile"])
        .arg(&tls.cert)
        .arg("--tls-keyfile")
        .arg(&tls.key)
        .arg("--tls-cafile")
        .arg(&tls.ca)
        .args(["-e", "watch app/"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The watch is registered once its "watching" banner is on stderr; until
    // then, keep writing fresh keys so one of them is seen.
    let start = Instant::now();
    let mut seen = None;
    let mut n = 0;
    while seen.is_none() && start.elapsed() < DEADLINE {
        n += 1;
        let out = ctl_script(&cluster.addr(0), tls, &format!("put app/k{n} hello-{n}\n"));
        assert!(out.status.success());
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            seen = Some(line);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let line = seen.expect("watch on node B printed the put made on node A");
    assert!(line.starts_with("PUT app/k"), "{line}");
    assert!(
        line.contains("origin=node-0") && line.ends_with("remote"),
        "{line}"
    );
}

#[test]
fn a_peer_with_a_client_only_certificate_is_refused_and_logged() {
    let cluster = Cluster::new(2);
    let a = cluster.start(0);
    // vergentd itself refuses to start with a client certificate (smoke.rs),
    // so the impostor is a bare peer transport presenting one, dialling A.
    let identity = vergent_tls::Identity::load(&cluster.certs.client).expect("client identity");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Its own side of the handshake may complete (TLS 1.3 clients finish
    // first): what counts is that A refuses it.
    rt.block_on(async {
        let (impostor, _rx) = vergent_transport::Transport::bind(
            "127.0.0.1:0".parse().expect("addr"),
            &identity,
            vergent_transport::TransportConfig::default(),
        )
        .expect("bind");
        let to = cluster.addr(0).parse().expect("addr");
        let _ = impostor
            .send_datagram(to, bytes::Bytes::from_static(b"hello"))
            .await;
    });
    let refused = wait_log(&a.log, DEADLINE, |l| {
        l.contains("refused peer connection") && l.contains("not a node")
    });
    assert!(refused, "node A log:\n{}", a.log_text());
    // Nothing the impostor could have sent reached A (which, alone with
    // its seed never up, is still bootstrapping: status answers, reads not).
    let out = ctl_script(&cluster.addr(0), &cluster.certs.client, "status\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keys:         0\n"), "{text}");
}

#[test]
fn a_peer_with_a_certificate_from_another_ca_is_refused_and_logged() {
    let cluster = Cluster::new(2);
    let a = cluster.start(0);
    let dir = cluster.tmp.path().join("foreign");
    std::fs::create_dir_all(&dir).expect("dir");
    let root = vergent_tls::generate_root_unencrypted(&vergent_tls::RootSpec {
        cn: "Foreign CA".into(),
        days: 30,
    })
    .expect("root");
    let mut spec = vergent_tls::CertSpec::new("foreign", vergent_tls::Role::Node);
    spec.ips = vec!["127.0.0.1".parse().expect("ip")];
    let cert =
        vergent_tls::generate_cert(&root.cert_pem, &root.key_pem, None, &spec).expect("cert");
    let (crt, key, ca) = (dir.join("f.crt"), dir.join("f.key"), dir.join("ca.pem"));
    vergent_tls::write_public(&crt, cert.cert_pem.as_bytes()).expect("write");
    vergent_tls::write_private(&key, cert.key_pem.as_bytes()).expect("write");
    vergent_tls::write_public(&ca, root.cert_pem.as_bytes()).expect("write");
    let port = cluster.ports[1].to_string();
    let peer = cluster.addr(0);
    let data = dir.join("data");
    let (mut child, log) = common::spawn_vergentd(&[
        "--port",
        &port,
        "--data-dir",
        data.to_str().expect("utf8"),
        "--peers",
        &peer,
        "--tls-certfile",
        crt.to_str().expect("utf8"),
        "--tls-keyfile",
        key.to_str().expect("utf8"),
        "--tls-cafile",
        ca.to_str().expect("utf8"),
    ]);
    let refused = wait_log(&a.log, DEADLINE, |l| {
        l.lines().any(|l| {
            l.contains("refused peer connection")
                && (l.contains("UnknownIssuer")
                    || l.contains("unknown issuer")
                    || l.contains("UnknownCA"))
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        refused,
        "node A log:\n{}\nforeign log:\n{}",
        a.log_text(),
        log.lock().expect("log")
    );
}

#[test]
fn a_fourth_node_given_one_seed_appears_in_members_on_every_node() {
    let cluster = Cluster::new(4);
    let _nodes: Vec<Proc> = (0..3).map(|i| cluster.start(i)).collect();
    // The fourth node knows only node 0.
    let data = cluster.tmp.path().join("node-3");
    let port = cluster.ports[3].to_string();
    let seed = cluster.addr(0);
    let _d = Proc::start(
        &cluster.certs,
        &data,
        &["--node-id", "node-3", "--port", &port, "--peers", &seed],
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut clients = Vec::new();
        for i in 0..4 {
            clients.push(cluster.client(i).await);
        }
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let mut all = true;
            for c in &clients {
                let s = c.status().await.expect("status");
                let alive: Vec<&str> = s
                    .members
                    .iter()
                    .filter(|m| m.state == "alive")
                    .map(|m| m.node_id.as_str())
                    .collect();
                all &= (0..4).all(|i| alive.contains(&format!("node-{i}").as_str()));
            }
            if all {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "membership did not converge"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // And it replicates: a write on the newcomer reaches node 1, which
        // never heard of it from the command line.
        let v = clients[3]
            .put("from-the-newcomer", "hi")
            .await
            .expect("put");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(e) = common::get_serving(&clients[1], "from-the-newcomer").await {
                assert_eq!(e.version, v);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "write never replicated"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}
