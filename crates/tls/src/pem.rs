//! PEM reading with errors that name the offending file.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::Error;

/// PEM label of a PKCS#8 `EncryptedPrivateKeyInfo`.
pub(crate) const ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED PRIVATE KEY";
/// PEM label of an unencrypted PKCS#8 `PrivateKeyInfo`.
pub(crate) const PLAIN_KEY_LABEL: &str = "PRIVATE KEY";

/// Reads a whole file, mapping failure to [`Error::Read`].
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a file holding secrets; the buffer is wiped when dropped.
pub(crate) fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    read(path).map(Zeroizing::new)
}

fn has_pem_block(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

fn not_pem(path: &Path, err: &pem::Error) -> Error {
    Error::NotPem {
        path: path.to_owned(),
        reason: err.to_string(),
    }
}

/// Parses every `CERTIFICATE` block; at least one is required.
pub(crate) fn certificates(
    data: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    if !has_pem_block(data) {
        return Err(Error::NotPem {
            path: path.to_owned(),
            reason: "no \"-----BEGIN\" line found".to_owned(),
        });
    }
    let certs = CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(path, &e))?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// True when the PEM holds a passphrase-protected key, PKCS#8 or legacy OpenSSL style.
pub(crate) fn is_encrypted_key(data: &[u8]) -> bool {
    let begin = format!("-----BEGIN {ENCRYPTED_KEY_LABEL}-----");
    contains(data, begin.as_bytes()) || contains(data, b"Proc-Type: 4,ENCRYPTED")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Parses the first unencrypted private key (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn private_key(data: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    if !has_pem_block(data) {
        return Err(Error::NotPem {
            path: path.to_owned(),
            reason: "no \"-----BEGIN\" line found".to_owned(),
        });
    }
    if is_encrypted_key(data) {
        return Err(Error::EncryptedKey {
            path: path.to_owned(),
        });
    }
    match PrivateKeyDer::from_pem_slice(data) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(Error::NoPrivateKey {
            path: path.to_owned(),
        }),
        Err(e) => Err(not_pem(path, &e)),
    }
}

/// Returns the text of the first `label` PEM block, markers included.
///
/// The PKCS#8 decoder is strict and rejects surrounding text (comments,
/// other blocks) that OpenSSL tolerates, so the block is cut out first.
pub(crate) fn block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = start + text[start..].find(&end)? + end.len();
    text.get(start..stop)
}

/// Names in-memory input in error messages, where there is no file path.
pub(crate) fn memory(what: &str) -> PathBuf {
    PathBuf::from(format!("<{what}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_extracts_only_the_requested_label() {
        let text = "junk\n-----BEGIN A-----\nxx\n-----END A-----\n-----BEGIN B-----\nyy\n-----END B-----\n";
        assert_eq!(
            block(text, "B"),
            Some("-----BEGIN B-----\nyy\n-----END B-----")
        );
        assert_eq!(block(text, "C"), None);
    }

    #[test]
    fn non_pem_input_is_reported_as_not_pem() {
        let path = Path::new("x.pem");
        assert!(matches!(
            certificates(b"hello", path),
            Err(Error::NotPem { .. })
        ));
        assert!(matches!(
            private_key(b"hello", path),
            Err(Error::NotPem { .. })
        ));
    }

    #[test]
    fn pem_without_the_wanted_block_is_reported_precisely() {
        let path = Path::new("x.pem");
        let other = b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n";
        assert!(matches!(
            certificates(other, path),
            Err(Error::NoCertificate { .. })
        ));
        assert!(matches!(
            private_key(other, path),
            Err(Error::NoPrivateKey { .. })
        ));
    }

    #[test]
    fn encrypted_keys_are_detected_in_both_styles() {
        let path = Path::new("k.pem");
        let pkcs8 =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let legacy = b"-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            private_key(pkcs8, path),
            Err(Error::EncryptedKey { .. })
        ));
        assert!(matches!(
            private_key(legacy, path),
            Err(Error::EncryptedKey { .. })
        ));
    }
}
