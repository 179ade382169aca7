//! Real `vergentd` processes: certificates, start/kill/pause/restart, clock
//! modes, disk-fault injection with strace, and clients to each node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use vergent_client::{Client, ClientConfig};
use vergent_tls::TlsFiles;

/// How a node's clock is set when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClockMode {
    /// The machine's clock.
    Real,
    /// The node's test-only offset flag.
    Offset(i64),
    /// libfaketime, preloaded.
    Faketime(i64),
}

/// One node of the cluster.
pub(crate) struct NodeProc {
    /// `n1`, `n2`, …
    pub(crate) id: String,
    /// The node's own TCP (API) and UDP (peer) port.
    pub(crate) port: u16,
    /// What peers dial: the node's port, or its delay proxy's.
    pub(crate) advertise: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Whether it is SIGSTOPped.
    pub(crate) paused: bool,
    /// The clock it runs (or will run) with.
    pub(crate) clock: ClockMode,
    strace: Option<Child>,
    /// How many times it was started.
    pub(crate) starts: u32,
}

/// The cluster and how to reach it.
pub(crate) struct Cluster {
    vergentd: PathBuf,
    node_tls: TlsFiles,
    client_tls: TlsFiles,
    max_clock_offset: Duration,
    faketime_lib: Option<PathBuf>,
    /// The nodes' `--tombstone-grace`, when set (short: purges happen in the run).
    tombstone_grace: Option<Duration>,
    /// Start the nodes with the broken consensus core (checker test).
    unsafe_quorum_of_one: bool,
    /// Start the nodes with the broken level tracker (checker test).
    unsafe_levels_of_one: bool,
    /// The nodes, in index order.
    pub(crate) nodes: Vec<NodeProc>,
}

impl Cluster {
    /// Lays out `n` nodes under `dir` (certificates, data dirs, logs);
    /// `advertise[i]` is what node i's peers dial.
    #[allow(clippy::too_many_arguments)] // one per node flag; called once
    pub(crate) fn new(
        dir: &Path,
        vergentd: PathBuf,
        ports: &[u16],
        advertise: &[SocketAddr],
        max_clock_offset: Duration,
        faketime_lib: Option<PathBuf>,
        tombstone_grace: Option<Duration>,
        unsafe_quorum_of_one: bool,
        unsafe_levels_of_one: bool,
    ) -> anyhow::Result<Self> {
        let certs = vergent_testkit::unencrypted_certs(&dir.join("certs"), "vergent-chaos-node");
        let (node_tls, client_tls) = (certs.node, certs.client);
        std::fs::create_dir_all(dir.join("logs")).context("create the log dir")?;
        let nodes = ports
            .iter()
            .zip(advertise)
            .enumerate()
            .map(|(i, (&port, &advertise))| {
                let id = format!("n{}", i + 1);
                NodeProc {
                    data_dir: dir.join("data").join(&id),
                    log: dir.join("logs").join(format!("{id}.log")),
                    id,
                    port,
                    advertise,
                    child: None,
                    paused: false,
                    clock: ClockMode::Real,
                    strace: None,
                    starts: 0,
                }
            })
            .collect();
        Ok(Self {
            vergentd,
            node_tls,
            client_tls,
            max_clock_offset,
            faketime_lib,
            tombstone_grace,
            unsafe_quorum_of_one,
            unsafe_levels_of_one,
            nodes,
        })
    }

    /// Starts node `i` with its current clock mode; returns once spawned.
    pub(crate) fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.advertise.to_string())
            .collect();
        let node = &mut self.nodes[i];
        if node.child.is_some() {
            bail!("{} is already running", node.id);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("open {}", node.log.display()))?;
        let mut cmd = Command::new(&self.vergentd);
        cmd.arg("--port")
            .arg(node.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--advertise")
            .arg(node.advertise.to_string())
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--node-id", &node.id])
            .arg("--tls-certfile")
            .arg(&self.node_tls.cert)
            .arg("--tls-keyfile")
            .arg(&self.node_tls.key)
            .arg("--tls-cafile")
            .arg(&self.node_tls.ca)
            .arg("--max-clock-offset")
            .arg(humantime::format_duration(self.max_clock_offset).to_string())
            // Frequent repair sessions, so repair runs under every fault.
            .args(["--repair-interval", "5s"])
            .args(["--log-level", "info"]);
        if let Some(grace) = self.tombstone_grace {
            cmd.arg("--tombstone-grace")
                .arg(humantime::format_duration(grace).to_string());
        }
        if self.unsafe_quorum_of_one {
            cmd.arg("--unsafe-test-quorum-of-one");
        }
        if self.unsafe_levels_of_one {
            cmd.arg("--unsafe-test-levels-of-one");
        }
        if !peers.is_empty() {
            cmd.arg("--peers").args(&peers);
        }
        match node.clock {
            ClockMode::Real => {}
            ClockMode::Offset(ms) => {
                cmd.arg(format!("--debug-clock-offset-ms={ms}"));
            }
            ClockMode::Faketime(ms) => {
                let lib = self
                    .faketime_lib
                    .as_ref()
                    .context("libfaketime is not installed")?;
                cmd.env("LD_PRELOAD", lib)
                    .env("FAKETIME", format!("{:+.3}", ms as f64 / 1000.0))
                    // The offset is fixed for the process's life, so the
                    // default caching of FAKETIME is right (NO_CACHE re-reads
                    // it on every clock call and slows the node to a crawl).
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().context("clone the log handle")?)
            .stderr(log)
            // Own process group: a Ctrl-C in the terminal reaches the runner,
            // which tears the nodes down itself.
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {} ({})", node.id, self.vergentd.display()))?;
        node.child = Some(child);
        node.paused = false;
        node.starts += 1;
        Ok(())
    }

    /// The length of node `i`'s log now.
    pub(crate) fn log_len(&self, i: usize) -> u64 {
        std::fs::metadata(&self.nodes[i].log).map_or(0, |m| m.len())
    }

    /// What node `i` logged after byte `from`.
    pub(crate) fn log_since(&self, i: usize, from: u64) -> String {
        std::fs::read(&self.nodes[i].log)
            .ok()
            .and_then(|b| {
                b.get(from as usize..)
                    .map(|t| String::from_utf8_lossy(t).into_owned())
            })
            .unwrap_or_default()
    }

    /// What every node's log (all of its lives) says about anti-entropy.
    pub(crate) fn anti_entropy(&self) -> crate::report::AntiEntropy {
        let mut counts = crate::report::AntiEntropy::default();
        for n in &self.nodes {
            if let Ok(text) = std::fs::read_to_string(&n.log) {
                counts.add_log(&text);
            }
        }
        counts
    }

    /// Deletes node `i`'s data dir (the node must be down).
    pub(crate) fn wipe(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        if node.child.is_some() {
            bail!("{} is running; kill it before wiping its data", node.id);
        }
        match std::fs::remove_dir_all(&node.data_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("wipe {}", node.data_dir.display())),
        }
    }

    /// `kill -9` node `i` and reaps it.
    pub(crate) async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.stop_strace(i).await;
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            // SIGKILL works on a stopped process too.
            child.start_kill().ok();
            child.wait().await.context("reap a killed node")?;
        }
        node.paused = false;
        Ok(())
    }

    /// Sends `signal` (a `kill -s` name) to node `i`.
    async fn signal(&self, i: usize, signal: &str) -> anyhow::Result<()> {
        match self.nodes[i].child.as_ref().and_then(Child::id) {
            Some(pid) => send_signal(pid, signal).await,
            None => Ok(()),
        }
    }

    /// SIGSTOP node `i`.
    pub(crate) async fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "STOP").await?;
        self.nodes[i].paused = true;
        Ok(())
    }

    /// SIGCONT node `i`.
    pub(crate) async fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        if self.nodes[i].paused {
            self.signal(i, "CONT").await?;
            self.nodes[i].paused = false;
        }
        Ok(())
    }

    /// Attaches strace to node `i` so that every fsync and fdatasync fails with EIO.
    pub(crate) async fn break_fsync(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(pid) = self.nodes[i].child.as_ref().and_then(Child::id) else {
            return Ok(());
        };
        let child = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-p", &pid.to_string()])
            .args(["-e", "trace=fsync,fdatasync,sync_file_range"])
            .args(["-e", "inject=fsync,fdatasync,sync_file_range:error=EIO"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start strace")?;
        self.nodes[i].strace = Some(child);
        // strace needs a moment to attach to every thread; the fault holds
        // for seconds, so starting slightly late only shortens it.
        Ok(())
    }

    /// Detaches strace from node `i` (fsync works again).
    pub(crate) async fn stop_strace(&mut self, i: usize) {
        if let Some(mut strace) = self.nodes[i].strace.take() {
            if let Some(pid) = strace.id() {
                // SIGTERM makes strace detach cleanly; SIGKILL could leave the
                // traced threads stopped.
                let _ = send_signal(pid, "TERM").await;
            }
            if tokio::time::timeout(Duration::from_secs(5), strace.wait())
                .await
                .is_err()
            {
                strace.start_kill().ok();
                let _ = strace.wait().await;
            }
        }
    }

    /// Whether node `i` has a process (running or paused).
    pub(crate) fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Reaps nodes that exited on their own; returns their ids and statuses.
    pub(crate) fn reap_exited(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(child) = node.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                node.child = None;
                node.paused = false;
                out.push((i, status.to_string()));
            }
        }
        out
    }

    /// How to reach node `i` as a client, with `timeout` to connect and per call.
    fn client_config(&self, i: usize, timeout: Duration) -> ClientConfig {
        let mut config = ClientConfig::new(
            format!("127.0.0.1:{}", self.nodes[i].port),
            self.client_tls.clone(),
        );
        config.server_name = Some("localhost".into());
        config.connect_timeout = timeout;
        config.request_timeout = timeout;
        // The history records each call's own outcome: a client that
        // retried would hide the attempts the checkers must see.
        config.retry = vergent_client::RetryConfig::never();
        config
    }

    /// Connects to node `i`, retrying until `deadline`.
    pub(crate) async fn connect(
        &self,
        i: usize,
        timeout: Duration,
        deadline: Instant,
    ) -> anyhow::Result<Client> {
        loop {
            match Client::connect(self.client_config(i, timeout)).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("{} not ready yet: {e}", self.nodes[i].id);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "connect to {} (see {})",
                            self.nodes[i].id,
                            self.nodes[i].log.display()
                        )
                    });
                }
            }
        }
    }

    /// Stops every node: strace detached, paused ones resumed, SIGTERM, then
    /// SIGKILL after a grace period.
    pub(crate) async fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_strace(i).await;
            let _ = self.resume(i).await;
            let _ = self.signal(i, "TERM").await;
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take()
                && tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
            {
                child.start_kill().ok();
                let _ = child.wait().await;
            }
        }
    }

    /// The data dirs, for removal after a passing run.
    pub(crate) fn data_root(&self) -> Option<PathBuf> {
        self.nodes
            .first()
            .and_then(|n| n.data_dir.parent().map(Path::to_path_buf))
    }
}

/// Sends `signal` (a `kill -s` name) to process `pid`.
async fn send_signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .await
        .context("run kill")?;
    if !status.success() {
        bail!("kill -s {signal} {pid} failed");
    }
    Ok(())
}
