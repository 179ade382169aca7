//! Real `vergentd` and `vergentctl` processes on loopback: the shell through a
//! pipe, TLS refusals, crash durability, the data dir lock and shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Certs, Proc, ctl_script, spawn_vergentd, wait_log};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn shell_through_a_pipe_puts_gets_deletes_scans_and_shows_versions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let node = Proc::start(&certs, &tmp.path().join("data"), &["--node-id", "node-a"]);
    let script = "\
put foo bar
get foo
getv foo
get -v foo
put \"greeting key\" \"hello world\"
get \"greeting key\"
scan
scan gree
delete foo
get foo
status
";
    let out = ctl_script(&node.addr, &certs.client, script);
    let text = stdout(&out);
    // The `get foo` after the delete finds nothing: exit code 1, and every
    // line ran (the status below is the last).
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{text}\nstderr:\n{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("OK hlc=20"), "{text}");
    assert_eq!(lines[1], "bar");
    assert_eq!(lines[2], "bar");
    assert!(
        lines[3].starts_with("hlc=20") && lines[3].ends_with("origin=node-a consistency=ONE"),
        "{text}"
    );
    assert_eq!(lines[4], "bar");
    assert!(
        lines[5].starts_with("hlc=") && lines[5].contains("origin=node-a"),
        "{text}"
    );
    assert!(lines[6].starts_with("OK hlc="), "{text}");
    assert_eq!(lines[7], "hello world");
    assert_eq!(lines[8], "foo\tbar");
    assert_eq!(lines[9], "greeting key\thello world");
    assert_eq!(lines[10], "(2 entries)");
    assert_eq!(lines[11], "greeting key\thello world");
    assert_eq!(lines[12], "(1 entry)");
    assert!(lines[13].starts_with("OK hlc="), "{text}");
    assert_eq!(lines[14], "(nil)");
    assert!(text.contains("node_id:      node-a"), "{text}");
    assert!(text.contains("keys:         1"), "{text}");
    // The default 32 MiB block cache, as the storage engine reports it.
    assert!(
        text.lines()
            .any(|l| l.starts_with("memory:       memtables ") && l.contains(" of 32.00 MiB")),
        "{text}"
    );
    // Versions grow: the delete is stamped above the put it overwrote.
    let put_hlc: vergent_hlc::Timestamp = lines[0]["OK hlc=".len()..].parse().expect("hlc parses");
    let del_hlc: vergent_hlc::Timestamp = lines[13]["OK hlc=".len()..].parse().expect("hlc parses");
    assert!(del_hlc > put_hlc);
}

#[test]
fn bad_input_gets_one_line_errors_the_shell_continues_and_the_exit_code_is_nonzero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let node = Proc::start(
        &certs,
        &tmp.path().join("data"),
        &["--max-value-bytes", "16"],
    );
    let script = "\
put \"\" x
put k 0123456789abcdefX
put k \"unterminated
frobnicate
put k fine
get k
";
    let out = ctl_script(&node.addr, &certs.client, script);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{text}\nstderr:\n{err}"
    );
    assert!(err.contains("error: key must not be empty"), "{err}");
    assert!(
        err.contains("error: value is 17 bytes; the limit is 16 bytes"),
        "{err}"
    );
    assert!(err.contains("unbalanced quotes"), "{err}");
    assert!(err.contains("unknown command"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        4,
        "{err}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("OK hlc="), "{text}");
    assert_eq!(lines[1], "fine");
    // The node kept serving and stored nothing for the refused writes.
    let out = ctl_script(&node.addr, &certs.client, "scan\n");
    assert_eq!(stdout(&out), "k\tfine\n(1 entry)\n");
}

/// Opens a raw TLS 1.3 connection presenting `identity` (or no certificate)
/// and reports whether the server answered anything at all.
fn server_answers_raw_tls(
    addr: &str,
    ca: &std::path::Path,
    identity: Option<&vergent_tls::TlsFiles>,
) -> bool {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    vergent_tls::install_default_provider();
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = std::fs::read(ca).expect("read ca");
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(cert.expect("ca pem")).expect("add root");
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let chain = CertificateDer::pem_file_iter(&files.cert)
                .expect("cert pem")
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            let key = PrivateKeyDer::from_pem_file(&files.key).expect("key pem");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("conn");
    let mut tcp = std::net::TcpStream::connect(addr).expect("tcp connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    // The HTTP/2 preface; a server that accepted us answers with SETTINGS.
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let mut buf = [0u8; 64];
    matches!(tls.read(&mut buf), Ok(n) if n > 0)
}

#[test]
fn the_server_refuses_foreign_ca_expired_and_missing_client_certificates_and_logs_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let node = Proc::start(&certs, &tmp.path().join("data"), &[]);
    // The probe itself is sound: a good client certificate is served.
    assert!(server_answers_raw_tls(
        &node.addr,
        &certs.ca,
        Some(&certs.client)
    ));
    assert!(!server_answers_raw_tls(
        &node.addr,
        &certs.ca,
        Some(&certs.other_ca_client)
    ));
    assert!(!server_answers_raw_tls(
        &node.addr,
        &certs.ca,
        Some(&certs.expired_client)
    ));
    assert!(!server_answers_raw_tls(&node.addr, &certs.ca, None));
    assert!(
        wait_log(&node.log, Duration::from_secs(10), |l| {
            l.matches("refused TLS connection").count() >= 3
        }),
        "{}",
        node.log_text()
    );
    let log = node.log_text();
    for reason in [
        "UnknownIssuer",
        "certificate expired",
        "peer sent no certificates",
    ] {
        assert!(log.contains(reason), "no {reason} in log:\n{log}");
    }
}

#[test]
fn vergentctl_with_a_bad_certificate_exits_3_with_a_clear_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let node = Proc::start(&certs, &tmp.path().join("data"), &[]);
    for (files, want) in [
        (&certs.other_ca_client, "not issued by the CA"),
        (&certs.expired_client, "cannot connect"),
    ] {
        let out = ctl_script(&node.addr, files, "put stolen yes\n");
        assert_eq!(out.status.code(), Some(3), "{want}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
    }
    let out = ctl_script(&node.addr, &certs.client, "get stolen\n");
    assert_eq!(stdout(&out), "(nil)\n");
}

#[test]
fn acknowledged_writes_survive_kill_9_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let data = tmp.path().join("data");
    let node = Proc::start(&certs, &data, &["--fsync", "off"]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let acked: Vec<(String, vergent_client::Version)> = rt.block_on(async {
        let client = vergent_client::Client::connect(vergent_client::ClientConfig::new(
            node.addr.clone(),
            certs.client.clone(),
        ))
        .await
        .expect("connect");
        let mut tasks = Vec::new();
        for t in 0..8 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..50 {
                    let key = format!("k{t}-{i}");
                    let v = client
                        .put(key.clone(), format!("v{t}-{i}"))
                        .await
                        .expect("put");
                    acked.push((key, v));
                }
                acked
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    // kill -9 right after the last OK, with the policy that never fsyncs:
    // the WAL write before each OK is what must make them survive.
    node.kill9();
    let node = Proc::start(&certs, &data, &[]);
    rt.block_on(async {
        let client = vergent_client::Client::connect(vergent_client::ClientConfig::new(
            node.addr.clone(),
            certs.client.clone(),
        ))
        .await
        .expect("reconnect");
        for (key, version) in &acked {
            let e = client
                .get(key.clone())
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("{key} lost"));
            assert_eq!(&e.version, version, "{key}");
            assert_eq!(e.value, key.replacen('k', "v", 1).into_bytes());
        }
        assert_eq!(client.status().await.expect("status").key_count, 400);
        // The restarted clock stamps above everything issued before the crash.
        let newest = acked.iter().map(|(_, v)| v.hlc).max().expect("some writes");
        let v = client.put("after", "restart").await.expect("put");
        assert!(v.hlc > newest);
    });
}

#[test]
fn a_second_vergentd_on_the_same_data_dir_exits_nonzero_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let data = tmp.path().join("data");
    let first = Proc::start(&certs, &data, &[]);
    let args = [
        "--port",
        "0",
        "--data-dir",
        data.to_str().expect("utf8"),
        "--tls-certfile",
        certs.node.cert.to_str().expect("utf8"),
        "--tls-keyfile",
        certs.node.key.to_str().expect("utf8"),
        "--tls-cafile",
        certs.ca.to_str().expect("utf8"),
    ];
    let (child, log) = spawn_vergentd(&args);
    let out = common::wait_output(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        wait_log(&log, Duration::from_secs(5), |l| l
            .contains("is locked by another vergentd process")),
        "{}",
        log.lock().expect("log").clone()
    );
    // The first node is unaffected.
    let out = ctl_script(&first.addr, &certs.client, "put still here\nget still\n");
    assert!(stdout(&out).ends_with("here\n"), "{}", stdout(&out));
}

#[test]
fn vergentd_refuses_to_start_without_the_three_tls_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let (child, log) = spawn_vergentd(&["--port", "0", "--data-dir", data.to_str().expect("utf8")]);
    let out = common::wait_output(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(wait_log(&log, Duration::from_secs(5), |l| l
        .contains("mutual TLS is mandatory")));
    let text = log.lock().expect("log").clone();
    assert!(
        text.contains("--tls-certfile, --tls-keyfile, --tls-cafile"),
        "{text}"
    );
    assert!(
        !data.exists(),
        "nothing must be created when refusing to start"
    );
}

#[test]
fn sigterm_stops_the_node_gracefully_and_releases_the_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let data = tmp.path().join("data");
    let node = Proc::start(&certs, &data, &["--log-format", "json"]);
    let out = ctl_script(&node.addr, &certs.client, "put k v\n");
    assert!(out.status.success());
    let log = node.log.clone();
    let status = node.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
    let text = log.lock().expect("log").clone();
    assert!(text.contains("SIGTERM received"), "{text}");
    assert!(
        text.lines().all(|l| l.starts_with('{')),
        "JSON logs expected:\n{text}"
    );
    // The lock is released: a new node opens the same dir and has the data.
    let node = Proc::start(&certs, &data, &[]);
    let out = ctl_script(&node.addr, &certs.client, "get k\n");
    assert_eq!(stdout(&out), "v\n");
}

/// Runs `vergentctl bench --json` against `node` with `args`; returns the
/// parsed JSON line and the line itself.
fn run_bench(node: &Proc, certs: &Certs, args: &[&str]) -> (serde_json::Value, String) {
    let child = Command::new(common::bin("vergentctl"))
        .args(["bench", "--endpoints", &node.addr, "--tls-certfile"])
        .arg(&certs.client.cert)
        .arg("--tls-keyfile")
        .arg(&certs.client.key)
        .arg("--tls-cafile")
        .arg(&certs.client.ca)
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bench");
    let out = common::wait_output(child, Duration::from_secs(90));
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    let v = serde_json::from_str(line.trim()).expect("one JSON line");
    (v, line)
}

#[test]
fn vergentctl_bench_runs_a_bounded_load_reports_one_json_line_and_preloads_every_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let node = Proc::start(&certs, &tmp.path().join("data"), &[]);
    let (v, line) = run_bench(
        &node,
        &certs,
        &[
            "--requests",
            "300",
            "--clients",
            "4",
            "--connections",
            "2",
            "--key-space",
            "50",
            "--mix",
            "50:50:0",
            "--duration",
            "60s",
        ],
    );
    let ops = v["ops"].as_u64().expect("ops");
    assert!((300..304).contains(&ops), "{line}");
    assert_eq!(v["errors"].as_u64(), Some(0), "{line}");
    assert!(v["throughput_ops_s"].as_f64().expect("throughput") > 0.0);
    assert!(v["p99_us"].as_u64().expect("p99") >= v["p50_us"].as_u64().expect("p50"));
    assert!(
        v["by_op"]["put"]["ops"].as_u64().expect("puts") > 0,
        "{line}"
    );
    // The puts really landed.
    let scan = ctl_script(&node.addr, &certs.client, "scan k 100\n");
    assert!(stdout(&scan).lines().count() > 1, "{}", stdout(&scan));

    // --preload puts every key first, so a read-only run finds them all.
    let (v, line) = run_bench(
        &node,
        &certs,
        &[
            "--preload",
            "--key-space",
            "500",
            "--mix",
            "0:100:0",
            "--requests",
            "300",
            "--duration",
            "60s",
        ],
    );
    assert!(
        v["by_op"]["get"]["ops"].as_u64().expect("gets") >= 300,
        "{line}"
    );
    assert_eq!(
        v["misses"].as_u64(),
        Some(0),
        "every read found its key: {line}"
    );
}

/// Regression (found by the chaos suite's disk fault): after one failed fsync
/// the engine refused every later write, and the node went on running as a
/// zombie that could neither take writes nor apply replicated ones. It now
/// stops itself with exit status 1, and a restart recovers from the WAL.
#[test]
fn a_failed_fsync_stops_the_node_and_a_restart_keeps_every_acknowledged_write() {
    if Command::new("strace").arg("-V").output().is_err() {
        // `cargo xtask test` installs strace; a bare `cargo test` may lack it.
        eprintln!("skipped: strace is not installed (apt-get install strace)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let data = tmp.path().join("data");
    let mut node = Proc::start(&certs, &data, &[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let connect = |addr: String| {
        let mut config = vergent_client::ClientConfig::new(addr, certs.client.clone());
        config.request_timeout = Duration::from_secs(10);
        vergent_client::Client::connect(config)
    };
    let client = rt.block_on(connect(node.addr.clone())).expect("connect");
    let mut acked = Vec::new();
    for i in 0..20 {
        let key = format!("before/{i:02}");
        let v = rt.block_on(client.put(key.clone(), "v")).expect("put");
        acked.push((key, v));
    }

    let mut strace = Command::new("strace")
        .args(["-f", "-p", &node.child.id().to_string()])
        .args(["-e", "trace=fsync,fdatasync"])
        .args(["-e", "inject=fsync,fdatasync:error=EIO"])
        .args(["-o", "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strace");
    // strace says "Process N attached" once it traces the node's threads.
    let attached = Arc::new(Mutex::new(String::new()));
    {
        let sink = attached.clone();
        let stderr = strace.stderr.take().expect("strace stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push_str(&line);
            }
        });
    }
    assert!(
        wait_log(&attached, Duration::from_secs(20), |l| l
            .contains("attached")),
        "strace did not attach"
    );

    let refused = rt.block_on(client.put("during", "x"));
    assert!(
        refused.is_err(),
        "a put whose fsync failed was acknowledged"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = node.child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the node kept running after a failed fsync:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = strace.kill();
    let _ = strace.wait();
    assert_eq!(status.code(), Some(1), "{}", node.log_text());
    assert!(
        node.log_text().contains("storage failed"),
        "{}",
        node.log_text()
    );
    drop(node);

    let node = Proc::start(&certs, &data, &[]);
    let client = rt.block_on(connect(node.addr.clone())).expect("reconnect");
    for (key, version) in &acked {
        let e = rt
            .block_on(client.get(key.clone()))
            .expect("get")
            .unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(&e.version, version, "{key}");
    }
    rt.block_on(client.put("after", "ok"))
        .expect("a restarted node takes writes");
}

#[test]
fn vergentd_refuses_to_start_with_a_certificate_that_cannot_serve_and_creates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(&tmp.path().join("certs"));
    let data = tmp.path().join("data");
    // A client certificate (EKU clientAuth only): no client could complete
    // a handshake with a node presenting it.
    let args = [
        "--port",
        "0",
        "--data-dir",
        data.to_str().expect("utf8"),
        "--tls-certfile",
        certs.client.cert.to_str().expect("utf8"),
        "--tls-keyfile",
        certs.client.key.to_str().expect("utf8"),
        "--tls-cafile",
        certs.ca.to_str().expect("utf8"),
    ];
    let (child, log) = spawn_vergentd(&args);
    let out = common::wait_output(child, Duration::from_secs(30));
    let text = log.lock().expect("log").clone();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("not a node certificate") && text.contains("server authentication"),
        "{text}"
    );
    assert!(text.contains("vergentctl gen-cert"), "{text}");
    assert!(!text.contains("ready"), "{text}");
    assert!(
        !data.join("db").exists(),
        "no store must be created when refusing to start"
    );
}
