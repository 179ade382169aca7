//! Full in-memory TLS handshakes between `server_config` and `client_config`:
//! what mutual TLS admits and what it refuses.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Failure, handshake, identity, issue, node_spec, test_ca};
use rustls::{CertificateError, ClientConfig, ProtocolVersion, RootCertStore};
use vergent_tls::{CertSpec, Identity, Role, client_config, peer_info, server_config};

const ALPN: &[&[u8]] = &[b"h2"];

fn client_root_store(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add root");
    }
    Arc::new(roots)
}

#[test]
fn node_certificate_completes_tls13_handshake_with_alpn_and_peer_identity() {
    let ca = test_ca("Vergent Root CA");
    let server_id = identity(&issue(&ca, &node_spec()), &ca);
    let mut spec2 = node_spec();
    spec2.cn = "node-2".to_owned();
    let client_id = identity(&issue(&ca, &spec2), &ca);

    let (c, s) = handshake(
        client_config(&client_id, ALPN).expect("client config"),
        server_config(&server_id, ALPN).expect("server config"),
        "node-1",
    )
    .expect("handshake succeeds");

    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(s.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(c.alpn_protocol(), Some(&b"h2"[..]));
    let peer = s
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("client cert");
    let info = peer_info(peer).expect("peer info");
    assert_eq!(info.cn.as_deref(), Some("node-2"));
    assert_eq!(info.role, Role::Node);
    assert!(!info.serial_hex.is_empty());
}

#[test]
fn node_certificate_is_valid_for_its_ip_and_localhost_sans() {
    let ca = test_ca("Vergent Root CA");
    let server_id = identity(&issue(&ca, &node_spec()), &ca);
    for name in ["127.0.0.1", "localhost"] {
        handshake(
            client_config(&server_id, ALPN).expect("client config"),
            server_config(&server_id, ALPN).expect("server config"),
            name,
        )
        .unwrap_or_else(|e| panic!("handshake to {name} failed: {e:?}"));
    }
}

#[test]
fn client_role_certificate_is_accepted_and_reported_as_client() {
    let ca = test_ca("Vergent Root CA");
    let server_id = identity(&issue(&ca, &node_spec()), &ca);
    let client_id = identity(&issue(&ca, &CertSpec::new("alice", Role::Client)), &ca);
    assert_eq!(client_id.role(), Role::Client);

    let (_, s) = handshake(
        client_config(&client_id, ALPN).expect("client config"),
        server_config(&server_id, ALPN).expect("server config"),
        "node-1",
    )
    .expect("handshake succeeds");

    let peer = s
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("client cert");
    let info = peer_info(peer).expect("peer info");
    assert_eq!(info.cn.as_deref(), Some("alice"));
    assert_eq!(info.role, Role::Client);
}

#[test]
fn client_certificate_from_another_ca_is_rejected_by_server() {
    let ca = test_ca("Vergent Root CA");
    let rogue_ca = test_ca("Vergent Root CA");
    let server_id = identity(&issue(&ca, &node_spec()), &ca);
    // The rogue client trusts the real CA so the only fault is its own certificate.
    let rogue_leaf = issue(&rogue_ca, &CertSpec::new("mallory", Role::Client));
    let rogue = identity(&rogue_leaf, &rogue_ca);
    let client = custom_client(&rustls::version::TLS13, &ca.cert_pem, Some(&rogue));

    let err = handshake(
        client,
        server_config(&server_id, ALPN).expect("server config"),
        "node-1",
    )
    .expect_err("handshake must fail");
    assert!(
        matches!(
            err.server(),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            ))
        ),
        "unexpected failure: {err:?}"
    );
}

/// A hand-built client config, for clients `client_config` would never produce.
fn custom_client(
    version: &'static rustls::SupportedProtocolVersion,
    ca_pem: &str,
    id: Option<&Identity>,
) -> ClientConfig {
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .expect("versions")
            .with_root_certificates(client_root_store(ca_pem));
    let mut cfg = match id {
        Some(id) => builder
            .with_client_auth_cert(id.cert_chain().to_vec(), id.private_key().clone_key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    cfg
}

#[test]
fn missing_client_certificate_is_rejected_by_server() {
    let ca = test_ca("Vergent Root CA");
    let server_id = identity(&issue(&ca, &node_spec()), &ca);
    let client = custom_client(&rustls::version::TLS13, &ca.cert_pem, None);

    let err = handshake(
        client,
        server_config(&server_id, ALPN).expect("server config"),
        "node-1",
    )
    .expect_err("handshake must fail");
    assert!(
        matches!(err.server(), Some(rustls::Error::NoCertificatesPresented)),
        "unexpected failure: {err:?}"
    );
}

#[test]
fn expired_client_certificate_is_rejected_by_server() {
    let ca = test_ca("Vergent Root CA");
    let server_id = identity(&issue(&ca, &node_spec()), &ca);
    let now = SystemTime::now();
    let mut spec = CertSpec::new("old-client", Role::Client);
    spec.not_before = Some(now - Duration::from_secs(10 * 86_400));
    spec.not_after = Some(now - Duration::from_secs(86_400));
    let expired = identity(&issue(&ca, &spec), &ca);

    let err = handshake(
        client_config(&expired, ALPN).expect("client config"),
        server_config(&server_id, ALPN).expect("server config"),
        "node-1",
    )
    .expect_err("handshake must fail");
    assert!(
        matches!(
            err.server(),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ))
        ),
        "unexpected failure: {err:?}"
    );
}

#[test]
fn tls12_only_client_is_refused() {
    let ca = test_ca("Vergent Root CA");
    let server_id = identity(&issue(&ca, &node_spec()), &ca);
    let client_id = identity(&issue(&ca, &CertSpec::new("alice", Role::Client)), &ca);
    let client = custom_client(&rustls::version::TLS12, &ca.cert_pem, Some(&client_id));

    let err = handshake(
        client,
        server_config(&server_id, ALPN).expect("server config"),
        "node-1",
    )
    .expect_err("handshake must fail");
    assert!(
        matches!(err.server(), Some(rustls::Error::PeerIncompatible(_))),
        "unexpected failure: {err:?}"
    );
}

#[test]
fn client_role_certificate_cannot_serve_as_a_node() {
    let ca = test_ca("Vergent Root CA");
    let mut spec = CertSpec::new("alice", Role::Client);
    spec.dns.push("node-1".to_owned());
    let imposter = identity(&issue(&ca, &spec), &ca);
    let client_id = identity(&issue(&ca, &node_spec()), &ca);

    let err = handshake(
        client_config(&client_id, ALPN).expect("client config"),
        server_config(&imposter, ALPN).expect("server config"),
        "node-1",
    )
    .expect_err("handshake must fail");
    assert!(
        matches!(
            err,
            Failure::Client(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            ))
        ),
        "unexpected failure: {err:?}"
    );
}

#[test]
fn server_certificate_for_another_name_is_rejected_by_client() {
    let ca = test_ca("Vergent Root CA");
    let server_id = identity(&issue(&ca, &node_spec()), &ca);

    let err = handshake(
        client_config(&server_id, ALPN).expect("client config"),
        server_config(&server_id, ALPN).expect("server config"),
        "node-9",
    )
    .expect_err("handshake must fail");
    assert!(
        matches!(
            err,
            Failure::Client(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "unexpected failure: {err:?}"
    );
}
