//! Vergent's TLS layer: every byte on the wire is mutual TLS 1.3.
//!
//! This crate owns the rustls client and server configurations (TLS 1.3 only,
//! client certificates required, peers verified against the cluster CA only,
//! ring as the sole crypto provider), certificate generation for the CA, nodes
//! and clients (rcgen, ECDSA P-256, passphrase-encrypted PKCS#8 CA keys),
//! certificate inspection, and PEM loading with errors that name the file.
//!
//! It is deliberately synchronous and transport-agnostic: it must not depend
//! on tokio, tonic, quinn, rocksdb or any async runtime, so that the daemon,
//! the CLI and tests can all share it.

mod config;
mod error;
mod generate;
mod identity;
mod inspect;
mod pem;
mod role;

pub(crate) use config::provider;
pub use config::{PeerInfo, client_config, install_default_provider, peer_info, server_config};
pub use error::Error;
pub use generate::{
    CertSpec, GeneratedCert, GeneratedRoot, RootSpec, generate_cert, generate_root,
    generate_root_unencrypted, write_private, write_public,
};
pub use identity::{Identity, TlsFiles};
pub use inspect::{CertInfo, San, check_chain, inspect};
pub use role::Role;
/// Re-exported because generated keys are handed out as `Zeroizing<String>`.
pub use zeroize::Zeroizing;
