//! A node's or client's TLS identity: certificate chain, private key and CA roots.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;

use crate::{Error, Role, inspect, pem, provider};

/// Paths of the PEM files that make up an [`Identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Unencrypted PKCS#8 private key (mode 0600).
    pub key: PathBuf,
    /// CA certificate(s) that peers must chain to.
    pub ca: PathBuf,
}

/// Loaded identity: certificate chain, private key, CA roots.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Vec<CertificateDer<'static>>,
    role: Role,
    cn: Option<String>,
}

impl Identity {
    /// Loads and cross-checks the certificate, key and CA files.
    ///
    /// Fails with an error naming the file when one is missing, not PEM,
    /// lacks the expected block, holds an encrypted key, has a key readable
    /// by group/other (unix), or when the key and certificate do not match
    /// or the certificate was not issued by the CA.
    pub fn load(files: &TlsFiles) -> Result<Self, Error> {
        let cert_pem = pem::read(&files.cert)?;
        check_key_permissions(&files.key)?;
        let key_pem = pem::read_secret(&files.key)?;
        let ca_pem = pem::read(&files.ca)?;
        Self::build(&cert_pem, &key_pem, &ca_pem, files)
    }

    /// Builds an identity from in-memory PEM, with the same checks as [`Identity::load`]
    /// except file permissions.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], ca_pem: &[u8]) -> Result<Self, Error> {
        let names = TlsFiles {
            cert: pem::memory("certificate"),
            key: pem::memory("private key"),
            ca: pem::memory("CA certificate"),
        };
        Self::build(cert_pem, key_pem, ca_pem, &names)
    }

    fn build(
        cert_pem: &[u8],
        key_pem: &[u8],
        ca_pem: &[u8],
        names: &TlsFiles,
    ) -> Result<Self, Error> {
        let chain = pem::certificates(cert_pem, &names.cert)?;
        let key = pem::private_key(key_pem, &names.key)?;
        let roots = pem::certificates(ca_pem, &names.ca)?;

        let context = names.cert.display().to_string();
        let leaf_der = chain.first().ok_or_else(|| Error::NoCertificate {
            path: names.cert.clone(),
        })?;
        let leaf = inspect::parse_der(leaf_der, &context)?;
        let role = Role::from_x509(&leaf);
        let cn = inspect::common_name(&leaf);
        warn_if_not_currently_valid(&leaf, &names.cert);

        check_key_matches(&chain, &key, names)?;
        check_issued_by_ca(&chain, &roots, names)?;

        Ok(Self {
            chain,
            key,
            roots,
            role,
            cn,
        })
    }

    /// Common name of the leaf certificate's subject, if it has one.
    pub fn subject_cn(&self) -> Option<String> {
        self.cn.clone()
    }

    /// Role granted by the leaf certificate's extended key usage.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key matching the leaf certificate.
    pub fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The CA certificates peers are verified against.
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
            role: self.role,
            cn: self.cn.clone(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is deliberately left out so identities can be logged.
        f.debug_struct("Identity")
            .field("cn", &self.cn)
            .field("role", &self.role)
            .field("chain_len", &self.chain.len())
            .field("roots_len", &self.roots.len())
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
fn check_key_permissions(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;

    let meta = std::fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_permissions(_path: &Path) -> Result<(), Error> {
    Ok(())
}

fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    names: &TlsFiles,
) -> Result<(), Error> {
    match CertifiedKey::from_der(chain.to_vec(), key.clone_key(), &provider()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(Error::KeyMismatch {
            cert: names.cert.clone(),
            key: names.key.clone(),
        }),
        Err(e) => Err(Error::Rustls(e)),
    }
}

/// Catches the common "wrong ca.pem" deployment mistake at startup, where
/// otherwise it would only surface as opaque handshake failures.
fn check_issued_by_ca(
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
    names: &TlsFiles,
) -> Result<(), Error> {
    let Some(top_der) = chain.last() else {
        return Ok(());
    };
    if roots.iter().any(|r| r.as_ref() == top_der.as_ref()) {
        return Ok(());
    }
    let top = inspect::parse_der(top_der, &names.cert.display().to_string())?;
    let ca_context = names.ca.display().to_string();
    for root_der in roots {
        let root = inspect::parse_der(root_der, &ca_context)?;
        if root.subject().as_raw() == top.issuer().as_raw()
            && top.verify_signature(Some(root.public_key())).is_ok()
        {
            return Ok(());
        }
    }
    Err(Error::NotIssuedByCa {
        cert: names.cert.clone(),
        ca: names.ca.clone(),
    })
}

fn warn_if_not_currently_valid(leaf: &X509Certificate<'_>, path: &Path) {
    if !leaf.validity().is_valid() {
        tracing::warn!(
            cert = %path.display(),
            not_before = %inspect::format_time(&leaf.validity().not_before),
            not_after = %inspect::format_time(&leaf.validity().not_after),
            "certificate is not currently valid; peers will reject it"
        );
    }
}
