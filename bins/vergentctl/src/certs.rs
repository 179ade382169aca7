//! `gen-root`, `gen-cert` and `inspect-cert`: offline certificate management
//! on top of `vergent-tls`. Nothing here touches the network.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use vergent_tls::{CertSpec, Role, RootSpec, Zeroizing};

/// Consulted for the CA passphrase when no explicit source is given.
const PASSPHRASE_ENV: &str = "VERGENT_CA_PASSPHRASE";

/// Arguments of `gen-root`.
#[derive(Debug, Args)]
pub(crate) struct GenRootArgs {
    /// Where to write the CA certificate (PEM, mode 0644).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Where to write the encrypted CA private key (PEM, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub(crate) key_out: PathBuf,
    /// Prompt for the key passphrase (twice, without echo).
    #[arg(long, conflicts_with_all = ["passphrase_file", "passphrase_env"])]
    pub(crate) ask_passphrase: bool,
    /// Read the key passphrase from this file (one trailing newline is ignored).
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Read the key passphrase from this environment variable
    /// [default: VERGENT_CA_PASSPHRASE, if set].
    #[arg(long, value_name = "VAR")]
    pub(crate) passphrase_env: Option<String>,
    /// Subject common name of the CA.
    #[arg(long, default_value = "Vergent Root CA")]
    pub(crate) cn: String,
    /// Validity in days.
    #[arg(long, default_value_t = 3650)]
    pub(crate) days: u32,
    /// Overwrite existing output files.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Role a generated certificate grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// Cluster node: may serve and dial other nodes (serverAuth + clientAuth).
    Node,
    /// Client: may only connect (clientAuth).
    Client,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Node => Self::Node,
            RoleArg::Client => Self::Client,
        }
    }
}

/// Arguments of `gen-cert`.
#[derive(Debug, Args)]
pub(crate) struct GenCertArgs {
    /// CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: PathBuf,
    /// CA private key (PEM; encrypted or plain PKCS#8).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_key: PathBuf,
    /// CA key passphrase (visible to other local users in the process list;
    /// prefer --ca-passphrase-file, --ask-passphrase or VERGENT_CA_PASSPHRASE).
    #[arg(long, value_name = "PASS", conflicts_with_all = ["ca_passphrase_file", "ask_passphrase"])]
    pub(crate) ca_passphrase: Option<String>,
    /// Read the CA key passphrase from this file (one trailing newline is ignored).
    #[arg(long, value_name = "FILE", conflicts_with = "ask_passphrase")]
    pub(crate) ca_passphrase_file: Option<PathBuf>,
    /// Prompt for the CA key passphrase (without echo).
    #[arg(long)]
    pub(crate) ask_passphrase: bool,
    /// Where to write the certificate (PEM, mode 0644).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Where to write the private key (unencrypted PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub(crate) key_out: PathBuf,
    /// Subject common name (for nodes also added as a DNS SAN).
    #[arg(long)]
    pub(crate) cn: String,
    /// DNS subject alternative name (repeatable).
    #[arg(long = "san-dns", value_name = "NAME")]
    pub(crate) san_dns: Vec<String>,
    /// IP subject alternative name (repeatable).
    #[arg(long = "san-ip", value_name = "IP")]
    pub(crate) san_ip: Vec<IpAddr>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub(crate) days: u32,
    /// What the certificate may do.
    #[arg(long, value_enum, default_value_t = RoleArg::Node)]
    pub(crate) role: RoleArg,
    /// Overwrite existing output files.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Arguments of `inspect-cert`.
#[derive(Debug, Args)]
pub(crate) struct InspectCertArgs {
    /// Certificate to show (PEM or DER).
    #[arg(long, value_name = "FILE")]
    pub(crate) cert: PathBuf,
    /// Also check that this CA certificate (PEM) issued it; exit 1 if not.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
}

/// Runs `gen-root`: creates a root CA with a passphrase-encrypted key.
pub(crate) fn run_gen_root(args: GenRootArgs) -> anyhow::Result<()> {
    check_outputs(&args.out, &args.key_out, args.force)?;
    let passphrase = root_passphrase(&args)?;
    let spec = RootSpec {
        cn: args.cn,
        days: args.days,
    };
    let root = vergent_tls::generate_root(&spec, &passphrase).context("cannot generate the CA")?;
    vergent_tls::write_private(&args.key_out, root.key_pem.as_bytes())?;
    vergent_tls::write_public(&args.out, root.cert_pem.as_bytes())?;
    println!("Wrote CA certificate to {}", args.out.display());
    println!(
        "Wrote encrypted CA key to {} (keep it offline: it can sign any node or client)",
        args.key_out.display()
    );
    Ok(())
}

/// Runs `gen-cert`: issues a node or client certificate signed by the CA.
pub(crate) fn run_gen_cert(args: GenCertArgs) -> anyhow::Result<()> {
    check_outputs(&args.out, &args.key_out, args.force)?;
    let ca_pem = read_text(&args.ca, "CA certificate")?;
    let ca_key_pem = Zeroizing::new(read_text(&args.ca_key, "CA key")?);
    // Only an encrypted key needs a passphrase; never prompt for one that is unused.
    let passphrase = if ca_key_pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        Some(cert_passphrase(&args)?.with_context(|| {
            format!(
                "{} is encrypted: give its passphrase with --ask-passphrase, \
                 --ca-passphrase-file FILE, --ca-passphrase PASS or {PASSPHRASE_ENV}",
                args.ca_key.display()
            )
        })?)
    } else {
        None
    };
    let role = Role::from(args.role);
    let spec = CertSpec {
        cn: args.cn.clone(),
        dns: args.san_dns,
        ips: args.san_ip,
        days: args.days,
        role,
        not_before: None,
        not_after: None,
    };
    let cert = vergent_tls::generate_cert(
        &ca_pem,
        &ca_key_pem,
        passphrase.as_ref().map(|p| p.as_slice()),
        &spec,
    )
    .with_context(|| {
        format!(
            "cannot issue a certificate with CA key {}",
            args.ca_key.display()
        )
    })?;
    vergent_tls::write_private(&args.key_out, cert.key_pem.as_bytes())?;
    vergent_tls::write_public(&args.out, cert.cert_pem.as_bytes())?;
    println!(
        "Wrote {role} certificate for CN={} to {}",
        args.cn,
        args.out.display()
    );
    println!(
        "Wrote private key to {} (mode 0600)",
        args.key_out.display()
    );
    Ok(())
}

/// Runs `inspect-cert`: prints a certificate's details.
pub(crate) fn run_inspect_cert(args: InspectCertArgs) -> anyhow::Result<()> {
    let data = std::fs::read(&args.cert)
        .with_context(|| format!("cannot read {}", args.cert.display()))?;
    let info = vergent_tls::inspect(&data)
        .with_context(|| format!("cannot parse certificate {}", args.cert.display()))?;
    println!("{info}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    println!(
        "{}",
        validity_left(info.not_before_unix, info.not_after_unix, now)
    );
    if let Some(ca) = &args.ca {
        let ca_pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        match vergent_tls::check_chain(&data, &ca_pem) {
            Ok(issuer) => println!("Chain: OK (issued by {issuer} in {})", ca.display()),
            Err(e) => {
                println!("Chain: FAILED");
                bail!(
                    "{} was not issued by the CA in {}: {e}",
                    args.cert.display(),
                    ca.display()
                );
            }
        }
    }
    Ok(())
}

/// `Days Left: N`, or how long ago it expired, or when it starts.
fn validity_left(not_before: i64, not_after: i64, now: i64) -> String {
    const DAY: i64 = 86_400;
    if now < not_before {
        format!(
            "Days Left: not valid yet (starts in {} days)",
            (not_before - now).div_euclid(DAY)
        )
    } else if now >= not_after {
        format!(
            "Days Left: EXPIRED {} days ago",
            (now - not_after).div_euclid(DAY)
        )
    } else {
        format!("Days Left: {}", (not_after - now).div_euclid(DAY))
    }
}

/// Refuses to clobber existing files (keys especially) unless `--force`.
fn check_outputs(cert: &Path, key: &Path, force: bool) -> anyhow::Result<()> {
    if cert == key {
        bail!(
            "--out and --key-out must be different files (both are {})",
            cert.display()
        );
    }
    if force {
        return Ok(());
    }
    for path in [cert, key] {
        // symlink_metadata also catches dangling symlinks, which writing would follow.
        if std::fs::symlink_metadata(path).is_ok() {
            bail!(
                "{} already exists; pass --force to overwrite it",
                path.display()
            );
        }
    }
    Ok(())
}

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

type Secret = Zeroizing<Vec<u8>>;

/// `gen-root` needs exactly one source: an explicit flag, else `VERGENT_CA_PASSPHRASE`.
fn root_passphrase(args: &GenRootArgs) -> anyhow::Result<Secret> {
    // clap already rejects combinations of the explicit flags.
    let secret = if args.ask_passphrase {
        prompt_new_passphrase()?
    } else if let Some(path) = &args.passphrase_file {
        passphrase_from_file(path)?
    } else if let Some(var) = &args.passphrase_env {
        passphrase_from_env(var)?
            .with_context(|| format!("environment variable {var} is not set"))?
    } else if let Some(secret) = passphrase_from_env(PASSPHRASE_ENV)? {
        secret
    } else {
        bail!(
            "the CA key needs a passphrase: use --ask-passphrase, --passphrase-file FILE, \
             --passphrase-env VAR, or set {PASSPHRASE_ENV}"
        );
    };
    Ok(secret)
}

/// `gen-cert` passphrase from its one explicit source, else `VERGENT_CA_PASSPHRASE`, else none.
fn cert_passphrase(args: &GenCertArgs) -> anyhow::Result<Option<Secret>> {
    if let Some(pass) = &args.ca_passphrase {
        if pass.is_empty() {
            bail!("--ca-passphrase must not be empty");
        }
        return Ok(Some(Zeroizing::new(pass.as_bytes().to_vec())));
    }
    if let Some(path) = &args.ca_passphrase_file {
        return passphrase_from_file(path).map(Some);
    }
    if args.ask_passphrase {
        let pass = Zeroizing::new(
            rpassword::prompt_password("CA key passphrase: ")
                .context("cannot read the passphrase from the terminal")?,
        );
        if pass.is_empty() {
            bail!("the passphrase must not be empty");
        }
        return Ok(Some(Zeroizing::new(pass.as_bytes().to_vec())));
    }
    passphrase_from_env(PASSPHRASE_ENV)
}

fn prompt_new_passphrase() -> anyhow::Result<Secret> {
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .context("cannot read the passphrase from the terminal")
    };
    let first = read("New CA key passphrase: ")?;
    if first.is_empty() {
        bail!("the passphrase must not be empty");
    }
    let second = read("Repeat the passphrase: ")?;
    if *first != *second {
        bail!("the passphrases do not match");
    }
    Ok(Zeroizing::new(first.as_bytes().to_vec()))
}

fn passphrase_from_file(path: &Path) -> anyhow::Result<Secret> {
    let mut data = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read passphrase file {}", path.display()))?,
    );
    // `echo pass > file` adds a newline that is not part of the passphrase.
    if data.ends_with(b"\n") {
        data.pop();
        if data.ends_with(b"\r") {
            data.pop();
        }
    }
    if data.is_empty() {
        bail!("passphrase file {} is empty", path.display());
    }
    Ok(data)
}

/// `Ok(None)` when the variable is unset.
fn passphrase_from_env(var: &str) -> anyhow::Result<Option<Secret>> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(None);
    };
    let value = Zeroizing::new(
        value
            .into_string()
            .map_err(|_| anyhow::anyhow!("environment variable {var} is not valid UTF-8"))?,
    );
    if value.is_empty() {
        bail!("environment variable {var} is set but empty");
    }
    Ok(Some(Zeroizing::new(value.as_bytes().to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_say_valid_expired_or_not_yet() {
        let day = 86_400;
        assert_eq!(validity_left(0, 30 * day, 10 * day + 5), "Days Left: 19");
        assert_eq!(
            validity_left(0, 30 * day, 32 * day),
            "Days Left: EXPIRED 2 days ago"
        );
        assert_eq!(
            validity_left(5 * day, 30 * day, day),
            "Days Left: not valid yet (starts in 4 days)"
        );
    }
}
