//! Certificate generation, cross-checked against the `openssl` binary, and inspection.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{describe, issue, node_spec, openssl, test_ca};
use vergent_tls::{
    CertSpec, Error, Role, RootSpec, San, generate_cert, generate_root, inspect, peer_info,
    write_private, write_public,
};

const PASS: &[u8] = b"correct horse battery staple";

#[test]
fn encrypted_root_signs_node_and_client_certs_that_openssl_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = generate_root(&RootSpec::default(), PASS).expect("root");
    assert!(
        root.key_pem
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );

    let node =
        generate_cert(&root.cert_pem, &root.key_pem, Some(PASS), &node_spec()).expect("node");
    let client = generate_cert(
        &root.cert_pem,
        &root.key_pem,
        Some(PASS),
        &CertSpec::new("alice", Role::Client),
    )
    .expect("client");
    assert!(node.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    write_public(&dir.path().join("ca.pem"), root.cert_pem.as_bytes()).expect("write ca");
    write_public(&dir.path().join("node.crt"), node.cert_pem.as_bytes()).expect("write node");
    write_public(&dir.path().join("client.crt"), client.cert_pem.as_bytes()).expect("write client");

    let checks: [(&[&str], bool); 5] = [
        (&["verify", "-CAfile", "ca.pem", "node.crt"], true),
        (&["verify", "-CAfile", "ca.pem", "client.crt"], true),
        (
            &[
                "verify",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "sslserver",
                "node.crt",
            ],
            true,
        ),
        (
            &[
                "verify",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "sslclient",
                "client.crt",
            ],
            true,
        ),
        // A client certificate must not be usable as a server certificate.
        (
            &[
                "verify",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "sslserver",
                "client.crt",
            ],
            false,
        ),
    ];
    for (args, should_pass) in checks {
        let Some(out) = openssl(args, dir.path()) else {
            return;
        };
        assert_eq!(
            out.status.success(),
            should_pass,
            "openssl {args:?}: {}",
            describe(&out)
        );
        if should_pass {
            assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
        }
    }
}

#[test]
fn openssl_decrypts_encrypted_ca_key_only_with_the_right_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = generate_root(&RootSpec::default(), PASS).expect("root");
    write_private(&dir.path().join("ca.key"), root.key_pem.as_bytes()).expect("write key");
    let right = format!("pass:{}", String::from_utf8_lossy(PASS));

    let Some(out) = openssl(
        &[
            "pkey", "-in", "ca.key", "-passin", &right, "-noout", "-text",
        ],
        dir.path(),
    ) else {
        return;
    };
    assert!(out.status.success(), "right passphrase: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("prime256v1"));

    let Some(out) = openssl(
        &["pkey", "-in", "ca.key", "-passin", "pass:wrong", "-noout"],
        dir.path(),
    ) else {
        return;
    };
    assert!(
        !out.status.success(),
        "wrong passphrase accepted: {}",
        describe(&out)
    );
}

#[test]
fn generate_cert_reports_wrong_missing_or_empty_passphrase() {
    let root = generate_root(&RootSpec::default(), PASS).expect("root");
    let spec = node_spec();
    assert!(matches!(
        generate_cert(&root.cert_pem, &root.key_pem, Some(b"wrong"), &spec),
        Err(Error::WrongPassphrase)
    ));
    assert!(matches!(
        generate_cert(&root.cert_pem, &root.key_pem, None, &spec),
        Err(Error::PassphraseRequired)
    ));
    assert!(matches!(
        generate_cert(&root.cert_pem, &root.key_pem, Some(b""), &spec),
        Err(Error::EmptyPassphrase)
    ));
    let msg = Error::WrongPassphrase.to_string();
    assert!(msg.contains("wrong passphrase"), "{msg}");
}

#[test]
fn generate_root_requires_a_passphrase() {
    assert!(matches!(
        generate_root(&RootSpec::default(), b""),
        Err(Error::EmptyPassphrase)
    ));
}

#[test]
fn ca_key_encrypted_by_openssl_pbkdf2_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("Vergent Root CA");
    write_private(&dir.path().join("plain.key"), ca.key_pem.as_bytes()).expect("write key");
    let Some(out) = openssl(
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "plain.key",
            "-out",
            "enc.key",
            "-passout",
            "pass:s3cret",
        ],
        dir.path(),
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", describe(&out));
    let enc = std::fs::read_to_string(dir.path().join("enc.key")).expect("read enc.key");
    let cert = generate_cert(&ca.cert_pem, &enc, Some(b"s3cret"), &node_spec()).expect("sign");
    assert_eq!(
        inspect(cert.cert_pem.as_bytes()).expect("inspect").issuer,
        "CN=Vergent Root CA"
    );
}

#[test]
fn ca_key_that_does_not_match_ca_cert_is_rejected() {
    let ca = test_ca("Vergent Root CA");
    let other = test_ca("Vergent Root CA");
    assert!(matches!(
        generate_cert(&ca.cert_pem, &other.key_pem, None, &node_spec()),
        Err(Error::CaKeyMismatch)
    ));
}

#[test]
fn leaf_certificate_cannot_act_as_ca() {
    let ca = test_ca("Vergent Root CA");
    let leaf = issue(&ca, &node_spec());
    assert!(matches!(
        generate_cert(&leaf.cert_pem, &leaf.key_pem, None, &node_spec()),
        Err(Error::NotACa { .. })
    ));
}

#[test]
fn inspect_shows_node_cn_sans_ekus_and_not_ca() {
    let ca = test_ca("Vergent Root CA");
    let node = issue(&ca, &node_spec());
    let info = inspect(node.cert_pem.as_bytes()).expect("inspect");

    assert_eq!(info.subject, "CN=node-1");
    assert_eq!(info.issuer, "CN=Vergent Root CA");
    assert_eq!(info.subject_cn.as_deref(), Some("node-1"));
    assert!(!info.is_ca);
    assert_eq!(info.role, Role::Node);
    assert_eq!(
        info.sans,
        [
            San::Dns("node-1".into()),
            San::Dns("localhost".into()),
            San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ]
    );
    assert_eq!(info.key_usage, ["Digital Signature"]);
    assert_eq!(
        info.extended_key_usage,
        [
            "TLS Web Server Authentication",
            "TLS Web Client Authentication"
        ]
    );
    let days = (info.not_after_unix - info.not_before_unix) / 86_400;
    assert_eq!(days, 365, "365 days plus the 5 minute backdate");
}

#[test]
fn inspect_shows_client_eku_only_and_ca_flags() {
    let ca = test_ca("Vergent Root CA");
    let client = issue(&ca, &CertSpec::new("alice", Role::Client));
    let info = inspect(client.cert_pem.as_bytes()).expect("inspect client");
    assert_eq!(info.role, Role::Client);
    assert_eq!(info.extended_key_usage, ["TLS Web Client Authentication"]);
    assert!(info.sans.is_empty(), "client CN is not added as a SAN");

    let ca_info = inspect(ca.cert_pem.as_bytes()).expect("inspect CA");
    assert!(ca_info.is_ca);
    assert_eq!(ca_info.subject, ca_info.issuer);
    assert_eq!(
        ca_info.key_usage,
        ["Digital Signature", "Certificate Sign", "CRL Sign"]
    );
}

#[test]
fn inspect_display_matches_readme_layout() {
    let ca = test_ca("Vergent Root CA");
    let node = issue(&ca, &node_spec());
    let info = inspect(node.cert_pem.as_bytes()).expect("inspect");
    let expected = format!(
        "Certificate Information\n\
         -----------------------\n\
         Subject: CN=node-1\n\
         Issuer:  CN=Vergent Root CA\n\
         Serial:  {}\n\
         Valid From: {}\n\
         Valid To:   {}\n\
         Is CA: False\n\
         Subject Alternative Names:\n  \
         - <DNSName(value='node-1')>\n  \
         - <DNSName(value='localhost')>\n  \
         - <IPAddress(value=127.0.0.1)>\n\
         Key Usage: Digital Signature\n\
         Extended Key Usage: TLS Web Server Authentication, TLS Web Client Authentication\n\
         Key Type: ECDSA P-256\n\
         SHA-256 Fingerprint: {}",
        info.serial, info.not_before, info.not_after, info.fingerprint_sha256
    );
    assert_eq!(info.to_string(), expected);
    assert!(info.serial.chars().all(|c| c.is_ascii_digit()));
    assert!(info.not_before.ends_with("+00:00") && info.not_before.len() == 25);
    // 32 bytes as uppercase hex pairs.
    assert_eq!(info.fingerprint_sha256.len(), 32 * 3 - 1);
}

#[test]
fn inspect_accepts_der_and_serial_agrees_with_openssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("Vergent Root CA");
    let node = issue(&ca, &node_spec());
    write_public(&dir.path().join("node.crt"), node.cert_pem.as_bytes()).expect("write");
    let pem_info = inspect(node.cert_pem.as_bytes()).expect("inspect pem");

    let Some(out) = openssl(
        &[
            "x509", "-in", "node.crt", "-outform", "DER", "-out", "node.der",
        ],
        dir.path(),
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", describe(&out));
    let der = std::fs::read(dir.path().join("node.der")).expect("read der");
    assert_eq!(inspect(&der).expect("inspect der"), pem_info);

    let Some(out) = openssl(
        &["x509", "-in", "node.crt", "-noout", "-serial"],
        dir.path(),
    ) else {
        return;
    };
    let serial = String::from_utf8_lossy(&out.stdout)
        .trim()
        .to_ascii_lowercase();
    assert_eq!(serial, format!("serial={}", pem_info.serial_hex));
    assert_eq!(
        peer_info(&der).expect("peer info").serial_hex,
        pem_info.serial_hex
    );
}

#[test]
fn every_certificate_gets_a_fresh_random_serial() {
    let ca = test_ca("Vergent Root CA");
    let a = inspect(issue(&ca, &node_spec()).cert_pem.as_bytes()).expect("a");
    let b = inspect(issue(&ca, &node_spec()).cert_pem.as_bytes()).expect("b");
    assert_ne!(a.serial, b.serial);
    assert_eq!(a.serial_hex.len(), 40, "20-byte serial");
}

#[test]
fn root_spec_defaults_match_the_cli_defaults() {
    let spec = RootSpec::default();
    assert_eq!(spec.cn, "Vergent Root CA");
    assert_eq!(spec.days, 3650);
}
