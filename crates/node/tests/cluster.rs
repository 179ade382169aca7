//! Three in-process nodes replicating over real QUIC on 127.0.0.1 with static
//! `--peers`: writes anywhere reach every node, a stopped node catches up from
//! its cursor, and watchers see remote writes.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use vergent_client::{Client, ClientConfig, Entry};
use vergent_node::{Node, NodeConfig, NodeHandle};
use vergent_testkit::free_ports;
use vergent_tls::TlsFiles;
use vergent_types::NodeId;

const DEADLINE: Duration = Duration::from_secs(60);

struct Cluster {
    dir: tempfile::TempDir,
    node_tls: TlsFiles,
    client_tls: TlsFiles,
    ports: Vec<u16>,
}

impl Cluster {
    fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // One certificate shared by every node, as the README allows: node
        // ids keep them apart.
        let certs = vergent_testkit::unencrypted_certs(&dir.path().join("certs"), "node");
        Self {
            dir,
            node_tls: certs.node,
            client_tls: certs.client,
            ports: free_ports(n),
        }
    }

    fn config(&self, i: usize) -> NodeConfig {
        let listen = SocketAddr::from(([127, 0, 0, 1], self.ports[i]));
        let mut c = NodeConfig::new(
            self.dir.path().join(format!("node-{i}")),
            listen,
            self.node_tls.clone(),
        );
        c.node_id = Some(NodeId::new(format!("node-{i}")).expect("id"));
        c.peers = self
            .ports
            .iter()
            .filter(|p| **p != self.ports[i])
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        c
    }

    async fn start(&self, i: usize) -> NodeHandle {
        Node::start(self.config(i)).await.expect("node starts")
    }

    /// Restarts node `i` on its old port: the previous endpoint releases the
    /// UDP socket asynchronously, so binding may briefly fail.
    async fn restart(&self, i: usize) -> NodeHandle {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match Node::start(self.config(i)).await {
                Ok(n) => return n,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "restart failed: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn client(&self, i: usize) -> Client {
        let mut c = ClientConfig::new(
            format!("127.0.0.1:{}", self.ports[i]),
            self.client_tls.clone(),
        );
        c.request_timeout = Duration::from_secs(30);
        Client::connect(c).await.expect("connect")
    }
}

async fn converge(clients: &[Client], expect: usize) -> Vec<Entry> {
    vergent_testkit::converge(clients, expect, DEADLINE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_every_node_reach_every_node_with_identical_versions() {
    let cluster = Cluster::new(3);
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(cluster.start(i).await);
    }
    let clients = [
        cluster.client(0).await,
        cluster.client(1).await,
        cluster.client(2).await,
    ];
    for (i, c) in clients.iter().enumerate() {
        for k in 0..50 {
            c.put(format!("n{i}/k{k}"), format!("v{k}"))
                .await
                .expect("put");
        }
        // Conflicting writes to one shared key from every node.
        c.put("shared", format!("from-{i}")).await.expect("put");
    }
    clients[0].delete("n0/k0").await.expect("delete");
    let state = converge(&clients, 3 * 50 - 1 + 1).await;
    // Last writer wins, identically everywhere.
    let shared = state
        .iter()
        .find(|e| e.key == b"shared")
        .expect("shared key");
    assert!(shared.value.starts_with(b"from-"));
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_catches_up_from_its_cursor_after_restart() {
    let cluster = Cluster::new(3);
    let a = cluster.start(0).await;
    let b = cluster.start(1).await;
    let c = cluster.start(2).await;
    let ca = cluster.client(0).await;
    ca.put("before", "1").await.expect("put");
    c.shutdown().await;
    let cb = cluster.client(1).await;
    for k in 0..200 {
        ca.put(format!("a{k}"), "x").await.expect("put");
        cb.put(format!("b{k}"), "y").await.expect("put");
    }
    let c = cluster.restart(2).await;
    let cc = cluster.client(2).await;
    converge(&[ca, cb, cc], 401).await;
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_one_node_shows_a_put_made_on_another_as_remote() {
    let cluster = Cluster::new(2);
    let a = cluster.start(0).await;
    let b = cluster.start(1).await;
    let (ca, cb) = (cluster.client(0).await, cluster.client(1).await);
    let mut watch = cb.watch("w/").await.expect("watch");
    let version = ca.put("w/x", "hello").await.expect("put");
    let ev = tokio::time::timeout(DEADLINE, watch.next())
        .await
        .expect("event before the deadline")
        .expect("stream open")
        .expect("event");
    assert_eq!(ev.key, b"w/x");
    assert_eq!(ev.value.as_deref(), Some(&b"hello"[..]));
    assert_eq!(ev.version, version);
    assert!(!ev.local, "a replicated write is remote");
    assert_eq!(ev.version.origin.as_str(), "node-0");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_truncated_once_every_peer_acknowledged_it() {
    let cluster = Cluster::new(2);
    let a = cluster.start(0).await;
    let b = cluster.start(1).await;
    let ca = cluster.client(0).await;
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let ca = ca.clone();
            tokio::spawn(async move {
                for k in 0..700 {
                    ca.put(format!("t{t}/{k}"), "v").await.expect("put");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let s = ca.status().await.expect("status");
        let caught_up = s
            .replication
            .iter()
            .any(|(id, cursor, lag)| id == "node-1" && *cursor == s.log_last_seq && *lag == 0);
        if caught_up && s.log_first_seq > 1 {
            assert_eq!(s.log_last_seq, 2800);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log not truncated: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}
