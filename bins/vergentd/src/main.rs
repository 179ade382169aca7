//! `vergentd`: parses flags and the config file, starts a node, reloads its
//! certificate on SIGHUP, and stops it gracefully on SIGINT/SIGTERM. All
//! logic lives in `vergent-node`.

mod config;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing::{error, info};

use config::{Cli, LogFormat};

/// jemalloc for the whole process, RocksDB's C++ allocations included (it
/// replaces `malloc` itself): with glibc's per-thread arenas a node loaded
/// with 1M keys peaked at 242–246 MiB resident, with jemalloc at 202–215 MiB
/// under the same RocksDB budgets (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `vergentd restore`: turns a backup into the data dir of a new cluster's
/// first node, offline.
#[derive(Debug, Parser)]
#[command(
    name = "vergentd restore",
    about = "Restore a backup (vergentctl backup) into a new data dir, as the first node of a new cluster",
    long_about = "Restore a backup (vergentctl backup) into a new data dir, as the first node of a new cluster.\n\n\
        Every file is checked against the backup's manifest first. The restored node keeps every record \
        and version but gets a new store id, forgets the old cluster's members, voting configuration and \
        replication log, and refuses contact with the old cluster's nodes: keys deleted after the backup \
        may have no tombstone left there, and the backup would bring them back. Start it without --peers, \
        then start new nodes with --peers pointing at it."
)]
struct RestoreCli {
    /// The backup directory (with vergent-backup.txt).
    #[arg(long, value_name = "DIR")]
    from: std::path::PathBuf,
    /// The new node's data directory: made if missing, must be empty.
    #[arg(long, value_name = "DIR")]
    data_dir: std::path::PathBuf,
    /// The new node's id: not one of the old cluster's.
    #[arg(long, value_name = "ID")]
    node_id: String,
}

fn restore(cli: RestoreCli) -> ExitCode {
    let node_id = match vergent_types::NodeId::new(cli.node_id) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("vergentd restore: --node-id: {e}");
            return ExitCode::from(2);
        }
    };
    match vergent_node::restore::restore(&cli.from, &cli.data_dir, node_id) {
        Ok(r) => {
            println!(
                "restored node {} (store {:016x}, backed up {} ms after the Unix epoch) into {} as node {} (store {:016x}): {} live keys",
                r.manifest.node_id,
                r.manifest.store_id,
                r.manifest.created_unix_ms,
                cli.data_dir.display(),
                r.node_id,
                r.store_id,
                r.live_keys
            );
            println!("refuses the old cluster's nodes: {}", r.refused.join(", "));
            for p in &r.strict {
                println!(
                    "the old cluster declared {:?} strict: declare it again once the new cluster formed (vergentctl keyspace strict ...)",
                    String::from_utf8_lossy(p)
                );
            }
            println!(
                "start it without --peers: vergentd --data-dir {} --port PORT --tls-certfile ... (then new nodes with --peers pointing at it)",
                cli.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vergentd restore: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "restore") {
        let args = std::env::args_os().skip(1);
        return match RestoreCli::try_parse_from(args) {
            Ok(cli) => restore(cli),
            Err(e) => {
                let _ = e.print();
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            }
        };
    }
    let cli = Cli::parse();
    let settings = match config::resolve(cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vergentd: {}", chain(&e));
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings.log_level, settings.log_format);
    // Up to the hard limit: the node shares descriptors out between storage
    // and clients by the soft one (see vergent_node's incoming.rs).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => info!(limit = n, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the file descriptor limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vergentd: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings.node)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, in the log's own format (a JSON line under
            // `--log-format json`), which goes to stderr like everything else.
            error!("failed to {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, like `{e:#}`, but without a cause
/// whose text the line already holds: some errors print their source in
/// their own message and also return it as `source()`, which `{e:#}` would
/// repeat ("cannot read x: No such file: cannot read x: No such file: …").
fn chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if line.is_empty() {
            line = cause;
        } else if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}

async fn run(config: vergent_node::NodeConfig) -> anyhow::Result<()> {
    let node = vergent_node::Node::start(config)
        .await
        .context("start the node")?;
    // Parent processes and scripts wait for this line on stderr.
    info!(addr = %node.local_addr(), node_id = %node.node_id(), "ready");
    let token = node.shutdown_token();
    let failure = node.failure();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("install the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
            _ = sigterm.recv() => info!("SIGTERM received, shutting down"),
            () = token.cancelled() => {}
            _ = sighup.recv() => {
                info!("SIGHUP received, reloading the TLS certificate, key and CA");
                // Logged either way; a refused reload keeps the old identity.
                let _ = tokio::task::block_in_place(|| node.reload_tls());
                continue;
            }
        }
        break;
    }
    node.shutdown().await;
    if let Some(what) = failure.get() {
        // Exit non-zero so a supervisor restarts the node, which recovers
        // from the write-ahead log.
        anyhow::bail!("keep serving: storage failed: {what}");
    }
    Ok(())
}

fn init_tracing(level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    // RUST_LOG, when set, refines the level given on the command line.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},h2=warn,hyper=warn,tower=warn,rustls=warn,tonic=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::chain;

    /// An error that prints its source in its own message and also returns
    /// it as `source()`, as some of the workspace's errors do.
    #[derive(Debug)]
    struct Read(std::io::Error);

    impl std::fmt::Display for Read {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read /x.crt: {}", self.0)
        }
    }

    impl std::error::Error for Read {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_chain_is_printed_once_without_causes_it_already_shows() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Read(io)).context("start the node");
        assert_eq!(
            format!("{e:#}"),
            "start the node: cannot read /x.crt: no such file: no such file",
            "what anyhow alone prints"
        );
        assert_eq!(
            chain(&e),
            "start the node: cannot read /x.crt: no such file"
        );
        let plain = anyhow::anyhow!("missing --data-dir").context("resolve");
        assert_eq!(chain(&plain), "resolve: missing --data-dir");
    }
}
