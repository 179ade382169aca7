//! `cargo xtask`: the project's everyday commands, in Rust so they are the
//! same on every machine. It depends on no runtime crate of the workspace.
//!
//! - `cargo xtask run`   install what is missing, build, make throwaway
//!   certificates, start a local 3-node cluster and open the shell.
//! - `cargo xtask test`  every check CI runs: fmt, clippy, tests, docs, layering.
//! - `cargo xtask stop`  stop nodes left running by `run`.
//! - `cargo xtask deps`  install the system packages the build needs.
//! - `cargo xtask chaos` run a real cluster under faults and check the history.
//! - `cargo xtask bench` the standard benchmark scenarios on fresh local clusters.
//! - `cargo xtask fuzz`  the cargo-fuzz targets, each for a while.

mod anchors;
mod bench;
mod chaos;
mod deps;
mod fuzz;
mod run;
mod test;
mod tidy;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  run [--nodes N] [--release] [--keep]
                 build, create a throwaway CA and certificates under .vergent/dev,
                 start N local nodes (default 3) replicating to each other, and open the shell
  stop           stop the nodes started by `run`
  test           everything CI checks: fmt, clippy, tests, docs, crate layering, tidy rules
  deps           install the system packages the build and the tests need (libclang, a C++
                 compiler, openssl, the chaos fault tools, prometheus)
  fuzz [--duration 30s] [TARGET ...]
                 run the cargo-fuzz targets of crates/fuzz (peer frames, API requests,
                 acceptor records, HLC and node-id text), each for the duration; installs
                 cargo-fuzz if missing; corpora in crates/fuzz/corpus
  chaos [--release] [--out DIR] [--nodes N] [--duration 60s] [--seed S | --seeds N]
        [--faults LIST] [--tombstone-grace D]
                 fault-injection suite: N real nodes in a network namespace of their own
                 under kill, pause, partition, loss, delay, skew, faketime, disk, wipe faults
                 (LIST: comma-separated, or all); checks the history for lost writes,
                 convergence, resurrection and clock poisoning (docs/testing.md); --seeds N
                 runs N random seeds and prints the replay command of each that failed
  bench [--quick] [--duration 10s] [--warmup 2s] [--clients 1,16,64,256] [--nodes 1,3]
        [--scale KEYS] [--reps N] [--anchors HARNESS_DIR] [--baseline BIN_DIR] [--out DIR]
                 release build; fresh 1- and 3-node clusters on 127.0.0.1:4101..; put-only,
                 get-only and 50/50 through `vergentctl bench` (100-byte values, 100k keys),
                 3-node replication lag (puts on node-1, watched on node-2) and puts with
                 --fsync per-write and off; --scale KEYS adds the footprint scenario (peak
                 RSS, disk, restart time); --anchors ../shared/bench measures etcd and
                 Redis-TLS in the same run and prints the ratios; --baseline BIN_DIR runs the
                 same matrix on another build's release binaries after this one's in every
                 rep and prints the ratios; --reps N reports medians of N passes; writes
                 DIR/summary.md (docs/benchmarks.md)";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run::run(&args[1..]),
        Some("stop") => run::stop(),
        Some("test") => test::test(&args[1..]),
        Some("deps") => deps::ensure()
            .and_then(|()| deps::ensure_chaos_tools())
            .and_then(|()| deps::ensure_test_tools()),
        Some("chaos") => chaos::chaos(&args[1..]),
        Some("bench") => bench::bench(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            eprintln!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown command {other:?}\n\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: failed to {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// Runs a command in the workspace root, echoing it, and fails if it fails.
pub(crate) fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("run {}", show(cmd)))?;
    if !status.success() {
        bail!("run `{}`: {status}", show(cmd));
    }
    Ok(())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}
