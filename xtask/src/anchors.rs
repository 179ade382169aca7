//! The anchors of `cargo xtask bench --anchors DIR`: what users would pick
//! instead of Vergent, measured in the same run on the same machine.
//!
//! DIR is the peer harness (`../shared/bench` on the development machines):
//! `etcd-cluster.sh` starts 3 etcd members with client and peer mTLS,
//! `redis.sh` a Redis primary with two replicas over TLS, and its `loadgen`
//! drives both closed-loop at 64 clients with the same key space, key and
//! value sizes, warmup and duration as Vergent's runs. The harness directory
//! is only read; its load generator is built into `target/` and the servers
//! keep their data under the run's output directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{cargo, root, sh};

/// One anchor measurement: its label and the load generator's JSON line.
pub(crate) struct Anchor {
    /// e.g. `etcd put`.
    pub(crate) name: &'static str,
    /// `loadgen` output: `throughput_ops_s`, `p50_us`, `p99_us`, ...
    pub(crate) result: serde_json::Value,
}

/// One system of the harness and how its load generator reaches it.
struct System {
    /// The harness script that starts and stops it, and its variant argument.
    script: &'static str,
    variant: Option<&'static str>,
    /// Its directory under the run's work directory.
    dir: &'static str,
    /// `loadgen --target`, `--endpoints` and `--conns`.
    target: &'static str,
    endpoints: &'static str,
    conns: &'static str,
    /// Labels of its put and get rows, and extra flags of each get run.
    put: &'static str,
    gets: &'static [(&'static str, &'static [&'static str])],
}

/// etcd over one connection per member, as the harness drives it; Redis over
/// one connection per client, comparable to `redis-benchmark -c 64 -P 1`.
const SYSTEMS: [System; 2] = [
    System {
        script: "etcd-cluster.sh",
        variant: None,
        dir: "etcd",
        target: "etcd",
        endpoints: "https://127.0.0.1:2379,https://127.0.0.1:22379,https://127.0.0.1:32379",
        conns: "3",
        put: "etcd put",
        gets: &[
            ("etcd get (serializable)", &["--etcd-serializable"]),
            // etcd's default: a quorum read through the leader.
            ("etcd get (linearizable)", &[]),
        ],
    },
    System {
        script: "redis.sh",
        variant: Some("tls"),
        dir: "redis-tls",
        target: "redis",
        endpoints: "127.0.0.1:7379",
        conns: "64",
        put: "Redis-TLS SET",
        gets: &[("Redis-TLS GET", &[])],
    },
];

/// Builds the harness's load generator (once) and returns its path.
pub(crate) fn build_loadgen(harness: &Path) -> anyhow::Result<PathBuf> {
    let manifest = harness.join("loadgen").join("Cargo.toml");
    if !manifest.exists() {
        bail!(
            "{} has no loadgen/Cargo.toml; --anchors wants the peer harness directory",
            harness.display()
        );
    }
    // etcd, etcdctl (the harness's health check), redis-server and protoc
    // (etcd-client's build compiles etcd's protos): installed as `xtask
    // deps` installs, or the exact command is named.
    crate::deps::ensure_anchor_tools()?;
    let target = root().join("target").join("anchor-loadgen");
    sh(cargo()
        .args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target))?;
    Ok(target.join("release").join("loadgen"))
}

/// Runs etcd puts, etcd serializable and linearizable gets, Redis-TLS puts and gets at 64
/// clients; servers are fresh for this call and stopped before it returns.
pub(crate) fn run(
    harness: &Path,
    loadgen: &Path,
    work: &Path,
    warmup_s: f64,
    duration_s: f64,
) -> anyhow::Result<Vec<Anchor>> {
    let mut out = Vec::new();
    let kv = [
        "--key-space",
        "100000",
        "--key-size",
        "16",
        "--value-size",
        "100",
    ];
    let timing = [
        "--warmup".to_string(),
        format!("{warmup_s}"),
        "--duration".to_string(),
        format!("{duration_s}"),
    ];

    for system in SYSTEMS {
        let dir = work.join(system.dir);
        server(harness, system.script, "start", &dir, system.variant)?;
        let result = (|| -> anyhow::Result<()> {
            let certs = dir.join("certs");
            let base = |mix: &str| {
                let mut c = Command::new(loadgen);
                c.args(["--target", system.target, "--endpoints", system.endpoints])
                    .args(tls(&certs))
                    .args(["--clients", "64", "--conns", system.conns, "--mix", mix])
                    .args(kv);
                c
            };
            out.push(Anchor {
                name: system.put,
                result: measure(base("100:0").args(&timing))?,
            });
            preload(base("0:100").arg("--preload-only"))?;
            for (name, flags) in system.gets {
                out.push(Anchor {
                    name,
                    result: measure(base("0:100").args(&timing).args(*flags))?,
                });
            }
            Ok(())
        })();
        server(harness, system.script, "stop", &dir, None)?;
        result?;
    }
    Ok(out)
}

fn tls(certs: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "--ca".into(),
        certs.join("ca.crt").into(),
        "--cert".into(),
        certs.join("client.crt").into(),
        "--key".into(),
        certs.join("client.key").into(),
    ]
}

/// `SCRIPT start|stop DIR [VARIANT]` of the harness.
fn server(
    harness: &Path,
    script: &str,
    action: &str,
    dir: &Path,
    variant: Option<&str>,
) -> anyhow::Result<()> {
    let mut cmd = Command::new(harness.join(script));
    cmd.arg(action).arg(dir).args(variant);
    let out = cmd.output().with_context(|| format!("run {script}"))?;
    if !out.status.success() {
        bail!(
            "{script} {action}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Writes every key once (untimed) so that gets hit.
fn preload(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().context("run loadgen --preload-only")?;
    if !out.status.success() {
        bail!("loadgen preload: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Runs the load generator; returns its last JSON line.
fn measure(cmd: &mut Command) -> anyhow::Result<serde_json::Value> {
    let out = cmd.output().context("run loadgen")?;
    if !out.status.success() {
        bail!("loadgen: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("parse loadgen output {line:?}"))
}
