//! `vergentctl`: the interactive shell (`connect`), the same commands as
//! one-shot subcommands for scripts (`get`, `put`, …), the certificate tools
//! (`gen-root`, `gen-cert`, `inspect-cert`), `bench`, and its own shell
//! completions and man pages. It talks to nodes only through
//! `vergent-client`, never through server crates.

mod bench;
mod certs;
mod cli;
mod shell;
mod table;
mod words;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConnArgs};

/// Exit codes, following redis-cli/etcdctl habits.
pub(crate) mod exit {
    /// A command failed.
    pub(crate) const ERROR: u8 = 1;
    /// The command line was wrong (clap's code for usage errors).
    pub(crate) const USAGE: u8 = 2;
    /// The node could not be reached or refused our TLS identity.
    pub(crate) const CONNECT: u8 = 3;
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if e.kind() == clap::error::ErrorKind::MissingRequiredArgument {
                for hint in cli::node_env_hints(|name| std::env::var_os(name)) {
                    eprintln!("{hint}");
                }
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::USAGE));
        }
    };
    let result = match cli.command {
        Command::Connect(args) => return connect(args),
        Command::OneShot(one) => return one_shot(one),
        Command::GenRoot(args) => certs::run_gen_root(args),
        Command::GenCert(args) => certs::run_gen_cert(args),
        Command::InspectCert(args) => certs::run_inspect_cert(args),
        Command::Backup(args) => return backup(args),
        Command::Bench(args) => bench::run(args),
        Command::Completions(args) => {
            cli::print_completions(args.shell, &mut std::io::stdout());
            Ok(())
        }
        Command::Man(args) => man(&args.out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

/// `man --out DIR`: writes the pages and prints their paths.
fn man(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let pages = cli::write_man_pages(dir)
        .with_context(|| format!("write man pages to {}", dir.display()))?;
    for page in pages {
        println!("{}", page.display());
    }
    Ok(())
}

/// A usage error the argument parser could not tell: one line, exit code
/// 2 as for the parser's own.
fn usage_error(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(exit::USAGE)
}

fn connect(args: cli::ConnectArgs) -> ExitCode {
    let shell = match open(args.address.as_deref(), &args.conn) {
        Ok(shell) => shell,
        Err(code) => return code,
    };
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

fn one_shot(one: cli::OneShot) -> ExitCode {
    let (cmd, conn) = one.into_cmd();
    let cmd = match cmd {
        Ok(cmd) => cmd,
        Err(message) => return usage_error(message),
    };
    match open(None, &conn) {
        Ok(shell) => ExitCode::from(shell.run_one(cmd)),
        Err(code) => code,
    }
}

/// `backup --out DIR`: one node's store, checked file by file, manifest last.
fn backup(args: cli::BackupArgs) -> ExitCode {
    let (client, runtime) = match client(None, &args.conn) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let started = std::time::Instant::now();
    match runtime.block_on(client.backup(&args.out)) {
        Ok(b) => {
            println!(
                "backup of node {} (store {:016x}) from {} written to {}: {} files, {} bytes in {:.1?}",
                b.manifest.node_id,
                b.manifest.store_id,
                b.endpoint,
                b.dir.display(),
                b.manifest.files.len(),
                b.manifest.total_bytes(),
                started.elapsed()
            );
            println!(
                "restore it as the first node of a new cluster: vergentd restore --from {} --data-dir DIR --node-id NEW_ID",
                b.dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: backup: {e}");
            ExitCode::from(if e.is_connection() {
                exit::CONNECT
            } else {
                exit::ERROR
            })
        }
    }
}

/// Connects to the first of `first` and `conn`'s endpoints that answers
/// and makes the shell; Err holds the exit code, after the error on stderr.
fn open(first: Option<&str>, conn: &ConnArgs) -> Result<shell::Shell, ExitCode> {
    let (client, runtime) = client(first, conn)?;
    Ok(shell::Shell::new(client, runtime, conn.format))
}

/// Connects a client as [`open`] does, with the runtime it runs on.
fn client(
    first: Option<&str>,
    conn: &ConnArgs,
) -> Result<(vergent_client::Client, tokio::runtime::Runtime), ExitCode> {
    let endpoints = cli::endpoint_list(first, &conn.endpoints).map_err(usage_error)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: failed to start the async runtime: {e}");
            ExitCode::from(exit::ERROR)
        })?;
    let mut config = vergent_client::ClientConfig::with_endpoints(endpoints, conn.tls.files());
    config.server_name.clone_from(&conn.server_name);
    config.request_timeout = conn.timeout;
    let client = runtime
        .block_on(vergent_client::Client::connect(config))
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_connection() {
                exit::CONNECT
            } else {
                exit::ERROR
            })
        })?;
    if conn.discover
        && let Err(e) = runtime.block_on(client.discover())
    {
        eprintln!(
            "warning: cannot learn other endpoints from {}: {e}",
            client.endpoint()
        );
    }
    Ok((client, runtime))
}
