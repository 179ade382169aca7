//! No remote party can exhaust a node: a real `vergentd` with a lowered
//! file-descriptor limit keeps serving clients while more half-open TCP
//! connections than its limit and thousands of QUIC Initials from sources
//! that never answer hit its port, and its storage never fails for want of
//! a descriptor.

mod common;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{Certs, Proc, capture_initial};
use vergent_client::{Client, ClientConfig};

/// The node's file-descriptor limit in this test.
const NODE_FDS: u64 = 256;
/// Half-open connections held against it: more than its whole limit.
const HALF_OPEN: usize = 600;
/// QUIC Initials sent from sources that never answer.
const INITIALS: usize = 2_000;
/// The longest any single client request may take during the floods; far
/// above normal (a few ms), far below a stuck node (a timeout).
const SLOW: Duration = Duration::from_secs(2);

/// Connects a fresh client and times a put and a get through it.
async fn timed_round(addr: &str, certs: &Certs, round: usize) -> Duration {
    let start = Instant::now();
    let mut cfg = ClientConfig::new(addr.to_string(), certs.client.clone());
    cfg.request_timeout = Duration::from_secs(10);
    let client = Client::connect(cfg)
        .await
        .expect("connect during the flood");
    let key = format!("k{round}");
    client.put(key.clone(), "v").await.expect("put");
    assert!(client.get(key).await.expect("get").is_some());
    start.elapsed()
}

#[test]
fn half_open_connections_beyond_the_fd_limit_and_quic_initials_leave_the_node_serving() {
    // This process holds the half-open connections itself.
    let _ = rlimit::increase_nofile_limit(4 * HALF_OPEN as u64);
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let port = vergent_testkit::free_ports(1)[0];
    let node = Proc::start_with_fd_limit(
        &certs,
        &tmp.path().join("data"),
        &["--port", &port.to_string()],
        NODE_FDS,
    );
    let addr = format!("127.0.0.1:{port}");
    let initial = capture_initial(&certs.node);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let before: Vec<Duration> = rt.block_on(async {
        let mut t = Vec::new();
        for i in 0..5 {
            t.push(timed_round(&addr, &certs, i).await);
        }
        t
    });
    // Connections that never send a TLS ClientHello.
    let half_open: Vec<TcpStream> = (0..HALF_OPEN)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert_eq!(half_open.len(), HALF_OPEN, "could not open the flood");
    let quic = std::thread::spawn({
        let initial = initial.clone();
        let target: SocketAddr = addr.parse().expect("addr");
        move || {
            for _ in 0..INITIALS {
                // Each from its own source port, never answering a reply.
                let s = UdpSocket::bind("127.0.0.1:0").expect("source");
                let _ = s.send_to(&initial, target);
            }
        }
    });
    let during: Vec<Duration> = rt.block_on(async {
        let mut t = Vec::new();
        for i in 0..20 {
            t.push(timed_round(&addr, &certs, 100 + i).await);
        }
        t
    });
    quic.join().expect("quic flood");
    drop(half_open);
    let after: Vec<Duration> = rt.block_on(async {
        let mut t = Vec::new();
        for i in 0..5 {
            t.push(timed_round(&addr, &certs, 200 + i).await);
        }
        t
    });
    let worst = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    eprintln!(
        "connect+put+get: before {:?}, during the floods {:?} (worst), after {:?}",
        worst(&before),
        worst(&during),
        worst(&after)
    );
    for (phase, v) in [("during", &during), ("after", &after)] {
        assert!(
            worst(v) < SLOW,
            "a client round took {:?} {phase} the floods",
            worst(v)
        );
    }
    // Not one descriptor short, anywhere: accept, storage or the transport.
    let log = node.log_text();
    assert!(
        !log.contains("Too many open files") && !log.contains("storage failed"),
        "the node ran out of file descriptors or storage failed:\n{}",
        log.lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
