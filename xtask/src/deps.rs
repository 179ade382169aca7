//! System packages the build needs: libclang (RocksDB's bindgen) and a C++
//! compiler (RocksDB itself); and those the tests need: the chaos suite's
//! fault tools and a Prometheus server. Installed with apt-get when root on
//! Debian; otherwise the exact command is printed.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

fn has_libclang() -> bool {
    // On Debian, ask the package manager: the runtime library alone
    // (libclang1-N) lacks the headers bindgen needs, and libclang-cpp is a
    // different library that a file-name check could mistake for it.
    if let Ok(out) = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "libclang-dev"])
        .output()
    {
        return String::from_utf8_lossy(&out.stdout).contains("install ok installed");
    }
    let is_libclang = |name: &str| {
        name.starts_with("libclang.so")
            || (name.starts_with("libclang-")
                && !name.starts_with("libclang-cpp")
                && name.contains(".so"))
    };
    let matches = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| is_libclang(&e.file_name().to_string_lossy()))
        })
    };
    let dirs = [
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
    ];
    if dirs.iter().any(|d| matches(Path::new(d))) {
        return true;
    }
    std::fs::read_dir("/usr/lib").is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("llvm-") && matches(&e.path().join("lib"))
        })
    })
}

fn has_cmd(cmd: &str, version_arg: &str) -> bool {
    Command::new(cmd)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs what is missing, or says exactly what to run.
pub(crate) fn ensure() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !has_libclang() {
        missing.push("libclang-dev");
    }
    if !has_cmd("c++", "--version") {
        missing.push("g++");
    }
    if !has_cmd("openssl", "version") {
        missing.push("openssl");
    }
    install(&missing)
}

/// Installs the tools the chaos suite injects faults with, when root on
/// Debian; otherwise says which are missing (their faults are then skipped).
pub(crate) fn ensure_chaos_tools() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (cmd, arg, package) in [
        ("nft", "--version", "nftables"),
        ("strace", "-V", "strace"),
        ("faketime", "--version", "faketime"),
        ("ip", "-V", "iproute2"),
    ] {
        if !has_cmd(cmd, arg) {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !has_cmd("apt-get", "--version") {
        eprintln!(
            "chaos: missing {}; the faults that need them are skipped \
             (install with: sudo apt-get install -y {})",
            missing.join(", "),
            missing.join(" ")
        );
        return Ok(());
    }
    install(&missing)
}

/// Installs what the tests need beyond the build: a Prometheus server (the
/// monitoring test scrapes a cluster with it). Says the command otherwise.
pub(crate) fn ensure_test_tools() -> anyhow::Result<()> {
    if has_cmd("prometheus", "--version") || std::env::var_os("VERGENT_TEST_PROMETHEUS").is_some() {
        return Ok(());
    }
    install(&["prometheus"])
}

/// Installs what `bench --anchors` needs to run etcd and Redis next to
/// Vergent: the servers, etcdctl (the harness's health check) and protoc
/// (etcd-client's build compiles etcd's protos). Says the command otherwise.
pub(crate) fn ensure_anchor_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = [
        ("etcd", "etcd-server"),
        ("etcdctl", "etcd-client"),
        ("redis-server", "redis-server"),
        ("protoc", "protobuf-compiler"),
    ]
    .into_iter()
    .filter(|(cmd, _)| !has_cmd(cmd, "--version"))
    .map(|(_, package)| package)
    .collect();
    install(&missing)
}

fn install(missing: &[&str]) -> anyhow::Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() || !has_cmd("apt-get", "--version") {
        bail!(
            "install the missing system packages first: sudo apt-get install -y {list} \
             (or your distribution's equivalent)"
        );
    }
    eprintln!("installing missing system packages: {list}");
    crate::sh(Command::new("apt-get").arg("update").arg("-qq"))?;
    crate::sh(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}
