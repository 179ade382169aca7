//! Loading identities from disk: the happy path and every error an operator can hit.

mod common;

use std::path::Path;

use common::{issue, node_spec, test_ca};
use proptest::prelude::*;
use vergent_tls::{
    CertSpec, Error, Identity, Role, RootSpec, TlsFiles, generate_root, inspect, write_private,
    write_public,
};

struct Fixture {
    dir: tempfile::TempDir,
    files: TlsFiles,
}

/// Writes a node identity (cert 0644, key 0600, CA 0644) into a temp dir.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("Vergent Root CA");
    let node = issue(&ca, &node_spec());
    let files = TlsFiles {
        cert: dir.path().join("node.crt"),
        key: dir.path().join("node.key"),
        ca: dir.path().join("ca.pem"),
    };
    write_public(&files.cert, node.cert_pem.as_bytes()).expect("write cert");
    write_private(&files.key, node.key_pem.as_bytes()).expect("write key");
    write_public(&files.ca, ca.cert_pem.as_bytes()).expect("write ca");
    Fixture { dir, files }
}

#[test]
fn load_reads_cn_and_role_from_well_formed_files() {
    let fx = fixture();
    let id = Identity::load(&fx.files).expect("load");
    assert_eq!(id.subject_cn().as_deref(), Some("node-1"));
    assert_eq!(id.role(), Role::Node);
    assert_eq!(id.cert_chain().len(), 1);
    assert_eq!(id.ca_certs().len(), 1);
    assert!(
        !format!("{id:?}").contains("PRIVATE"),
        "Debug must not leak the key"
    );
}

#[cfg(unix)]
#[test]
fn key_readable_by_group_or_other_is_rejected_with_chmod_hint() {
    use std::os::unix::fs::PermissionsExt;

    let fx = fixture();
    std::fs::set_permissions(&fx.files.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = Identity::load(&fx.files).expect_err("0644 key must be refused");
    match &err {
        Error::KeyPermissions { path, mode } => {
            assert_eq!(path, &fx.files.key);
            assert_eq!(*mode, 0o644);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("chmod 600 {}", fx.files.key.display())),
        "{msg}"
    );

    std::fs::set_permissions(&fx.files.key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert!(matches!(
        Identity::load(&fx.files),
        Err(Error::KeyPermissions { mode: 0o640, .. })
    ));

    std::fs::set_permissions(&fx.files.key, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    assert!(Identity::load(&fx.files).is_ok(), "owner-only read is fine");
}

#[cfg(unix)]
#[test]
fn write_private_forces_0600_and_write_public_0644_even_over_existing_files() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k");
    std::fs::write(&key, b"old").expect("seed");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    write_private(&key, b"new").expect("write");
    let mode = std::fs::metadata(&key).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read(&key).expect("read"), b"new");

    let cert = dir.path().join("c");
    write_public(&cert, b"cert").expect("write");
    let mode = std::fs::metadata(&cert).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

fn assert_names(err: &Error, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "{msg} should name {}",
        path.display()
    );
}

#[test]
fn missing_file_error_names_the_file() {
    let fx = fixture();
    for which in ["cert", "key", "ca"] {
        let mut files = fx.files.clone();
        let missing = fx.dir.path().join("nope.pem");
        match which {
            "cert" => files.cert = missing.clone(),
            "key" => files.key = missing.clone(),
            _ => files.ca = missing.clone(),
        }
        let err = Identity::load(&files).expect_err("missing file");
        assert!(matches!(err, Error::Read { .. }), "{which}: {err:?}");
        assert_names(&err, &missing);
    }
}

#[test]
fn non_pem_certificate_is_reported_as_not_pem() {
    let fx = fixture();
    write_public(&fx.files.cert, b"this is not a certificate").expect("write");
    let err = Identity::load(&fx.files).expect_err("not pem");
    assert!(matches!(err, Error::NotPem { .. }), "{err:?}");
    assert_names(&err, &fx.files.cert);
}

#[test]
fn pem_without_certificate_or_key_is_reported_precisely() {
    let fx = fixture();
    let key_pem = std::fs::read(&fx.files.key).expect("read key");
    let cert_pem = std::fs::read(&fx.files.cert).expect("read cert");

    write_public(&fx.files.cert, &key_pem).expect("write");
    let err = Identity::load(&fx.files).expect_err("no cert");
    assert!(matches!(err, Error::NoCertificate { .. }), "{err:?}");
    assert_names(&err, &fx.files.cert);

    write_public(&fx.files.cert, &cert_pem).expect("restore");
    write_private(&fx.files.key, &cert_pem).expect("write");
    let err = Identity::load(&fx.files).expect_err("no key");
    assert!(matches!(err, Error::NoPrivateKey { .. }), "{err:?}");
    assert_names(&err, &fx.files.key);
}

#[test]
fn encrypted_node_key_is_rejected_with_clear_error() {
    let fx = fixture();
    let root = generate_root(&RootSpec::default(), b"pw").expect("root");
    write_private(&fx.files.key, root.key_pem.as_bytes()).expect("write");
    let err = Identity::load(&fx.files).expect_err("encrypted key");
    assert!(matches!(err, Error::EncryptedKey { .. }), "{err:?}");
    assert_names(&err, &fx.files.key);
    assert!(err.to_string().contains("encrypted"));
}

#[test]
fn key_belonging_to_another_certificate_is_rejected() {
    let fx = fixture();
    let ca = test_ca("Vergent Root CA");
    let other = issue(&ca, &CertSpec::new("other", Role::Client));
    write_private(&fx.files.key, other.key_pem.as_bytes()).expect("write");
    let err = Identity::load(&fx.files).expect_err("mismatch");
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn certificate_from_a_different_ca_than_ca_file_is_rejected() {
    let fx = fixture();
    let other_ca = test_ca("Vergent Root CA");
    write_public(&fx.files.ca, other_ca.cert_pem.as_bytes()).expect("write");
    let err = Identity::load(&fx.files).expect_err("wrong CA");
    assert!(matches!(err, Error::NotIssuedByCa { .. }), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic_inspect_or_identity(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = inspect(&bytes);
        let _ = Identity::from_pem(&bytes, &bytes, &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn generated_certs_round_trip_cn_role_and_validity(
        cn in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        days in 1u32..4000,
        node in any::<bool>(),
    ) {
        let ca = test_ca("Vergent Root CA");
        let role = if node { Role::Node } else { Role::Client };
        let mut spec = CertSpec::new(cn.clone(), role);
        spec.days = days;
        let cert = issue(&ca, &spec);
        let info = inspect(cert.cert_pem.as_bytes()).expect("inspect");
        prop_assert_eq!(info.subject_cn.as_deref(), Some(cn.as_str()));
        prop_assert_eq!(info.role, role);
        prop_assert_eq!((info.not_after_unix - info.not_before_unix) / 86_400, i64::from(days));
        let id = Identity::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes(), ca.cert_pem.as_bytes())
            .expect("identity");
        prop_assert_eq!(id.role(), role);
    }
}
