//! Helpers shared by Vergent's integration tests: throwaway certificate files
//! and free loopback ports.
//!
//! Test-only (a dev-dependency everywhere). It must not depend on server
//! crates, so any test can use it without pulling the node in.

use std::path::Path;

use vergent_tls::{GeneratedCert, TlsFiles};

/// Writes `cert` as `<name>.crt` and `<name>.key` (mode 0600) in `dir`, and
/// returns the three files with `ca` as the trust root.
pub fn write_pair(dir: &Path, name: &str, cert: &GeneratedCert, ca: &Path) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        ca: ca.to_path_buf(),
    };
    vergent_tls::write_public(&files.cert, cert.cert_pem.as_bytes()).expect("write cert");
    vergent_tls::write_private(&files.key, cert.key_pem.as_bytes()).expect("write key");
    files
}

/// `n` distinct ports on 127.0.0.1 free for both TCP and UDP right now (a
/// node serves its API over TCP and its peer protocol over UDP on one port).
/// They are released on return, so bind them soon.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("local addr").port();
        if let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            ports.push(port);
            // Held until return so the OS does not hand the port out twice.
            held.push((tcp, udp));
        }
    }
    ports
}
