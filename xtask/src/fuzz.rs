//! `cargo xtask fuzz [--duration 30s] [TARGET ...]`: runs the cargo-fuzz
//! targets of `crates/fuzz` (the decoders of untrusted bytes: peer frames,
//! API requests, acceptor records, stored records and log and index
//! entries, HLC and node-id text), each for the duration, with a memory cap so an unbounded
//! allocation counts as a failure. Installs cargo-fuzz when it is missing.
//! The targets build on the stable toolchain (`RUSTC_BOOTSTRAP=1` lets
//! cargo-fuzz pass its instrumentation flags) into a target directory of
//! their own, so their flags never invalidate the normal build.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{cargo, root, sh};

/// Every target, in `crates/fuzz/fuzz_targets/`.
pub(crate) const TARGETS: &[&str] = &[
    "peer_frame",
    "api_request",
    "acceptor_state",
    "stored_record",
    "text_ids",
    "shell_words",
];
/// Most resident memory a target may use; above it libFuzzer reports a failure.
const RSS_LIMIT_MB: u32 = 512;

/// The `cargo-fuzz` binary: on the PATH, else installed (a normal crate).
fn cargo_fuzz() -> anyhow::Result<PathBuf> {
    let works = |p: &PathBuf| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let on_path = PathBuf::from("cargo-fuzz");
    if works(&on_path) {
        return Ok(on_path);
    }
    let tools = target_dir().join("tools");
    let installed = tools.join("bin").join("cargo-fuzz");
    if !works(&installed) {
        sh(cargo()
            .args(["install", "cargo-fuzz", "--locked", "--root"])
            .arg(&tools))?;
    }
    Ok(installed)
}

fn target_dir() -> PathBuf {
    let base =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    base.join("fuzz")
}

pub(crate) fn fuzz(args: &[String]) -> anyhow::Result<()> {
    let mut duration = Duration::from_secs(30);
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--duration" => {
                let d = it.next().context("--duration needs a value, e.g. 10m")?;
                duration = parse_duration(d).with_context(|| {
                    format!("invalid --duration {d:?}: expected e.g. 30s, 10m, 1h")
                })?;
            }
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => bail!(
                "unknown fuzz argument {other:?}; targets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_string()).collect();
    }
    let cargo_fuzz = cargo_fuzz()?;
    let seconds = duration.as_secs().max(1);
    for t in &targets {
        let corpus = root().join("crates/fuzz/corpus").join(t);
        std::fs::create_dir_all(&corpus).with_context(|| format!("create {}", corpus.display()))?;
        sh(Command::new(&cargo_fuzz)
            .args([
                "fuzz",
                "run",
                "--fuzz-dir",
                "crates/fuzz",
                "-s",
                "none",
                "-O",
            ])
            .arg("--target-dir")
            .arg(target_dir())
            .arg(t)
            .arg(&corpus)
            // Committed seeds (read, never written): inputs a fuzzer takes
            // long to find, such as a whole backup manifest.
            .args(Some(root().join("crates/fuzz/seeds").join(t)).filter(|d| d.is_dir()))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
            .arg("-max_len=65536")
            .arg("-print_final_stats=1")
            .env("RUSTC_BOOTSTRAP", "1"))?;
    }
    eprintln!(
        "xtask fuzz: {} target(s), {seconds} s each, no crash",
        targets.len()
    );
    Ok(())
}

/// `30s`, `10m`, `1h` or plain seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().ok()?;
    let per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(per)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn every_target_has_a_source_file() {
        for t in TARGETS {
            let path = root()
                .join("crates/fuzz/fuzz_targets")
                .join(format!("{t}.rs"));
            assert!(path.exists(), "{}", path.display());
        }
    }
}
