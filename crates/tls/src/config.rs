//! rustls client and server configurations for mutual TLS 1.3.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::{Error, Identity, Role, inspect};

/// The only crypto backend in the tree; passed explicitly so nothing depends
/// on which process-level default happens to be installed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Install ring as the process-level default CryptoProvider (idempotent; ignore "already installed").
pub fn install_default_provider() {
    // Err only means a provider is already installed, which is all we want.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

fn root_store(id: &Identity) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    for ca in id.ca_certs() {
        roots.add(ca.clone())?;
    }
    Ok(Arc::new(roots))
}

fn alpn_list(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.to_vec()).collect()
}

/// rustls ServerConfig: TLS 1.3 only, client certificate required and verified against the CA, given ALPN protocols.
pub fn server_config(id: &Identity, alpn: &[&[u8]]) -> Result<ServerConfig, Error> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(root_store(id)?, provider.clone()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.cert_chain().to_vec(), id.private_key().clone_key())?;
    config.alpn_protocols = alpn_list(alpn);
    Ok(config)
}

/// rustls ClientConfig: TLS 1.3 only, presents the identity, verifies the server against the CA only (no system roots), ALPN.
pub fn client_config(id: &Identity, alpn: &[&[u8]]) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(root_store(id)?)
        .with_client_auth_cert(id.cert_chain().to_vec(), id.private_key().clone_key())?;
    config.alpn_protocols = alpn_list(alpn);
    Ok(config)
}

/// Summary of a verified peer certificate, for logs and access decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Subject common name, if present.
    pub cn: Option<String>,
    /// Role granted by the certificate's extended key usage.
    pub role: Role,
    /// Serial number as lowercase hex, no separators.
    pub serial_hex: String,
}

/// Summarises a peer's (already verified) leaf certificate in DER form.
pub fn peer_info(cert_der: &[u8]) -> Result<PeerInfo, Error> {
    let cert = inspect::parse_der(cert_der, "peer certificate")?;
    Ok(PeerInfo {
        cn: inspect::common_name(&cert),
        role: Role::from_x509(&cert),
        serial_hex: hex::encode(cert.serial.to_bytes_be()),
    })
}
