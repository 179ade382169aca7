//! Certificate authority and leaf certificate generation (ECDSA P-256).

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls_pki_types::DnsName;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::pem::{ENCRYPTED_KEY_LABEL, PLAIN_KEY_LABEL};
use crate::{Error, Role, inspect, pem};

/// Backdating of `notBefore`, so peers with slightly slow clocks accept fresh certificates.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Upper bound on validity, far beyond any sane use but safely inside the X.509 time range.
const MAX_DAYS: u32 = 100 * 366;
const SECS_PER_DAY: u64 = 24 * 60 * 60;

/// Parameters of a self-signed root CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpec {
    /// Subject common name.
    pub cn: String,
    /// Validity in days from now.
    pub days: u32,
}

impl Default for RootSpec {
    fn default() -> Self {
        Self {
            cn: "Vergent Root CA".to_owned(),
            days: 3650,
        }
    }
}

/// A freshly generated root CA whose key is passphrase-encrypted.
pub struct GeneratedRoot {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA key as `ENCRYPTED PRIVATE KEY` PEM (PKCS#8, PBES2 scrypt + AES-256-CBC).
    pub key_pem: Zeroizing<String>,
}

impl fmt::Debug for GeneratedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedRoot")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Parameters of a node or client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Subject common name; for nodes it is also added as a DNS SAN when it is a valid host name.
    pub cn: String,
    /// Extra DNS subject alternative names.
    pub dns: Vec<String>,
    /// IP subject alternative names.
    pub ips: Vec<IpAddr>,
    /// Validity in days from now (ignored when `not_after` is set).
    pub days: u32,
    /// Node (server + client auth) or client (client auth only).
    pub role: Role,
    /// Overrides the default `notBefore` of now minus five minutes.
    pub not_before: Option<SystemTime>,
    /// Overrides the default `notAfter` of now plus `days`.
    pub not_after: Option<SystemTime>,
}

impl CertSpec {
    /// A spec with no SANs and the default validity of 365 days.
    pub fn new(cn: impl Into<String>, role: Role) -> Self {
        Self {
            cn: cn.into(),
            dns: Vec::new(),
            ips: Vec::new(),
            days: 365,
            role,
            not_before: None,
            not_after: None,
        }
    }
}

/// A freshly generated certificate with its unencrypted key.
pub struct GeneratedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key as unencrypted PKCS#8 `PRIVATE KEY` PEM.
    pub key_pem: Zeroizing<String>,
}

impl fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Generates a root CA with its key encrypted under `passphrase` (must be non-empty).
pub fn generate_root(spec: &RootSpec, passphrase: &[u8]) -> Result<GeneratedRoot, Error> {
    if passphrase.is_empty() {
        return Err(Error::EmptyPassphrase);
    }
    let (cert_pem, key) = self_signed_root(spec)?;
    let key_der = Zeroizing::new(key.serialize_der());
    let info = pkcs8::PrivateKeyInfoRef::try_from(key_der.as_slice())
        .map_err(|e| Error::KeyEncryption(e.to_string()))?;
    // scrypt (log2 N = 14) + AES-256-CBC: the pkcs8 default, chosen upstream to
    // stay inside OpenSSL 3's scrypt memory limit so `openssl pkey` can read it.
    let encrypted = info
        .encrypt(passphrase)
        .map_err(|e| Error::KeyEncryption(e.to_string()))?;
    let key_pem = encrypted
        .to_pem(ENCRYPTED_KEY_LABEL, pkcs8::LineEnding::LF)
        .map_err(|e| Error::KeyEncryption(e.to_string()))?;
    Ok(GeneratedRoot { cert_pem, key_pem })
}

/// Generates a root CA with an unencrypted PKCS#8 key, for dev clusters and tests.
pub fn generate_root_unencrypted(spec: &RootSpec) -> Result<GeneratedCert, Error> {
    let (cert_pem, key) = self_signed_root(spec)?;
    Ok(GeneratedCert {
        cert_pem,
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

fn self_signed_root(spec: &RootSpec) -> Result<(String, Zeroizing<KeyPair>), Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(&spec.cn)?;
    // Path length 0: this CA signs leaves only, never intermediates.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    (params.not_before, params.not_after) = validity(spec.days, None, None)?;
    let key = Zeroizing::new(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?);
    let cert = params.self_signed(&*key)?;
    Ok((cert.pem(), key))
}

/// Sign with the CA: ca_cert_pem + the CA key PEM (encrypted → needs passphrase; unencrypted PKCS#8 also accepted with passphrase None).
///
/// A wrong passphrase yields [`Error::WrongPassphrase`].
pub fn generate_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    passphrase: Option<&[u8]>,
    spec: &CertSpec,
) -> Result<GeneratedCert, Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(&spec.cn)?;
    params.subject_alt_names = subject_alt_names(spec)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match spec.role {
        Role::Node => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    (params.not_before, params.not_after) = validity(spec.days, spec.not_before, spec.not_after)?;

    let ca_name = pem::memory("CA certificate");
    let ca_der = pem::certificates(ca_cert_pem.as_bytes(), &ca_name)?
        .into_iter()
        .next()
        .ok_or(Error::NoCertificate { path: ca_name })?;
    let ca = inspect::parse_der(&ca_der, "CA certificate")?;
    if !ca.is_ca() {
        return Err(Error::NotACa {
            subject: ca.subject().to_string(),
        });
    }
    let ca_key = load_ca_key(ca_key_pem, passphrase)?;
    if ca_key.public_key_raw() != ca.public_key().subject_public_key.data.as_ref() {
        return Err(Error::CaKeyMismatch);
    }
    if params.not_after > ca.validity().not_after.to_datetime() {
        tracing::warn!(
            ca_not_after = %inspect::format_time(&ca.validity().not_after),
            "certificate outlives its CA; it will stop verifying when the CA expires"
        );
    }
    let issuer = Issuer::from_ca_cert_der(&ca_der, &*ca_key)?;

    let key = Zeroizing::new(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?);
    let cert = params.signed_by(&*key, &issuer)?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// Decrypts (if needed) and parses the CA key.
fn load_ca_key(ca_key_pem: &str, passphrase: Option<&[u8]>) -> Result<Zeroizing<KeyPair>, Error> {
    let name = pem::memory("CA private key");
    if let Some(block) = pem::block(ca_key_pem, ENCRYPTED_KEY_LABEL) {
        let passphrase = match passphrase {
            None => return Err(Error::PassphraseRequired),
            Some([]) => return Err(Error::EmptyPassphrase),
            Some(p) => p,
        };
        let (_, doc) = pkcs8::Document::from_pem(block).map_err(|e| Error::NotPem {
            path: name,
            reason: e.to_string(),
        })?;
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(doc.as_bytes())
            .map_err(|e| Error::InvalidCaKey(e.to_string()))?;
        let plain = info.decrypt(passphrase).map_err(|e| match e {
            // Bad padding, or (rarely) good padding over garbage: both mean a wrong passphrase.
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed)
            | pkcs8::Error::Asn1(_) => Error::WrongPassphrase,
            other => Error::InvalidCaKey(other.to_string()),
        })?;
        return KeyPair::try_from(plain.as_bytes())
            .map(Zeroizing::new)
            .map_err(|e| Error::InvalidCaKey(e.to_string()));
    }
    if pem::is_encrypted_key(ca_key_pem.as_bytes()) {
        return Err(Error::InvalidCaKey(
            "legacy OpenSSL-encrypted PEM is not supported; convert it with \
             `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
                .to_owned(),
        ));
    }
    let key = pem::private_key(ca_key_pem.as_bytes(), &name)?;
    KeyPair::try_from(&key).map(Zeroizing::new).map_err(|e| {
        Error::InvalidCaKey(format!(
            "{e} (expected an unencrypted PKCS#8 \"{PLAIN_KEY_LABEL}\" or an \"{ENCRYPTED_KEY_LABEL}\")"
        ))
    })
}

fn common_name_dn(cn: &str) -> Result<DistinguishedName, Error> {
    if cn.trim().is_empty() {
        return Err(Error::InvalidSpec(
            "common name must not be empty".to_owned(),
        ));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    Ok(dn)
}

fn is_dns_name(name: &str) -> bool {
    let base = name.strip_prefix("*.").unwrap_or(name);
    DnsName::try_from(base).is_ok()
}

fn subject_alt_names(spec: &CertSpec) -> Result<Vec<SanType>, Error> {
    let mut dns: Vec<&str> = Vec::new();
    // Verifiers ignore the CN, so a node is only reachable by its name if it is also a SAN.
    if spec.role == Role::Node && is_dns_name(&spec.cn) {
        dns.push(&spec.cn);
    }
    for name in &spec.dns {
        if !is_dns_name(name) {
            return Err(Error::InvalidSpec(format!("invalid DNS name {name:?}")));
        }
        if !dns.contains(&name.as_str()) {
            dns.push(name);
        }
    }
    let mut sans = Vec::with_capacity(dns.len() + spec.ips.len());
    for name in dns {
        let ia5 = name
            .try_into()
            .map_err(|_| Error::InvalidSpec(format!("invalid DNS name {name:?}")))?;
        sans.push(SanType::DnsName(ia5));
    }
    for ip in &spec.ips {
        let san = SanType::IpAddress(*ip);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

/// 20 random bytes (the RFC 5280 maximum), top bit cleared so the INTEGER is
/// positive and the next bit set so it always encodes at full length.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 20] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn validity(
    days: u32,
    not_before: Option<SystemTime>,
    not_after: Option<SystemTime>,
) -> Result<(OffsetDateTime, OffsetDateTime), Error> {
    let now = SystemTime::now();
    let not_before = match not_before {
        Some(t) => t,
        None => now.checked_sub(CLOCK_SKEW).unwrap_or(now),
    };
    let not_after = match not_after {
        Some(t) => t,
        None => {
            if days == 0 || days > MAX_DAYS {
                return Err(Error::InvalidSpec(format!(
                    "validity must be between 1 and {MAX_DAYS} days, got {days}"
                )));
            }
            now + Duration::from_secs(u64::from(days) * SECS_PER_DAY)
        }
    };
    if not_after <= not_before {
        return Err(Error::InvalidSpec(
            "notAfter must be later than notBefore".to_owned(),
        ));
    }
    Ok((to_datetime(not_before)?, to_datetime(not_after)?))
}

fn to_datetime(t: SystemTime) -> Result<OffsetDateTime, Error> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| Error::InvalidSpec("validity time before 1970".to_owned()))?;
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| Error::InvalidSpec(format!("validity time out of range: {e}")))
}

/// Writes `contents` with mode 0600 (create or truncate), for private keys.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    write_with_mode(path, contents, 0o600)
}

/// Writes `contents` with mode 0644 (create or truncate), for certificates.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), Error> {
    write_with_mode(path, contents, 0o644)
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;

    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path).map_err(err)?;
    // `mode` only applies to newly created files; an existing key file could be looser.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_twenty_bytes_and_distinct() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_eq!(a.len(), 20);
        assert!(a[0] < 0x80 && a[0] >= 0x40);
        assert_ne!(a, b);
    }

    #[test]
    fn default_validity_is_backdated_for_clock_skew() {
        let (nb, na) = validity(10, None, None).expect("valid");
        let now = OffsetDateTime::now_utc();
        assert!(nb <= now - time::Duration::minutes(4));
        assert!(na >= now + time::Duration::days(10) - time::Duration::minutes(1));
    }

    #[test]
    fn zero_or_huge_validity_is_rejected() {
        assert!(matches!(
            validity(0, None, None),
            Err(Error::InvalidSpec(_))
        ));
        assert!(matches!(
            validity(u32::MAX, None, None),
            Err(Error::InvalidSpec(_))
        ));
    }

    #[test]
    fn node_cn_becomes_a_dns_san_but_client_cn_does_not() {
        let node = CertSpec::new("node-1", Role::Node);
        assert_eq!(subject_alt_names(&node).expect("sans").len(), 1);
        let client = CertSpec::new("alice", Role::Client);
        assert!(subject_alt_names(&client).expect("sans").is_empty());
    }

    #[test]
    fn invalid_dns_san_is_rejected() {
        let mut spec = CertSpec::new("node-1", Role::Node);
        spec.dns.push("not a host".to_owned());
        assert!(matches!(
            subject_alt_names(&spec),
            Err(Error::InvalidSpec(_))
        ));
    }
}
