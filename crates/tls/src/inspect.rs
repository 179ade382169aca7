//! Human-readable certificate inspection (`vergentctl inspect-cert`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::{Error, Role, pem};

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
    /// An e-mail address (rfc822Name).
    Email(String),
    /// A URI.
    Uri(String),
    /// Any other kind, described as text.
    Other(String),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Mirrors Python `cryptography` reprs, which the product README shows.
        match self {
            Self::Dns(v) => write!(f, "<DNSName(value='{v}')>"),
            Self::Ip(v) => write!(f, "<IPAddress(value={v})>"),
            Self::Email(v) => write!(f, "<RFC822Name(value='{v}')>"),
            Self::Uri(v) => write!(f, "<UniformResourceIdentifier(value='{v}')>"),
            Self::Other(v) => write!(f, "<{v}>"),
        }
    }
}

/// Decoded summary of an X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name, RFC 4514 (e.g. `CN=node-1`).
    pub subject: String,
    /// Issuer distinguished name, RFC 4514.
    pub issuer: String,
    /// Subject common name, if present.
    pub subject_cn: Option<String>,
    /// Serial number in decimal.
    pub serial: String,
    /// Serial number as lowercase hex, no separators.
    pub serial_hex: String,
    /// Start of validity, formatted `2025-12-25 23:10:39+00:00`.
    pub not_before: String,
    /// End of validity, formatted `2026-12-25 23:10:39+00:00`.
    pub not_after: String,
    /// Start of validity as Unix seconds.
    pub not_before_unix: i64,
    /// End of validity as Unix seconds.
    pub not_after_unix: i64,
    /// Whether basicConstraints says CA:TRUE.
    pub is_ca: bool,
    /// Subject alternative names, in certificate order.
    pub sans: Vec<San>,
    /// Key usage bits, OpenSSL names (e.g. `Digital Signature`).
    pub key_usage: Vec<String>,
    /// Extended key usages, OpenSSL names (e.g. `TLS Web Server Authentication`).
    pub extended_key_usage: Vec<String>,
    /// Role the certificate grants, from its extended key usage.
    pub role: Role,
    /// SHA-256 of the DER encoding, uppercase hex pairs joined by `:` (as
    /// `openssl x509 -fingerprint -sha256` prints it).
    pub fingerprint_sha256: String,
    /// The public key's algorithm and size (e.g. `ECDSA P-256`, `RSA 2048 bits`).
    pub key_type: String,
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Certificate Information")?;
        writeln!(f, "-----------------------")?;
        writeln!(f, "Subject: {}", self.subject)?;
        writeln!(f, "Issuer:  {}", self.issuer)?;
        writeln!(f, "Serial:  {}", self.serial)?;
        writeln!(f, "Valid From: {}", self.not_before)?;
        writeln!(f, "Valid To:   {}", self.not_after)?;
        write!(f, "Is CA: {}", if self.is_ca { "True" } else { "False" })?;
        if !self.sans.is_empty() {
            write!(f, "\nSubject Alternative Names:")?;
            for san in &self.sans {
                write!(f, "\n  - {san}")?;
            }
        }
        if !self.key_usage.is_empty() {
            write!(f, "\nKey Usage: {}", self.key_usage.join(", "))?;
        }
        if !self.extended_key_usage.is_empty() {
            write!(
                f,
                "\nExtended Key Usage: {}",
                self.extended_key_usage.join(", ")
            )?;
        }
        write!(f, "\nKey Type: {}", self.key_type)?;
        write!(f, "\nSHA-256 Fingerprint: {}", self.fingerprint_sha256)
    }
}

/// Decodes a certificate given as PEM (first `CERTIFICATE` block) or raw DER.
pub fn inspect(cert_pem_or_der: &[u8]) -> Result<CertInfo, Error> {
    let der;
    let bytes = if cert_pem_or_der.starts_with(&[0x30]) {
        cert_pem_or_der
    } else {
        let certs = pem::certificates(cert_pem_or_der, &pem::memory("certificate"))?;
        der = certs
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoCertificate {
                path: pem::memory("certificate"),
            })?;
        der.as_ref()
    };
    let cert = parse_der(bytes, "inspected certificate")?;
    info(&cert, bytes)
}

/// Checks that the certificate (PEM or DER) was issued by one of the CA
/// certificates in `ca_pem` (subject and signature); returns that CA's subject.
pub fn check_chain(cert_pem_or_der: &[u8], ca_pem: &[u8]) -> Result<String, Error> {
    let der;
    let bytes = if cert_pem_or_der.starts_with(&[0x30]) {
        cert_pem_or_der
    } else {
        der = pem::certificates(cert_pem_or_der, &pem::memory("certificate"))?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoCertificate {
                path: pem::memory("certificate"),
            })?;
        der.as_ref()
    };
    let cert = parse_der(bytes, "certificate")?;
    let roots = pem::certificates(ca_pem, &pem::memory("CA certificate"))?;
    for root_der in &roots {
        let root = parse_der(root_der, "CA certificate")?;
        if root.subject().as_raw() == cert.issuer().as_raw()
            && cert.verify_signature(Some(root.public_key())).is_ok()
        {
            return Ok(rfc4514(root.subject()));
        }
    }
    Err(Error::NotIssuedByCa {
        cert: pem::memory("certificate"),
        ca: pem::memory("CA certificate"),
    })
}

/// `ECDSA P-256`, `Ed25519`, `RSA 2048 bits`...
fn key_type(cert: &X509Certificate<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    let spki = cert.public_key();
    let oid = spki.algorithm.algorithm.to_id_string();
    match (oid.as_str(), spki.parsed()) {
        ("1.3.101.112", _) => "Ed25519".into(),
        ("1.3.101.113", _) => "Ed448".into(),
        (_, Ok(PublicKey::RSA(rsa))) => format!("RSA {} bits", rsa.key_size()),
        (_, Ok(PublicKey::EC(ec))) => match ec.key_size() {
            256 => "ECDSA P-256".into(),
            384 => "ECDSA P-384".into(),
            521 => "ECDSA P-521".into(),
            n => format!("ECDSA {n} bits"),
        },
        _ => format!("algorithm {oid}"),
    }
}

fn info(cert: &X509Certificate<'_>, der: &[u8]) -> Result<CertInfo, Error> {
    let invalid = |e: x509_parser::error::X509Error| Error::InvalidCertificate {
        context: "inspected certificate".to_owned(),
        reason: e.to_string(),
    };
    let validity = cert.validity();
    let sans = match cert.subject_alternative_name().map_err(invalid)? {
        Some(ext) => ext.value.general_names.iter().map(san).collect(),
        None => Vec::new(),
    };
    let key_usage = match cert.key_usage().map_err(invalid)? {
        Some(ext) => key_usage_names(ext.value.flags),
        None => Vec::new(),
    };
    let extended_key_usage = match cert.extended_key_usage().map_err(invalid)? {
        Some(ext) => {
            let eku = ext.value;
            let known = [
                (eku.server_auth, "TLS Web Server Authentication"),
                (eku.client_auth, "TLS Web Client Authentication"),
                (eku.code_signing, "Code Signing"),
                (eku.email_protection, "E-mail Protection"),
                (eku.time_stamping, "Time Stamping"),
                (eku.ocsp_signing, "OCSP Signing"),
                (eku.any, "Any Extended Key Usage"),
            ];
            known
                .iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| (*name).to_owned())
                .chain(eku.other.iter().map(|oid| oid.to_id_string()))
                .collect()
        }
        None => Vec::new(),
    };
    Ok(CertInfo {
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        subject_cn: common_name(cert),
        serial: cert.serial.to_string(),
        serial_hex: hex::encode(cert.serial.to_bytes_be()),
        not_before: format_time(&validity.not_before),
        not_after: format_time(&validity.not_after),
        not_before_unix: validity.not_before.timestamp(),
        not_after_unix: validity.not_after.timestamp(),
        is_ca: cert.is_ca(),
        sans,
        key_usage,
        extended_key_usage,
        role: Role::from_x509(cert),
        fingerprint_sha256: ring::digest::digest(&ring::digest::SHA256, der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
        key_type: key_type(cert),
    })
}

/// Parses DER, labelling errors with `context`.
pub(crate) fn parse_der<'a>(der: &'a [u8], context: &str) -> Result<X509Certificate<'a>, Error> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| Error::InvalidCertificate {
            context: context.to_owned(),
            reason: e.to_string(),
        })
}

/// The first common name of the subject, if it is a string.
pub(crate) fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|attr| attr.as_str().ok())
        .map(str::to_owned)
}

/// Formats as `2025-12-25 23:10:39+00:00` (Python `str(datetime)` in UTC).
pub(crate) fn format_time(t: &ASN1Time) -> String {
    let dt = t.to_datetime().to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00:00",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn san(name: &GeneralName<'_>) -> San {
    match name {
        GeneralName::DNSName(v) => San::Dns((*v).to_owned()),
        GeneralName::RFC822Name(v) => San::Email((*v).to_owned()),
        GeneralName::URI(v) => San::Uri((*v).to_owned()),
        GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
            Ok(v4) => San::Ip(IpAddr::V4(Ipv4Addr::from(v4))),
            Err(_) => match <[u8; 16]>::try_from(*bytes) {
                Ok(v6) => San::Ip(IpAddr::V6(Ipv6Addr::from(v6))),
                Err(_) => San::Other(format!("IPAddress(value=0x{})", hex::encode(bytes))),
            },
        },
        GeneralName::DirectoryName(n) => {
            San::Other(format!("DirectoryName(value=<Name({})>)", rfc4514(n)))
        }
        GeneralName::RegisteredID(oid) => San::Other(format!("RegisteredID(value={oid})")),
        GeneralName::OtherName(oid, _) => San::Other(format!("OtherName(type_id={oid})")),
        other => San::Other(format!("{other:?}")),
    }
}

fn key_usage_names(flags: u16) -> Vec<String> {
    const NAMES: [&str; 9] = [
        "Digital Signature",
        "Non Repudiation",
        "Key Encipherment",
        "Data Encipherment",
        "Key Agreement",
        "Certificate Sign",
        "CRL Sign",
        "Encipher Only",
        "Decipher Only",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| flags & (1 << bit) != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

/// RFC 4514 string: most-specific RDN first, as Python's `rfc4514_string`.
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute(attr: &AttributeTypeAndValue<'_>) -> String {
    let oid = attr.attr_type().to_id_string();
    let key = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        other => other,
    };
    let value = match attr.as_str() {
        Ok(s) => escape_rfc4514(s),
        Err(_) => format!("#{}", hex::encode(attr.as_slice())),
    };
    format!("{key}={value}")
}

fn escape_rfc4514(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_escapes_special_characters() {
        assert_eq!(escape_rfc4514("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc4514("#x "), "\\#x\\ ");
        assert_eq!(escape_rfc4514("plain"), "plain");
    }

    #[test]
    fn key_usage_bits_map_to_openssl_names_in_bit_order() {
        assert_eq!(
            key_usage_names(0b110_0001),
            ["Digital Signature", "Certificate Sign", "CRL Sign"]
        );
        assert!(key_usage_names(0).is_empty());
    }

    #[test]
    fn san_display_matches_readme_format() {
        assert_eq!(
            San::Dns("node-1".into()).to_string(),
            "<DNSName(value='node-1')>"
        );
        assert_eq!(
            San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)).to_string(),
            "<IPAddress(value=127.0.0.1)>"
        );
    }

    #[test]
    fn format_time_is_python_datetime_style() {
        let t = ASN1Time::from_timestamp(1_766_704_239);
        assert!(t.is_ok());
        if let Ok(t) = t {
            assert_eq!(format_time(&t), "2025-12-25 23:10:39+00:00");
        }
    }
}
