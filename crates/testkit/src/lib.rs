//! Helpers shared by Vergent's integration tests: throwaway certificate files,
//! free loopback ports, and waiting for replicas to converge.
//!
//! Test-only (a dev-dependency everywhere). It must not depend on server
//! crates, so any test can use it without pulling the node in.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vergent_client::{Client, Entry};
use vergent_tls::{CertSpec, GeneratedCert, Role, RootSpec, TlsFiles};

/// A throwaway CA with one node and one client certificate.
#[derive(Clone, Debug)]
pub struct ClusterCerts {
    /// The CA certificate file.
    pub ca: PathBuf,
    /// Node certificate (SANs `localhost`, 127.0.0.1), key and CA.
    pub node: TlsFiles,
    /// Client certificate, key and CA.
    pub client: TlsFiles,
}

/// Generates [`ClusterCerts`] in `dir` with a node certificate named `node_cn`.
///
/// The CA key is not encrypted: the passphrase (scrypt) is not under test
/// where this is used and would only slow every test down.
pub fn unencrypted_certs(dir: &Path, node_cn: &str) -> ClusterCerts {
    std::fs::create_dir_all(dir).expect("cert dir");
    let root = vergent_tls::generate_root_unencrypted(&RootSpec::default()).expect("root CA");
    let ca = dir.join("ca.pem");
    vergent_tls::write_public(&ca, root.cert_pem.as_bytes()).expect("write CA");
    let sign = |spec: &CertSpec| {
        vergent_tls::generate_cert(&root.cert_pem, &root.key_pem, None, spec)
            .expect("sign certificate")
    };
    let mut node_spec = CertSpec::new(node_cn, Role::Node);
    node_spec.dns = vec!["localhost".into()];
    node_spec.ips = vec![IpAddr::from([127, 0, 0, 1])];
    let node = write_pair(dir, node_cn, &sign(&node_spec), &ca);
    let client = write_pair(
        dir,
        "client",
        &sign(&CertSpec::new("client", Role::Client)),
        &ca,
    );
    ClusterCerts { ca, node, client }
}

/// Waits until every client's full scan (keys, values, versions) is identical
/// and has `expect` entries; panics after `deadline`.
pub async fn converge(clients: &[Client], expect: usize, deadline: Duration) -> Vec<Entry> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let mut dumps = Vec::new();
        for c in clients {
            match c.scan_all("").await {
                Ok(d) => dumps.push(d),
                // A node still bootstrapping refuses reads: not yet.
                Err(vergent_client::Error::Server {
                    code: tonic::Code::Unavailable,
                    ..
                }) => dumps.push(Vec::new()),
                Err(e) => panic!("scan: {e}"),
            }
        }
        if dumps[0].len() == expect && dumps.iter().all(|d| *d == dumps[0]) {
            return dumps.swap_remove(0);
        }
        assert!(
            tokio::time::Instant::now() < until,
            "no convergence within {deadline:?}: sizes {:?}",
            dumps.iter().map(Vec::len).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
