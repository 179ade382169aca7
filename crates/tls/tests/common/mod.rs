//! Shared fixtures for the integration tests: CAs, leaf certificates, an
//! in-memory TLS transport and an optional `openssl` runner.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use vergent_tls::{
    CertSpec, GeneratedCert, Identity, Role, RootSpec, generate_cert, generate_root_unencrypted,
};

/// An unencrypted throwaway CA.
pub fn test_ca(cn: &str) -> GeneratedCert {
    generate_root_unencrypted(&RootSpec {
        cn: cn.to_owned(),
        days: 30,
    })
    .expect("generate test CA")
}

/// A node spec reachable as `node-1`, `localhost` and 127.0.0.1.
pub fn node_spec() -> CertSpec {
    let mut spec = CertSpec::new("node-1", Role::Node);
    spec.dns.push("localhost".to_owned());
    spec.ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    spec
}

/// Issues a certificate from an unencrypted test CA.
pub fn issue(ca: &GeneratedCert, spec: &CertSpec) -> GeneratedCert {
    generate_cert(&ca.cert_pem, &ca.key_pem, None, spec).expect("issue certificate")
}

/// Builds an identity trusting `ca` from an issued certificate.
pub fn identity(leaf: &GeneratedCert, ca: &GeneratedCert) -> Identity {
    Identity::from_pem(
        leaf.cert_pem.as_bytes(),
        leaf.key_pem.as_bytes(),
        ca.cert_pem.as_bytes(),
    )
    .expect("build identity")
}

/// Which side of the handshake reported the failure.
#[derive(Debug)]
pub enum Failure {
    /// The client refused (e.g. bad server certificate).
    Client(rustls::Error),
    /// The server refused (e.g. bad or missing client certificate).
    Server(rustls::Error),
}

impl Failure {
    /// The server's error, if it was the server that refused.
    pub fn server(&self) -> Option<&rustls::Error> {
        match self {
            Self::Server(e) => Some(e),
            Self::Client(_) => None,
        }
    }
}

/// Runs a full handshake over in-memory buffers and then exchanges one
/// application message each way, so success means a usable connection.
pub fn handshake(
    client: ClientConfig,
    server: ServerConfig,
    server_name: &str,
) -> Result<(ClientConnection, ServerConnection), Failure> {
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let mut c = ClientConnection::new(Arc::new(client), name).map_err(Failure::Client)?;
    let mut s = ServerConnection::new(Arc::new(server)).map_err(Failure::Server)?;

    c.writer().write_all(b"ping").expect("buffer client data");
    let mut got_ping = Vec::new();
    let mut got_pong = Vec::new();
    let mut sent_pong = false;
    for _ in 0..32 {
        pump_client_to_server(&mut c, &mut s)?;
        let _ = s.reader().read_to_end(&mut got_ping);
        if !sent_pong && !s.is_handshaking() {
            s.writer().write_all(b"pong").expect("buffer server data");
            sent_pong = true;
        }
        pump_server_to_client(&mut s, &mut c)?;
        let _ = c.reader().read_to_end(&mut got_pong);
        if got_ping == b"ping" && got_pong == b"pong" {
            return Ok((c, s));
        }
    }
    panic!("handshake neither completed nor failed");
}

fn pump_client_to_server(
    c: &mut ClientConnection,
    s: &mut ServerConnection,
) -> Result<(), Failure> {
    let mut buf = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut buf).expect("write to Vec");
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        s.read_tls(&mut rd).expect("read from slice");
        s.process_new_packets().map_err(Failure::Server)?;
    }
    Ok(())
}

fn pump_server_to_client(
    s: &mut ServerConnection,
    c: &mut ClientConnection,
) -> Result<(), Failure> {
    let mut buf = Vec::new();
    while s.wants_write() {
        s.write_tls(&mut buf).expect("write to Vec");
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).expect("read from slice");
        c.process_new_packets().map_err(Failure::Client)?;
    }
    Ok(())
}

/// Runs `openssl` with `args`, or returns `None` (after saying so) when it is not installed.
pub fn openssl(args: &[&str], cwd: &Path) -> Option<Output> {
    match Command::new("openssl").args(args).current_dir(cwd).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("NOTE: openssl binary not found; skipping the OpenSSL cross-check");
            None
        }
        Err(e) => panic!("cannot run openssl: {e}"),
    }
}

/// Human-readable output of an `openssl` run, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
