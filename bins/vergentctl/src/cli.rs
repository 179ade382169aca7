//! The command line: `connect`, the one-shot subcommands for scripts
//! (`get`, `put`, `delete`, `scan`, `cas`, `status`, `members`), the
//! certificate tools, `bench`, `completions` and `man`, and the flags they
//! share (endpoints, TLS files, timeout, format).
//!
//! A one-shot subcommand is turned into the very [`Cmd`] the shell's parser
//! makes of the same `-e` line, and run by the shell's executor: both print
//! the same bytes and exit with the same code, and no command logic lives
//! here. Words given as arguments are taken as their bytes: the calling
//! shell has already read its own quotes and escapes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vergent_client::Consistency;

use crate::shell::{self, Cmd, ValueFrom};
use crate::{bench, certs};

/// vergentctl's environment variables. They are its own: vergentd reads
/// `VERGENT_*`, so client credentials exported for vergentctl can never
/// start a node.
pub(crate) mod env {
    /// `--endpoints`.
    pub(crate) const ENDPOINTS: &str = "VERGENTCTL_ENDPOINTS";
    /// `--tls-certfile`.
    pub(crate) const TLS_CERTFILE: &str = "VERGENTCTL_TLS_CERTFILE";
    /// `--tls-keyfile`.
    pub(crate) const TLS_KEYFILE: &str = "VERGENTCTL_TLS_KEYFILE";
    /// `--tls-cafile`.
    pub(crate) const TLS_CAFILE: &str = "VERGENTCTL_TLS_CAFILE";
    /// Each variable above beside vergentd's name of the same file, which
    /// vergentctl does not read.
    pub(crate) const NODE_NAMES: &[(&str, &str)] = &[
        ("VERGENT_TLS_CERTFILE", TLS_CERTFILE),
        ("VERGENT_TLS_KEYFILE", TLS_KEYFILE),
        ("VERGENT_TLS_CAFILE", TLS_CAFILE),
    ];
}

/// Vergent command-line tool: shell, one-shot client and certificate
/// authority.
#[derive(Debug, Parser)]
#[command(name = "vergentctl", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Open a shell on a node (commands are read from stdin when it is not a terminal).
    Connect(ConnectArgs),
    #[command(flatten)]
    OneShot(OneShot),
    /// Create a root CA with a passphrase-encrypted key.
    GenRoot(certs::GenRootArgs),
    /// Create a node or client certificate signed by the CA.
    GenCert(certs::GenCertArgs),
    /// Show a certificate's subject, issuer, validity, SANs and usages.
    InspectCert(certs::InspectCertArgs),
    /// Copy a consistent backup of one node's store into a new directory (restore it with `vergentd restore`).
    Backup(BackupArgs),
    /// Closed-loop load generator: throughput and latency percentiles.
    Bench(bench::BenchArgs),
    /// Print a completion script for SHELL on stdout.
    Completions(CompletionsArgs),
    /// Write man pages: vergentctl.1 and one per subcommand.
    Man(ManArgs),
}

/// One shell command as a subcommand, for scripts (etcdctl style). Each
/// prints what `vergentctl connect … -e 'COMMAND'` prints and exits with
/// its code: 0, 1 when it failed or a `get` found nothing, 3 when no node
/// could be reached.
#[derive(Debug, Subcommand)]
pub(crate) enum OneShot {
    /// Print a key's value ((nil) and exit code 1 when it has none).
    Get(GetArgs),
    /// Store a value; prints OK hlc=...
    Put(PutArgs),
    /// Delete a key; prints OK hlc=...
    Delete(DeleteArgs),
    /// List keys and values under a prefix, then (N entries).
    Scan(ScanArgs),
    /// Compare-and-set by per-key consensus: write (or delete) only if the key holds EXPECTED.
    Cas(CasArgs),
    /// Show the node's id, version, uptime, key count and replication.
    Status(ConnOnly),
    /// Show the cluster as the node sees it (gossip).
    Members(ConnOnly),
}

/// The client's mTLS files, as `connect`, the one-shot subcommands and
/// `bench` take them.
#[derive(Debug, Args)]
pub(crate) struct TlsArgs {
    /// Client certificate (PEM).
    #[arg(long, env = env::TLS_CERTFILE, value_name = "FILE")]
    tls_certfile: PathBuf,
    /// Client private key (PEM, PKCS#8).
    #[arg(long, env = env::TLS_KEYFILE, value_name = "FILE")]
    tls_keyfile: PathBuf,
    /// Cluster CA certificate (PEM).
    #[arg(long, env = env::TLS_CAFILE, value_name = "FILE")]
    tls_cafile: PathBuf,
}

impl TlsArgs {
    /// The three files.
    pub(crate) fn files(&self) -> vergent_tls::TlsFiles {
        vergent_tls::TlsFiles {
            cert: self.tls_certfile.clone(),
            key: self.tls_keyfile.clone(),
            ca: self.tls_cafile.clone(),
        }
    }
}

/// How to reach the cluster and print results: what `connect` and every
/// one-shot subcommand take.
#[derive(Debug, Args)]
pub(crate) struct ConnArgs {
    /// Nodes' API addresses, HOST:PORT, comma-separated, in the order to
    /// try them: the first that answers is used, and the next when it
    /// cannot serve (the endpoint in use shows in the shell's prompt).
    #[arg(long, env = env::ENDPOINTS, value_delimiter = ',', value_name = "HOST:PORT,...")]
    pub(crate) endpoints: Vec<String>,
    /// Also fail over to the members the node knows of (asked once, at
    /// start).
    #[arg(long)]
    pub(crate) discover: bool,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    /// Name expected in the nodes' certificates (default: each endpoint's host).
    #[arg(long)]
    pub(crate) server_name: Option<String>,
    /// Time allowed for each request, retries and failover included.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// How results are printed: text for people, json (JSON Lines: one
    /// object per result on stdout, trailers on stderr), or table (get, scan
    /// and members as aligned columns under a header row; other commands as
    /// text).
    #[arg(long, value_enum, default_value_t = shell::Format::Text)]
    pub(crate) format: shell::Format,
}

/// Arguments of `connect`.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// A node's API address, HOST:PORT, tried before any --endpoints.
    pub(crate) address: Option<String>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Run this command and exit instead of opening the shell (repeatable;
    /// stops at the first that fails). Its words may be any bytes.
    #[arg(short = 'e', long = "execute")]
    pub(crate) execute: Vec<OsString>,
}

/// The endpoints to try, in order: `first` (connect's positional address),
/// then `endpoints`, blanks dropped and each once. Err when there are none.
pub(crate) fn endpoint_list(
    first: Option<&str>,
    endpoints: &[String],
) -> Result<Vec<String>, String> {
    let mut list: Vec<String> = Vec::new();
    for e in first
        .into_iter()
        .chain(endpoints.iter().map(String::as_str))
    {
        let e = e.trim();
        if !e.is_empty() && !list.iter().any(|x| x == e) {
            list.push(e.to_string());
        }
    }
    if list.is_empty() {
        return Err(format!(
            "no endpoint: give --endpoints HOST:PORT[,HOST:PORT...] (or {})",
            env::ENDPOINTS
        ));
    }
    Ok(list)
}

/// A consistency level, as `--consistency` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Level {
    /// One replica (eventual).
    One,
    /// A majority of replicas.
    Quorum,
    /// Every replica.
    All,
    /// Linearizable, by per-key consensus.
    Serial,
}

impl From<Level> for Consistency {
    fn from(l: Level) -> Self {
        match l {
            Level::One => Self::One,
            Level::Quorum => Self::Quorum,
            Level::All => Self::All,
            Level::Serial => Self::Serial,
        }
    }
}

/// `--consistency LEVEL` and `--serial`, where the shell command takes them.
#[derive(Debug, Args)]
pub(crate) struct LevelArgs {
    /// This request's consistency level (default ONE, as in the shell).
    #[arg(long, value_enum, ignore_case = true, value_name = "LEVEL")]
    consistency: Option<Level>,
    /// The same as --consistency serial.
    #[arg(long, conflicts_with = "consistency")]
    serial: bool,
}

impl LevelArgs {
    fn level(&self) -> Option<Consistency> {
        if self.serial {
            Some(Consistency::Serial)
        } else {
            self.consistency.map(Consistency::from)
        }
    }
}

/// Arguments of `get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The key (its bytes as given).
    key: OsString,
    /// Also print the version (HLC, origin node) and the level it was read at.
    #[arg(short, long, conflicts_with = "raw")]
    verbose: bool,
    /// Print the value's bytes alone: no newline, no escaping (nothing on
    /// stdout when missing).
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    level: LevelArgs,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Arguments of `put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The key (its bytes as given).
    key: OsString,
    /// The value (its bytes as given).
    #[arg(
        required_unless_present_any = ["value_file", "stdin"],
        conflicts_with_all = ["value_file", "stdin"]
    )]
    value: Option<OsString>,
    /// Store this file's bytes.
    #[arg(long, value_name = "FILE", conflicts_with = "stdin")]
    value_file: Option<PathBuf>,
    /// Store all of stdin's bytes (like redis-cli -x).
    #[arg(long)]
    stdin: bool,
    /// Expire the value this long after the write (e.g. 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    #[command(flatten)]
    level: LevelArgs,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The key (its bytes as given).
    key: OsString,
    #[command(flatten)]
    level: LevelArgs,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Arguments of `scan`.
#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// List keys starting with these bytes (default: every key).
    prefix: Option<OsString>,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Arguments of `cas`.
#[derive(Debug, Args)]
pub(crate) struct CasArgs {
    /// KEY EXPECTED NEW, KEY --absent NEW, KEY EXPECTED --delete, or KEY
    /// --absent --delete (bytes as given).
    #[arg(value_name = "KEY [EXPECTED] [NEW]", required = true, num_args = 1..=3)]
    words: Vec<OsString>,
    /// Apply only if the key holds nothing (absent or deleted).
    #[arg(long)]
    absent: bool,
    /// Delete the key instead of writing NEW.
    #[arg(long)]
    delete: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Arguments of `status` and `members`: the connection alone.
#[derive(Debug, Args)]
pub(crate) struct ConnOnly {
    #[command(flatten)]
    conn: ConnArgs,
}

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The directory to write the backup to: made if missing, must be empty.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The directory to write the pages to (made if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// An argument's bytes.
fn bytes(word: OsString) -> Vec<u8> {
    word.into_encoded_bytes()
}

impl OneShot {
    /// The shell command this subcommand runs, and how to connect. Err: a
    /// usage error the argument parser could not tell (`cas`'s words).
    pub(crate) fn into_cmd(self) -> (Result<Cmd, String>, ConnArgs) {
        match self {
            Self::Get(a) => (
                Ok(Cmd::Get {
                    key: bytes(a.key),
                    verbose: a.verbose,
                    raw: a.raw,
                    consistency: a.level.level(),
                }),
                a.conn,
            ),
            Self::Put(a) => {
                let value = match (a.value, a.value_file) {
                    (Some(v), _) => ValueFrom::Arg(bytes(v)),
                    (None, Some(f)) => ValueFrom::File(f),
                    (None, None) => ValueFrom::Stdin,
                };
                (
                    Ok(Cmd::Put {
                        key: bytes(a.key),
                        value,
                        ttl: a.ttl,
                        consistency: a.level.level(),
                    }),
                    a.conn,
                )
            }
            Self::Delete(a) => (
                Ok(Cmd::Delete {
                    key: bytes(a.key),
                    consistency: a.level.level(),
                }),
                a.conn,
            ),
            Self::Scan(a) => (
                Ok(Cmd::Scan {
                    prefix: a.prefix.map(bytes).unwrap_or_default(),
                    limit: a.limit,
                }),
                a.conn,
            ),
            Self::Cas(a) => (
                shell::cas(a.words.into_iter().map(bytes).collect(), a.absent, a.delete),
                a.conn,
            ),
            Self::Status(a) => (Ok(Cmd::Status), a.conn),
            Self::Members(a) => (Ok(Cmd::Members), a.conn),
        }
    }
}

/// Lines for an error about a missing flag when vergentd's variable for
/// that file is set but vergentctl's is not: vergentctl does not read
/// vergentd's names, on purpose.
pub(crate) fn node_env_hints(var: impl Fn(&str) -> Option<OsString>) -> Vec<String> {
    env::NODE_NAMES
        .iter()
        .filter(|(node, own)| var(node).is_some() && var(own).is_none())
        .map(|(node, own)| {
            format!(
                "note: {node} is set, but it is vergentd's; vergentctl reads {own} \
                 (or the flag), so exported client files never start a node"
            )
        })
        .collect()
}

/// Every man page: `vergentctl.1` and `vergentctl-SUBCOMMAND.1` for each
/// subcommand, written to `dir`; returns their paths.
pub(crate) fn write_man_pages(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    fn write(
        cmd: clap::Command,
        dir: &std::path::Path,
        out: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub.clone(), dir, out)?;
        }
        out.push(clap_mangen::Man::new(cmd).generate_to(dir)?);
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    // Gives each subcommand its display name, `vergentctl-get`.
    cmd.build();
    let mut out = Vec::new();
    write(cmd, dir, &mut out)?;
    out.reverse();
    Ok(out)
}

/// Prints the completion script for `shell`.
pub(crate) fn print_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "vergentctl", out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    const CONN: &[&str] = &[
        "--endpoints",
        "h:1",
        "--tls-certfile",
        "c",
        "--tls-keyfile",
        "k",
        "--tls-cafile",
        "a",
    ];

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv = vec!["vergentctl"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
    }

    /// The shell command `args` (a one-shot subcommand, flags added) runs.
    fn one_shot(args: &[&str]) -> Result<Cmd, String> {
        let mut argv = args.to_vec();
        argv.extend_from_slice(CONN);
        match parse(&argv).map_err(|e| e.to_string())?.command {
            Command::OneShot(o) => o.into_cmd().0,
            other => panic!("{args:?} is not a one-shot subcommand: {other:?}"),
        }
    }

    #[test]
    fn each_one_shot_subcommand_is_the_command_its_shell_line_parses_to() {
        for (args, line) in [
            (&["get", "foo"][..], "get foo"),
            (&["get", "-v", "foo"], "get -v foo"),
            (&["get", "--verbose", "foo"], "getv foo"),
            (&["get", "--raw", "foo"], "get --raw foo"),
            (&["get", "--serial", "foo"], "get --serial foo"),
            (
                &["get", "--consistency", "QUORUM", "foo"],
                "get --consistency quorum foo",
            ),
            (&["put", "foo", "bar"], "put foo bar"),
            (
                &["put", "greeting", "hello world"],
                r#"put greeting "hello world""#,
            ),
            (&["put", "k", "v", "--ttl", "30s"], "put k v --ttl 30s"),
            (
                &["put", "k", "--value-file", "/tmp/v"],
                "put k --value-file /tmp/v",
            ),
            (&["put", "k", "--stdin"], "put k --stdin"),
            (
                &["put", "k", "v", "--consistency", "all"],
                "put k v --consistency all",
            ),
            (&["delete", "k"], "delete k"),
            (&["delete", "k", "--serial"], "delete k --serial"),
            (&["scan"], "scan"),
            (&["scan", "user/"], "scan user/"),
            (&["scan", "user/", "--limit", "5"], "scan user/ 5"),
            (&["cas", "c", "1", "2"], "cas c 1 2"),
            (&["cas", "lock", "--absent", "me"], "cas lock --absent me"),
            (&["cas", "lock", "me", "--delete"], "cas lock me --delete"),
            (
                &["cas", "lock", "--absent", "--delete"],
                "cas lock --absent --delete",
            ),
            (&["status"], "status"),
            (&["members"], "members"),
        ] {
            assert_eq!(
                one_shot(args),
                shell::parse(line.as_bytes()),
                "{args:?} vs {line:?}"
            );
            assert!(one_shot(args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn arguments_are_bytes_as_given_with_no_escapes_read() {
        use std::os::unix::ffi::OsStringExt;
        let argv: Vec<OsString> = ["vergentctl", "put"]
            .iter()
            .map(OsString::from)
            .chain([
                OsString::from_vec(b"k\xff".to_vec()),
                OsString::from(r"a\x41"),
            ])
            .chain(CONN.iter().map(OsString::from))
            .collect();
        let Command::OneShot(o) = Cli::try_parse_from(argv).expect("parses").command else {
            panic!("put is one-shot")
        };
        assert_eq!(
            o.into_cmd().0,
            Ok(Cmd::Put {
                key: b"k\xff".to_vec(),
                value: ValueFrom::Arg(br"a\x41".to_vec()),
                ttl: None,
                consistency: None,
            })
        );
    }

    #[test]
    fn wrong_one_shot_arguments_are_refused() {
        for args in [
            &["get"][..],
            &["get", "-v", "--raw", "k"],
            &["get", "--serial", "--consistency", "one", "k"],
            &["get", "--consistency", "sometimes", "k"],
            &["put", "k"],
            &["put", "k", "v", "--stdin"],
            &["put", "k", "--value-file", "f", "--stdin"],
            &["put", "k", "v", "--ttl", "soon"],
            &["scan", "p", "--limit", "x"],
            &["cas"],
            &["status", "extra"],
        ] {
            assert!(one_shot(args).is_err(), "{args:?} was accepted");
        }
        for args in [
            &["cas", "k", "1"][..],
            &["cas", "k", "--absent"],
            &["cas", "k", "1", "2", "--delete"],
        ] {
            let err = one_shot(args).expect_err(&format!("{args:?}"));
            assert!(err.starts_with("usage: cas"), "{args:?} gave {err:?}");
        }
    }

    #[test]
    fn connect_takes_one_address_or_several_endpoints_tried_in_order() {
        let endpoints = |args: &[&str]| {
            let mut argv = vec!["connect"];
            argv.extend_from_slice(args);
            argv.extend_from_slice(&CONN[2..]);
            let Command::Connect(c) = parse(&argv).expect("parses").command else {
                panic!("connect")
            };
            endpoint_list(c.address.as_deref(), &c.conn.endpoints)
        };
        assert_eq!(
            endpoints(&["127.0.0.1:2001"]),
            Ok(vec!["127.0.0.1:2001".into()])
        );
        assert_eq!(
            endpoints(&["--endpoints", "a:1,b:2,c:3"]),
            Ok(vec!["a:1".into(), "b:2".into(), "c:3".into()])
        );
        assert_eq!(
            endpoints(&["b:2", "--endpoints", "a:1, b:2,,c:3"]),
            Ok(vec!["b:2".into(), "a:1".into(), "c:3".into()])
        );
        let err = endpoints(&[]).expect_err("no endpoint");
        assert!(err.contains("VERGENTCTL_ENDPOINTS"), "{err}");
    }

    #[test]
    fn vergentctl_reads_its_own_environment_names_never_vergentds() {
        let cli = Cli::command();
        let mut seen = Vec::new();
        for sub in ["connect", "get", "put", "status", "bench"] {
            let sub = cli.find_subcommand(sub).expect(sub);
            for arg in sub.get_arguments() {
                if let Some(var) = arg.get_env() {
                    let var = var.to_string_lossy().into_owned();
                    assert!(
                        var.starts_with("VERGENTCTL_"),
                        "{} reads {var}",
                        arg.get_id()
                    );
                    seen.push(var);
                }
            }
        }
        for own in [
            env::ENDPOINTS,
            env::TLS_CERTFILE,
            env::TLS_KEYFILE,
            env::TLS_CAFILE,
        ] {
            assert!(seen.iter().any(|v| v == own), "{own} is read nowhere");
        }
        let vars = |set: &'static [&'static str]| {
            move |name: &str| set.contains(&name).then(|| OsString::from("x"))
        };
        let hints = node_env_hints(vars(&["VERGENT_TLS_CERTFILE"]));
        assert_eq!(hints.len(), 1);
        assert!(hints[0].contains("VERGENTCTL_TLS_CERTFILE"), "{hints:?}");
        assert!(
            node_env_hints(vars(&["VERGENT_TLS_CERTFILE", "VERGENTCTL_TLS_CERTFILE"])).is_empty()
        );
        assert!(node_env_hints(vars(&[])).is_empty());
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
