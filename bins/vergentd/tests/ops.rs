//! The operations endpoint on real `vergentd` processes over loopback:
//! `/metrics` counts requests by operation, level and outcome code and
//! shows replication and membership state; `/ready` is 503 with the reason
//! while a node bootstraps and 200 once it serves; `/health` answers
//! throughout.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, DEADLINE, http_get, series_value};
use vergent_client::{Consistency, PutOptions};

/// Node `i`'s flag for an operations endpoint on `port`.
fn http_flag(port: u16) -> [String; 2] {
    ["--http-addr".into(), format!("127.0.0.1:{port}")]
}

/// Waits until `cond` holds for the body of `path` on `addr`, or panics
/// with the last answer.
fn wait_http(addr: &str, path: &str, cond: impl Fn(u16, &str) -> bool) -> String {
    let until = Instant::now() + DEADLINE;
    loop {
        let got = http_get(addr, path);
        if let Some((code, body)) = &got
            && cond(*code, body)
        {
            return body.clone();
        }
        assert!(
            Instant::now() < until,
            "{path} on {addr} not as expected within {DEADLINE:?}; last answer: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_count_requests_by_operation_level_and_code_and_show_peers_and_the_process() {
    let cluster = Cluster::new(3);
    let http = vergent_testkit::free_ports(3);
    let flags: Vec<[String; 2]> = http.iter().map(|p| http_flag(*p)).collect();
    let refs = |i: usize| -> Vec<&str> { flags[i].iter().map(String::as_str).collect() };
    let _nodes: Vec<_> = (0..3).map(|i| cluster.start_with(i, &refs(i))).collect();
    let addr = format!("127.0.0.1:{}", http[0]);
    // Ready once the three voters agreed a configuration.
    wait_http(&addr, "/ready", |code, _| code == 200);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = cluster.client(0).await;
        for i in 0..5 {
            client.put(format!("k{i}"), "v").await.expect("put");
        }
        client
            .put_with(
                "q",
                "v",
                PutOptions {
                    consistency: Some(Consistency::Quorum),
                    ..Default::default()
                },
            )
            .await
            .expect("quorum put");
        client.get("k0").await.expect("get");
        let too_big = vec![0u8; (1 << 20) + 1];
        client
            .put("big", too_big)
            .await
            .expect_err("over the value limit");
    });
    let body = wait_http(&addr, "/metrics", |code, body| {
        // Replication catches up in the background: wait for the peers'
        // lag series to show the log drained.
        // Gossip may briefly suspect a peer on a loaded machine: wait for
        // all three alive rather than read one instant.
        code == 200
            && series_value(body, r#"vergent_replication_lag_entries{peer="node-1"}"#) == Some(0.0)
            && series_value(body, r#"vergent_gossip_members{state="alive"}"#) == Some(3.0)
    });
    let value = |series: &str| {
        series_value(&body, series).unwrap_or_else(|| panic!("no {series} in\n{body}"))
    };
    assert_eq!(
        value(r#"vergent_requests_total{op="put",consistency="one",code="OK"}"#),
        5.0
    );
    assert_eq!(
        value(r#"vergent_requests_total{op="put",consistency="quorum",code="OK"}"#),
        1.0
    );
    assert_eq!(
        value(r#"vergent_requests_total{op="get",consistency="one",code="OK"}"#),
        1.0
    );
    assert_eq!(
        value(r#"vergent_requests_total{op="put",consistency="one",code="VALUE_TOO_LARGE"}"#),
        1.0
    );
    assert_eq!(
        value(r#"vergent_request_duration_seconds_count{op="put",consistency="one"}"#),
        6.0
    );
    assert_eq!(value(r#"vergent_gossip_members{state="alive"}"#), 3.0);
    assert_eq!(value("vergent_voters"), 3.0);
    assert_eq!(value("vergent_ready"), 1.0);
    assert!(value("vergent_log_last_sequence") >= 6.0);
    assert!(value("vergent_wal_syncs_total") >= 1.0);
    assert!(value("vergent_write_group_writes_count") >= 6.0);
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_open_fds") > 0.0);
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    // The coordinator of the peers' replication shows on the other nodes
    // too: node 1 exposes the same families.
    let other = wait_http(&format!("127.0.0.1:{}", http[1]), "/metrics", |c, _| {
        c == 200
    });
    assert!(
        series_value(&other, r#"vergent_replication_lag_entries{peer="node-0"}"#).is_some(),
        "{other}"
    );
}

#[test]
fn ready_is_503_with_the_reason_while_a_node_bootstraps_and_200_once_it_serves() {
    let cluster = Cluster::new(2);
    let http = vergent_testkit::free_ports(1);
    let flag = http_flag(http[0]);
    let refs: Vec<&str> = flag.iter().map(String::as_str).collect();
    // Node 1 starts empty with its only peer down: it cannot fill from it.
    let _b = cluster.start_with(1, &refs);
    let addr = format!("127.0.0.1:{}", http[0]);
    let (code, body) = http_get(&addr, "/ready").expect("/ready answers");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("bootstrapping"), "{body}");
    let (code, body) = http_get(&addr, "/health").expect("/health answers");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let metrics = wait_http(&addr, "/metrics", |c, _| c == 200);
    assert_eq!(series_value(&metrics, "vergent_ready"), Some(0.0));
    assert_eq!(series_value(&metrics, "vergent_bootstrapping"), Some(1.0));
    // Its peer comes up: the two form a cluster and node 1 turns ready.
    let _a = cluster.start(0);
    wait_http(&addr, "/ready", |code, body| {
        code == 200 && body == "ready\n"
    });
}

#[test]
fn a_connection_over_its_rate_limit_is_refused_with_a_retry_hint_while_another_is_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = common::Certs::generate(&tmp.path().join("certs"));
    let http = vergent_testkit::free_ports(1);
    let http_addr = format!("127.0.0.1:{}", http[0]);
    let node = common::Proc::start(
        &certs,
        &tmp.path().join("data"),
        &[
            "--rate-limit",
            "2",
            "--rate-burst",
            "5",
            "--http-addr",
            &http_addr,
        ],
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let connect = || async {
            let mut c = vergent_client::ClientConfig::new(node.addr.clone(), certs.client.clone());
            c.request_timeout = Duration::from_secs(10);
            // Each refusal must reach the test, not be retried away.
            c.retry = vergent_client::RetryConfig::never();
            vergent_client::Client::connect(c).await.expect("connect")
        };
        let busy = connect().await;
        let (mut ok, mut refused) = (0usize, 0usize);
        // Far faster than 2 per second: the burst passes, the rest is refused.
        for i in 0..20 {
            match busy.put(format!("k{i}"), "v").await {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert_eq!(
                        e.code(),
                        Some(vergent_client::ErrorCode::RateLimited),
                        "{e}"
                    );
                    assert!(e.to_string().contains("retry in"), "{e}");
                    refused += 1;
                }
            }
        }
        // Connecting asks for the node's status: one token of the burst.
        assert!((4..=6).contains(&ok), "{ok} admitted");
        assert_eq!(ok + refused, 20);
        let refused = u32::try_from(refused).expect("small");
        // Another connection has a bucket of its own.
        let other = connect().await;
        other
            .put("other", "v")
            .await
            .expect("another connection is served");
        // Nothing refused was stored.
        let page = other.scan_all("k").await.expect("scan");
        assert_eq!(page.len(), ok, "only admitted puts are stored");
        let body = wait_http(&http_addr, "/metrics", |c, _| c == 200);
        assert_eq!(
            series_value(
                &body,
                r#"vergent_requests_total{op="put",consistency="one",code="RATE_LIMITED"}"#
            ),
            Some(f64::from(refused))
        );
    });
}

#[test]
fn the_operations_endpoint_over_tls_serves_a_client_certificate_of_the_ca_and_refuses_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = common::Certs::generate(&tmp.path().join("certs"));
    let http = vergent_testkit::free_ports(1);
    let addr = format!("127.0.0.1:{}", http[0]);
    let _node = common::Proc::start(
        &certs,
        &tmp.path().join("data"),
        &["--http-addr", &addr, "--http-tls"],
    );
    // Plain HTTP gets no answer from a TLS port.
    assert_eq!(http_get(&addr, "/health"), None);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (code, body) = common::https_get(&addr, "/metrics", &certs.client, true)
            .await
            .expect("a client of the CA is served");
        assert_eq!(code, 200, "{body}");
        assert!(series_value(&body, "vergent_ready").is_some(), "{body}");
        assert!(body.trim_end().ends_with("# EOF"), "{body}");
        let (code, body) = common::https_get(&addr, "/health", &certs.client, true)
            .await
            .expect("/health");
        assert_eq!((code, body.as_str()), (200, "ok\n"));
        // No client certificate: refused (TLS 1.3 reports it on the read).
        let refused = common::https_get(&addr, "/metrics", &certs.client, false).await;
        assert!(
            refused.is_err(),
            "served without a client certificate: {refused:?}"
        );
        // A certificate of another CA: refused too.
        let other = common::Certs::generate(&tmp.path().join("other"));
        let refused = common::https_get(&addr, "/metrics", &other.client, true).await;
        assert!(
            refused.is_err(),
            "served a client of another CA: {refused:?}"
        );
    });
}

#[test]
fn a_flood_of_idle_connections_to_the_operations_endpoint_is_capped_and_it_serves_again_after() {
    use std::io::Read;
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = common::Certs::generate(&tmp.path().join("certs"));
    let http = vergent_testkit::free_ports(1);
    let addr = format!("127.0.0.1:{}", http[0]);
    let _node = common::Proc::start(&certs, &tmp.path().join("data"), &["--http-addr", &addr]);
    // 64 connections that never send a request hold every slot.
    let idle: Vec<std::net::TcpStream> = (0..64)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    // The next one is closed at once, with nothing read or answered.
    let until = Instant::now() + DEADLINE;
    loop {
        let mut extra = std::net::TcpStream::connect(&addr).expect("connect");
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 1];
        if matches!(extra.read(&mut buf), Ok(0)) {
            break;
        }
        // The accept loop may not have taken all 64 yet.
        assert!(Instant::now() < until, "a 65th connection was kept open");
    }
    drop(idle);
    wait_http(&addr, "/health", |code, body| code == 200 && body == "ok\n");
}
