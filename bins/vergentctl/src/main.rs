//! `vergentctl`: the interactive shell (`connect`), and the certificate tools
//! (`gen-root`, `gen-cert`, `inspect-cert`). It talks to nodes only through
//! `vergent-client`, never through server crates.

mod bench;
mod certs;
mod shell;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Exit codes, following redis-cli/etcdctl habits.
pub(crate) mod exit {
    /// A command failed.
    pub(crate) const ERROR: u8 = 1;
    /// The node could not be reached or refused our TLS identity.
    pub(crate) const CONNECT: u8 = 3;
}

/// Vergent command-line tool: shell, client and certificate authority.
#[derive(Debug, Parser)]
#[command(name = "vergentctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open a shell on a node (commands are read from stdin when it is not a terminal).
    Connect(ConnectArgs),
    /// Create a root CA with a passphrase-encrypted key.
    GenRoot(certs::GenRootArgs),
    /// Create a node or client certificate signed by the CA.
    GenCert(certs::GenCertArgs),
    /// Show a certificate's subject, issuer, validity, SANs and usages.
    InspectCert(certs::InspectCertArgs),
    /// Closed-loop load generator: throughput and latency percentiles.
    Bench(bench::BenchArgs),
}

/// The client's mTLS files, as `connect` and `bench` take them.
#[derive(Debug, clap::Args)]
pub(crate) struct TlsArgs {
    /// Client certificate (PEM).
    #[arg(long, env = "VERGENT_TLS_CERTFILE")]
    tls_certfile: std::path::PathBuf,
    /// Client private key (PEM, PKCS#8).
    #[arg(long, env = "VERGENT_TLS_KEYFILE")]
    tls_keyfile: std::path::PathBuf,
    /// Cluster CA certificate (PEM).
    #[arg(long, env = "VERGENT_TLS_CAFILE")]
    tls_cafile: std::path::PathBuf,
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

/// Arguments of `connect`.
#[derive(Debug, clap::Args)]
struct ConnectArgs {
    /// The node's API address, HOST:PORT.
    address: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// Name expected in the node's certificate (default: the address's host).
    #[arg(long)]
    server_name: Option<String>,
    /// Run this command and exit instead of opening the shell (repeatable;
    /// stops at the first that fails). Its words may be any bytes.
    #[arg(short = 'e', long = "execute")]
    execute: Vec<std::ffi::OsString>,
    /// Time allowed for each request.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How results are printed: text for people, or json (JSON Lines: one
    /// object per result on stdout, trailers on stderr). `format json|text`
    /// changes it within the shell.
    #[arg(long, value_enum, default_value_t = shell::Format::Text)]
    format: shell::Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Connect(args) => return connect(args),
        Command::GenRoot(args) => certs::run_gen_root(args),
        Command::GenCert(args) => certs::run_gen_cert(args),
        Command::InspectCert(args) => certs::run_inspect_cert(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn connect(args: ConnectArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut config = vergent_client::ClientConfig::new(args.address.clone(), args.tls.files());
    config.server_name = args.server_name;
    config.request_timeout = args.timeout;
    let client = match runtime.block_on(vergent_client::Client::connect(config)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.is_connection() {
                exit::CONNECT
            } else {
                exit::ERROR
            });
        }
    };
    let shell = shell::Shell::new(client, runtime, args.format);
    let code = if args.execute.is_empty() {
        shell.run()
    } else {
        let commands: Vec<Vec<u8>> = args
            .execute
            .into_iter()
            .map(std::ffi::OsString::into_encoded_bytes)
            .collect();
        shell.run_commands(&commands)
    };
    ExitCode::from(code)
}
