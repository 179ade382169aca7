//! `cargo xtask test`: the whole gate, in the order that fails fastest, ending
//! with a short chaos run (3 nodes, 20 s, kill, partition and wipe faults,
//! a 10 s tombstone grace so purges happen during it, a pinned seed).

use std::process::Command;

use anyhow::{Context, bail};

use crate::{cargo, sh};

/// Crates that must stay pure: no async runtime, network, protobuf or RocksDB.
const PURE: &[&str] = &[
    "vergent-hlc",
    "vergent-types",
    "vergent-replication",
    "vergent-gossip",
    "vergent-sim",
    "vergent-lincheck",
    "vergent-consensus",
];
/// The seed of CI's chaos run.
const CI_CHAOS_SEED: &str = "1217559177532856388";
/// Crates that must never reach server internals.
const CLIENT_SIDE: &[&str] = &["vergent-client", "vergentctl"];

pub(crate) fn test(args: &[String]) -> anyhow::Result<()> {
    crate::deps::ensure()?;
    // strace, nftables and faketime: the fsync-failure smoke test and the
    // chaos run use them.
    crate::deps::ensure_chaos_tools()?;
    // Prometheus: the monitoring test scrapes a cluster with it.
    crate::deps::ensure_test_tools()?;
    let quick = args.iter().any(|a| a == "--quick");
    sh(cargo().args(["fmt", "--all", "--", "--check"]))?;
    check_layering()?;
    crate::tidy::check(&crate::root())?;
    if !quick {
        sh(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let nextest = Command::new("cargo-nextest")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if nextest {
        // Doc tests first, so the run's closing test summary is nextest's.
        sh(cargo().args(["test", "--workspace", "--locked", "--doc"]))?;
        sh(cargo().args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ]))?;
    } else {
        eprintln!("cargo-nextest not found; using cargo test");
        sh(cargo().args(["test", "--workspace", "--locked"]))?;
    }
    if !quick {
        sh(cargo()
            .args(["doc", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings"))?;
        // Every decoder of untrusted bytes, fuzzed briefly (long runs:
        // `cargo xtask fuzz --duration 10m`, docs/testing.md).
        crate::fuzz::fuzz(&["--duration".into(), "15s".into()])?;
        // A short fault-injection run on real processes on a pinned seed,
        // so an unrelated change cannot fail on a random schedule (this one
        // kills, isolates and wipes n1: the wipe follows a partition longer
        // than the log's horizon). `cargo xtask chaos --seeds N` explores.
        crate::chaos::chaos(&[
            "--seed".into(),
            CI_CHAOS_SEED.into(),
            "--nodes".into(),
            "3".into(),
            "--duration".into(),
            "20s".into(),
            "--faults".into(),
            "kill,partition,wipe".into(),
            // Short enough that purges and log replays across them happen.
            "--tombstone-grace".into(),
            "10s".into(),
            "--keys".into(),
            "1000".into(),
        ])?;
    }
    eprintln!("xtask test: all checks passed");
    Ok(())
}

/// The crate names `cargo tree --locked -e normal --prefix none ARGS` lists,
/// one per line, first the root.
fn tree_names(args: &[&str]) -> anyhow::Result<Vec<String>> {
    let out = cargo()
        .args(["tree", "--locked", "-e", "normal", "--prefix", "none"])
        .args(args)
        .current_dir(crate::root())
        .output()
        .with_context(|| format!("run cargo tree {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "cargo tree {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Workspace crates that name `dep` as a normal (not dev) dependency.
fn direct_dependents(dep: &str) -> anyhow::Result<Vec<String>> {
    let names = tree_names(&["--workspace", "-i", dep, "--depth", "1"])?;
    Ok(names.into_iter().skip(1).collect())
}

/// Enforces the crate graph from docs/architecture.md with `cargo tree`.
fn check_layering() -> anyhow::Result<()> {
    let mut violations = Vec::new();
    for pkg in PURE {
        for dep in tree_names(&["-p", pkg])? {
            if [
                "tokio",
                "quinn",
                "tonic",
                "prost",
                "rocksdb",
                "librocksdb-sys",
            ]
            .contains(&dep.as_str())
            {
                violations.push(format!("{pkg} must stay pure but depends on {dep}"));
            }
        }
    }
    for pkg in CLIENT_SIDE {
        for dep in tree_names(&["-p", pkg])? {
            if ["vergent-node", "vergent-storage", "rocksdb"].contains(&dep.as_str()) {
                violations.push(format!(
                    "{pkg} must not reach server internals but depends on {dep}"
                ));
            }
        }
    }
    // Crates only one crate may link directly: the rest reach them through it.
    for (dep, owner) in [
        ("rocksdb", "vergent-storage"),
        ("quinn", "vergent-transport"),
    ] {
        for name in direct_dependents(dep)? {
            if name != owner {
                violations.push(format!(
                    "{name} depends on {dep} directly; only {owner} may"
                ));
            }
        }
    }
    // Test tooling stays off every shipped crate (dev-dependencies are fine).
    for tool in ["vergent-chaos", "vergent-testkit"] {
        for name in direct_dependents(tool)? {
            if name != "vergent-chaos" {
                violations.push(format!(
                    "{name} depends on the test tool {tool}; only tests may (dev-dependencies)"
                ));
            }
        }
    }
    // One crypto backend: ring. Two backends make rustls panic at runtime.
    let aws = cargo()
        .args(["tree", "--locked", "--workspace", "-i", "aws-lc-rs"])
        .current_dir(crate::root())
        .output()
        .context("run cargo tree -i aws-lc-rs")?;
    if aws.status.success() && !aws.stdout.is_empty() {
        violations
            .push("aws-lc-rs is in the dependency tree; use the ring backend everywhere".into());
    }
    if !violations.is_empty() {
        bail!("check crate layering:\n  {}", violations.join("\n  "));
    }
    eprintln!("crate layering: ok");
    Ok(())
}
