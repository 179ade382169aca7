//! Test harness: throwaway certificates, real `vergentd` processes and a
//! `vergentctl` driver. Everything listens on 127.0.0.1 only, and every wait
//! has a deadline.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use vergent_client::{Client, StoredRecord};

use vergent_testkit::write_pair;
use vergent_tls::{CertSpec, Role, RootSpec, TlsFiles};

/// How long a node may take to start.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long replicas may take to converge (or a node to finish bootstrap).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// A CA with node and client certificates, plus bad ones for refusal tests.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub node: TlsFiles,
    pub client: TlsFiles,
    pub other_ca_client: TlsFiles,
    pub expired_client: TlsFiles,
}

const PASS: &[u8] = b"test-passphrase";

impl Certs {
    /// A node certificate of its own for `name` (CN and DNS name), signed by
    /// this CA.
    pub fn node_cert(&self, name: &str) -> TlsFiles {
        let ca_pem = std::fs::read_to_string(&self.ca).expect("read ca");
        let key_pem = std::fs::read_to_string(&self.ca_key).expect("read ca key");
        let mut spec = CertSpec::new(name, Role::Node);
        spec.dns = vec![name.to_string(), "localhost".into()];
        spec.ips = vec![IpAddr::from([127, 0, 0, 1])];
        let cert = vergent_tls::generate_cert(&ca_pem, &key_pem, Some(PASS), &spec).expect("sign");
        write_pair(&self.dir, name, &cert, &self.ca)
    }

    pub fn generate(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("cert dir");
        let root = vergent_tls::generate_root(&RootSpec::default(), PASS).expect("root");
        let ca = dir.join("ca.pem");
        let ca_key = dir.join("ca.key");
        vergent_tls::write_public(&ca, root.cert_pem.as_bytes()).expect("write ca");
        vergent_tls::write_private(&ca_key, root.key_pem.as_bytes()).expect("write ca key");
        let sign = |spec: &CertSpec| {
            vergent_tls::generate_cert(&root.cert_pem, &root.key_pem, Some(PASS), spec)
                .expect("sign cert")
        };
        let mut node_spec = CertSpec::new("node-1", Role::Node);
        node_spec.dns = vec!["localhost".into()];
        node_spec.ips = vec![IpAddr::from([127, 0, 0, 1])];
        let node = write_pair(dir, "node-1", &sign(&node_spec), &ca);
        let client = write_pair(
            dir,
            "client",
            &sign(&CertSpec::new("client", Role::Client)),
            &ca,
        );

        let mut expired_spec = CertSpec::new("expired", Role::Client);
        let now = SystemTime::now();
        expired_spec.not_before = Some(now - Duration::from_secs(3 * 86_400));
        expired_spec.not_after = Some(now - Duration::from_secs(86_400));
        let expired_client = write_pair(dir, "expired", &sign(&expired_spec), &ca);

        let other = vergent_tls::generate_root_unencrypted(&RootSpec {
            cn: "Other CA".into(),
            days: 30,
        })
        .expect("other root");
        let other_cert = vergent_tls::generate_cert(
            &other.cert_pem,
            &other.key_pem,
            None,
            &CertSpec::new("intruder", Role::Client),
        )
        .expect("other cert");
        // The intruder trusts our CA (so it can verify the server) but its
        // own certificate is signed by another CA.
        let other_ca_client = write_pair(dir, "intruder", &other_cert, &ca);
        Self {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
            node,
            client,
            other_ca_client,
            expired_client,
        }
    }
}

pub fn bin(name: &str) -> PathBuf {
    // Another build's binaries (e.g. the commit before a fix, to show a
    // test fails there): VERGENT_TEST_BIN_DIR=/path/to/target/release.
    if let Some(dir) = std::env::var_os("VERGENT_TEST_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let vergentd = PathBuf::from(env!("CARGO_BIN_EXE_vergentd"));
    if name == "vergentd" {
        return vergentd;
    }
    // Another package's binary: cargo builds only this package's binaries for
    // its tests, so build it (a no-op when fresh) once per test process.
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "vergentctl"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p vergentctl");
        assert!(status.success(), "cargo build -p vergentctl failed");
    });
    let path = vergentd.with_file_name(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

fn is_ready_line(l: &str) -> bool {
    l.contains(" ready ") || l.contains("\"message\":\"ready\"")
}

fn addr_of_ready_line(l: &str) -> Option<String> {
    if let Some(rest) = l.split("addr=").nth(1) {
        return rest.split_whitespace().next().map(str::to_string);
    }
    let rest = l.split("\"addr\":\"").nth(1)?;
    rest.split('"').next().map(str::to_string)
}

/// A running `vergentd` with its stderr captured.
pub struct Proc {
    pub child: Child,
    pub addr: String,
    pub log: Arc<Mutex<String>>,
}

pub fn spawn_vergentd(args: &[&str]) -> (Child, Arc<Mutex<String>>) {
    spawn_vergentd_limited(args, None)
}

/// [`spawn_vergentd`], with the process's file-descriptor limit (soft and
/// hard) set to `nofile` when given (via util-linux `prlimit`).
pub fn spawn_vergentd_limited(args: &[&str], nofile: Option<u64>) -> (Child, Arc<Mutex<String>>) {
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg(bin("vergentd"));
            c
        }
        None => Command::new(bin("vergentd")),
    };
    let mut child = cmd
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vergentd");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr piped");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut s = sink.lock().expect("log lock");
            s.push_str(&line);
            s.push('\n');
        }
    });
    (child, log)
}

/// Waits for `cond` on the captured log, with a deadline.
pub fn wait_log(log: &Arc<Mutex<String>>, deadline: Duration, cond: impl Fn(&str) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond(&log.lock().expect("log lock")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Proc {
    /// Starts a node on a free loopback port and waits until it is ready.
    pub fn start(certs: &Certs, data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_as(&certs.node, &certs.ca, data_dir, extra)
    }

    /// [`Self::start`] with the file-descriptor limit set to `nofile`.
    pub fn start_with_fd_limit(
        certs: &Certs,
        data_dir: &Path,
        extra: &[&str],
        nofile: u64,
    ) -> Self {
        Self::start_full(&certs.node, &certs.ca, data_dir, extra, Some(nofile))
    }

    /// [`Self::start`] with the node certificate `node`.
    pub fn start_as(node: &TlsFiles, ca: &Path, data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_full(node, ca, data_dir, extra, None)
    }

    fn start_full(
        node: &TlsFiles,
        ca: &Path,
        data_dir: &Path,
        extra: &[&str],
        nofile: Option<u64>,
    ) -> Self {
        let mut args = Vec::new();
        if !extra.contains(&"--port") {
            args.extend(["--port".to_string(), "0".into()]);
        }
        args.extend([
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--log-level".into(),
            "debug".into(),
            "--tls-certfile".into(),
            node.cert.display().to_string(),
            "--tls-keyfile".into(),
            node.key.display().to_string(),
            "--tls-cafile".into(),
            ca.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut child, log) = spawn_vergentd_limited(&refs, nofile);
        // Ready, failed, or exited (e.g. refused flags): whichever comes first.
        let start = Instant::now();
        let ready = loop {
            if wait_log(&log, Duration::from_millis(100), |l| {
                l.lines().any(is_ready_line) || l.contains("failed to")
            }) {
                break true;
            }
            if start.elapsed() > START_DEADLINE || child.try_wait().ok().flatten().is_some() {
                // Let the log reader catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                break false;
            }
        };
        let text = log.lock().expect("log lock").clone();
        if !ready || !text.lines().any(is_ready_line) {
            let _ = child.kill();
            panic!("vergentd did not become ready:\n{text}");
        }
        let addr = text
            .lines()
            .find(|l| is_ready_line(l))
            .and_then(addr_of_ready_line)
            .expect("ready line has the address");
        Self { child, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for exit with a deadline.
    pub fn terminate(mut self, deadline: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                panic!(
                    "vergentd did not exit within {deadline:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` (a `vergentctl`) with `stdin` written whole to a pipe and
/// closed, `HOME` in the temp dir (its shell history), and its output
/// captured within 60 s. Also returns how writing stdin went: vergentctl may
/// exit before reading it all (e.g. in `-e` mode).
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> (Output, std::io::Result<()>) {
    let mut child = cmd
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vergentctl");
    let mut pipe = child.stdin.take().expect("stdin piped");
    let written = pipe.write_all(stdin);
    drop(pipe);
    (wait_output(child, Duration::from_secs(60)), written)
}

/// Runs `vergentctl connect` with `script` on stdin (a pipe, not a terminal).
pub fn ctl_script(addr: &str, tls: &TlsFiles, script: &str) -> Output {
    let (out, written) = run_with_stdin(
        Command::new(bin("vergentctl"))
            .args(["connect", addr, "--tls-certfile"])
            .arg(&tls.cert)
            .arg("--tls-keyfile")
            .arg(&tls.key)
            .arg("--tls-cafile")
            .arg(&tls.ca),
        script.as_bytes(),
    );
    written.expect("write script");
    out
}

/// Waits for a child's output with a deadline, killing it past the deadline.
pub fn wait_output(mut child: Child, deadline: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "process did not finish within {deadline:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// N nodes on fixed loopback ports, each seeded with all the others.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub certs: Certs,
    pub ports: Vec<u16>,
    /// Flags every node gets (e.g. `--repair-interval 1s`).
    pub flags: Vec<String>,
    /// Per-node certificates (CN `node-<i>`), when the nodes do not share one.
    pub node_certs: Option<Vec<TlsFiles>>,
}

impl Cluster {
    pub fn new(n: usize) -> Self {
        Self::with_flags(n, &[])
    }

    pub fn with_flags(n: usize, flags: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let certs = Certs::generate(&tmp.path().join("certs"));
        Self {
            tmp,
            certs,
            ports: vergent_testkit::free_ports(n),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            node_certs: None,
        }
    }

    /// Like [`Self::with_flags`], each node with a certificate of its own.
    pub fn with_node_certs(n: usize, flags: &[&str]) -> Self {
        let mut c = Self::with_flags(n, flags);
        c.node_certs = Some(
            (0..n)
                .map(|i| c.certs.node_cert(&format!("node-{i}")))
                .collect(),
        );
        c
    }

    /// Node `i`'s certificate.
    pub fn node_cert(&self, i: usize) -> &TlsFiles {
        self.node_certs.as_ref().map_or(&self.certs.node, |c| &c[i])
    }

    /// Node `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("node-{i}"))
    }

    /// Node `i`'s flags: the seed README's `--port` and every other node
    /// after one `--peers`, then the cluster's flags and `extra`.
    pub fn args(&self, i: usize, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--node-id".to_string(),
            format!("node-{i}"),
            "--peers".into(),
        ];
        args.extend(
            self.ports
                .iter()
                .filter(|p| **p != self.ports[i])
                .map(|p| format!("127.0.0.1:{p}")),
        );
        args.extend(["--port".to_string(), self.ports[i].to_string()]);
        args.extend(self.flags.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Starts node `i` and waits until it is ready.
    pub fn start(&self, i: usize) -> Proc {
        self.start_with(i, &[])
    }

    /// Starts node `i` with `extra` flags and waits until it is ready.
    pub fn start_with(&self, i: usize, extra: &[&str]) -> Proc {
        let args = self.args(i, extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::start_as(self.node_cert(i), &self.certs.ca, &self.data_dir(i), &refs)
    }

    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    /// Clients of nodes `0..n`.
    pub async fn clients(&self, n: usize) -> Vec<Client> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(self.client(i).await);
        }
        out
    }

    pub async fn client(&self, i: usize) -> Client {
        let mut c = vergent_client::ClientConfig::new(self.addr(i), self.certs.client.clone());
        c.request_timeout = Duration::from_secs(30);
        Client::connect(c).await.expect("connect")
    }
}

/// Writes `count` keys `prefix<i>` through `client`, 64 at a time.
pub async fn load(client: &Client, prefix: &str, count: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    let workers = 64;
    for w in 0..workers {
        let c = client.clone();
        let prefix = prefix.to_string();
        tasks.spawn(async move {
            for i in (w..count).step_by(workers) {
                c.put(format!("{prefix}{i:06}"), format!("value-{i}"))
                    .await
                    .expect("put");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("loader task");
    }
}

/// Every record (tombstones included) of every node, once they are all
/// equal and `ok` holds for them; fails at the deadline.
pub async fn converged(
    clients: &[Client],
    ok: impl Fn(&[StoredRecord]) -> bool,
) -> Vec<StoredRecord> {
    let until = Instant::now() + DEADLINE;
    loop {
        let mut dumps = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            match c.scan_all_records("").await {
                Ok(d) => dumps.push(d),
                // Still bootstrapping: not converged yet.
                Err(e) if is_bootstrapping(&e) => dumps.push(Vec::new()),
                Err(e) => panic!("scan of node {i}: {e}"),
            }
        }
        if dumps.iter().all(|d| *d == dumps[0]) && ok(&dumps[0]) {
            return dumps.swap_remove(0);
        }
        assert!(
            Instant::now() < until,
            "replicas did not converge within {DEADLINE:?}: sizes {:?}",
            dumps.iter().map(Vec::len).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `client`'s node sees `n` other members dead, failing after `within`.
pub async fn sees_dead(client: &Client, n: usize, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let s = client.status().await.expect("status");
        let dead = s
            .members
            .iter()
            .filter(|m| m.node_id != s.node_id && m.state == "dead")
            .count();
        if dead >= n {
            return;
        }
        assert!(Instant::now() < until, "members still {:?}", s.members);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the node serves and holds a voting configuration of `voters` members.
pub async fn formed(client: &Client, voters: usize) -> u64 {
    serving(client).await;
    let until = Instant::now() + DEADLINE;
    loop {
        let s = client.status().await.expect("status");
        if let Some(v) = &s.voting
            && v.voters.len() == voters
        {
            return v.epoch;
        }
        assert!(
            Instant::now() < until,
            "no {voters}-voter configuration within {DEADLINE:?}: {:?} ({})",
            s.voting,
            s.voting_pending
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until node `client` says it is serving (bootstrap finished).
pub async fn serving(client: &Client) -> vergent_client::NodeStatus {
    let until = Instant::now() + DEADLINE;
    loop {
        let s = client.status().await.expect("status");
        if s.state == "serving" {
            return s;
        }
        assert!(
            Instant::now() < until,
            "still {} after {DEADLINE:?}",
            s.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn keys_received(s: &vergent_client::NodeStatus) -> u64 {
    s.repairs.iter().map(|r| r.keys_received).sum()
}

/// Waits until wall time is `age` past the physical time of `hlc` (e.g. a
/// tombstone older than the grace period): the condition is elapsed time.
pub fn wait_until_older_than(hlc: vergent_hlc::Timestamp, age: Duration) {
    let due = std::time::UNIX_EPOCH + Duration::from_millis(hlc.physical_ms()) + age;
    if let Ok(left) = due.duration_since(SystemTime::now()) {
        std::thread::sleep(left);
    }
}

/// Sends `signal` (e.g. "STOP", "CONT") to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Writes records straight into node `i`'s store while it is stopped, as
/// if node `i` had written them: far faster than 100k puts through a
/// debug-built server, and the other nodes still get them only through the
/// cluster. Keys are `k<n>` for each `n` in `keys`, values `<label>-<n>`
/// padded to `value_len` bytes, versions `age_ms` in the past.
pub fn preload(
    cluster: &Cluster,
    i: usize,
    keys: impl Iterator<Item = usize>,
    label: &str,
    value_len: usize,
    age_ms: u64,
) {
    use vergent_storage::{Record, Store, StoreOptions};
    let path = cluster.data_dir(i).join("db");
    std::fs::create_dir_all(&path).expect("data dir");
    let store = Store::open(&path, &StoreOptions::default()).expect("open store");
    let origin = vergent_types::NodeId::new(format!("node-{i}")).expect("id");
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let keys: Vec<usize> = keys.collect();
    for chunk in keys.chunks(10_000) {
        let records = chunk
            .iter()
            .map(|&k| {
                let version = vergent_types::Version::new(
                    vergent_hlc::Timestamp::new(now - age_ms, k as u16),
                    origin.clone(),
                );
                let mut value = format!("{label}-{k}");
                while value.len() < value_len {
                    value.push('.');
                }
                (
                    format!("k{k:06}").into_bytes(),
                    Record::value(version, value.into_bytes(), None),
                )
            })
            .collect();
        store.apply_batch(records).expect("preload");
    }
}

/// Whether `e` is a node refusing reads while it bootstraps.
pub fn is_bootstrapping(e: &vergent_client::Error) -> bool {
    matches!(
        e,
        vergent_client::Error::Server {
            error_code: Some(vergent_client::ErrorCode::Bootstrapping),
            ..
        }
    )
}

/// `get` that waits (bounded) while the node still bootstraps.
pub async fn get_serving(client: &Client, key: &str) -> Option<vergent_client::Entry> {
    let until = Instant::now() + DEADLINE;
    loop {
        match client.get(key).await {
            Ok(e) => return e,
            Err(e) if is_bootstrapping(&e) && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("get {key}: {e}"),
        }
    }
}

/// A plain HTTP/1.1 GET of `path` on `addr`: the status code and the body.
/// `None` when nothing answers (e.g. the node is down).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// `GET path` over HTTP/1.1 and TLS 1.3 to `addr` (server name
/// `localhost`), trusting `tls`'s CA and presenting its certificate when
/// `present_cert`; Err says where it failed (handshake, read).
pub async fn https_get(
    addr: &str,
    path: &str,
    tls: &TlsFiles,
    present_cert: bool,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let identity = vergent_tls::Identity::load(tls).map_err(|e| e.to_string())?;
    let config = if present_cert {
        vergent_tls::client_config(&identity, &[b"http/1.1"]).map_err(|e| e.to_string())?
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in identity.ca_certs() {
            roots.add(ca.clone()).map_err(|e| e.to_string())?;
        }
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let exchange = async {
        let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP answer: {raw:?}"))?;
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line: {head:?}"))?;
        Ok((code, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
}

/// The value of the series `series` (name and labels exactly as exposed)
/// in a Prometheus text exposition.
pub fn series_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    })
}

/// One node with certificates of its own (CN `node-a`), for tests that need
/// a single node; its files live until it is dropped.
pub struct OneNode {
    pub _tmp: tempfile::TempDir,
    pub certs: Certs,
    pub proc: Proc,
}

impl OneNode {
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let certs = Certs::generate(&tmp.path().join("certs"));
        let proc = Proc::start(&certs, &tmp.path().join("data"), &["--node-id", "node-a"]);
        Self {
            _tmp: tmp,
            certs,
            proc,
        }
    }
}

/// Bytes received on established TCP connections to local `port` that no
/// process has read yet (`/proc/net/tcp`'s rx_queue).
pub fn unread_bytes_at(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let established = *f.get(3)? == "01";
            let rx = f.get(4)?.split_once(':')?.1;
            (established && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| u64::from_str_radix(rx, 16).ok())
                .flatten()
        })
        .sum()
}

/// Captures one real QUIC Initial: a transport presenting `node` dials a
/// socket that never answers and sends it there.
pub fn capture_initial(node: &TlsFiles) -> Vec<u8> {
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let target = sink.local_addr().expect("addr");
    let identity = vergent_tls::Identity::load(node).expect("identity");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = rt.enter();
    let (transport, _incoming) = vergent_transport::Transport::bind(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        &identity,
        vergent_transport::TransportConfig::default(),
    )
    .expect("transport");
    rt.spawn(async move {
        let _ = transport.open_stream(target).await;
    });
    let mut buf = vec![0u8; 2048];
    let (n, _) = sink.recv_from(&mut buf).expect("an initial arrives");
    buf.truncate(n);
    // A long-header Initial, padded to at least 1200 bytes.
    assert!(buf[0] & 0x80 != 0 && n >= 1200, "not an Initial: {n} bytes");
    drop(rt);
    buf
}
