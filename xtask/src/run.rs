//! `cargo xtask run` / `stop`: a local cluster with throwaway certificates.

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{cargo, root, sh};

const BASE_PORT: u16 = 2001;
/// The throwaway CA's passphrase; these certificates are for local use only.
const DEV_PASSPHRASE: &str = "vergent-dev";

fn dev_dir() -> PathBuf {
    root().join(".vergent").join("dev")
}

struct Opts {
    nodes: u16,
    release: bool,
    keep: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Opts> {
    let mut o = Opts {
        nodes: 3,
        release: false,
        keep: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--nodes" => {
                let n = it.next().context("read --nodes N")?;
                o.nodes = n.parse().with_context(|| format!("parse --nodes {n:?}"))?;
                if !(1..=9).contains(&o.nodes) {
                    bail!("use --nodes between 1 and 9");
                }
            }
            "--release" => o.release = true,
            "--keep" => o.keep = true,
            other => bail!("parse arguments: unknown option {other:?}"),
        }
    }
    Ok(o)
}

pub(crate) fn bin_dir(release: bool) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join(if release { "release" } else { "debug" })
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = parse(args)?;
    crate::deps::ensure()?;
    let mut build = cargo();
    build.args(["build", "-p", "vergentd", "-p", "vergentctl"]);
    if opts.release {
        build.arg("--release");
    }
    sh(&mut build)?;
    let bins = bin_dir(opts.release);
    let dir = dev_dir();
    let certs = dir.join("certs");
    make_certs(&bins.join("vergentctl"), &certs)?;
    stop()?;

    let ports: Vec<u16> = (0..opts.nodes).map(|i| BASE_PORT + i).collect();
    start_nodes(&bins.join("vergentd"), &dir, &certs, &ports, &[])?;
    let connect = format!(
        "{} connect 127.0.0.1:{BASE_PORT} --tls-certfile {c}/client.crt --tls-keyfile {c}/client.key --tls-cafile {c}/ca.pem",
        bins.join("vergentctl").display(),
        c = certs.display()
    );
    eprintln!(
        "\n{} node(s) running; logs and data in {}",
        opts.nodes,
        dir.display()
    );
    eprintln!("connect with:\n  {connect}");
    eprintln!(
        "metrics and health (Prometheus /metrics, /health, /ready):\n  {}",
        ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{}/metrics", http_port(*p)))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    eprintln!("stop with:\n  cargo xtask stop\n");

    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        let status = Command::new(bins.join("vergentctl"))
            .args(["connect", &format!("127.0.0.1:{BASE_PORT}")])
            .arg("--tls-certfile")
            .arg(certs.join("client.crt"))
            .arg("--tls-keyfile")
            .arg(certs.join("client.key"))
            .arg("--tls-cafile")
            .arg(certs.join("ca.pem"))
            .status()
            .context("run the shell")?;
        if !opts.keep {
            eprintln!("shell closed; stopping the cluster (use --keep to leave it running)");
            stop()?;
        }
        if !status.success() {
            bail!("run the shell: {status}");
        }
    }
    Ok(())
}

pub(crate) fn make_certs(vergentctl: &Path, dir: &Path) -> anyhow::Result<()> {
    if dir.join("client.key").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let ctl = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new(vergentctl)
            .args(args)
            .current_dir(dir)
            .env("VERGENT_CA_PASSPHRASE", DEV_PASSPHRASE)
            .output()
            .context("run vergentctl")?;
        if !out.status.success() {
            bail!(
                "run vergentctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    ctl(&[
        "gen-root",
        "--out",
        "ca.pem",
        "--key-out",
        "ca.key",
        "--force",
    ])?;
    ctl(&[
        "gen-cert",
        "--ca",
        "ca.pem",
        "--ca-key",
        "ca.key",
        "--out",
        "node.crt",
        "--key-out",
        "node.key",
        "--cn",
        "node",
        "--san-dns",
        "localhost",
        "--san-ip",
        "127.0.0.1",
        "--force",
    ])?;
    ctl(&[
        "gen-cert",
        "--ca",
        "ca.pem",
        "--ca-key",
        "ca.key",
        "--out",
        "client.crt",
        "--key-out",
        "client.key",
        "--cn",
        "client",
        "--role",
        "client",
        "--force",
    ])?;
    eprintln!(
        "created a throwaway CA and certificates in {} (CA passphrase: {DEV_PASSPHRASE})",
        dir.display()
    );
    Ok(())
}

/// Starts one node per port on 127.0.0.1 (node-1 on the first), each seeded
/// with all the others, and waits until each is ready.
pub(crate) fn start_nodes(
    vergentd: &Path,
    dir: &Path,
    certs: &Path,
    ports: &[u16],
    extra: &[&str],
) -> anyhow::Result<()> {
    for (i, port) in ports.iter().enumerate() {
        let peers: Vec<String> = ports
            .iter()
            .filter(|p| *p != port)
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        start_node(vergentd, dir, certs, i + 1, *port, &peers, extra)?;
    }
    wait_serving(&vergentd.with_file_name("vergentctl"), certs, ports)
}

/// Waits until every node reports `serving`: nodes that start empty refuse
/// reads until they have met their peers (a new cluster forms within
/// seconds of its last node starting).
fn wait_serving(vergentctl: &Path, certs: &Path, ports: &[u16]) -> anyhow::Result<()> {
    let start = Instant::now();
    for port in ports {
        loop {
            let out = Command::new(vergentctl)
                .args(["connect", &format!("127.0.0.1:{port}")])
                .arg("--tls-certfile")
                .arg(certs.join("client.crt"))
                .arg("--tls-keyfile")
                .arg(certs.join("client.key"))
                .arg("--tls-cafile")
                .arg(certs.join("ca.pem"))
                .args(["-e", "status"])
                .output()
                .context("run vergentctl status")?;
            let text = String::from_utf8_lossy(&out.stdout);
            if text
                .lines()
                .any(|l| l.starts_with("state:") && l.ends_with("serving"))
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("the node on port {port} is not serving after 60 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// The operations endpoint of the node whose API is on `port`.
pub(crate) fn http_port(port: u16) -> u16 {
    port + 7000
}

/// Starts node `n` with its data and log in `dir` (plus `extra` flags) and
/// waits until it is ready.
pub(crate) fn start_node(
    vergentd: &Path,
    dir: &Path,
    certs: &Path,
    n: usize,
    port: u16,
    peers: &[String],
    extra: &[&str],
) -> anyhow::Result<()> {
    let log_path = dir.join(format!("node-{n}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("create {}", log_path.display()))?;
    let mut cmd = Command::new(vergentd);
    cmd.args([
        "--port",
        &port.to_string(),
        "--node-id",
        &format!("node-{n}"),
        "--http-addr",
        &format!("127.0.0.1:{}", http_port(port)),
    ])
    .arg("--data-dir")
    .arg(dir.join(format!("node-{n}")))
    .arg("--tls-certfile")
    .arg(certs.join("node.crt"))
    .arg("--tls-keyfile")
    .arg(certs.join("node.key"))
    .arg("--tls-cafile")
    .arg(certs.join("ca.pem"));
    if !peers.is_empty() {
        cmd.arg("--peers").args(peers);
    }
    cmd.args(extra);
    // Its own process group: Ctrl-C in the shell must not stop the nodes.
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("clone log handle")?)
        .stderr(log)
        .spawn()
        .context("start vergentd")?;
    std::fs::write(dir.join(format!("node-{n}.pid")), child.id().to_string())
        .context("write pid file")?;
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains(" ready ") {
            eprintln!("node-{n} ready on 127.0.0.1:{port}");
            return Ok(());
        }
        if text.contains("failed to") || start.elapsed() > Duration::from_secs(60) {
            bail!("start node-{n}; its log ({}):\n{text}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops every node whose pid file is in the dev dir (SIGTERM, then waits).
pub(crate) fn stop() -> anyhow::Result<()> {
    stop_dir(&dev_dir())
}

/// Stops every node whose pid file is in `dir` (SIGTERM, then waits).
pub(crate) fn stop_dir(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "pid") {
            continue;
        }
        stop_pid_file(&path)?;
    }
    Ok(())
}

/// Stops the vergentd whose pid is in `path` (SIGTERM, then waits up to
/// 15 s) and removes the file.
pub(crate) fn stop_pid_file(path: &Path) -> anyhow::Result<()> {
    let pid = std::fs::read_to_string(path).unwrap_or_default();
    let pid = pid.trim();
    let alive = |pid: &str| Path::new(&format!("/proc/{pid}")).exists();
    if !pid.is_empty() && alive(pid) && is_vergentd(pid) {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "stopped {} (pid {pid})",
            path.file_stem().unwrap_or_default().to_string_lossy()
        );
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Only signal a pid that is still a vergentd (pids are reused).
fn is_vergentd(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "vergentd")
}
