//! A slow disk must not look like a dead node: while one node's syncs are
//! held up (strace delays every fsync and fdatasync it makes, so its
//! RocksDB flushes crawl and its writes stall), its peers keep seeing it
//! alive, because no storage call runs on the async workers that answer
//! gossip.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

/// How long the disk is stalled.
const STALL: Duration = Duration::from_secs(20);
/// Puts issued during it at most.
const MAX_PUTS: usize = 4_000;

#[test]
fn gossip_keeps_its_timing_while_the_disk_stalls() {
    if Command::new("strace").arg("-V").output().is_err() {
        // `cargo xtask test` installs strace; say so loudly elsewhere.
        panic!("strace is not installed (cargo xtask deps installs it)");
    }
    let cluster = Cluster::with_flags(3, &[]);
    // Without syncs of its own per write, the node's writes fill its
    // memtables quickly, and the flushes that must then sync stall it.
    let a = cluster.start_with(0, &["--fsync", "off"]);
    let b = cluster.start(1);
    let c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let clients = cluster.clients(3).await;
        for cl in &clients {
            common::serving(cl).await;
        }
    });
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-p", &a.pid().to_string()])
        .args(["-e", "trace=fsync,fdatasync"])
        .args(["-e", "inject=fsync,fdatasync:delay_enter=2000000"])
        .stdin(Stdio::null())
        .spawn()
        .expect("attach strace");
    let suspected = rt.block_on(async {
        let ca = cluster.client(0).await;
        let (cb, cc) = (cluster.client(1).await, cluster.client(2).await);
        let until = Instant::now() + STALL;
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let ca = ca.clone();
                tokio::spawn(async move {
                    let value = vec![b'x'; 256 << 10];
                    for i in 0..MAX_PUTS / 16 {
                        if Instant::now() > until {
                            break;
                        }
                        let _ = ca.put(format!("w{w}/{i}"), value.clone()).await;
                    }
                })
            })
            .collect();
        let mut suspected = Vec::new();
        while Instant::now() < until {
            for (name, cl) in [("node-1", &cb), ("node-2", &cc)] {
                if let Ok(s) = cl.status().await
                    && let Some(m) = s.members.iter().find(|m| m.node_id == "node-0")
                    && m.state != "alive"
                {
                    suspected.push(format!("{name} saw node-0 {}", m.state));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for w in writers {
            let _ = w.await;
        }
        suspected
    });
    let _ = strace.kill();
    let _ = strace.wait();
    assert!(
        suspected.is_empty(),
        "a node whose disk stalled was suspected: {suspected:?}\n{}",
        a.log_text()
            .lines()
            .filter(|l| l.contains("WARN"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop((a, b, c));
}
