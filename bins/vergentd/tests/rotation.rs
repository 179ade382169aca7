//! Certificate rotation without downtime on a real `vergentd`: replace the
//! node's certificate and key files, send SIGHUP, and new connections see the
//! new serial while an established connection and clients connecting
//! throughout never see a request fail; files that fail a check are refused
//! and the node keeps its certificate; a change of the files alone (no
//! signal) is picked up too.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Certs, DEADLINE, Proc, signal};
use vergent_tls::{Identity, TlsFiles};

/// The serial (hex) of the certificate the node presents to a new
/// connection: a full mutual-TLS handshake with the client certificate.
fn presented_serial(addr: &str, client: &TlsFiles) -> String {
    vergent_tls::install_default_provider();
    let identity = Identity::load(client).expect("client identity");
    let config = vergent_tls::client_config(&identity, &[b"h2"]).expect("client config");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client conn");
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake");
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the node presents a certificate");
    vergent_tls::inspect(leaf.as_ref())
        .expect("parse")
        .serial_hex
}

fn serial_of(cert: &Path) -> String {
    vergent_tls::inspect(&std::fs::read(cert).expect("read cert"))
        .expect("parse")
        .serial_hex
}

/// Replaces `live`'s certificate and key with `new`'s, each by an atomic
/// rename (the key first: a node that looks in between sees a pair that
/// does not match, refuses it, and keeps its certificate).
fn install(new: &TlsFiles, live: &TlsFiles) {
    for (from, to) in [(&new.key, &live.key), (&new.cert, &live.cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).expect("copy");
        std::fs::rename(&tmp, to).expect("rename");
    }
}

/// Waits until new connections see `serial`.
fn wait_serial(addr: &str, client: &TlsFiles, serial: &str) {
    let until = Instant::now() + DEADLINE;
    loop {
        let now = presented_serial(addr, client);
        if now == serial {
            return;
        }
        assert!(
            Instant::now() < until,
            "still presenting {now}, not {serial}, after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_rotated_certificate_is_presented_to_new_connections_after_sighup_and_no_request_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let live_dir = tmp.path().join("live");
    std::fs::create_dir_all(&live_dir).expect("live dir");
    let live = TlsFiles {
        cert: live_dir.join("node.crt"),
        key: live_dir.join("node.key"),
        ca: certs.ca.clone(),
    };
    install(&certs.node, &live);
    let node = Proc::start_as(&live, &certs.ca, &tmp.path().join("data"), &[]);
    let first = presented_serial(&node.addr, &certs.client);
    assert_eq!(first, serial_of(&certs.node.cert));

    // Load throughout: one established connection writing, and a new
    // connection for every request of another task.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        let (addr, client) = (node.addr.clone(), certs.client.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let connect = || async {
                    let mut c = vergent_client::ClientConfig::new(addr.clone(), client.clone());
                    c.request_timeout = Duration::from_secs(10);
                    vergent_client::Client::connect(c).await
                };
                let held = connect().await.expect("connect");
                let mut i = 0u64;
                // Bounded in count and time.
                let until = Instant::now() + DEADLINE;
                while !stop.load(Ordering::Relaxed) && i < 100_000 && Instant::now() < until {
                    i += 1;
                    let fresh = async { connect().await?.put(format!("new-{i}"), "v").await };
                    let (a, b) = tokio::join!(held.put(format!("held-{i}"), "v"), fresh);
                    for r in [a.map(|_| ()), b.map(|_| ())] {
                        match r {
                            Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                eprintln!("request failed during rotation: {e}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                }
                // Its runtime ends with this thread: check it here.
                held.put("after", "v").await.map(|_| ())
            })
        })
    };

    let name = vergent_tls::inspect(&std::fs::read(&certs.node.cert).expect("read"))
        .expect("parse")
        .subject_cn
        .expect("a CN");
    let rotated = certs.node_cert(&name);
    let rotated_serial = serial_of(&rotated.cert);
    assert_ne!(rotated_serial, first);
    install(&rotated, &live);
    signal(node.pid(), "HUP");
    wait_serial(&node.addr, &certs.client, &rotated_serial);
    assert!(
        common::wait_log(&node.log, Duration::from_secs(10), |l| l
            .contains("reloaded the TLS certificate")
            && l.contains(&rotated_serial)),
        "{}",
        node.log_text()
    );

    // A client certificate cannot serve: refused, the node keeps the one it has.
    install(&certs.client, &live);
    signal(node.pid(), "HUP");
    assert!(
        common::wait_log(&node.log, Duration::from_secs(10), |l| l
            .contains("TLS reload refused")),
        "{}",
        node.log_text()
    );
    assert_eq!(presented_serial(&node.addr, &certs.client), rotated_serial);

    // A change of the files alone is picked up (the files are polled).
    let again = certs.node_cert(&name);
    let again_serial = serial_of(&again.cert);
    install(&again, &live);
    wait_serial(&node.addr, &certs.client, &again_serial);

    stop.store(true, Ordering::Relaxed);
    load.join()
        .expect("load thread")
        .expect("the connection made before the rotations still works");
    assert!(done.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no client request may fail during a rotation"
    );
}
