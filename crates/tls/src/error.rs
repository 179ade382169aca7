//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong loading, generating or inspecting TLS material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read (missing, unreadable, ...).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A file that should hold PEM data does not, or its PEM is malformed.
    #[error("{} is not a valid PEM file: {reason}", path.display())]
    NotPem {
        /// The offending file (or a description of in-memory input).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A PEM file holds no `CERTIFICATE` block.
    #[error("{} contains no PEM certificate (expected a \"BEGIN CERTIFICATE\" block)", path.display())]
    NoCertificate {
        /// The offending file.
        path: PathBuf,
    },

    /// A PEM file holds no private key block.
    #[error("{} contains no PEM private key (expected a \"BEGIN PRIVATE KEY\" block)", path.display())]
    NoPrivateKey {
        /// The offending file.
        path: PathBuf,
    },

    /// A node or client key is passphrase-protected, which a daemon cannot unlock unattended.
    #[error(
        "{} is an encrypted private key; node and client keys must be unencrypted PKCS#8 \
         (\"BEGIN PRIVATE KEY\"), only the CA key may be encrypted",
        path.display()
    )]
    EncryptedKey {
        /// The offending file.
        path: PathBuf,
    },

    /// A private key file is readable by group or other users.
    #[error(
        "private key {} has permissions {mode:04o}, which allow group/other access; \
         run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyPermissions {
        /// The offending file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },

    /// The private key does not belong to the certificate.
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    /// The certificate was not issued by any CA in the CA bundle.
    #[error("certificate {} was not issued by the CA in {}", cert.display(), ca.display())]
    NotIssuedByCa {
        /// The certificate file.
        cert: PathBuf,
        /// The CA bundle file.
        ca: PathBuf,
    },

    /// A certificate could not be parsed as X.509.
    #[error("invalid X.509 certificate ({context}): {reason}")]
    InvalidCertificate {
        /// Where the certificate came from.
        context: String,
        /// What the parser reported.
        reason: String,
    },

    /// The supplied CA certificate is not a CA (missing `basicConstraints CA:TRUE`).
    #[error("the CA certificate (subject {subject}) is not a CA certificate")]
    NotACa {
        /// Subject of the certificate that was given as CA.
        subject: String,
    },

    /// The CA private key does not match the CA certificate.
    #[error("the CA private key does not match the CA certificate")]
    CaKeyMismatch,

    /// The CA private key could not be parsed.
    #[error("invalid CA private key: {0}")]
    InvalidCaKey(String),

    /// An empty passphrase was given where one is mandatory.
    #[error("the CA key passphrase must not be empty")]
    EmptyPassphrase,

    /// The CA key is encrypted but no passphrase was supplied.
    #[error("the CA private key is encrypted; a passphrase is required")]
    PassphraseRequired,

    /// The passphrase did not decrypt the CA key.
    #[error("wrong passphrase: the CA private key could not be decrypted")]
    WrongPassphrase,

    /// Encrypting a private key failed.
    #[error("cannot encrypt private key: {0}")]
    KeyEncryption(String),

    /// A certificate or root specification is invalid.
    #[error("invalid certificate specification: {0}")]
    InvalidSpec(String),

    /// A role name other than `node` or `client` was given.
    #[error("unknown role {0:?}; expected \"node\" or \"client\"")]
    UnknownRole(String),

    /// Certificate generation failed inside rcgen.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),

    /// rustls rejected the configuration.
    #[error("TLS configuration error: {0}")]
    Rustls(#[from] rustls::Error),

    /// The client-certificate verifier could not be built.
    #[error("cannot build client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}
