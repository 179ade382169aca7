//! `cargo xtask bench`: Vergent's standard benchmark scenarios on fresh
//! local clusters (release build, mTLS on, loopback), driven by
//! `vergentctl bench`, written as a markdown table.
//!
//! Scenarios: 1 and 3 nodes; put-only, get-only and 50/50 at 1, 16, 64 and
//! 256 clients, 100-byte values over 100k keys; on 3 nodes also the
//! replication lag (puts on node-1 at 16 clients, timed until they reach
//! node-2's watch stream) and puts at 64 clients with `--fsync per-write`
//! and `--fsync off` beside the default group commit (which, like etcd,
//! fsyncs before every acknowledgement); with `--scale`, the
//! memory/disk/restart footprint; with `--anchors DIR`, etcd and Redis from
//! the peer harness in the same run (see `anchors`); with `--reps N`,
//! medians of N passes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::run::{bin_dir, make_certs, start_node, start_nodes, stop_dir};
use crate::{cargo, root, sh};

const BASE_PORT: u16 = 4101;

struct Opts {
    duration: String,
    warmup: String,
    clients: Vec<usize>,
    nodes: Vec<usize>,
    out: PathBuf,
    /// Keys for the footprint scenario (0: skip it).
    scale: u64,
    /// Repetitions of the matrix (and anchors); medians are reported.
    reps: usize,
    /// The peer harness with etcd and Redis, measured in the same run.
    anchors: Option<PathBuf>,
    /// Release binaries of another build (`vergentd`, `vergentctl`) whose
    /// matrix runs right after this build's in every rep, for a before/after
    /// comparison measured in the same run.
    baseline: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Opts> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut o = Opts {
        duration: "10s".into(),
        warmup: "2s".into(),
        clients: vec![1, 16, 64, 256],
        nodes: vec![1, 3],
        out: root()
            .join("target")
            .join("bench")
            .join(format!("run-{stamp}")),
        scale: 0,
        reps: 1,
        anchors: None,
        baseline: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--duration" => o.duration = value()?.clone(),
            "--warmup" => o.warmup = value()?.clone(),
            "--clients" => o.clients = list(value()?)?,
            "--nodes" => o.nodes = list(value()?)?,
            "--out" => o.out = PathBuf::from(value()?),
            "--scale" => {
                o.scale = value()?
                    .parse()
                    .context("parse --scale as a number of keys")?;
            }
            "--reps" => {
                o.reps = value()?.parse().context("parse --reps as a number")?;
                if o.reps == 0 {
                    bail!("--reps must be at least 1");
                }
            }
            "--anchors" => o.anchors = Some(PathBuf::from(value()?)),
            "--baseline" => {
                let dir = PathBuf::from(value()?);
                if !dir.join("vergentd").is_file() || !dir.join("vergentctl").is_file() {
                    bail!(
                        "--baseline {}: expected vergentd and vergentctl there (a target/release of another build)",
                        dir.display()
                    );
                }
                o.baseline = Some(dir);
            }
            "--quick" => {
                o.duration = "3s".into();
                o.warmup = "1s".into();
                o.clients = vec![1, 64];
            }
            other => bail!("parse arguments: unknown option {other:?}"),
        }
    }
    if o.nodes.iter().any(|&n| n == 0 || n > 9) {
        bail!("use --nodes between 1 and 9");
    }
    Ok(o)
}

fn list(s: &str) -> anyhow::Result<Vec<usize>> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse()
                .with_context(|| format!("parse {p:?} as a number"))
        })
        .collect()
}

/// One measured run: its label and `vergentctl bench --json` output.
struct Row {
    nodes: usize,
    fsync: &'static str,
    scenario: &'static str,
    clients: usize,
    result: serde_json::Value,
}

pub(crate) fn bench(args: &[String]) -> anyhow::Result<()> {
    let opts = parse(args)?;
    crate::deps::ensure()?;
    sh(cargo().args(["build", "--release", "-p", "vergentd", "-p", "vergentctl"]))?;
    let bins = bin_dir(true);
    let certs = opts.out.join("certs");
    make_certs(&bins.join("vergentctl"), &certs)?;
    let loadgen = match &opts.anchors {
        Some(h) => Some(crate::anchors::build_loadgen(h)?),
        None => None,
    };
    let mut reps: Vec<Vec<Row>> = Vec::new();
    let mut baseline_reps: Vec<Vec<Row>> = Vec::new();
    let mut anchor_reps: Vec<Vec<crate::anchors::Anchor>> = Vec::new();
    for rep in 1..=opts.reps {
        eprintln!("rep {rep} of {}", opts.reps);
        reps.push(matrix(&bins, &certs, &opts)?);
        if let Some(base) = &opts.baseline {
            eprintln!("rep {rep}: baseline {}", base.display());
            baseline_reps.push(matrix(base, &certs, &opts)?);
        }
        if let (Some(h), Some(lg)) = (&opts.anchors, &loadgen) {
            let work = opts.out.join("anchors");
            let anchors = crate::anchors::run(
                h,
                lg,
                &work,
                seconds(&opts.warmup)?,
                seconds(&opts.duration)?,
            )?;
            for a in &anchors {
                eprintln!("anchor {}: {}", a.name, brief(&a.result));
            }
            anchor_reps.push(anchors);
        }
    }
    let rows = with_medians(reps, |r| &mut r.result);
    let mut lag_line = String::new();
    if opts.nodes.contains(&3) {
        // Replication lag: puts on node-1 only, 16 clients (about half the
        // 3-node peak), node-2 watched.
        let dir = opts.out.join("3-node-lag");
        let endpoints = started(start_cluster(&bins, &dir, &certs, 3, "group"), &dir)?;
        let out = Command::new(bins.join("vergentctl"))
            .arg("bench")
            .args(tls_args(&certs))
            .args(["--endpoints", &endpoints[0], "--lag-from", &endpoints[1]])
            .args(["--clients", "16", "--connections", "4", "--mix", "100:0:0"])
            .args([
                "--duration",
                &opts.duration,
                "--warmup",
                &opts.warmup,
                "--json",
            ])
            .output()
            .context("run vergentctl bench --lag-from");
        stop_dir(&dir)?;
        let out = out?;
        if !out.status.success() {
            bail!("lag run: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
                .context("parse vergentctl bench --json")?;
        let lag = &v["lag"];
        lag_line = format!(
            "\nReplication lag (3 nodes, puts on node-1 at 16 clients: {:.0} ops/s; acknowledgement on node-1 to \
             arrival in node-2's watch stream): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} puts, {} never seen.\n",
            num(&v, "throughput_ops_s"),
            num(lag, "p50_us") / 1000.0,
            num(lag, "p99_us") / 1000.0,
            num(lag, "max_us") / 1000.0,
            num(lag, "samples"),
            num(lag, "unseen"),
        );
        eprintln!("{}", lag_line.trim());
    }
    let mut table = markdown(&rows, &opts);
    table.push_str(&lag_line);
    if let Some(base) = &opts.baseline {
        let base_rows = with_medians(baseline_reps, |r| &mut r.result);
        table.push_str(&against_baseline(&rows, &base_rows, base));
    }
    if !anchor_reps.is_empty() {
        let anchors = with_medians(anchor_reps, |a| &mut a.result);
        table.push_str(&against_anchors(&rows, &anchors, &opts));
    }
    if opts.scale > 0 {
        table.push_str(&footprint(&bins, &certs, &opts)?);
    }
    let path = opts.out.join("summary.md");
    std::fs::write(&path, &table).with_context(|| format!("write {}", path.display()))?;
    println!("{table}");
    eprintln!("written to {}", path.display());
    Ok(())
}

/// Stops what did start when a cluster failed to come up.
fn started<T>(result: anyhow::Result<T>, dir: &Path) -> anyhow::Result<T> {
    if result.is_err() {
        let _ = stop_dir(dir);
    }
    result
}

fn start_cluster(
    bins: &Path,
    dir: &Path,
    certs: &Path,
    nodes: usize,
    fsync: &str,
) -> anyhow::Result<Vec<String>> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let ports: Vec<u16> = (0..nodes as u16).map(|i| BASE_PORT + i).collect();
    start_nodes(
        &bins.join("vergentd"),
        dir,
        certs,
        &ports,
        &["--fsync", fsync],
    )?;
    // Let gossip find every member, so replication runs from the start.
    std::thread::sleep(Duration::from_secs(if nodes > 1 { 2 } else { 0 }));
    Ok(ports.iter().map(|p| format!("127.0.0.1:{p}")).collect())
}

/// One `vergentctl bench` run; `extra` adds flags (`--consistency`, `--cas`).
#[allow(clippy::too_many_arguments)]
fn load(
    bins: &Path,
    certs: &Path,
    endpoints: &[String],
    opts: &Opts,
    clients: usize,
    mix: &str,
    preload: bool,
    extra: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let connections = clients.clamp(1, 8);
    let mut cmd = Command::new(bins.join("vergentctl"));
    cmd.arg("bench").args(extra);
    if preload {
        cmd.arg("--preload");
    }
    let out = cmd
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .args(tls_args(certs))
        .args(["--clients", &clients.to_string()])
        .args(["--connections", &connections.to_string()])
        .args(["--duration", &opts.duration, "--warmup", &opts.warmup])
        .args(["--key-space", "100000", "--value-size", "100", "--mix", mix])
        .arg("--json")
        .output()
        .context("run vergentctl bench")?;
    if !out.status.success() {
        bail!(
            "run vergentctl bench: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).context("parse vergentctl bench --json")
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v.get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0)
}

fn brief(v: &serde_json::Value) -> String {
    format!(
        "{:.0} ops/s, p99 {:.2} ms, {} errors",
        num(v, "throughput_ops_s"),
        num(v, "p99_us") / 1000.0,
        num(v, "errors")
    )
}

fn markdown(rows: &[Row], opts: &Opts) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Command: `cargo xtask bench --duration {} --warmup {} --clients {} --nodes {}` \
         (release build, mTLS, 100-byte values, 100k keys, uniform keys, consistency one, \
         connections = min(clients, 8), loopback, load generator on the same 2 cores)\n\n",
        opts.duration,
        opts.warmup,
        opts.clients
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        opts.nodes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ));
    s.push_str("| nodes | fsync | scenario | clients | ops/s | p50 ms | p99 ms | p99.9 ms | errors | get misses |\n");
    s.push_str("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let v = &r.result;
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            r.nodes,
            r.fsync,
            r.scenario,
            r.clients,
            num(v, "throughput_ops_s"),
            num(v, "p50_us") / 1000.0,
            num(v, "p99_us") / 1000.0,
            num(v, "p999_us") / 1000.0,
            num(v, "errors"),
            num(v, "misses"),
        ));
    }
    s
}

/// This build's rows beside the baseline build's, measured in the same run.
fn against_baseline(rows: &[Row], base: &[Row], dir: &Path) -> String {
    let mut s = format!(
        "\nAgainst the baseline build in `{}` (same run, same load generator flags; \
         ratio = this build / baseline):\n\n\
         | nodes | fsync | scenario | clients | ops/s | baseline ops/s | ratio | p99 ms | baseline p99 ms |\n\
         |---:|---|---|---:|---:|---:|---:|---:|---:|\n",
        dir.display()
    );
    for (r, b) in rows.iter().zip(base) {
        let (ops, base_ops) = (
            num(&r.result, "throughput_ops_s"),
            num(&b.result, "throughput_ops_s"),
        );
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |\n",
            r.nodes,
            r.fsync,
            r.scenario,
            r.clients,
            ops,
            base_ops,
            if base_ops > 0.0 { ops / base_ops } else { 0.0 },
            num(&r.result, "p99_us") / 1000.0,
            num(&b.result, "p99_us") / 1000.0,
        ));
    }
    s
}

/// The footprint scenario: `opts.scale` keys of 100 bytes into a fresh
/// 3-node cluster, then peak RSS and disk per node, and how long node 1
/// takes to restart and serve.
fn footprint(bins: &Path, certs: &Path, opts: &Opts) -> anyhow::Result<String> {
    let dir = opts.out.join("3-node-footprint");
    let endpoints = started(start_cluster(bins, &dir, certs, 3, "group"), &dir)?;
    let result = (|| -> anyhow::Result<String> {
        let load_start = std::time::Instant::now();
        let mut cmd = Command::new(bins.join("vergentctl"));
        cmd.arg("bench")
            .args(tls_args(certs))
            .args(["--endpoints", &endpoints.join(",")])
            .args(["--preload", "--key-space", &opts.scale.to_string()])
            .args(["--value-size", "100", "--mix", "0:100:0", "--requests", "1"])
            .args([
                "--clients",
                "64",
                "--connections",
                "8",
                "--max-duration",
                "30m",
                "--json",
            ]);
        let out = cmd.output().context("run vergentctl bench --preload")?;
        if !out.status.success() {
            bail!("preload: {}", String::from_utf8_lossy(&out.stderr));
        }
        let loaded_in = load_start.elapsed();
        // Replication settles: every node holds every key.
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        for addr in &endpoints {
            while key_count(bins, certs, addr)? < opts.scale {
                if std::time::Instant::now() > deadline {
                    bail!("{addr} did not get all {} keys", opts.scale);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        let raw = opts.scale * (16 + 100);
        let mut s = format!(
            "\nFootprint: {} keys (16-byte keys, 100-byte values, {:.1} MiB raw) loaded into 3 nodes \
             at 64 clients in {:.1} s (`cargo xtask bench --scale {}`):\n\n\
             | node | peak RSS MiB | data dir MiB | data dir / raw |\n|---|---:|---:|---:|\n",
            opts.scale,
            raw as f64 / 1048576.0,
            loaded_in.as_secs_f64(),
            opts.scale
        );
        for n in 1..=3 {
            let pid = std::fs::read_to_string(dir.join(format!("node-{n}.pid")))?;
            let rss_kib = peak_rss_kib(pid.trim())?;
            let disk = dir_bytes(&dir.join(format!("node-{n}")))?;
            s.push_str(&format!(
                "| node-{n} | {:.0} | {:.0} | {:.2} |\n",
                rss_kib as f64 / 1024.0,
                disk as f64 / 1048576.0,
                disk as f64 / raw as f64
            ));
        }
        // Restart node 1 and time it until it serves a read.
        crate::run::stop_pid_file(&dir.join("node-1.pid"))?;
        let restart = std::time::Instant::now();
        let peers: Vec<String> = endpoints[1..].to_vec();
        start_node(
            &bins.join("vergentd"),
            &dir,
            certs,
            1,
            BASE_PORT,
            &peers,
            &["--fsync", "group"],
        )?;
        while key_count(bins, certs, &endpoints[0])? < opts.scale {
            if restart.elapsed() > Duration::from_secs(120) {
                bail!("node-1 did not serve its keys after restart");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        s.push_str(&format!(
            "\nnode-1 restarted and served all {} keys {:.2} s after it was started again.\n",
            opts.scale,
            restart.elapsed().as_secs_f64()
        ));
        Ok(s)
    })();
    stop_dir(&dir)?;
    result
}

fn tls_args(certs: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "--tls-certfile".into(),
        certs.join("client.crt").into(),
        "--tls-keyfile".into(),
        certs.join("client.key").into(),
        "--tls-cafile".into(),
        certs.join("ca.pem").into(),
    ]
}

/// The live-key count `vergentctl status` reports for `addr`.
fn key_count(bins: &Path, certs: &Path, addr: &str) -> anyhow::Result<u64> {
    use std::io::Write;
    let mut child = Command::new(bins.join("vergentctl"))
        .args(["connect", addr])
        .args(tls_args(certs))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("run vergentctl status")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(b"status\n")
            .context("write to vergentctl")?;
    }
    let out = child.wait_with_output().context("wait for vergentctl")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("keys:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Peak resident set size of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc status")
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// One pass over the scenario matrix: every node count, scenario and client
/// count on a fresh cluster per node count, then 3-node puts with fsync
/// before every acknowledgement.
fn matrix(bins: &Path, certs: &Path, opts: &Opts) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &nodes in &opts.nodes {
        let dir = opts.out.join(format!("{nodes}-node"));
        let endpoints = started(start_cluster(bins, &dir, certs, nodes, "group"), &dir)?;
        let result = (|| -> anyhow::Result<()> {
            for (scenario, mix) in [("put", "100:0:0"), ("get", "0:100:0"), ("50/50", "50:50:0")] {
                for &clients in &opts.clients {
                    // Reads need the keys: the first get run loads all of them.
                    let preload = scenario == "get" && clients == opts.clients[0];
                    let result = load(bins, certs, &endpoints, opts, clients, mix, preload, &[])?;
                    eprintln!("{nodes} node(s) {scenario} c={clients}: {}", brief(&result));
                    rows.push(Row {
                        nodes,
                        fsync: "group",
                        scenario,
                        clients,
                        result,
                    });
                }
            }
            Ok(())
        })();
        stop_dir(&dir)?;
        result?;
    }
    if opts.nodes.contains(&3) {
        // The default (group) already fsyncs before every acknowledgement;
        // per-write syncs inside each RocksDB write, off never syncs.
        for fsync in ["per-write", "off"] {
            let dir = opts.out.join(format!("3-node-{fsync}"));
            let endpoints = started(start_cluster(bins, &dir, certs, 3, fsync), &dir)?;
            let result = load(bins, certs, &endpoints, opts, 64, "100:0:0", false, &[]);
            stop_dir(&dir)?;
            let result = result?;
            eprintln!("3 nodes put c=64 fsync {fsync}: {}", brief(&result));
            rows.push(Row {
                nodes: 3,
                fsync,
                scenario: "put",
                clients: 64,
                result,
            });
        }
        // Strong operations at 64 clients, on a fresh cluster so the
        // distinct-key CAS finds its keys absent, as it expects.
        let dir = opts.out.join("3-node-strong");
        let endpoints = started(start_cluster(bins, &dir, certs, 3, "group"), &dir)?;
        let result = (|| -> anyhow::Result<()> {
            // The level rows come last: the serial get loaded every key.
            let runs: [(&'static str, &[&str], bool); 7] = [
                (CAS_DISTINCT, &["--cas", "distinct"], false),
                (CAS_HOT, &["--cas", "hot"], false),
                (SERIAL_GET, &["--consistency", "serial"], true),
                (QUORUM_PUT, &["--consistency", "quorum"], false),
                (ALL_PUT, &["--consistency", "all"], false),
                (QUORUM_GET, &["--consistency", "quorum"], false),
                (ALL_GET, &["--consistency", "all"], false),
            ];
            for (scenario, extra, preload) in runs {
                let mix = if [SERIAL_GET, QUORUM_GET, ALL_GET].contains(&scenario) {
                    "0:100:0"
                } else {
                    "100:0:0"
                };
                let result = load(bins, certs, &endpoints, opts, 64, mix, preload, extra)?;
                eprintln!("3 nodes {scenario} c=64: {}", brief(&result));
                rows.push(Row {
                    nodes: 3,
                    fsync: "group",
                    scenario,
                    clients: 64,
                    result,
                });
            }
            Ok(())
        })();
        stop_dir(&dir)?;
        result?;
    }
    Ok(rows)
}

/// Scenario names of the strong rows.
const CAS_DISTINCT: &str = "cas, distinct keys";
const CAS_HOT: &str = "cas, one hot key";
const SERIAL_GET: &str = "serial get";
/// Scenario names of the eventual rows at a level above `one`.
const QUORUM_PUT: &str = "quorum put";
const ALL_PUT: &str = "all put";
const QUORUM_GET: &str = "quorum get";
const ALL_GET: &str = "all get";

/// The first repetition's runs (rows or anchors) with each result replaced
/// by the medians over all repetitions, which list the same runs in the same
/// order; errors and misses are the largest seen.
fn with_medians<T>(
    mut reps: Vec<Vec<T>>,
    result: impl Fn(&mut T) -> &mut serde_json::Value,
) -> Vec<T> {
    let medians: Vec<serde_json::Value> = (0..reps.first().map_or(0, Vec::len))
        .map(|i| {
            let results: Vec<serde_json::Value> = reps
                .iter_mut()
                .filter_map(|rep| rep.get_mut(i))
                .map(|run| result(run).clone())
                .collect();
            median_of(results.iter())
        })
        .collect();
    let mut runs = reps.into_iter().next().unwrap_or_default();
    for (run, median) in runs.iter_mut().zip(medians) {
        *result(run) = median;
    }
    runs
}

/// Median of each latency/throughput field, max of the error counts.
fn median_of<'a>(results: impl Iterator<Item = &'a serde_json::Value>) -> serde_json::Value {
    let results: Vec<&serde_json::Value> = results.collect();
    let mut out = serde_json::Map::new();
    for key in ["throughput_ops_s", "p50_us", "p99_us", "p999_us"] {
        let mut v: Vec<f64> = results.iter().map(|r| num(r, key)).collect();
        v.sort_by(f64::total_cmp);
        out.insert(
            key.into(),
            serde_json::json!(v.get(v.len() / 2).copied().unwrap_or(0.0)),
        );
    }
    for key in ["errors", "misses"] {
        let worst = results.iter().map(|r| num(r, key)).fold(0.0, f64::max);
        out.insert(key.into(), serde_json::json!(worst));
    }
    out.insert("reps".into(), serde_json::json!(results.len()));
    serde_json::Value::Object(out)
}

/// Seconds of a duration written like `10s` or `1.5s`.
fn seconds(d: &str) -> anyhow::Result<f64> {
    d.trim_end_matches('s')
        .parse()
        .with_context(|| format!("parse {d:?} as seconds (e.g. 10s)"))
}

/// The targets of the performance issue, against the anchors of this run.
fn against_anchors(rows: &[Row], anchors: &[crate::anchors::Anchor], opts: &Opts) -> String {
    let ours = |fsync: &str, scenario: &str| {
        rows.iter()
            .find(|r| r.nodes == 3 && r.clients == 64 && r.fsync == fsync && r.scenario == scenario)
            .map(|r| &r.result)
    };
    let theirs = |name: &str| anchors.iter().find(|a| a.name == name).map(|a| &a.result);
    let mut s = format!(
        "\nAgainst the anchors measured in the same run (3 nodes each, mTLS, 64 clients, \
         medians of {} rep(s); anchors driven by the harness's loadgen with the same keys, \
         values, warmup and duration):\n\n\
         | Vergent (3 nodes, c=64) | ops/s | p99 ms | anchor | ops/s | p99 ms | ratio | target |\n\
         |---|---:|---:|---|---:|---:|---:|---|\n",
        opts.reps
    );
    // (our fsync, scenario, anchor, least ratio, most p99 ms, target);
    // a p99 limit below 0 means "no worse than the anchor's p99".
    let pairs = [
        (
            "group",
            "put",
            "etcd put",
            4.0,
            5.0,
            "puts >= 4x etcd, p99 < 5 ms",
        ),
        (
            "per-write",
            "put",
            "etcd put",
            4.0,
            5.0,
            "the same with fsync in every write",
        ),
        (
            "group",
            "put",
            "Redis-TLS SET",
            0.5,
            5.0,
            "puts >= 0.5x Redis SET",
        ),
        (
            "group",
            "get",
            "Redis-TLS GET",
            0.5,
            3.0,
            "gets >= 0.5x Redis GET, p99 < 3 ms",
        ),
        (
            "group",
            "get",
            "etcd get (serializable)",
            0.0,
            0.0,
            "(for reference)",
        ),
        (
            "group",
            CAS_DISTINCT,
            "etcd put",
            1.0,
            -1.0,
            "CAS >= etcd puts, p99 no worse",
        ),
        (
            "group",
            SERIAL_GET,
            "etcd get (linearizable)",
            1.0,
            0.0,
            "serial get >= etcd linearizable get",
        ),
        (
            "group",
            CAS_HOT,
            "etcd put",
            0.0,
            0.0,
            "(for reference: contention; misses are CAS not applied)",
        ),
        (
            "group",
            QUORUM_PUT,
            "etcd put",
            2.0,
            -1.0,
            "quorum puts >= 2x etcd puts, p99 below etcd's",
        ),
        (
            "group",
            QUORUM_GET,
            "etcd get (linearizable)",
            1.0,
            0.0,
            "quorum gets >= etcd linearizable gets",
        ),
        ("group", ALL_PUT, "etcd put", 0.0, 0.0, "(for reference)"),
        (
            "group",
            ALL_GET,
            "etcd get (linearizable)",
            0.0,
            0.0,
            "(for reference)",
        ),
    ];
    for (fsync, scenario, anchor, want, p99_max, target) in pairs {
        let (Some(v), Some(a)) = (ours(fsync, scenario), theirs(anchor)) else {
            continue;
        };
        let ratio = num(v, "throughput_ops_s") / num(a, "throughput_ops_s").max(1.0);
        let p99 = num(v, "p99_us") / 1000.0;
        let p99_max = if p99_max < 0.0 {
            // "No worse": at most the anchor's own p99.
            num(a, "p99_us") / 1000.0 + f64::EPSILON
        } else {
            p99_max
        };
        let mut verdict = Vec::new();
        if want > 0.0 {
            verdict.push(if ratio >= want {
                "ratio met".to_string()
            } else {
                format!("ratio {:.0}% of target", 100.0 * ratio / want)
            });
        }
        if p99_max > 0.0 {
            verdict.push(if p99 < p99_max {
                "p99 met".to_string()
            } else {
                format!("p99 {:.1}x the limit", p99 / p99_max)
            });
        }
        let verdict = if verdict.is_empty() {
            String::new()
        } else {
            format!(" ({})", verdict.join(", "))
        };
        s.push_str(&format!(
            "| {scenario}, fsync {fsync} | {:.0} | {p99:.2} | {anchor} | {:.0} | {:.2} | {ratio:.2}x | {target}{verdict} |\n",
            num(v, "throughput_ops_s"),
            num(a, "throughput_ops_s"),
            num(a, "p99_us") / 1000.0,
        ));
    }
    s
}
