//! Command-line flags, `VERGENT_*` environment variables and the TOML config
//! file, merged with precedence flags > environment > file > defaults.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use vergent_node::{ConsistencyLevel, NodeConfig, RateLimitConfig};
use vergent_storage::FsyncPolicy;
use vergent_tls::TlsFiles;
use vergent_types::{Limits, NodeId};

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Vergent server: a leaderless, peer-to-peer key-value database node.
#[derive(Debug, Parser)]
#[command(name = "vergentd", version, about)]
pub(crate) struct Cli {
    /// Port for the client API (TCP) and, in clustered builds, the peer protocol (UDP).
    #[arg(long, env = "VERGENT_PORT")]
    port: Option<u16>,
    /// IP address to listen on.
    #[arg(long, env = "VERGENT_BIND")]
    bind: Option<IpAddr>,
    /// Address other nodes and clients use to reach this node (HOST:PORT).
    #[arg(long, env = "VERGENT_ADVERTISE")]
    advertise: Option<SocketAddr>,
    /// Serve /metrics (Prometheus), /health and /ready over plain HTTP on
    /// this address (e.g. 127.0.0.1:9101; keep it on loopback or a private
    /// network) [default: not served].
    #[arg(long, env = "VERGENT_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Seed peers, HOST:PORT, several after one flag (`--peers a:1 b:2`) or comma-separated.
    #[arg(long, num_args = 1.., value_delimiter = ',', env = "VERGENT_PEERS")]
    peers: Option<Vec<String>>,
    /// Directory for this node's data (one per node).
    #[arg(long, env = "VERGENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log level: trace, debug, info, warn or error (any case).
    #[arg(long, env = "VERGENT_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum, env = "VERGENT_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// This node's certificate (PEM), signed by the cluster CA.
    #[arg(long, env = "VERGENT_TLS_CERTFILE")]
    tls_certfile: Option<PathBuf>,
    /// This node's private key (PEM, PKCS#8, mode 0600).
    #[arg(long, env = "VERGENT_TLS_KEYFILE")]
    tls_keyfile: Option<PathBuf>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "VERGENT_TLS_CAFILE")]
    tls_cafile: Option<PathBuf>,
    /// Stable node id (letters, digits, '.', '_', '-'); default: stored in the data dir or generated.
    #[arg(long, env = "VERGENT_NODE_ID")]
    node_id: Option<String>,
    /// TOML config file; flags and environment variables override it.
    #[arg(long, env = "VERGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Largest key accepted, in bytes.
    #[arg(long, env = "VERGENT_MAX_KEY_BYTES")]
    max_key_bytes: Option<usize>,
    /// Largest value accepted, in bytes.
    #[arg(long, env = "VERGENT_MAX_VALUE_BYTES")]
    max_value_bytes: Option<usize>,
    /// When writes are fsynced: group (before ack, shared; default), per-write, off.
    #[arg(long, env = "VERGENT_FSYNC")]
    fsync: Option<FsyncPolicy>,
    /// Level of a get that names none: one, quorum or all [default: one].
    #[arg(long, env = "VERGENT_DEFAULT_READ_CONSISTENCY")]
    default_read_consistency: Option<ConsistencyLevel>,
    /// Level of a put or delete that names none: one, quorum or all [default: one].
    #[arg(long, env = "VERGENT_DEFAULT_WRITE_CONSISTENCY")]
    default_write_consistency: Option<ConsistencyLevel>,
    /// Largest clock offset accepted from another node (e.g. 500ms).
    #[arg(long, value_parser = humantime::parse_duration, env = "VERGENT_MAX_CLOCK_OFFSET")]
    max_clock_offset: Option<Duration>,
    /// How long shutdown waits for in-flight requests (e.g. 10s).
    #[arg(long, value_parser = humantime::parse_duration, env = "VERGENT_DRAIN_TIMEOUT")]
    drain_timeout: Option<Duration>,
    /// Most replication log entries a down or slow peer may hold back before
    /// it is left to anti-entropy repair.
    #[arg(long, env = "VERGENT_MAX_LOG_LAG")]
    max_log_lag: Option<u64>,
    /// Time between anti-entropy repair sessions this node starts (e.g. 60s).
    #[arg(long, value_parser = humantime::parse_duration, env = "VERGENT_REPAIR_INTERVAL")]
    repair_interval: Option<Duration>,
    /// How long after a strong decision its per-key consensus state is
    /// deleted, once every voter committed it [default: 1h].
    #[arg(long, value_parser = humantime::parse_duration, env = "VERGENT_PAXOS_GC_AFTER")]
    paxos_gc_after: Option<Duration>,
    /// How long tombstones are kept at least (e.g. 24h); they are purged
    /// only once every member confirmed them.
    #[arg(long, value_parser = humantime::parse_duration, env = "VERGENT_TOMBSTONE_GRACE")]
    tombstone_grace: Option<Duration>,
    /// How long a member may go unseen before purges stop waiting for it and
    /// it is refused unless it comes back wiped (default 72h; 0: never).
    #[arg(long, value_parser = humantime::parse_duration, env = "VERGENT_MEMBER_EXPIRY")]
    member_expiry: Option<Duration>,
    /// Repair sessions other nodes may run against this one at once.
    #[arg(long, env = "VERGENT_REPAIR_MAX_SESSIONS")]
    repair_max_sessions: Option<usize>,
    /// Bytes per second one repair session may send (0: unlimited).
    #[arg(long, env = "VERGENT_REPAIR_MAX_BYTES_PER_SEC")]
    repair_max_bytes_per_sec: Option<u64>,
    /// Capacity of the storage engine's block cache, in bytes (default 32 MiB;
    /// the OS page cache holds the rest of a hot data set).
    #[arg(long, env = "VERGENT_BLOCK_CACHE_BYTES")]
    block_cache_bytes: Option<usize>,
    /// Most established client connections (default: what the file
    /// descriptor limit leaves after the storage engine's share).
    #[arg(long, env = "VERGENT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Most client TLS handshakes in progress; a new one evicts the oldest
    /// (default 256, fewer when file descriptors are scarce).
    #[arg(long, env = "VERGENT_MAX_HANDSHAKES")]
    max_handshakes: Option<usize>,
    /// Requests per second each client connection may sustain; more are
    /// refused with RESOURCE_EXHAUSTED and a retry hint (0: unlimited)
    /// [default: 0].
    #[arg(long, env = "VERGENT_RATE_LIMIT")]
    rate_limit: Option<u32>,
    /// Requests a client connection may send at once above the rate
    /// [default: the rate].
    #[arg(long, env = "VERGENT_RATE_BURST")]
    rate_burst: Option<u32>,
    /// No longer needed (accepted so old scripts keep working): peers never
    /// purge a delete this node has not confirmed, so a node down for any
    /// time rejoins with its data.
    #[arg(long, env = "VERGENT_ALLOW_STALE_REJOIN", hide = true)]
    allow_stale_rejoin: bool,
    /// Testing only: shift this node's physical clock by this many milliseconds.
    #[arg(
        long,
        hide = true,
        allow_hyphen_values = true,
        env = "VERGENT_DEBUG_CLOCK_OFFSET_MS"
    )]
    debug_clock_offset_ms: Option<i64>,
    /// Testing only, and unsafe: strong operations count this node alone as
    /// a quorum (the broken core the chaos suite must catch).
    #[arg(long, hide = true)]
    unsafe_test_quorum_of_one: bool,
    /// Testing only, and unsafe: writes at quorum and all are acknowledged
    /// by this node alone (the broken tracker the chaos suite must catch).
    #[arg(long, hide = true)]
    unsafe_test_levels_of_one: bool,
}

/// The config file: the same settings as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    port: Option<u16>,
    bind: Option<IpAddr>,
    advertise: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    peers: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    log_level: Option<String>,
    log_format: Option<LogFormat>,
    tls_certfile: Option<PathBuf>,
    tls_keyfile: Option<PathBuf>,
    tls_cafile: Option<PathBuf>,
    node_id: Option<String>,
    max_key_bytes: Option<usize>,
    max_value_bytes: Option<usize>,
    fsync: Option<String>,
    default_read_consistency: Option<String>,
    default_write_consistency: Option<String>,
    #[serde(default, with = "humantime_serde")]
    max_clock_offset: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    drain_timeout: Option<Duration>,
    max_log_lag: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    repair_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    paxos_gc_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    tombstone_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    member_expiry: Option<Duration>,
    repair_max_sessions: Option<usize>,
    repair_max_bytes_per_sec: Option<u64>,
    block_cache_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_handshakes: Option<usize>,
    rate_limit: Option<u32>,
    rate_burst: Option<u32>,
    allow_stale_rejoin: Option<bool>,
}

/// Everything `main` needs after merging.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) node: NodeConfig,
    pub(crate) log_level: String,
    pub(crate) log_format: LogFormat,
}

const DEFAULT_PORT: u16 = 2001;
const LOG_LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
}

/// Merges flags, environment and file into node settings, with clear errors.
pub(crate) fn resolve(cli: Cli) -> anyhow::Result<Settings> {
    let file = match &cli.config {
        Some(p) => load_file(p)?,
        None => FileConfig::default(),
    };
    let log_level = cli
        .log_level
        .or(file.log_level)
        .unwrap_or_else(|| "info".into())
        .to_ascii_lowercase();
    if !LOG_LEVELS.contains(&log_level.as_str()) {
        bail!(
            "invalid --log-level {log_level:?}: expected one of {}",
            LOG_LEVELS.join(", ")
        );
    }
    let (cert, key, ca) = (
        cli.tls_certfile.or(file.tls_certfile),
        cli.tls_keyfile.or(file.tls_keyfile),
        cli.tls_cafile.or(file.tls_cafile),
    );
    let missing: Vec<&str> = [
        ("--tls-certfile", cert.is_none()),
        ("--tls-keyfile", key.is_none()),
        ("--tls-cafile", ca.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(f, _)| *f)
    .collect();
    let (Some(cert), Some(key), Some(ca)) = (cert, key, ca) else {
        bail!(
            "mutual TLS is mandatory: missing {}. Generate a CA and node certificate with \
             `vergentctl gen-root` and `vergentctl gen-cert`",
            missing.join(", ")
        );
    };
    let Some(data_dir) = cli.data_dir.or(file.data_dir) else {
        bail!("missing --data-dir: every node needs its own data directory");
    };
    let port = cli.port.or(file.port).unwrap_or(DEFAULT_PORT);
    let bind = cli
        .bind
        .or(file.bind)
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let fsync = match (cli.fsync, file.fsync) {
        (Some(f), _) => f,
        (None, Some(s)) => s
            .parse()
            .map_err(|e: String| anyhow::anyhow!("config file: fsync: {e}"))?,
        (None, None) => FsyncPolicy::default(),
    };
    let node_id = cli
        .node_id
        .or(file.node_id)
        .map(|id| NodeId::new(id).context("invalid --node-id"))
        .transpose()?;
    let defaults = Limits::default();
    let limits = Limits {
        max_key_bytes: cli
            .max_key_bytes
            .or(file.max_key_bytes)
            .unwrap_or(defaults.max_key_bytes),
        max_value_bytes: cli
            .max_value_bytes
            .or(file.max_value_bytes)
            .unwrap_or(defaults.max_value_bytes),
    };
    if limits.max_key_bytes == 0 {
        bail!("--max-key-bytes must be at least 1");
    }
    let mut node = NodeConfig::new(
        data_dir,
        SocketAddr::new(bind, port),
        TlsFiles { cert, key, ca },
    );
    node.node_id = node_id;
    node.advertise = cli.advertise.or(file.advertise);
    node.http_addr = cli.http_addr.or(file.http_addr);
    node.peers = cli.peers.or(file.peers).unwrap_or_default();
    node.limits = limits;
    node.fsync = fsync;
    let level = |cli: Option<ConsistencyLevel>, file: Option<String>, name: &str| match (cli, file)
    {
        (Some(l), _) => Ok(l),
        (None, Some(s)) => s
            .parse()
            .map_err(|e: String| anyhow::anyhow!("config file: {name}: {e}")),
        (None, None) => Ok(ConsistencyLevel::One),
    };
    node.default_read_consistency = level(
        cli.default_read_consistency,
        file.default_read_consistency,
        "default_read_consistency",
    )?;
    node.default_write_consistency = level(
        cli.default_write_consistency,
        file.default_write_consistency,
        "default_write_consistency",
    )?;
    if let Some(d) = cli.max_clock_offset.or(file.max_clock_offset) {
        node.max_clock_offset_ms = d.as_millis() as u64;
    }
    if let Some(d) = cli.drain_timeout.or(file.drain_timeout) {
        node.drain_timeout = d;
    }
    node.clock_offset_ms = cli.debug_clock_offset_ms.unwrap_or(0);
    node.unsafe_quorum_of_one = cli.unsafe_test_quorum_of_one;
    node.unsafe_levels_of_one = cli.unsafe_test_levels_of_one;
    if let Some(n) = cli.max_log_lag.or(file.max_log_lag) {
        node.max_log_lag = n;
    }
    if let Some(d) = cli.paxos_gc_after.or(file.paxos_gc_after) {
        // Rounds older than this are refused (safe, but they must retry):
        // far above the clock offset and the 5 s strong deadline in practice.
        if d < Duration::from_secs(1) {
            bail!("--paxos-gc-after must be at least 1s");
        }
        node.paxos_gc_after = d;
    }
    if let Some(d) = cli.repair_interval.or(file.repair_interval) {
        if d.is_zero() {
            bail!("--repair-interval must be above 0");
        }
        node.repair.interval = d;
    }
    if let Some(d) = cli.tombstone_grace.or(file.tombstone_grace) {
        node.repair.tombstone_grace = d;
    }
    if let Some(d) = cli.member_expiry.or(file.member_expiry) {
        if !d.is_zero() && d < node.repair.tombstone_grace {
            bail!(
                "--member-expiry ({}) must be at least --tombstone-grace ({}), or 0 to never expire members",
                humantime::format_duration(d),
                humantime::format_duration(node.repair.tombstone_grace)
            );
        }
        node.repair.member_expiry = d;
    }
    if let Some(n) = cli.repair_max_sessions.or(file.repair_max_sessions) {
        node.repair.max_inbound_sessions = n;
    }
    if let Some(n) = cli
        .repair_max_bytes_per_sec
        .or(file.repair_max_bytes_per_sec)
    {
        node.repair.max_bytes_per_sec = n;
    }
    node.max_connections = cli.max_connections.or(file.max_connections);
    node.max_handshakes = cli.max_handshakes.or(file.max_handshakes);
    let rate = cli.rate_limit.or(file.rate_limit).unwrap_or(0);
    let burst = cli.rate_burst.or(file.rate_burst);
    node.rate_limit = match (NonZeroU32::new(rate), burst) {
        (None, Some(_)) => bail!("--rate-burst needs --rate-limit (requests per second, above 0)"),
        (None, None) => None,
        (Some(per_second), burst) => Some(RateLimitConfig {
            per_second,
            burst: match burst {
                None => per_second,
                Some(b) => NonZeroU32::new(b).context(
                    "--rate-burst must be at least 1 (the requests a connection may send at once)",
                )?,
            },
        }),
    };
    if let Some(n) = cli.block_cache_bytes.or(file.block_cache_bytes) {
        node.block_cache_bytes = n;
    }
    if cli.allow_stale_rejoin || file.allow_stale_rejoin.unwrap_or(false) {
        eprintln!(
            "vergentd: --allow-stale-rejoin is no longer needed and has no effect: \
             peers never purge a delete this node has not confirmed"
        );
    }
    Ok(Settings {
        node,
        log_level,
        log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let mut full = vec!["vergentd"];
        full.extend_from_slice(args);
        resolve(Cli::try_parse_from(full)?)
    }

    const TLS: [&str; 6] = [
        "--tls-certfile",
        "n.crt",
        "--tls-keyfile",
        "n.key",
        "--tls-cafile",
        "ca.pem",
    ];

    #[test]
    fn seed_readme_flags_parse_with_several_peers_after_one_flag() {
        let mut args = vec![
            "--port",
            "2003",
            "--peers",
            "127.0.0.1:2001",
            "127.0.0.1:2002",
            "--data-dir",
            "/tmp/d3",
            "--log-level",
            "DEBUG",
        ];
        args.extend_from_slice(&TLS);
        let s = parse(&args).expect("parses");
        assert_eq!(s.node.listen.port(), 2003);
        assert_eq!(s.node.peers, ["127.0.0.1:2001", "127.0.0.1:2002"]);
        assert_eq!(s.log_level, "debug");
    }

    #[test]
    fn rate_limit_and_http_addr_flags_parse_and_a_burst_without_a_rate_is_refused() {
        let mut args = vec!["--data-dir", "/tmp/d", "--http-addr", "127.0.0.1:9101"];
        args.extend_from_slice(&TLS);
        let s = parse(&args).expect("parses");
        assert_eq!(s.node.rate_limit, None, "unlimited by default");
        assert_eq!(s.node.http_addr, Some(([127, 0, 0, 1], 9101).into()));
        let mut limited = args.clone();
        limited.extend_from_slice(&["--rate-limit", "100"]);
        let r = parse(&limited)
            .expect("parses")
            .node
            .rate_limit
            .expect("set");
        assert_eq!(
            (r.per_second.get(), r.burst.get()),
            (100, 100),
            "burst defaults to the rate"
        );
        limited.extend_from_slice(&["--rate-burst", "20"]);
        let r = parse(&limited)
            .expect("parses")
            .node
            .rate_limit
            .expect("set");
        assert_eq!(r.burst.get(), 20);
        let mut burst_only = args.clone();
        burst_only.extend_from_slice(&["--rate-burst", "20"]);
        let err = parse(&burst_only).expect_err("refused");
        assert!(
            format!("{err:#}").contains("--rate-burst needs --rate-limit"),
            "{err:#}"
        );
    }

    #[test]
    fn missing_tls_files_are_named_in_the_error() {
        let err = parse(&["--data-dir", "/tmp/x", "--tls-certfile", "a"]).expect_err("refused");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("--tls-keyfile") && msg.contains("--tls-cafile"),
            "{msg}"
        );
        assert!(!msg.contains("--tls-certfile,"), "{msg}");
    }

    #[test]
    fn default_levels_come_from_flags_or_the_file_and_a_bad_one_is_named() {
        let mut args = vec!["--data-dir", "/tmp/x"];
        args.extend_from_slice(&TLS);
        let s = parse(&args).expect("parses");
        assert_eq!(s.node.default_read_consistency, ConsistencyLevel::One);
        assert_eq!(s.node.default_write_consistency, ConsistencyLevel::One);
        let mut with = args.clone();
        with.extend_from_slice(&[
            "--default-read-consistency",
            "quorum",
            "--default-write-consistency",
            "ALL",
        ]);
        let s = parse(&with).expect("parses");
        assert_eq!(s.node.default_read_consistency, ConsistencyLevel::Quorum);
        assert_eq!(s.node.default_write_consistency, ConsistencyLevel::All);
        let mut bad = args.clone();
        bad.extend_from_slice(&["--default-write-consistency", "serial"]);
        assert!(
            parse(&bad).is_err(),
            "serial is per request, never a default"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.toml");
        std::fs::write(&path, "default_write_consistency = \"most\"\n").expect("write");
        let mut file = args.clone();
        let p = path.to_str().expect("utf8");
        file.extend_from_slice(&["--config", p]);
        let err = parse(&file).expect_err("refused");
        assert!(
            format!("{err:#}").contains("default_write_consistency"),
            "{err:#}"
        );
    }

    #[test]
    fn an_unknown_log_level_is_refused() {
        let mut args = vec!["--data-dir", "/tmp/x", "--log-level", "loud"];
        args.extend_from_slice(&TLS);
        assert!(parse(&args).is_err());
    }

    #[test]
    fn flags_override_the_config_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            "port = 3001\ndata_dir = \"/tmp/f\"\nfsync = \"off\"\ndrain_timeout = \"3s\"\n\
             tls_certfile = \"c\"\ntls_keyfile = \"k\"\ntls_cafile = \"a\"\npeers = [\"h:1\"]\n\
             block_cache_bytes = 1048576\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let s = parse(&["--config", p, "--port", "4001"]).expect("parses");
        assert_eq!(s.node.block_cache_bytes, 1 << 20);
        let s = parse(&["--config", p, "--block-cache-bytes", "2097152"]).expect("parses");
        assert_eq!(s.node.block_cache_bytes, 2 << 20);
        let s = parse(&["--config", p, "--port", "4001"]).expect("parses");
        assert_eq!(s.node.listen.port(), 4001);
        assert_eq!(s.node.data_dir, PathBuf::from("/tmp/f"));
        assert_eq!(s.node.fsync, FsyncPolicy::Off);
        assert_eq!(s.node.drain_timeout, Duration::from_secs(3));
        assert_eq!(s.node.peers, ["h:1"]);

        std::fs::write(&path, "prot = 1\n").expect("write");
        let err = parse(&["--config", p]).expect_err("unknown key");
        assert!(format!("{err:#}").contains("prot"), "{err:#}");
    }
}
