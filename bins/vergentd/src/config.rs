//! Command-line flags, `VERGENT_*` environment variables and the TOML config
//! file, merged by figment with precedence flags > environment > file >
//! defaults.
//!
//! [`Cli`] is the one schema: its field names are the file keys, the flags
//! (`--data-dir` for `data_dir`) and the variables (`VERGENT_DATA_DIR`).
//! Each layer is a figment provider whose values remember it, so every
//! error names where the bad value came from: the flag, the variable, or the
//! config file and line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Arg, Parser, ValueEnum};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vergent_node::{ConsistencyLevel, NodeConfig, RateLimitConfig};
use vergent_storage::FsyncPolicy;
use vergent_tls::TlsFiles;
use vergent_types::NodeId;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Vergent server: a leaderless, peer-to-peer key-value database node.
///
/// Also the schema of every layer: the flags clap parses, the environment,
/// the config file and the merged result are all this struct (the fields
/// `serde` skips are flags only).
#[derive(Debug, Default, Parser, Serialize, Deserialize)]
#[command(
    name = "vergentd",
    version,
    about,
    mut_args(document_env_and_default),
    after_help = "Restore a backup (offline) as the first node of a new cluster:\n  vergentd restore --from BACKUP_DIR --data-dir NEW_DIR --node-id NEW_ID\n(see `vergentd restore --help`)"
)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cli {
    /// Port for the client API (TCP) and, in clustered builds, the peer protocol (UDP).
    #[arg(long)]
    port: Option<u16>,
    /// IP address to listen on.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Address other nodes and clients use to reach this node (HOST:PORT)
    /// [default: the bound address].
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// Serve /metrics (Prometheus), /health and /ready over plain HTTP on
    /// this address (e.g. 127.0.0.1:9101; keep it on loopback or a private
    /// network) [default: not served].
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Serve --http-addr over TLS with the node's certificate, requiring a
    /// client certificate from the cluster CA as the client API does
    /// (Prometheus: `scheme: https` with `tls_config`) [default: plain HTTP].
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    http_tls: bool,
    /// Seed peers, HOST:PORT, several after one flag (`--peers a:1 b:2`) or
    /// comma-separated [default: none].
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    peers: Option<Vec<String>>,
    /// Directory for this node's data, one per node (required).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log level: trace, debug, info, warn or error (any case).
    #[arg(long)]
    log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    #[serde(default, with = "value_enum")]
    log_format: Option<LogFormat>,
    /// This node's certificate (PEM), signed by the cluster CA (required).
    #[arg(long)]
    tls_certfile: Option<PathBuf>,
    /// This node's private key (PEM, PKCS#8, mode 0600) (required).
    #[arg(long)]
    tls_keyfile: Option<PathBuf>,
    /// The cluster CA certificate (PEM) (required).
    #[arg(long)]
    tls_cafile: Option<PathBuf>,
    /// Stable node id (letters, digits, '.', '_', '-') [default: stored in
    /// the data dir, or generated].
    #[arg(long)]
    node_id: Option<String>,
    /// TOML config file (keys: the flags in snake_case); environment
    /// variables and flags override it.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Largest key accepted, in bytes.
    #[arg(long)]
    max_key_bytes: Option<usize>,
    /// Largest value accepted, in bytes.
    #[arg(long)]
    max_value_bytes: Option<usize>,
    /// When writes are fsynced: group (before ack, shared), per-write, off.
    #[arg(long)]
    #[serde(default, with = "display_from_str")]
    fsync: Option<FsyncPolicy>,
    /// Level of a get that names none: one, quorum or all.
    #[arg(long)]
    #[serde(default, with = "display_from_str")]
    default_read_consistency: Option<ConsistencyLevel>,
    /// Level of a put or delete that names none: one, quorum or all.
    #[arg(long)]
    #[serde(default, with = "display_from_str")]
    default_write_consistency: Option<ConsistencyLevel>,
    /// Largest clock offset accepted from another node.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "duration")]
    max_clock_offset: Option<Duration>,
    /// How long shutdown waits for in-flight requests.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "duration")]
    drain_timeout: Option<Duration>,
    /// Most replication log entries a down or slow peer may hold back before
    /// it is left to anti-entropy repair.
    #[arg(long)]
    max_log_lag: Option<u64>,
    /// Time between anti-entropy repair sessions this node starts.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "duration")]
    repair_interval: Option<Duration>,
    /// How long after a strong decision its per-key consensus state is
    /// deleted, once every voter committed it (at least 1s).
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "duration")]
    paxos_gc_after: Option<Duration>,
    /// How long tombstones are kept at least; they are purged only once
    /// every member confirmed them.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "duration")]
    tombstone_grace: Option<Duration>,
    /// How long a member may go unseen before purges stop waiting for it and
    /// it is refused unless it comes back wiped (0: never; else at least the
    /// tombstone grace).
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "duration")]
    member_expiry: Option<Duration>,
    /// Repair sessions other nodes may run against this one at once.
    #[arg(long)]
    repair_max_sessions: Option<usize>,
    /// Bytes per second one repair session may send (0: unlimited).
    #[arg(long)]
    repair_max_bytes_per_sec: Option<u64>,
    /// Capacity of the storage engine's block cache, in bytes (the OS page
    /// cache holds the rest of a hot data set).
    #[arg(long)]
    block_cache_bytes: Option<usize>,
    /// Most established client connections [default: what the file
    /// descriptor limit leaves after the storage engine's share].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most client TLS handshakes in progress; a new one evicts the oldest
    /// [default: 256, fewer when file descriptors are scarce].
    #[arg(long)]
    max_handshakes: Option<usize>,
    /// Requests per second each client connection may sustain; more are
    /// refused with RESOURCE_EXHAUSTED and a retry hint (0: unlimited).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Requests a client connection may send at once above the rate
    /// [default: the rate].
    #[arg(long)]
    rate_burst: Option<u32>,
    /// No longer needed (accepted so old scripts keep working): peers never
    /// purge a delete this node has not confirmed, so a node down for any
    /// time rejoins with its data.
    #[arg(long, hide = true)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    allow_stale_rejoin: bool,
    /// Testing only: shift this node's physical clock by this many
    /// milliseconds (flag or environment, never the config file).
    #[arg(long, hide = true, allow_hyphen_values = true)]
    debug_clock_offset_ms: Option<i64>,
    /// Testing only, and unsafe: strong operations count this node alone as
    /// a quorum (the broken core the chaos suite must catch).
    #[arg(long, hide = true)]
    #[serde(skip)]
    unsafe_test_quorum_of_one: bool,
    /// Testing only, and unsafe: writes at quorum and all are acknowledged
    /// by this node alone (the broken tracker the chaos suite must catch).
    #[arg(long, hide = true)]
    #[serde(skip)]
    unsafe_test_levels_of_one: bool,
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
const ENV_PREFIX: &str = "VERGENT_";

/// Keys the environment and flags may set but the config file may not.
const NOT_IN_FILE: [&str; 1] = ["debug_clock_offset_ms"];

/// The figment metadata names of the four layers, lowest precedence first.
const DEFAULTS: &str = "defaults";
const FILE: &str = "config file";
const ENV: &str = "environment";
const FLAGS: &str = "flags";

/// Every key the layers share: the `Cli` fields serde reads, which are also
/// the clap argument ids.
fn keys() -> Vec<String> {
    use clap::CommandFactory;
    let skipped = [
        "config",
        "unsafe_test_quorum_of_one",
        "unsafe_test_levels_of_one",
    ];
    Cli::command()
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .map(|a| a.get_id().to_string())
        .filter(|id| !skipped.contains(&id.as_str()) && id != "help" && id != "version")
        .collect()
}

/// The flag of a key: `--data-dir` for `data_dir`.
fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The environment variable of a key: `VERGENT_DATA_DIR` for `data_dir`.
fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The defaults, as a layer: those of [`NodeConfig::new`] and the rest.
fn defaults() -> Cli {
    let tls = TlsFiles {
        cert: PathBuf::new(),
        key: PathBuf::new(),
        ca: PathBuf::new(),
    };
    let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);
    let node = NodeConfig::new(PathBuf::new(), listen, tls);
    Cli {
        port: Some(node.listen.port()),
        bind: Some(node.listen.ip()),
        log_level: Some("info".into()),
        log_format: Some(LogFormat::default()),
        max_key_bytes: Some(node.limits.max_key_bytes),
        max_value_bytes: Some(node.limits.max_value_bytes),
        fsync: Some(node.fsync),
        default_read_consistency: Some(node.default_read_consistency),
        default_write_consistency: Some(node.default_write_consistency),
        max_clock_offset: Some(Duration::from_millis(node.max_clock_offset_ms)),
        drain_timeout: Some(node.drain_timeout),
        max_log_lag: Some(node.max_log_lag),
        repair_interval: Some(node.repair.interval),
        paxos_gc_after: Some(node.paxos_gc_after),
        tombstone_grace: Some(node.repair.tombstone_grace),
        member_expiry: Some(node.repair.member_expiry),
        repair_max_sessions: Some(node.repair.max_inbound_sessions),
        repair_max_bytes_per_sec: Some(node.repair.max_bytes_per_sec),
        block_cache_bytes: Some(node.block_cache_bytes),
        rate_limit: Some(0),
        ..Cli::default()
    }
}

/// Appends `[env: VERGENT_…]` and, where the defaults layer has one,
/// `[default: …]` to a flag's help (clap's own `env` and `default_value`
/// would read the environment and fill values, which figment does).
fn document_env_and_default(arg: Arg) -> Arg {
    let id = arg.get_id().to_string();
    if arg.is_hide_set() || arg.get_long().is_none() || id == "help" || id == "version" {
        return arg;
    }
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    let env = format!("[env: {}]", env_var(&id));
    let text = if let Some(at) = help.find("[default:") {
        format!("{}{env} {}", &help[..at], &help[at..])
    } else {
        match layer_dict(&defaults())
            .ok()
            .and_then(|d| d.get(&id).map(show))
        {
            Some(default) => format!("{help} {env} [default: {default}]"),
            None => format!("{help} {env}"),
        }
    };
    arg.help(text)
}

/// A value as an operator writes it on the command line.
fn show(value: &Value) -> String {
    match value {
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(..) => value
            .to_i128()
            .map(|n| n.to_string())
            .or_else(|| value.to_u128().map(|n| n.to_string()))
            .or_else(|| value.to_f64().map(|n| n.to_string()))
            .unwrap_or_default(),
        Value::Array(_, items) => items.iter().map(show).collect::<Vec<_>>().join(","),
        Value::Dict(..) | Value::Empty(..) => String::new(),
    }
}

/// `cli`'s set values as a figment dictionary (unset ones left out, so a
/// layer below shows through).
fn layer_dict(cli: &Cli) -> anyhow::Result<Dict> {
    // Fails only for a path that is not UTF-8 (figment values are text).
    match Value::serialize(cli).map_err(|e| anyhow!("a flag's value: {e}"))? {
        Value::Dict(_, dict) => Ok(dict
            .into_iter()
            .filter(|(_, v)| !matches!(v, Value::Empty(..)))
            .collect()),
        other => bail!("flags serialized to {other:?}"),
    }
}

/// One layer of settings, named by its metadata so errors can tell where a
/// value came from.
struct Layer {
    name: &'static str,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// The config file: where it is, how it was named, and the line of each key.
struct ConfigFile {
    path: PathBuf,
    lines: BTreeMap<String, usize>,
}

/// Reads and checks the config file: TOML, top-level keys only, each one
/// known (an unknown key is named with its line).
fn load_file(path: &Path, named_by: &str) -> anyhow::Result<(ConfigFile, Dict)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read config file {} ({named_by})", path.display()))?;
    let table: BTreeMap<toml::Spanned<String>, toml::Value> =
        toml::from_str(&text).map_err(|e| {
            // toml's message names the line and column, and shows it.
            let e = e.to_string();
            anyhow!("parse config file {}: {}", path.display(), e.trim_end())
        })?;
    let known = keys();
    let mut lines = BTreeMap::new();
    let mut values = Dict::new();
    for (key, value) in table {
        let line = text[..key.span().start].matches('\n').count() + 1;
        let key = key.into_inner();
        if !known.contains(&key) || NOT_IN_FILE.contains(&key.as_str()) {
            let hint = closest(
                &key,
                known.iter().filter(|k| !NOT_IN_FILE.contains(&k.as_str())),
            )
            .map(|k| format!("; did you mean `{k}`?"))
            .unwrap_or_default();
            bail!(
                "config file {}, line {line}: unknown key `{key}`{hint} (the keys are the flags in snake_case, see vergentd --help)",
                path.display()
            );
        }
        let value = Value::serialize(&value)
            .map_err(|e| anyhow!("config file {}, line {line}: {key}: {e}", path.display()))?;
        lines.insert(key.clone(), line);
        values.insert(key, value);
    }
    let file = ConfigFile {
        path: path.to_owned(),
        lines,
    };
    Ok((file, values))
}

/// The known key nearest to a misspelt one, if it is near enough to be a typo.
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let next = (prev + usize::from(ca != cb))
                    .min(row[j] + 1)
                    .min(row[j + 1] + 1);
                prev = row[j + 1];
                row[j + 1] = next;
            }
        }
        row[b.len()]
    }
    known
        .map(|k| (distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The `VERGENT_*` variables for known keys (others are left alone: they
/// may belong to tests or other tools), and `VERGENT_CONFIG`. An empty
/// variable counts as unset.
fn read_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> anyhow::Result<(Dict, Option<PathBuf>)> {
    let known = keys();
    let mut values = Dict::new();
    let mut config = None;
    for (name, value) in vars {
        let Some(key) = name
            .to_str()
            .and_then(|n| n.strip_prefix(ENV_PREFIX))
            .filter(|k| !k.is_empty() && *k == k.to_ascii_uppercase())
            .map(str::to_ascii_lowercase)
        else {
            continue;
        };
        if key == "config" {
            config = Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
            continue;
        }
        if !known.contains(&key) || value.is_empty() {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| anyhow!("{}: not valid UTF-8", env_var(&key)))?;
        values.insert(key, Value::from(value));
    }
    Ok((values, config))
}

/// The merged layers, able to say where each value came from.
struct Merged {
    figment: Figment,
    file: Option<ConfigFile>,
}

impl Merged {
    /// How an operator would find the setting `key` that holds the value in
    /// use: `--port`, `VERGENT_PORT`, `port (config file /x.toml, line 3)`
    /// or `--port (default)`.
    fn name(&self, key: &str) -> String {
        let layer = self.figment.find_metadata(key).map(|m| m.name.as_ref());
        self.name_in(layer, key)
    }

    fn name_in(&self, layer: Option<&str>, key: &str) -> String {
        match (layer, &self.file) {
            (Some(FLAGS), _) => flag(key),
            (Some(ENV), _) => env_var(key),
            (Some(FILE), Some(file)) => match file.lines.get(key) {
                Some(line) => format!("{key} (config file {}, line {line})", file.path.display()),
                None => format!("{key} (config file {})", file.path.display()),
            },
            _ => format!("{} (default)", flag(key)),
        }
    }

    /// Where the value of `key` came from, as a phrase: "from --port", or
    /// "by default".
    fn from(&self, key: &str) -> String {
        match self.figment.find_metadata(key).map(|m| m.name.as_ref()) {
            Some(DEFAULTS) | None => "by default".into(),
            _ => format!("from {}", self.name(key)),
        }
    }

    /// A figment error as one line per problem, each led by the setting it
    /// is about.
    fn explain(&self, error: figment::Error) -> anyhow::Error {
        let problems: Vec<String> = error
            .into_iter()
            .map(|e| {
                let layer = e.metadata.as_ref().map(|m| m.name.as_ref());
                let Some(key) = e.path.first() else {
                    return e.kind.to_string();
                };
                let mut problem = e.kind.to_string();
                // A parser's own message may not show what it was given.
                if let figment::error::Kind::Message(_) = e.kind
                    && let Ok(value) = self.figment.find_value(key).map(|v| show(&v))
                    && !problem.contains(&value)
                {
                    problem = format!("{problem}: {value:?}");
                }
                format!("{}: {problem}", self.name_in(layer, key))
            })
            .collect();
        anyhow!(problems.join("\n"))
    }
}

/// Merges defaults, file, environment and flags into node settings, with
/// errors that name the setting they are about.
pub(crate) fn resolve(cli: Cli) -> anyhow::Result<Settings> {
    resolve_from(cli, std::env::vars_os())
}

fn resolve_from(
    cli: Cli,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> anyhow::Result<Settings> {
    let (env, env_config) = read_env(vars)?;
    let config_path = match (&cli.config, env_config) {
        (Some(p), _) => Some((p.clone(), "--config")),
        (None, Some(p)) => Some((p, "VERGENT_CONFIG")),
        (None, None) => None,
    };
    let (file, file_values) = match config_path {
        Some((path, named_by)) => {
            let (file, values) = load_file(&path, named_by)?;
            (Some(file), values)
        }
        None => (None, Dict::new()),
    };
    let layer = |name, values| Layer { name, values };
    let figment = Figment::new()
        .merge(layer(DEFAULTS, layer_dict(&defaults())?))
        .merge(layer(FILE, file_values))
        .merge(layer(ENV, env))
        .merge(layer(FLAGS, layer_dict(&cli)?));
    let merged = Merged { figment, file };
    // Lossy: environment values are strings, so "2003" must read as a port.
    let m: Cli = merged
        .figment
        .extract_lossy()
        .map_err(|e| merged.explain(e))?;
    build(&merged, m, &cli)
}

/// Checks the merged values against each other and builds the settings.
fn build(merged: &Merged, m: Cli, cli: &Cli) -> anyhow::Result<Settings> {
    let name = |key: &str| merged.name(key);
    let log_level = m.log_level.unwrap_or_default().to_ascii_lowercase();
    if !LOG_LEVELS.contains(&log_level.as_str()) {
        bail!(
            "{}: unknown level {log_level:?}, expected one of {}",
            name("log_level"),
            LOG_LEVELS.join(", ")
        );
    }
    let (cert, key, ca) = (m.tls_certfile, m.tls_keyfile, m.tls_cafile);
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
    let Some(data_dir) = m.data_dir else {
        bail!("missing --data-dir: every node needs its own data directory");
    };
    let defaults = defaults();
    // The merged value, which the defaults layer guarantees; `d` is the same
    // default, for the type checker.
    fn or_default<T>(v: Option<T>, d: Option<T>) -> T {
        v.or(d)
            .expect("the defaults layer sets every defaulted key")
    }
    let listen = SocketAddr::new(
        or_default(m.bind, defaults.bind),
        or_default(m.port, defaults.port),
    );
    let mut node = NodeConfig::new(data_dir, listen, TlsFiles { cert, key, ca });
    node.node_id = m
        .node_id
        .map(|id| NodeId::new(id).map_err(|e| anyhow!("{}: {e}", name("node_id"))))
        .transpose()?;
    node.limits.max_key_bytes = or_default(m.max_key_bytes, defaults.max_key_bytes);
    node.limits.max_value_bytes = or_default(m.max_value_bytes, defaults.max_value_bytes);
    if node.limits.max_key_bytes == 0 {
        bail!("{}: must be at least 1", name("max_key_bytes"));
    }
    node.advertise = m.advertise;
    node.http_addr = m.http_addr;
    if m.http_tls && m.http_addr.is_none() {
        bail!(
            "{} needs --http-addr: it secures the operations endpoint, which is off",
            name("http_tls")
        );
    }
    node.http_tls = m.http_tls;
    node.peers = m.peers.unwrap_or_default();
    node.fsync = or_default(m.fsync, defaults.fsync);
    node.default_read_consistency = or_default(
        m.default_read_consistency,
        defaults.default_read_consistency,
    );
    node.default_write_consistency = or_default(
        m.default_write_consistency,
        defaults.default_write_consistency,
    );
    node.max_clock_offset_ms =
        or_default(m.max_clock_offset, defaults.max_clock_offset).as_millis() as u64;
    node.drain_timeout = or_default(m.drain_timeout, defaults.drain_timeout);
    node.clock_offset_ms = m.debug_clock_offset_ms.unwrap_or(0);
    node.unsafe_quorum_of_one = cli.unsafe_test_quorum_of_one;
    node.unsafe_levels_of_one = cli.unsafe_test_levels_of_one;
    node.max_log_lag = or_default(m.max_log_lag, defaults.max_log_lag);
    node.paxos_gc_after = or_default(m.paxos_gc_after, defaults.paxos_gc_after);
    // Rounds older than this are refused (safe, but they must retry): far
    // above the clock offset and the 5 s strong deadline in practice.
    if node.paxos_gc_after < Duration::from_secs(1) {
        bail!(
            "{}: must be at least 1s (is {})",
            name("paxos_gc_after"),
            duration::show(node.paxos_gc_after)
        );
    }
    node.repair.interval = or_default(m.repair_interval, defaults.repair_interval);
    if node.repair.interval.is_zero() {
        bail!("{}: must be above 0", name("repair_interval"));
    }
    node.repair.tombstone_grace = or_default(m.tombstone_grace, defaults.tombstone_grace);
    node.repair.member_expiry = or_default(m.member_expiry, defaults.member_expiry);
    let (expiry, grace) = (node.repair.member_expiry, node.repair.tombstone_grace);
    if !expiry.is_zero() && expiry < grace {
        bail!(
            "{}: {} must be at least the tombstone grace, {} {}, or 0 to never expire members",
            name("member_expiry"),
            duration::show(expiry),
            duration::show(grace),
            merged.from("tombstone_grace"),
        );
    }
    node.repair.max_inbound_sessions =
        or_default(m.repair_max_sessions, defaults.repair_max_sessions);
    node.repair.max_bytes_per_sec = or_default(
        m.repair_max_bytes_per_sec,
        defaults.repair_max_bytes_per_sec,
    );
    node.max_connections = m.max_connections;
    node.max_handshakes = m.max_handshakes;
    let rate = or_default(m.rate_limit, defaults.rate_limit);
    node.rate_limit = match (NonZeroU32::new(rate), m.rate_burst) {
        (None, Some(_)) => bail!(
            "{} needs --rate-limit (requests per second, above 0)",
            name("rate_burst")
        ),
        (None, None) => None,
        (Some(per_second), burst) => Some(RateLimitConfig {
            per_second,
            burst: match burst {
                None => per_second,
                Some(b) => NonZeroU32::new(b).ok_or_else(|| {
                    anyhow!(
                        "{}: must be at least 1 (the requests a connection may send at once)",
                        name("rate_burst")
                    )
                })?,
            },
        }),
    };
    node.block_cache_bytes = or_default(m.block_cache_bytes, defaults.block_cache_bytes);
    if m.allow_stale_rejoin {
        eprintln!(
            "vergentd: {} is no longer needed and has no effect: \
             peers never purge a delete this node has not confirmed",
            name("allow_stale_rejoin")
        );
    }
    Ok(Settings {
        node,
        log_level,
        log_format: or_default(m.log_format, defaults.log_format),
    })
}

/// Serde for an optional duration written as humans do ("500ms", "24h").
mod duration {
    use std::time::Duration;

    use super::{Deserialize, Deserializer, Serializer};

    /// The duration in the largest unit that keeps it whole: "72h", "60s",
    /// "500ms" (humantime would say "3days", "1m").
    pub(super) fn show(d: Duration) -> String {
        let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
        match (secs, nanos) {
            (0, 0) => "0s".into(),
            (s, 0) if s % 3600 == 0 => format!("{}h", s / 3600),
            (s, 0) => format!("{s}s"),
            _ if nanos % 1_000_000 == 0 => format!("{}ms", d.as_millis()),
            _ => humantime::format_duration(d).to_string(),
        }
    }

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_str(&show(*d)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|s| {
                humantime::parse_duration(&s).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "{s:?} is not a duration ({e}); write e.g. 500ms, 10s or 24h"
                    ))
                })
            })
            .transpose()
    }
}

/// Serde for an optional clap value enum, by the names `--help` lists.
mod value_enum {
    use clap::ValueEnum;

    use super::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<T: ValueEnum, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value.as_ref().and_then(ValueEnum::to_possible_value) {
            Some(v) => serializer.serialize_str(v.get_name()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: ValueEnum, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|s| {
                T::from_str(&s, false).map_err(|_| {
                    let names: Vec<String> = T::value_variants()
                        .iter()
                        .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
                        .collect();
                    serde::de::Error::custom(format!(
                        "unknown value {s:?}, expected {}",
                        names.join(" or ")
                    ))
                })
            })
            .transpose()
    }
}

/// Serde for an optional value written as its `Display` text and read with
/// `FromStr` (whose message becomes the error).
mod display_from_str {
    use super::{Deserialize, Deserializer, Display, FromStr, Serializer};

    pub(super) fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.collect_str(v),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        Option::<String>::deserialize(deserializer)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Peers as a list (flags, file) or one comma-separated string
/// (`VERGENT_PEERS=a:1,b:2`, or the file).
fn list_or_comma_separated<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Peers {
        List(Vec<String>),
        Text(String),
    }
    Ok(
        Option::<Peers>::deserialize(deserializer)?.map(|p| match p {
            Peers::List(list) => list,
            Peers::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        parse_with_env(args, &[])
    }

    /// Resolves `args` with exactly `env` as the process environment.
    fn parse_with_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let mut full = vec!["vergentd"];
        full.extend_from_slice(args);
        let vars = env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        resolve_from(Cli::try_parse_from(full)?, vars)
    }

    /// The one-line error of resolving `args` with `env`.
    fn refusal(args: &[&str], env: &[(&str, &str)]) -> String {
        format!("{:#}", parse_with_env(args, env).expect_err("refused"))
    }

    /// A config file holding `text`, and the flags that pass it.
    fn config_file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.toml");
        std::fs::write(&path, text).expect("write");
        let path = path.to_str().expect("utf8").to_owned();
        (dir, path)
    }

    const REQUIRED: [&str; 8] = [
        "--data-dir",
        "/tmp/d",
        "--tls-certfile",
        "n.crt",
        "--tls-keyfile",
        "n.key",
        "--tls-cafile",
        "ca.pem",
    ];

    const TLS: [&str; 6] = [
        "--tls-certfile",
        "n.crt",
        "--tls-keyfile",
        "n.key",
        "--tls-cafile",
        "ca.pem",
    ];

    #[test]
    fn a_bad_value_from_the_environment_is_named_by_its_variable() {
        let msg = refusal(&REQUIRED, &[("VERGENT_PORT", "abc")]);
        assert!(msg.starts_with("VERGENT_PORT: "), "{msg}");
        assert!(msg.contains("\"abc\""), "{msg}");
        let msg = refusal(&REQUIRED, &[("VERGENT_BIND", "localhost")]);
        assert!(
            msg.starts_with("VERGENT_BIND: ") && msg.contains("\"localhost\""),
            "the value is shown when the parser's message lacks it: {msg}"
        );
        let msg = refusal(&REQUIRED, &[("VERGENT_TOMBSTONE_GRACE", "soon")]);
        assert!(msg.starts_with("VERGENT_TOMBSTONE_GRACE: "), "{msg}");
        assert_eq!(msg.matches("soon").count(), 1, "said once: {msg}");
    }

    #[test]
    fn a_bad_value_in_the_config_file_is_named_with_the_file_and_its_line() {
        let (_dir, path) = config_file("data_dir = \"/tmp/f\"\n\nport = \"abc\"\n");
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--config", &path]);
        let msg = refusal(&args, &[]);
        assert!(
            msg.starts_with(&format!("port (config file {path}, line 3): ")),
            "{msg}"
        );
        assert!(msg.contains("\"abc\""), "{msg}");

        let (_dir, path) = config_file("fsync = \"sometimes\"\n");
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--config", &path]);
        let msg = refusal(&args, &[]);
        assert!(
            msg.starts_with(&format!("fsync (config file {path}, line 1): ")),
            "{msg}"
        );
        assert_eq!(msg.matches("sometimes").count(), 1, "said once: {msg}");
    }

    #[test]
    fn a_member_expiry_below_the_grace_is_named_by_its_flag_and_the_grace_by_its_source() {
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--member-expiry", "1h"]);
        let msg = refusal(&args, &[]);
        assert_eq!(
            msg,
            "--member-expiry: 1h must be at least the tombstone grace, 24h by default, \
             or 0 to never expire members"
        );
        let msg = refusal(&args, &[("VERGENT_TOMBSTONE_GRACE", "2h")]);
        assert!(
            msg.contains("2h from VERGENT_TOMBSTONE_GRACE"),
            "the grace is named too: {msg}"
        );
        let mut never = REQUIRED.to_vec();
        never.extend_from_slice(&["--member-expiry", "0"]);
        let s = parse(&never).expect("0 never expires members");
        assert_eq!(s.node.repair.member_expiry, Duration::ZERO);
    }

    #[test]
    fn a_member_expiry_below_the_grace_in_the_file_is_named_by_its_key_and_line() {
        let (_dir, path) = config_file("tombstone_grace = \"24h\"\nmember_expiry = \"1h\"\n");
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--config", &path]);
        let msg = refusal(&args, &[]);
        assert_eq!(
            msg,
            format!(
                "member_expiry (config file {path}, line 2): 1h must be at least the \
                 tombstone grace, 24h from tombstone_grace (config file {path}, line 1), \
                 or 0 to never expire members"
            )
        );
        let msg = refusal(&args, &[("VERGENT_MEMBER_EXPIRY", "2h")]);
        assert!(
            msg.starts_with("VERGENT_MEMBER_EXPIRY: 2h must be at least"),
            "the environment overrides the file, and is named: {msg}"
        );
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file_which_overrides_defaults() {
        let (_dir, path) = config_file("port = 3001\nmax_log_lag = 7\ndrain_timeout = \"3s\"\n");
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--config", &path]);
        let port = |args: &[&str], env: &[(&str, &str)]| {
            parse_with_env(args, env)
                .expect("parses")
                .node
                .listen
                .port()
        };
        assert_eq!(port(&REQUIRED, &[]), DEFAULT_PORT);
        assert_eq!(port(&args, &[]), 3001);
        let env = [("VERGENT_PORT", "3002"), ("VERGENT_DRAIN_TIMEOUT", "4s")];
        assert_eq!(port(&args, &env), 3002);
        let mut with_flag = args.clone();
        with_flag.extend_from_slice(&["--port", "3003"]);
        let s = parse_with_env(&with_flag, &env).expect("parses");
        assert_eq!(s.node.listen.port(), 3003);
        assert_eq!(s.node.max_log_lag, 7, "the file still shows through");
        assert_eq!(s.node.drain_timeout, Duration::from_secs(4));
    }

    #[test]
    fn every_kind_of_value_reads_from_the_environment() {
        let env = [
            ("VERGENT_DATA_DIR", "/tmp/e"),
            ("VERGENT_TLS_CERTFILE", "c"),
            ("VERGENT_TLS_KEYFILE", "k"),
            ("VERGENT_TLS_CAFILE", "a"),
            ("VERGENT_PEERS", "h1:1, h2:2"),
            ("VERGENT_BIND", "0.0.0.0"),
            ("VERGENT_NODE_ID", "123"),
            ("VERGENT_FSYNC", "off"),
            ("VERGENT_LOG_FORMAT", "json"),
            ("VERGENT_LOG_LEVEL", "WARN"),
            ("VERGENT_MEMBER_EXPIRY", "0"),
            ("VERGENT_DEFAULT_READ_CONSISTENCY", "quorum"),
            ("VERGENT_RATE_LIMIT", "10"),
            ("VERGENT_DEBUG_CLOCK_OFFSET_MS", "-250"),
        ];
        let s = parse_with_env(&[], &env).expect("parses");
        assert_eq!(s.node.data_dir, PathBuf::from("/tmp/e"));
        assert_eq!(s.node.peers, ["h1:1", "h2:2"]);
        assert_eq!(s.node.listen.ip(), IpAddr::from([0, 0, 0, 0]));
        assert_eq!(
            s.node.node_id.map(|id| id.to_string()),
            Some("123".into()),
            "a number-like id stays a string"
        );
        assert_eq!(s.node.fsync, FsyncPolicy::Off);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.log_level, "warn");
        assert_eq!(s.node.repair.member_expiry, Duration::ZERO);
        assert_eq!(s.node.default_read_consistency, ConsistencyLevel::Quorum);
        assert_eq!(s.node.rate_limit.map(|r| r.per_second.get()), Some(10));
        assert_eq!(s.node.clock_offset_ms, -250);
    }

    #[test]
    fn other_vergent_variables_and_empty_ones_are_ignored() {
        let env = [
            ("VERGENT_TEST_BIN_DIR", "/x"),
            ("VERGENT_BENCH_KEYS", "10"),
            ("vergent_port", "1"),
            ("VERGENT_PORT", ""),
        ];
        let s = parse_with_env(&REQUIRED, &env).expect("parses");
        assert_eq!(s.node.listen.port(), DEFAULT_PORT);
    }

    #[test]
    fn the_config_file_may_be_named_by_vergent_config_and_the_flag_wins() {
        let (_a, first) = config_file("port = 3001\n");
        let (_b, second) = config_file("port = 3002\n");
        let env = [("VERGENT_CONFIG", first.as_str())];
        let s = parse_with_env(&REQUIRED, &env).expect("parses");
        assert_eq!(s.node.listen.port(), 3001);
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--config", &second]);
        let s = parse_with_env(&args, &env).expect("parses");
        assert_eq!(s.node.listen.port(), 3002);
        let msg = refusal(&REQUIRED, &[("VERGENT_CONFIG", "/nonexistent/v.toml")]);
        assert!(
            msg.starts_with("read config file /nonexistent/v.toml (VERGENT_CONFIG): "),
            "{msg}"
        );
    }

    #[test]
    fn an_unknown_file_key_is_named_with_its_line_and_the_nearest_key() {
        let (_dir, path) = config_file("port = 1\n\nprot = 1\n");
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--config", &path]);
        let msg = refusal(&args, &[]);
        assert!(
            msg.starts_with(&format!(
                "config file {path}, line 3: unknown key `prot`; did you mean `port`?"
            )),
            "{msg}"
        );
        let (_dir, path) = config_file("debug_clock_offset_ms = 5\n");
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--config", &path]);
        let msg = refusal(&args, &[]);
        assert!(
            msg.contains("unknown key `debug_clock_offset_ms`"),
            "test knobs stay out of the file: {msg}"
        );
    }

    #[test]
    fn a_toml_syntax_error_names_the_file_line_and_column_once() {
        let (_dir, path) = config_file("port =\n");
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&["--config", &path]);
        let msg = refusal(&args, &[]);
        assert!(
            msg.starts_with(&format!("parse config file {path}: ")),
            "{msg}"
        );
        assert!(msg.contains("line 1, column"), "{msg}");
        assert_eq!(msg.matches(&path).count(), 1, "{msg}");
        assert!(!msg.ends_with('\n'), "{msg:?}");
    }

    #[test]
    fn the_defaults_layer_holds_the_node_defaults() {
        let s = parse(&REQUIRED).expect("parses");
        let mut want = NodeConfig::new(
            PathBuf::from("/tmp/d"),
            SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            TlsFiles {
                cert: "n.crt".into(),
                key: "n.key".into(),
                ca: "ca.pem".into(),
            },
        );
        want.rate_limit = None;
        assert_eq!(format!("{:?}", s.node), format!("{want:?}"));
        assert_eq!(
            (s.log_level.as_str(), s.log_format),
            ("info", LogFormat::Text)
        );
    }

    #[test]
    fn help_shows_each_flags_variable_and_default() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        for key in keys() {
            if key == "allow_stale_rejoin" || key == "debug_clock_offset_ms" {
                assert!(!help.contains(&flag(&key)), "{key} stays hidden");
                continue;
            }
            assert!(help.contains(&flag(&key)), "{key}");
            assert!(help.contains(&format!("[env: {}]", env_var(&key))), "{key}");
        }
        assert!(help.contains("[env: VERGENT_CONFIG]"), "{help}");
        for shown in [
            "[env: VERGENT_PORT] [default: 2001]",
            "[default: 127.0.0.1]",
            "[default: 24h]",
            "[default: 72h]",
            "[default: 500ms]",
            "[default: 60s]",
            "[default: group]",
            "[default: one]",
            "[env: VERGENT_RATE_BURST] [default: the rate]",
        ] {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
    }

    #[test]
    fn hidden_test_flags_keep_working() {
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(&[
            "--unsafe-test-quorum-of-one",
            "--unsafe-test-levels-of-one",
            "--debug-clock-offset-ms",
            "-250",
            "--allow-stale-rejoin",
        ]);
        let s = parse(&args).expect("parses");
        assert!(s.node.unsafe_quorum_of_one && s.node.unsafe_levels_of_one);
        assert_eq!(s.node.clock_offset_ms, -250);
    }

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
        assert!(!s.node.http_tls, "plain HTTP by default");
        let mut tls = args.clone();
        tls.push("--http-tls");
        assert!(parse(&tls).expect("parses").node.http_tls);
        let mut lone = vec!["--data-dir", "/tmp/d", "--http-tls"];
        lone.extend_from_slice(&TLS);
        let err = parse(&lone).expect_err("--http-tls without --http-addr");
        assert!(err.to_string().contains("needs --http-addr"), "{err}");
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
