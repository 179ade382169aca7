//! `cargo xtask chaos`: builds `vergentd` and `vergent-chaos`, creates a
//! network namespace for the run (when root), runs the suite inside it and
//! always removes the namespace and anything left in it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::{cargo, sh};

const NETNS_PREFIX: &str = "vergent-chaos-";

/// Flags xtask handles itself; everything else goes to `vergent-chaos`.
struct Own {
    release: bool,
    out: Option<PathBuf>,
    /// Run this many random seeds, one after another.
    seeds: Option<u32>,
    rest: Vec<String>,
}

fn parse(args: &[String]) -> anyhow::Result<Own> {
    let mut own = Own {
        release: false,
        out: None,
        seeds: None,
        rest: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--release" => own.release = true,
            "--out" => own.out = Some(it.next().context("--out needs a directory")?.into()),
            "--seeds" => {
                let n = it.next().context("--seeds needs a count")?;
                own.seeds = Some(
                    n.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("--seeds {n:?}: expected a count above 0"))?,
                );
            }
            _ => {
                if let Some(dir) = a.strip_prefix("--out=") {
                    own.out = Some(dir.into());
                } else {
                    own.rest.push(a.clone());
                }
            }
        }
    }
    Ok(own)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                crate::root().join(p)
            }
        })
        .unwrap_or_else(|| crate::root().join("target"))
}

fn ip(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("ip").args(args).output()
}

/// Removes namespace `name`, killing whatever still runs in it.
fn remove_netns(name: &str) {
    if let Ok(out) = ip(&["netns", "pids", name]) {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-s", "KILL", pid]).status();
        }
    }
    let _ = ip(&["netns", "del", name]);
}

/// Namespaces of earlier runs that were interrupted before cleaning up.
fn remove_stale_namespaces() {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if let Some(pid) = name.strip_prefix(NETNS_PREFIX)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            eprintln!("chaos: removing namespace {name} left by an interrupted run");
            remove_netns(name);
        }
    }
}

/// Creates the run's namespace with loopback up; `None` when not possible.
fn create_netns() -> Option<String> {
    if !crate::deps::is_root() {
        eprintln!(
            "chaos: not root, so no network namespace: partition and loss faults are skipped \
             (the host's firewall is never touched)"
        );
        return None;
    }
    remove_stale_namespaces();
    let name = format!("{NETNS_PREFIX}{}", std::process::id());
    let made = ip(&["netns", "add", &name]).is_ok_and(|o| o.status.success())
        && ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])
            .is_ok_and(|o| o.status.success());
    if made {
        Some(name)
    } else {
        remove_netns(&name);
        eprintln!(
            "chaos: could not create a network namespace here: partition and loss faults are skipped"
        );
        None
    }
}

pub(crate) fn chaos(args: &[String]) -> anyhow::Result<()> {
    let own = parse(args)?;
    if own.rest.iter().any(|a| a == "-h" || a == "--help") {
        let bin = target_dir().join("debug").join("vergent-chaos");
        if bin.exists() {
            sh(Command::new(bin).arg("--help"))?;
        } else {
            eprintln!(
                "usage: cargo xtask chaos [--release] [--out DIR] [--seeds N] [--nodes N] [--duration 60s] \
                 [--seed S] [--faults kill,pause,partition,loss,delay,skew,faketime,disk,wipe|all] \
                 [--clients C] [--keys K] [--rate R] [--converge-timeout 60s] \
                 [--tombstone-grace D] [--keep-data]"
            );
        }
        return Ok(());
    }
    crate::deps::ensure()?;
    crate::deps::ensure_chaos_tools()?;
    let mut build = cargo();
    build.args(["build", "--locked", "-p", "vergentd", "-p", "vergent-chaos"]);
    if own.release {
        build.arg("--release");
    }
    sh(&mut build)?;
    let bins = target_dir().join(if own.release { "release" } else { "debug" });
    let out = own.out.unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        target_dir().join("chaos").join(format!("run-{stamp}"))
    });
    let out = if out.is_absolute() {
        out
    } else {
        std::env::current_dir()
            .context("read the current directory")?
            .join(out)
    };

    match own.seeds {
        None => run_once(&bins, &out, &own.rest),
        Some(_)
            if own
                .rest
                .iter()
                .any(|a| a == "--seed" || a.starts_with("--seed=")) =>
        {
            bail!("--seeds N draws N random seeds; replay one seed with --seed S alone")
        }
        Some(n) => {
            // Seeds drawn here so each run's is known before it starts.
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id());
            let mut failed = Vec::new();
            for i in 0..u64::from(n) {
                let seed = splitmix64(base.wrapping_add(i)) >> 1;
                let mut rest = own.rest.clone();
                rest.extend(["--seed".to_string(), seed.to_string()]);
                let dir = out.join(format!("seed-{seed}"));
                eprintln!("chaos: run {} of {n}, seed {seed}", i + 1);
                if let Err(e) = run_once(&bins, &dir, &rest) {
                    eprintln!("chaos: seed {seed} failed: {e:#}");
                    failed.push(seed);
                }
            }
            if failed.is_empty() {
                eprintln!("chaos: all {n} seeds passed");
                return Ok(());
            }
            eprintln!(
                "chaos: {} of {n} seeds failed; replay each with:",
                failed.len()
            );
            for seed in &failed {
                eprintln!("  cargo xtask chaos {} --seed {seed}", own.rest.join(" "));
            }
            bail!("{} of {n} chaos seeds failed", failed.len())
        }
    }
}

/// SplitMix64's finaliser: distinct inputs give distinct, well-spread seeds.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs `vergent-chaos` once (in a namespace of its own when possible).
fn run_once(bins: &std::path::Path, out: &std::path::Path, rest: &[String]) -> anyhow::Result<()> {
    let netns = create_netns();
    let mut cmd = match &netns {
        Some(name) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", name])
                .arg(bins.join("vergent-chaos"));
            c.args(["--netns", name]);
            c
        }
        None => Command::new(bins.join("vergent-chaos")),
    };
    cmd.arg("--vergentd")
        .arg(bins.join("vergentd"))
        .arg("--out")
        .arg(out)
        .args(rest);
    let status = cmd.status().context("run vergent-chaos");
    if let Some(name) = &netns {
        remove_netns(name);
    }
    let status = status?;
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => bail!(
            "pass the chaos run: a checker found a violation; report, history and logs in {}",
            out.display()
        ),
        _ => bail!("complete the chaos run ({status}); see {}", out.display()),
    }
}
