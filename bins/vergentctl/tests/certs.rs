//! The certificate subcommands of the real `vergentctl` binary, checked with
//! the `openssl` command-line tool as an independent verifier.

use std::path::Path;
use std::process::{Command, Output};

fn ctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vergentctl"))
        .args(args)
        .current_dir(dir)
        .env("VERGENT_CA_PASSPHRASE", "s3cret pass")
        .output()
        .expect("run vergentctl")
}

fn openssl(dir: &Path, args: &[&str]) -> Option<Output> {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("openssl not installed; skipping the openssl cross-check");
            None
        }
        Err(e) => panic!("run openssl: {e}"),
    }
}

fn ok(o: &Output) -> bool {
    if !o.status.success() {
        eprintln!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    o.status.success()
}

#[test]
fn readme_certificate_flow_produces_certs_openssl_verifies_and_inspect_cert_shows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    assert!(ok(&ctl(
        dir,
        &["gen-root", "--out", "ca.pem", "--key-out", "ca.key"]
    )));
    assert!(ok(&ctl(
        dir,
        &[
            "gen-cert",
            "--ca",
            "ca.pem",
            "--ca-key",
            "ca.key",
            "--ca-passphrase",
            "s3cret pass",
            "--out",
            "node-1.crt",
            "--key-out",
            "node-1.key",
            "--cn",
            "node-1",
            "--san-dns",
            "node-1",
            "--san-dns",
            "localhost",
            "--san-ip",
            "127.0.0.1",
        ],
    )));
    let inspect = ctl(dir, &["inspect-cert", "--cert", "node-1.crt"]);
    assert!(ok(&inspect));
    let text = String::from_utf8_lossy(&inspect.stdout);
    for want in [
        "Certificate Information",
        "Subject: CN=node-1",
        "Issuer:  CN=Vergent Root CA",
        "Is CA: False",
        "  - <DNSName(value='node-1')>",
        "  - <DNSName(value='localhost')>",
        "  - <IPAddress(value=127.0.0.1)>",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(text.contains("Key Type: ECDSA P-256"), "{text}");
    assert!(
        text.contains("Days Left: 36"),
        "one year less a day or so: {text}"
    );
    let ca_text = String::from_utf8_lossy(&ctl(dir, &["inspect-cert", "--cert", "ca.pem"]).stdout)
        .into_owned();
    assert!(ca_text.contains("Is CA: True"), "{ca_text}");
    let chained = ctl(
        dir,
        &["inspect-cert", "--cert", "node-1.crt", "--ca", "ca.pem"],
    );
    assert!(ok(&chained));
    assert!(
        String::from_utf8_lossy(&chained.stdout)
            .contains("Chain: OK (issued by CN=Vergent Root CA"),
        "{}",
        String::from_utf8_lossy(&chained.stdout)
    );
    // Another CA did not issue it: exit 1 with the reason.
    assert!(ok(&ctl(
        dir,
        &["gen-root", "--out", "other.pem", "--key-out", "other.key"]
    )));
    let foreign = ctl(
        dir,
        &["inspect-cert", "--cert", "node-1.crt", "--ca", "other.pem"],
    );
    assert_eq!(foreign.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&foreign.stdout).contains("Chain: FAILED"));
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("was not issued by the CA in other.pem"),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );

    let key_mode = std::fs::metadata(dir.join("node-1.key"))
        .expect("key")
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key_mode.mode() & 0o777, 0o600);

    let Some(verify) = openssl(dir, &["verify", "-CAfile", "ca.pem", "node-1.crt"]) else {
        return;
    };
    // The fingerprint is the one openssl computes.
    let fp = openssl(
        dir,
        &[
            "x509",
            "-in",
            "node-1.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    )
    .expect("openssl present");
    let fp = String::from_utf8_lossy(&fp.stdout);
    let fp = fp.trim().rsplit('=').next().expect("a fingerprint");
    assert!(
        text.contains(&format!("SHA-256 Fingerprint: {fp}")),
        "{fp} not in:\n{text}"
    );
    assert!(ok(&verify));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("node-1.crt: OK"));
    let decrypt = openssl(
        dir,
        &[
            "pkey",
            "-in",
            "ca.key",
            "-passin",
            "pass:s3cret pass",
            "-noout",
        ],
    )
    .expect("openssl present");
    assert!(ok(&decrypt), "openssl could not decrypt the CA key");
    let wrong = openssl(
        dir,
        &["pkey", "-in", "ca.key", "-passin", "pass:wrong", "-noout"],
    )
    .expect("openssl present");
    assert!(
        !wrong.status.success(),
        "a wrong passphrase must not decrypt the CA key"
    );
}

#[test]
fn gen_cert_with_a_wrong_passphrase_fails_clearly_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    assert!(ok(&ctl(
        dir,
        &["gen-root", "--out", "ca.pem", "--key-out", "ca.key"]
    )));
    let out = ctl(
        dir,
        &[
            "gen-cert",
            "--ca",
            "ca.pem",
            "--ca-key",
            "ca.key",
            "--ca-passphrase",
            "nope",
            "--out",
            "n.crt",
            "--key-out",
            "n.key",
            "--cn",
            "n",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("passphrase"), "{err}");
    assert!(!dir.join("n.crt").exists() && !dir.join("n.key").exists());
}

#[test]
fn existing_files_are_not_overwritten_without_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    assert!(ok(&ctl(
        dir,
        &["gen-root", "--out", "ca.pem", "--key-out", "ca.key"]
    )));
    let before = std::fs::read(dir.join("ca.pem")).expect("ca");
    let again = ctl(dir, &["gen-root", "--out", "ca.pem", "--key-out", "ca.key"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(std::fs::read(dir.join("ca.pem")).expect("ca"), before);
    assert!(ok(&ctl(
        dir,
        &[
            "gen-root",
            "--out",
            "ca.pem",
            "--key-out",
            "ca.key",
            "--force"
        ]
    )));
    assert_ne!(std::fs::read(dir.join("ca.pem")).expect("ca"), before);
}
