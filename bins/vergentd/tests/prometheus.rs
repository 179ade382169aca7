//! A real Prometheus server (Debian's `prometheus`, which `cargo xtask
//! test` installs) scrapes a 3-node cluster's `/metrics` while
//! `vergentctl bench` loads it, and its query API answers for the put rate
//! and for replication lag with non-zero values.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, DEADLINE, http_get};

/// Kills and reaps the child when dropped, so a failing test leaves no
/// server behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus_binary() -> String {
    let path = std::env::var("VERGENT_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let found = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs a Prometheus server: `cargo xtask deps` installs Debian's package \
         (apt-get install prometheus), or set VERGENT_TEST_PROMETHEUS to its path"
    );
    path
}

/// Percent-encodes a query string value.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query's first sample, if the query has one.
fn query(prometheus: &str, q: &str) -> Option<f64> {
    let (code, body) = http_get(prometheus, &format!("/api/v1/query?query={}", encode(q)))?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_the_cluster_and_reports_a_put_rate_and_replication_lag_under_load() {
    let prometheus_bin = prometheus_binary();
    let cluster = Cluster::new(3);
    let ports = vergent_testkit::free_ports(4);
    let (http, prom_port) = (&ports[..3], ports[3]);
    let flags: Vec<[String; 2]> = http
        .iter()
        .map(|p| ["--http-addr".to_string(), format!("127.0.0.1:{p}")])
        .collect();
    let _nodes: Vec<_> = (0..3)
        .map(|i| {
            let refs: Vec<&str> = flags[i].iter().map(String::as_str).collect();
            cluster.start_with(i, &refs)
        })
        .collect();

    let dir = cluster.tmp.path().join("prometheus");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let targets: Vec<String> = http.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: vergent\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
    let prometheus = format!("127.0.0.1:{prom_port}");
    let _server = KillOnDrop(
        Command::new(&prometheus_bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prometheus}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let until = Instant::now() + DEADLINE;
    while query(&prometheus, "count(up == 1)") != Some(3.0) {
        assert!(
            Instant::now() < until,
            "Prometheus did not scrape all three nodes within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Bounded load on node 0 (puts only, so every request is a write that
    // replicates); it runs while the queries below are polled.
    let bench = KillOnDrop(
        Command::new(common::bin("vergentctl"))
            .args(["bench", "--endpoints", &cluster.addr(0), "--tls-certfile"])
            .arg(&cluster.certs.client.cert)
            .arg("--tls-keyfile")
            .arg(&cluster.certs.client.key)
            .arg("--tls-cafile")
            .arg(&cluster.certs.client.ca)
            .args([
                "--clients",
                "32",
                "--mix",
                "100:0:0",
                "--duration",
                "30s",
                "--max-duration",
                "60s",
                "--json",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bench"),
    );
    let put_rate =
        r#"max_over_time(sum(rate(vergent_requests_total{op="put",code="OK"}[5s]))[2m:1s])"#;
    let lag = "max_over_time(max(vergent_replication_lag_entries)[2m:1s])";
    let until = Instant::now() + DEADLINE;
    let (mut rate_seen, mut lag_seen) = (None, None);
    while rate_seen.is_none() || lag_seen.is_none() {
        rate_seen = rate_seen.or(query(&prometheus, put_rate).filter(|v| *v > 0.0));
        lag_seen = lag_seen.or(query(&prometheus, lag).filter(|v| *v > 0.0));
        assert!(
            Instant::now() < until,
            "no non-zero answer within {DEADLINE:?}: put rate {rate_seen:?}, lag {lag_seen:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(bench);
    eprintln!(
        "Prometheus saw a put rate up to {rate_seen:?}/s and a replication lag up to {lag_seen:?} entries"
    );
}
