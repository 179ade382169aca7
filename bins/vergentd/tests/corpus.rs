//! Bad input on real processes: a real `vergentd` gets a corpus of malformed
//! and hostile input on both of its ports, and each piece gets a clear
//! refusal while the node keeps serving a well-behaved client within its
//! normal latency and nothing it stores changes.
//!
//! - TCP port (gRPC over mutual TLS 1.3): random bytes, plain HTTP/1.1,
//!   HTTP/1.1 inside TLS, a wrong ALPN, no client certificate, and client
//!   certificates that are expired, not yet valid, from another CA, or with
//!   the wrong extended key usage.
//! - gRPC on an authenticated HTTP/2 connection: a wrong content-type, a
//!   truncated message, a declared length of 4 GiB, bytes that are not
//!   protobuf, a compressed flag without an encoding, no message at all, an
//!   unknown method.
//! - UDP port (the QUIC peer protocol): random datagrams, truncated and
//!   corrupted Initials, a wrong ALPN, and peer certificates that are a
//!   client's, expired, not yet valid, from another CA, or with the wrong
//!   extended key usage.
//!
//! Every test starts one node, stores sentinel keys and starts a probe
//! client that times a `get` every few milliseconds on a runtime of its own
//! (so the corpus cannot slow it down from inside this process). After the
//! corpus the store must hold exactly what it held before (a full scan,
//! tombstones included), the probe must have seen no error and no `get`
//! slower than [`SLOW`], and the node must still be running.
//!
//! Each case prints one line, `corpus: <input> -> <what the node answered>`;
//! docs/testing.md tabulates them.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::{Proc, capture_initial, wait_log};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use vergent_client::{Client, ClientConfig, RetryConfig, StoredRecord};
use vergent_tls::{CertSpec, Identity, Role, RootSpec, TlsFiles};

/// The slowest `get` the probe may see while the corpus runs. Normal is a
/// few milliseconds on loopback (debug build); 2 s is far above scheduling
/// noise on a busy two-core CI machine and far below what a node stuck on
/// one bad input would show (the probe's 10 s request timeout, the node's
/// 10 s handshake timeout).
const SLOW: Duration = Duration::from_secs(2);
/// How long the node may take to close a connection it refuses: its TLS
/// handshake timeout (10 s, for input that stops mid-record) plus margin.
const CLOSE_DEADLINE: Duration = Duration::from_secs(15);
/// How long a gRPC call, a QUIC handshake or a log line may take.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long to listen for replies to a datagram that deserves none.
const QUIET: Duration = Duration::from_millis(500);
/// Random datagrams sent to the UDP port.
const DATAGRAMS: usize = 2_000;
/// The seed of every random input (printed, so a failure can be replayed).
const SEED: u64 = 0x5eed_c0de_0009;
/// Connections of random bytes (random sizes) on the TCP port, at once.
const RANDOM_CONNECTIONS: usize = 100;
/// Times each TLS and gRPC case is repeated (each on a new connection).
const ROUNDS: usize = 20;
/// Times each QUIC certificate case is repeated.
const QUIC_ROUNDS: usize = 10;
/// Keys stored before the corpus and read by the probe.
const SENTINELS: usize = 5;
/// gRPC status codes this test names.
const GRPC_OK: u32 = 0;
const GRPC_INVALID_ARGUMENT: u32 = 3;
const GRPC_RESOURCE_EXHAUSTED: u32 = 8;
const GRPC_OUT_OF_RANGE: u32 = 11;
const GRPC_UNIMPLEMENTED: u32 = 12;
const GRPC_INTERNAL: u32 = 13;
/// The reason the transport gives when it closes a peer whose certificate
/// is not a node's (with vergent-transport's `CLOSE_NOT_A_NODE`).
const NOT_A_NODE_REASON: &str = "not a node certificate";
/// The QUIC ALPN of the peer protocol (vergent-transport's `ALPN`).
const PEER_ALPN: &[u8] = b"vergent-peer/1";

// ---------------------------------------------------------------------------
// Certificates.

/// Which CA signs a certificate.
#[derive(Clone, Copy)]
enum Issuer {
    /// The cluster's CA.
    Ours,
    /// A CA the node does not trust.
    Other,
}

/// When a certificate is valid.
#[derive(Clone, Copy)]
enum Validity {
    Now,
    /// Ended a day ago.
    Expired,
    /// Starts tomorrow.
    NotYetValid,
}

/// A cluster CA with an unencrypted key (so rcgen can sign the odd
/// certificates vergent-tls refuses to make), another CA, and the node's
/// and a good client's certificates.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca_key: String,
    ca: PathBuf,
    other_pem: String,
    other_key: String,
    /// Both CAs in one file: a certificate from the other CA loads (vergent-
    /// tls checks the chain against this file) and still trusts our node.
    both_cas: PathBuf,
    node: TlsFiles,
    client: TlsFiles,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("cert dir");
        let root = |cn: &str| {
            vergent_tls::generate_root_unencrypted(&RootSpec {
                cn: cn.into(),
                days: 30,
            })
            .expect("root")
        };
        let (ours, other) = (root("Cluster CA"), root("Other CA"));
        let ca = dir.join("ca.pem");
        vergent_tls::write_public(&ca, ours.cert_pem.as_bytes()).expect("write ca");
        let both_cas = dir.join("both-cas.pem");
        vergent_tls::write_public(
            &both_cas,
            format!("{}{}", ours.cert_pem, other.cert_pem).as_bytes(),
        )
        .expect("write cas");
        let mut pki = Self {
            dir: dir.to_path_buf(),
            ca_pem: ours.cert_pem,
            ca_key: ours.key_pem.to_string(),
            ca,
            other_pem: other.cert_pem,
            other_key: other.key_pem.to_string(),
            both_cas,
            node: placeholder(),
            client: placeholder(),
        };
        pki.node = pki.cert("node-1", Role::Node, Issuer::Ours, Validity::Now);
        pki.client = pki.cert("client", Role::Client, Issuer::Ours, Validity::Now);
        pki
    }

    /// A certificate made by vergent-tls, as `vergentctl cert` makes them.
    fn cert(&self, name: &str, role: Role, issuer: Issuer, validity: Validity) -> TlsFiles {
        let mut spec = CertSpec::new(name, role);
        spec.dns = vec!["localhost".into()];
        spec.ips = vec![[127, 0, 0, 1].into()];
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        match validity {
            Validity::Now => {}
            Validity::Expired => {
                spec.not_before = Some(now - 3 * day);
                spec.not_after = Some(now - day);
            }
            Validity::NotYetValid => {
                spec.not_before = Some(now + day);
                spec.not_after = Some(now + 3 * day);
            }
        }
        let (ca_pem, ca_key, ca_file) = match issuer {
            Issuer::Ours => (&self.ca_pem, &self.ca_key, &self.ca),
            Issuer::Other => (&self.other_pem, &self.other_key, &self.both_cas),
        };
        let cert = vergent_tls::generate_cert(ca_pem, ca_key, None, &spec).expect("sign");
        vergent_testkit::write_pair(&self.dir, name, &cert, ca_file)
    }

    /// A certificate from our CA with exactly the extended key usages
    /// `ekus` (none: no EKU extension at all), made with rcgen directly
    /// because vergent-tls only makes node and client certificates.
    fn cert_with_eku(&self, name: &str, ekus: Vec<rcgen::ExtendedKeyUsagePurpose>) -> TlsFiles {
        let ca_key = rcgen::KeyPair::from_pem(&self.ca_key).expect("ca key");
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.ca_pem, ca_key).expect("issuer");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = ekus;
        params.use_authority_key_identifier_extension = true;
        // rcgen's default validity (1975 to 4096) covers now; webpki checks
        // each certificate's own dates only.
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        let generated = vergent_tls::GeneratedCert {
            cert_pem: cert.pem(),
            key_pem: vergent_tls::Zeroizing::new(key.serialize_pem()),
        };
        vergent_testkit::write_pair(&self.dir, name, &generated, &self.ca)
    }
}

fn placeholder() -> TlsFiles {
    TlsFiles {
        cert: PathBuf::new(),
        key: PathBuf::new(),
        ca: PathBuf::new(),
    }
}

fn identity(files: &TlsFiles) -> Identity {
    Identity::load(files).expect("load identity")
}

// ---------------------------------------------------------------------------
// The node under test, its sentinels and the probe client.

/// The probe's phases: before the corpus (its baseline), during it, after.
const PHASES: [&str; 3] = ["before", "during", "after"];
/// Gets the probe makes before the corpus starts and after it ends.
const PROBE_EDGE: u64 = 40;

/// What the probe client saw.
#[derive(Debug, Default)]
struct Probe {
    /// Gets made, per phase.
    gets: [u64; 3],
    /// The slowest get, per phase.
    worst: [Duration; 3],
    errors: Vec<String>,
}

/// What the test and the probe thread share.
#[derive(Default)]
struct ProbeControl {
    stop: AtomicBool,
    /// Index into [`PHASES`].
    phase: AtomicUsize,
    /// Gets made so far, all phases.
    gets: AtomicU64,
}

impl ProbeControl {
    /// Waits until the probe has made `n` more gets, within [`DEADLINE`]
    /// (more if the node is slow: a get may take up to its timeout).
    fn wait_gets(&self, n: u64) {
        let target = self.gets.load(Ordering::Relaxed) + n;
        let start = Instant::now();
        while self.gets.load(Ordering::Relaxed) < target {
            assert!(
                start.elapsed() < 3 * DEADLINE,
                "the probe made fewer than {n} gets in {:?}",
                3 * DEADLINE
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One node with sentinel keys, watched by a probe client.
struct Watched {
    _tmp: tempfile::TempDir,
    pki: Pki,
    node: Proc,
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    client: Client,
    before: Vec<StoredRecord>,
    control: Arc<ProbeControl>,
    probe: std::thread::JoinHandle<Probe>,
}

async fn connect(addr: SocketAddr, tls: &TlsFiles) -> Client {
    let mut cfg = ClientConfig::new(addr.to_string(), tls.clone());
    cfg.request_timeout = Duration::from_secs(10);
    // Every failure shows: nothing is repeated behind the probe's back.
    cfg.retry = RetryConfig::never();
    Client::connect(cfg).await.expect("connect")
}

impl Watched {
    fn start() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new(&tmp.path().join("certs"));
        let port = vergent_testkit::free_ports(1)[0];
        let node = Proc::start_as(
            &pki.node,
            &pki.ca,
            &tmp.path().join("data"),
            &["--port", &port.to_string()],
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (client, before) = rt.block_on(async {
            let client = connect(addr, &pki.client).await;
            for i in 0..SENTINELS {
                client
                    .put(format!("sentinel-{i}"), format!("value-{i}"))
                    .await
                    .expect("put sentinel");
            }
            client.put("deleted", "x").await.expect("put");
            client.delete("deleted").await.expect("delete");
            let before = client.scan_all_records("").await.expect("scan");
            (client, before)
        });
        assert_eq!(before.len(), SENTINELS + 1, "sentinels and one tombstone");
        let control = Arc::new(ProbeControl::default());
        let probe = std::thread::spawn({
            let (control, tls) = (control.clone(), pki.client.clone());
            move || run_probe(addr, &tls, &control)
        });
        // The probe's baseline, then the corpus may start.
        control.wait_gets(PROBE_EDGE);
        control.phase.store(1, Ordering::Relaxed);
        Self {
            _tmp: tmp,
            pki,
            node,
            addr,
            rt,
            client,
            before,
            control,
            probe,
        }
    }

    /// Stops the probe and checks every property the corpus must keep.
    fn finish(mut self) {
        self.control.phase.store(2, Ordering::Relaxed);
        self.control.wait_gets(PROBE_EDGE);
        self.control.stop.store(true, Ordering::Relaxed);
        let probe = self.probe.join().expect("probe thread");
        let phases: Vec<String> = (0..3)
            .map(|i| {
                format!(
                    "{} the corpus {} gets, worst {:?}",
                    PHASES[i], probe.gets[i], probe.worst[i]
                )
            })
            .collect();
        eprintln!(
            "corpus: probe client: {}; {} errors",
            phases.join("; "),
            probe.errors.len()
        );
        assert!(
            self.node.child.try_wait().expect("try_wait").is_none(),
            "the node exited:\n{}",
            self.node.log_text()
        );
        assert!(
            probe.errors.is_empty(),
            "the probe client saw errors: {:?}",
            probe.errors
        );
        assert!(probe.gets[1] > 0, "the probe made no get during the corpus");
        for (worst, phase) in probe.worst.iter().zip(PHASES).skip(1) {
            assert!(
                *worst < SLOW,
                "a get took {worst:?} {phase} the corpus (bound {SLOW:?}; {} it)",
                phases[0]
            );
        }
        let (after, status) = self.rt.block_on(async {
            // A fresh connection, to show the node still accepts new clients.
            let fresh = connect(self.addr, &self.pki.client).await;
            for i in 0..SENTINELS {
                let e = fresh
                    .get(format!("sentinel-{i}"))
                    .await
                    .expect("get sentinel")
                    .expect("sentinel present");
                assert_eq!(e.value, format!("value-{i}").into_bytes());
            }
            let after = self.client.scan_all_records("").await.expect("scan");
            (after, fresh.status().await.expect("status"))
        });
        assert_eq!(
            after, self.before,
            "what the node stores changed during the corpus"
        );
        assert_eq!(
            status.members.len(),
            1,
            "no one joined the node: {:?}",
            status.members
        );
    }

    /// Where the log ends now: [`Self::log_line`] looks only after it.
    fn log_mark(&self) -> usize {
        self.node.log.lock().expect("log lock").len()
    }

    /// Waits for a log line after `mark` holding every one of `parts`;
    /// returns it. (Only after the mark: the OS hands out ephemeral ports
    /// again, so an earlier case may have logged the same address.)
    fn log_line(&self, mark: usize, parts: &[&str]) -> Option<String> {
        let find = |l: &str| -> Option<String> {
            l.get(mark..)?
                .lines()
                .find(|x| parts.iter().all(|p| x.contains(p)))
                .map(str::to_string)
        };
        wait_log(&self.node.log, DEADLINE, |l| find(l).is_some())
            .then(|| find(&self.node.log_text()).unwrap_or_default())
    }
}

/// Times a `get` of a sentinel every 5 ms until told to stop (at most
/// 100,000 gets or 10 minutes), on a runtime of its own.
fn run_probe(addr: SocketAddr, tls: &TlsFiles, control: &ProbeControl) -> Probe {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("probe runtime");
    rt.block_on(async {
        let client = connect(addr, tls).await;
        let mut p = Probe::default();
        let start = Instant::now();
        for n in 0..100_000usize {
            if control.stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(600) {
                break;
            }
            let phase = control.phase.load(Ordering::Relaxed);
            let i = n % SENTINELS;
            let t = Instant::now();
            match client.get(format!("sentinel-{i}")).await {
                Ok(Some(e)) if e.value == format!("value-{i}").into_bytes() => {}
                other => p.errors.push(format!("get sentinel-{i}: {other:?}")),
            }
            p.worst[phase] = p.worst[phase].max(t.elapsed());
            p.gets[phase] += 1;
            control.gets.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        p
    })
}

// ---------------------------------------------------------------------------
// TCP: raw bytes and TLS handshakes.

/// How a connection the node refused ended, seen from the client.
#[derive(Debug)]
struct Closed {
    /// Bytes the node sent before closing.
    reply: Vec<u8>,
    /// "EOF" or the read error.
    end: String,
    after: Duration,
}

impl Closed {
    /// A short description of the reply, for the report.
    fn describe(&self) -> String {
        let what = match self.reply.as_slice() {
            [] => "nothing".to_string(),
            // A TLS alert record: type 21, version, length 2, level, description.
            [0x15, 0x03, _, 0x00, 0x02, level, desc, ..] => {
                format!("TLS alert (level {level}, description {desc})")
            }
            r => format!("{} bytes starting {:02x?}", r.len(), &r[..r.len().min(8)]),
        };
        format!("{what}, then {} after {:?}", self.end, self.after)
    }
}

/// Reads what the node sends until it closes, within [`CLOSE_DEADLINE`].
async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S, start: Instant) -> Closed {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = CLOSE_DEADLINE.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!(
                "the node held the connection open for {CLOSE_DEADLINE:?} (got {} bytes)",
                reply.len()
            ),
            Ok(Ok(0)) => {
                return Closed {
                    reply,
                    end: "EOF".into(),
                    after: start.elapsed(),
                };
            }
            Ok(Ok(n)) => {
                reply.extend_from_slice(&buf[..n]);
                assert!(reply.len() < 1 << 20, "the node keeps sending");
            }
            Ok(Err(e)) => {
                return Closed {
                    reply,
                    end: format!("{:?} ({e})", e.kind()),
                    after: start.elapsed(),
                };
            }
        }
    }
}

/// Sends `bytes` on a new TCP connection (and keeps it open) and waits for
/// the node to close it.
async fn raw_tcp(addr: SocketAddr, bytes: &[u8]) -> Closed {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let start = Instant::now();
    // The node may close before it has read everything: a failed write is
    // part of the answer, not a test failure.
    let _ = s.write_all(bytes).await;
    read_until_closed(&mut s, start).await
}

/// A rustls client configuration: TLS 1.3, trusting our CA, presenting
/// `cert` (or no certificate), offering `alpn`.
fn tls_client(pki: &Pki, cert: Option<&TlsFiles>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    match cert {
        Some(files) => vergent_tls::client_config(&identity(files), alpn).expect("client config"),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in identity(&pki.client).ca_certs() {
                roots.add(ca.clone()).expect("root");
            }
            let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            c
        }
    }
}

/// How a TLS connection the node refused ended: a failed handshake, or
/// (TLS 1.3: the client finishes before the server has checked its
/// certificate) an alert or EOF on the first read.
#[derive(Debug)]
struct Refused {
    local: SocketAddr,
    /// The client-side error or end, as rustls or the socket reports it.
    how: String,
}

async fn tls_refused(addr: SocketAddr, config: rustls::ClientConfig, send: &[u8]) -> Refused {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let local = tcp.local_addr().expect("local addr");
    let start = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = match tokio::time::timeout(CLOSE_DEADLINE, connector.connect(name, tcp)).await {
        Err(_) => panic!("the handshake neither completed nor failed in {CLOSE_DEADLINE:?}"),
        Ok(Err(e)) => {
            return Refused {
                local,
                how: format!("handshake failed: {e}"),
            };
        }
        Ok(Ok(tls)) => tls,
    };
    let _ = tls.write_all(send).await;
    let _ = tls.flush().await;
    let closed = read_until_closed(&mut tls, start).await;
    assert!(
        closed.reply.is_empty() || !send.is_empty(),
        "the node sent application data to a refused client: {closed:?}"
    );
    let how = if closed.reply.is_empty() {
        closed.end.clone()
    } else {
        closed.describe()
    };
    Refused {
        local,
        how: format!("handshake done, then {how}"),
    }
}

// ---------------------------------------------------------------------------
// gRPC over an authenticated HTTP/2 connection.

/// What the node answered to one gRPC request.
#[derive(Debug)]
struct GrpcAnswer {
    http: u16,
    /// grpc-status, from the headers (trailers-only) or the trailers.
    status: Option<u32>,
    message: String,
    /// Body bytes, which a refused request must not get.
    body: usize,
}

impl GrpcAnswer {
    fn describe(&self) -> String {
        format!(
            "HTTP {}, grpc-status {} ({:?})",
            self.http,
            self.status.map_or("none".into(), |s| s.to_string()),
            percent_decoded(&self.message)
        )
    }
}

/// grpc-message is percent-encoded; decoded for the report.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP/2 connection over mutual TLS with the good client certificate.
async fn h2_connect(pki: &Pki, addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let config = tls_client(pki, Some(&pki.client), &[b"h2"]);
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the good client's handshake");
    let (send, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A gRPC message frame: flag, 4-byte big-endian length, payload.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    frame_declaring(flag, u32::try_from(payload.len()).expect("short"), payload)
}

/// A gRPC message frame whose header declares `declared_len` bytes,
/// whatever `payload` holds.
fn frame_declaring(flag: u8, declared_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&declared_len.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A `PutRequest { key, value }` in protobuf, encoded by hand.
fn put_request(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    for (tag, bytes) in [(0x0a, key), (0x12, value)] {
        m.push(tag);
        m.push(u8::try_from(bytes.len()).expect("short field"));
        m.extend_from_slice(bytes);
    }
    m
}

/// Sends one request on `send` and reads the whole answer within [`DEADLINE`].
/// With `end` false the request stream stays open (as a client that
/// declared more than it sends); the node must answer anyway.
async fn grpc_call(
    send: &mut h2::client::SendRequest<Bytes>,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    end: bool,
) -> GrpcAnswer {
    http2_call(send, "POST", path, headers, body, end).await
}

/// [`grpc_call`] with any HTTP method.
async fn http2_call(
    send: &mut h2::client::SendRequest<Bytes>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    end: bool,
) -> GrpcAnswer {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(()).expect("request");
    let answer = async {
        let mut ready = send.clone().ready().await.expect("connection ready");
        let (response, mut stream) = ready.send_request(req, false).expect("send request");
        // The node may answer (and close the stream) from the headers alone,
        // before the body is queued: an unknown method needs no body. h2 then
        // refuses the body as sent on an inactive stream, which is no failure
        // of the node; its answer is read below either way.
        if let Err(e) = stream.send_data(Bytes::from(body), end) {
            assert!(
                e.is_reset() || format!("{e:?}").contains("InactiveStreamId"),
                "send body: {e:?}"
            );
        }
        let response = response.await.expect("response");
        let http = response.status().as_u16();
        let header = |h: &http::HeaderMap, name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut status = header(response.headers(), "grpc-status");
        let mut message = header(response.headers(), "grpc-message");
        let mut recv = response.into_body();
        let mut body = 0;
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.expect("body");
            body += chunk.len();
            let _ = recv.flow_control().release_capacity(chunk.len());
        }
        if let Some(trailers) = recv.trailers().await.expect("trailers") {
            status = status.or_else(|| header(&trailers, "grpc-status"));
            message = message.or_else(|| header(&trailers, "grpc-message"));
        }
        // Release the request stream if it is still open.
        stream.send_reset(h2::Reason::CANCEL);
        GrpcAnswer {
            http,
            status: status.map(|s| s.parse().expect("numeric grpc-status")),
            message: message.unwrap_or_default(),
            body,
        }
    };
    tokio::time::timeout(DEADLINE, answer)
        .await
        .unwrap_or_else(|_| panic!("no answer to {path} within {DEADLINE:?}"))
}

/// HTTP headers as (name, value) pairs.
type Headers = &'static [(&'static str, &'static str)];

/// One malformed gRPC request: what it is, the path, the headers, the
/// body, whether the request stream ends, and the statuses that may answer.
type GrpcCase = (
    &'static str,
    &'static str,
    Headers,
    Vec<u8>,
    bool,
    &'static [u32],
);

const GRPC: Headers = &[("content-type", "application/grpc"), ("te", "trailers")];

// ---------------------------------------------------------------------------
// UDP and QUIC.

/// What kind of QUIC packet a reply is.
fn packet_kind(p: &[u8]) -> &'static str {
    match p {
        [] => "empty",
        [b, 0, 0, 0, 0, ..] if b & 0x80 != 0 => "version negotiation",
        [b, ..] if b & 0x80 != 0 && (b >> 4) & 0x03 == 3 => "retry",
        [b, ..] if b & 0x80 != 0 => "long-header handshake packet",
        _ => "short header (stateless reset)",
    }
}

/// Sends each of `datagrams` from `socket` and collects what comes back
/// until nothing has arrived for [`QUIET`].
async fn exchange(socket: &UdpSocket, to: SocketAddr, datagrams: &[Vec<u8>]) -> Vec<Vec<u8>> {
    for d in datagrams {
        let _ = socket.send_to(d, to).await;
    }
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65_536];
    // Bounded: at most one reply per datagram sent, and a quiet window.
    while replies.len() < datagrams.len() {
        match tokio::time::timeout(QUIET, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => replies.push(buf[..n].to_vec()),
            _ => break,
        }
    }
    replies
}

/// Dials the node's QUIC port with `cert` offering `alpn`: the client's
/// endpoint (to close when done), its address, and the handshake's result.
async fn quic_dial(
    node: SocketAddr,
    cert: &TlsFiles,
    alpn: &[u8],
) -> (
    quinn::Endpoint,
    SocketAddr,
    Result<quinn::Connection, quinn::ConnectionError>,
) {
    let tls = vergent_tls::client_config(&identity(cert), &[alpn]).expect("client config");
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic client config");
    let endpoint =
        quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("endpoint");
    let local = endpoint.local_addr().expect("local");
    let connecting = endpoint
        .connect_with(
            quinn::ClientConfig::new(Arc::new(crypto)),
            node,
            "127.0.0.1",
        )
        .expect("connect");
    let result = tokio::time::timeout(DEADLINE, connecting)
        .await
        .unwrap_or_else(|_| {
            panic!("the QUIC handshake neither completed nor failed in {DEADLINE:?}")
        });
    (endpoint, local, result)
}

/// Dials as [`quic_dial`] and reports how the node ended the connection: a
/// failed handshake, or a close.
async fn quic_refused(node: SocketAddr, cert: &TlsFiles, alpn: &[u8]) -> (SocketAddr, String) {
    let (endpoint, local, result) = quic_dial(node, cert, alpn).await;
    let how = match result {
        Err(e) => format!("handshake failed: {e}"),
        Ok(conn) => {
            // TLS 1.3: the client is done before the node has judged its
            // certificate; the node's verdict arrives as a close.
            let reason = tokio::time::timeout(DEADLINE, conn.closed())
                .await
                .unwrap_or_else(|_| panic!("the node kept a refused peer for {DEADLINE:?}"));
            format!("handshake done, then closed: {reason}")
        }
    };
    endpoint.close(quinn::VarInt::from_u32(0), b"");
    (local, how)
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn garbage_and_wrong_protocols_on_the_tcp_port_are_closed_and_change_nothing() {
    let w = Watched::start();
    let addr = w.addr;
    let mut rng = StdRng::seed_from_u64(SEED);
    eprintln!("corpus: seed {SEED:#x}");
    w.rt.block_on(async {
        // Random bytes: every size at once, each on its own connection.
        let mut cases = Vec::new();
        for size in [1usize, 5, 64, 517, 4_096, 65_536] {
            let mut bytes = vec![0u8; size];
            rng.fill(&mut bytes[..]);
            cases.push((format!("{size} random bytes"), bytes));
        }
        // Random bytes that start like a TLS handshake record, so the node
        // waits for the rest of a record that never comes.
        let mut hello_like = vec![0x16, 0x03, 0x01, 0x02, 0x00];
        hello_like.extend((0..100).map(|_| rng.random::<u8>()));
        cases.push((
            "a TLS record header declaring 512 bytes, 100 random bytes sent".into(),
            hello_like,
        ));
        cases.push((
            "plain HTTP/1.1 GET".into(),
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes(),
        ));
        cases.push((
            "plain HTTP/1.1 POST of a gRPC path".into(),
            format!(
                "POST /vergent.api.v1.Kv/Get HTTP/1.1\r\nHost: {addr}\r\n\
                 Content-Type: application/grpc\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0"
            )
            .into_bytes(),
        ));
        cases.push((
            "the HTTP/2 preface without TLS".into(),
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ));
        let runs = cases.into_iter().map(|(name, bytes)| async move {
            let closed = raw_tcp(addr, &bytes).await;
            (name, closed)
        });
        for (name, closed) in futures_join_all(runs).await {
            eprintln!("corpus: tcp: {name} -> {}", closed.describe());
            assert!(
                closed.reply.is_empty() || closed.reply[0] == 0x15,
                "{name}: the node answered with something other than a TLS alert: {closed:?}"
            );
        }
        // Many more, of random sizes, all at once.
        let runs = (0..RANDOM_CONNECTIONS).map(|_| {
            let mut bytes = vec![0u8; rng.random_range(1..=16_384)];
            rng.fill(&mut bytes[..]);
            async move { raw_tcp(addr, &bytes).await }
        });
        let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
        let mut slowest = Duration::ZERO;
        for closed in futures_join_all(runs.collect::<Vec<_>>()).await {
            assert!(
                closed.reply.is_empty() || closed.reply[0] == 0x15,
                "random bytes: the node answered with something other than a TLS alert: \
                 {closed:?}"
            );
            let alert = if closed.reply.is_empty() {
                "nothing"
            } else {
                "a TLS alert"
            };
            let end = closed.end.split(' ').next().unwrap_or_default();
            *outcomes.entry(format!("{alert}, then {end}")).or_default() += 1;
            slowest = slowest.max(closed.after);
        }
        eprintln!(
            "corpus: tcp: {RANDOM_CONNECTIONS} connections of 1..=16384 random bytes at once -> \
             {outcomes:?}, all closed within {slowest:?}"
        );

        // Inside TLS with a good certificate: the wrong ALPN, or HTTP/1.1
        // spoken after agreeing on h2.
        let wrong_alpn = tls_client(&w.pki, Some(&w.pki.client), &[b"http/1.1"]);
        let mark = w.log_mark();
        let r = tls_refused(addr, wrong_alpn, b"").await;
        let line = w
            .log_line(mark, &["refused TLS connection", &r.local.to_string()])
            .expect("the node logs the refusal");
        eprintln!(
            "corpus: tcp: TLS with ALPN http/1.1 only -> {}; node log: {line}",
            r.how
        );
        assert!(r.how.contains("NoApplicationProtocol"), "{r:?}");
        assert!(line.contains("WARN") && line.contains("protocol"), "{line}");
        let h1 = tls_client(&w.pki, Some(&w.pki.client), &[b"h2"]);
        let r = tls_refused(
            addr,
            h1,
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        )
        .await;
        // The node's HTTP/2 preface (a SETTINGS frame, type 4), then it
        // closes on the bad client preface.
        eprintln!(
            "corpus: tcp: HTTP/1.1 inside TLS after agreeing on h2 -> {}",
            r.how
        );
    });
    w.finish();
}

/// Runs `futs` concurrently on the current runtime and returns their
/// results in order.
async fn futures_join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("case task"));
    }
    out
}

#[test]
fn bad_client_certificates_fail_the_tls_handshake_and_are_logged() {
    let w = Watched::start();
    let pki = &w.pki;
    let cases: Vec<(&str, Option<TlsFiles>, &[&str], &str)> = vec![
        // (input, certificate, what the client sees, what the node logs)
        (
            "no client certificate",
            None,
            &["CertificateRequired"],
            "no certificate",
        ),
        (
            "expired client certificate",
            Some(pki.cert("expired", Role::Client, Issuer::Ours, Validity::Expired)),
            &["CertificateExpired"],
            "expired",
        ),
        (
            "not-yet-valid client certificate",
            Some(pki.cert("early", Role::Client, Issuer::Ours, Validity::NotYetValid)),
            &["CertificateExpired"],
            "not valid yet",
        ),
        (
            "client certificate from another CA",
            Some(pki.cert("intruder", Role::Client, Issuer::Other, Validity::Now)),
            &["UnknownCA"],
            "UnknownIssuer",
        ),
        (
            "certificate with EKU serverAuth only",
            Some(pki.cert_with_eku(
                "server-only",
                vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
            )),
            &["UnsupportedCertificate", "BadCertificate"],
            "extended key usage",
        ),
    ];
    w.rt.block_on(async {
        for (round, (name, cert, client_sees, node_logs)) in
            (0..ROUNDS).flat_map(|round| cases.iter().map(move |c| (round, c)))
        {
            let config = tls_client(pki, cert.as_ref(), &[b"h2"]);
            let mark = w.log_mark();
            let r = tls_refused(w.addr, config, b"").await;
            let line = w.log_line(mark, &["refused TLS connection", &r.local.to_string()]);
            if round == 0 {
                eprintln!(
                    "corpus: tls: {name} -> client: {}; node log: {}",
                    r.how,
                    line.as_deref().unwrap_or("(nothing)")
                );
            }
            assert!(
                client_sees.iter().any(|s| r.how.contains(s)),
                "{name}: expected one of {client_sees:?}, got {}",
                r.how
            );
            let line = line.unwrap_or_else(|| panic!("{name}: the node logged no refusal"));
            assert!(
                line.contains("WARN") && line.contains(node_logs),
                "{name}: the warning does not name the reason ({node_logs:?}): {line}"
            );
        }
        eprintln!("corpus: tls: each case {ROUNDS} times, each on a new connection");
    });
    w.finish();
}

#[test]
fn a_certificate_without_any_eku_is_served_as_a_client() {
    // webpki (RFC 5280 4.2.1.12) treats a certificate without an extended
    // key usage extension as good for any purpose, and the node's role
    // rule makes it a client: the cluster CA issued it, so it is served.
    // This records that choice; the peer protocol refuses it (below).
    let w = Watched::start();
    let no_eku = w.pki.cert_with_eku("no-eku", vec![]);
    w.rt.block_on(async {
        let c = connect(w.addr, &no_eku).await;
        let got = c.get("sentinel-0").await;
        eprintln!(
            "corpus: tls: certificate without EKU -> served as a client: get {}",
            if got.is_ok() { "ok" } else { "failed" }
        );
        assert!(got.expect("get").is_some());
    });
    w.finish();
}

#[test]
fn malformed_grpc_requests_get_clear_statuses_and_change_nothing() {
    let w = Watched::start();
    w.rt.block_on(async {
        let put = "/vergent.api.v1.Kv/Put";
        let valid_put = frame(0, &put_request(b"corpus", b"bad!!!"));
        // (input, path, headers, body, end of stream, acceptable statuses).
        // A JSON body labelled application/json is refused before gRPC, with
        // HTTP 415 (a_well_framed_put_with_a_non_grpc_content_type_is_refused).
        let cases: Vec<GrpcCase> = vec![
            (
                "a frame header declaring 100 bytes, 10 sent, end of stream",
                put,
                GRPC,
                frame_declaring(0, 100, &[0x0a; 10]),
                true,
                &[GRPC_INTERNAL],
            ),
            (
                "a frame header declaring 0xFFFFFFFF bytes, stream left open",
                put,
                GRPC,
                frame_declaring(0, u32::MAX, &[]),
                false,
                &[GRPC_OUT_OF_RANGE, GRPC_RESOURCE_EXHAUSTED],
            ),
            (
                "a frame header declaring 16 MiB, 1 KiB sent, stream left open",
                put,
                GRPC,
                frame_declaring(0, 16 << 20, &[0u8; 1024]),
                false,
                &[GRPC_OUT_OF_RANGE, GRPC_RESOURCE_EXHAUSTED],
            ),
            (
                "a valid frame header around 16 bytes that are not protobuf",
                put,
                GRPC,
                frame(0, &[0xff; 16]),
                true,
                &[GRPC_INTERNAL, GRPC_INVALID_ARGUMENT],
            ),
            (
                "the compressed flag without grpc-encoding",
                put,
                GRPC,
                {
                    let mut f = valid_put.clone();
                    f[0] = 1;
                    f
                },
                true,
                &[GRPC_INTERNAL],
            ),
            (
                "a compression flag of 7",
                put,
                GRPC,
                {
                    let mut f = valid_put.clone();
                    f[0] = 7;
                    f
                },
                true,
                &[GRPC_INTERNAL],
            ),
            (
                "grpc-encoding gzip on a body that is not gzip",
                put,
                &[
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                    ("grpc-encoding", "gzip"),
                ],
                {
                    let mut f = valid_put.clone();
                    f[0] = 1;
                    f
                },
                true,
                &[GRPC_UNIMPLEMENTED, GRPC_INTERNAL],
            ),
            (
                "no message at all, end of stream",
                put,
                GRPC,
                Vec::new(),
                true,
                &[GRPC_INTERNAL],
            ),
            (
                "an unknown method",
                "/vergent.api.v1.Kv/Drop",
                GRPC,
                valid_put.clone(),
                true,
                &[GRPC_UNIMPLEMENTED],
            ),
            (
                "an unknown service",
                "/etcdserverpb.KV/Range",
                GRPC,
                valid_put.clone(),
                true,
                &[GRPC_UNIMPLEMENTED],
            ),
        ];
        for round in 0..ROUNDS {
            // Every case on one connection, a new connection each round.
            let mut h2 = h2_connect(&w.pki, w.addr).await;
            for (name, path, headers, body, end, expected) in &cases {
                let a = grpc_call(&mut h2, path, headers, body.clone(), *end).await;
                if round == 0 {
                    eprintln!("corpus: grpc: {name} -> {}", a.describe());
                }
                let status = a
                    .status
                    .unwrap_or_else(|| panic!("{name}: no grpc-status: {a:?}"));
                assert_ne!(status, GRPC_OK, "{name}: answered OK");
                assert!(
                    expected.contains(&status),
                    "{name}: expected grpc-status in {expected:?}, got {a:?}"
                );
                assert_eq!(a.body, 0, "{name}: a refused call got a message: {a:?}");
            }
            // The same connection still serves a well-formed call.
            let get = frame(0, &[0x0a, 0x06, b'c', b'o', b'r', b'p', b'u', b's']);
            let a = grpc_call(&mut h2, "/vergent.api.v1.Kv/Get", GRPC, get, true).await;
            if round == 0 {
                eprintln!(
                    "corpus: grpc: a well-formed Get on the same connection -> {}",
                    a.describe()
                );
            }
            assert_eq!(a.status, Some(GRPC_OK), "{a:?}");
        }
        eprintln!(
            "corpus: grpc: {} cases {ROUNDS} times, a new connection each round",
            cases.len()
        );
    });
    w.finish();
}

// Failed before the node refused them (tonic routes by path alone; see
// grpc/grpc-rust issue 1720): each was served as gRPC and stored its key.
#[test]
fn a_well_framed_put_with_a_non_grpc_content_type_is_refused() {
    // gRPC over HTTP/2: "If Content-Type does not begin with
    // application/grpc, gRPC servers SHOULD respond with HTTP status of 415
    // (Unsupported Media Type)". A client that sends a valid protobuf frame
    // labelled as something else is not speaking gRPC.
    let w = Watched::start();
    let cases: [(&str, &str, Headers); 4] = [
        (
            "content-type application/json",
            "POST",
            &[("content-type", "application/json"), ("te", "trailers")],
        ),
        (
            "content-type text/plain",
            "POST",
            &[("content-type", "text/plain"), ("te", "trailers")],
        ),
        ("no content-type", "POST", &[("te", "trailers")]),
        ("method GET", "GET", GRPC),
    ];
    let answers = w.rt.block_on(async {
        let mut h2 = h2_connect(&w.pki, w.addr).await;
        let mut answers = Vec::new();
        for (i, (name, method, headers)) in cases.iter().enumerate() {
            let body = frame(0, &put_request(format!("not-grpc-{i}").as_bytes(), b"x"));
            let a = http2_call(
                &mut h2,
                method,
                "/vergent.api.v1.Kv/Put",
                headers,
                body,
                true,
            )
            .await;
            eprintln!(
                "corpus: grpc: a well-framed Put with {name} -> {}",
                a.describe()
            );
            answers.push((name, a));
        }
        let mut stored = Vec::new();
        for i in 0..cases.len() {
            let key = format!("not-grpc-{i}");
            if w.client.get(key.clone()).await.expect("get").is_some() {
                stored.push(key);
            }
        }
        (answers, stored)
    });
    let (answers, stored) = answers;
    // The gRPC spec's answers: 415 for a content type that is not gRPC,
    // 405 for a method other than POST.
    for (name, a) in &answers {
        let want = if name.starts_with("method") { 405 } else { 415 };
        assert_eq!(a.http, want, "{name}: {a:?}");
    }
    let served: Vec<_> = answers
        .iter()
        .filter(|(_, a)| a.http == 200 && a.status == Some(GRPC_OK))
        .map(|(name, _)| name)
        .collect();
    assert!(
        served.is_empty() && stored.is_empty(),
        "requests that are not gRPC were served as gRPC: {served:?}; keys they stored: {stored:?}"
    );
    w.finish();
}

#[test]
fn random_datagrams_and_truncated_quic_on_the_udp_port_change_nothing() {
    let w = Watched::start();
    let initial = capture_initial(&w.pki.node);
    let mut rng = StdRng::seed_from_u64(SEED);
    eprintln!("corpus: seed {SEED:#x}");
    w.rt.block_on(async {
        // 2,000 random datagrams of 1..=1500 bytes from 20 sources.
        let mut sent_bytes = 0;
        let mut replies: Vec<Vec<u8>> = Vec::new();
        let mut sources = Vec::new();
        for _ in 0..20 {
            let batch: Vec<Vec<u8>> = (0..DATAGRAMS / 20)
                .map(|_| {
                    let mut d = vec![0u8; rng.random_range(1..=1500)];
                    rng.fill(&mut d[..]);
                    d
                })
                .collect();
            sent_bytes += batch.iter().map(Vec::len).sum::<usize>();
            sources.push(batch);
        }
        let runs = sources.into_iter().map(|batch| async move {
            let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            exchange(&s, w.addr, &batch).await
        });
        for r in futures_join_all(runs).await {
            replies.extend(r);
        }
        let reply_bytes: usize = replies.iter().map(Vec::len).sum();
        let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
        for r in &replies {
            *kinds.entry(packet_kind(r)).or_default() += 1;
        }
        eprintln!(
            "corpus: udp: {DATAGRAMS} random datagrams ({sent_bytes} bytes) -> {} replies \
             ({reply_bytes} bytes): {kinds:?}",
            replies.len()
        );
        assert!(
            !kinds.contains_key("long-header handshake packet"),
            "the node started a handshake with random bytes: {kinds:?}"
        );
        // The anti-amplification limit of RFC 9000 (3x) for unvalidated
        // sources; the node should stay far below.
        assert!(
            reply_bytes <= sent_bytes,
            "the node amplified: {reply_bytes} bytes out for {sent_bytes} in"
        );

        // A real Initial, cut short or corrupted, each from its own source.
        let mut corrupted = initial.clone();
        let n = corrupted.len();
        for b in &mut corrupted[n - 64..] {
            *b ^= 0x5a;
        }
        let cases = [
            ("the first byte of an Initial", initial[..1].to_vec()),
            ("the first 6 bytes of an Initial", initial[..6].to_vec()),
            ("the first 40 bytes of an Initial", initial[..40].to_vec()),
            ("the first 600 bytes of an Initial", initial[..600].to_vec()),
            (
                "an Initial less its last byte",
                initial[..initial.len() - 1].to_vec(),
            ),
        ];
        for (name, d) in cases {
            let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let r = exchange(&s, w.addr, std::slice::from_ref(&d)).await;
            let kinds: Vec<_> = r.iter().map(|p| packet_kind(p)).collect();
            eprintln!("corpus: udp: {name} ({} bytes) -> {kinds:?}", d.len());
            assert!(r.is_empty(), "{name}: the node answered {kinds:?}");
        }
        // A whole Initial, replayed or with its payload corrupted: the node
        // asks the source to prove its address (a stateless Retry, smaller
        // than what it got) before it decrypts or keeps anything.
        for (name, d) in [
            (
                "a whole captured Initial, replayed from a new source",
                &initial,
            ),
            (
                "a whole Initial with its last 64 bytes corrupted",
                &corrupted,
            ),
        ] {
            let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let r = exchange(&s, w.addr, std::slice::from_ref(d)).await;
            let kinds: Vec<_> = r.iter().map(|p| packet_kind(p)).collect();
            let sizes: Vec<_> = r.iter().map(Vec::len).collect();
            eprintln!(
                "corpus: udp: {name} ({} bytes) -> {kinds:?} of {sizes:?} bytes",
                d.len()
            );
            assert!(
                kinds.iter().all(|k| *k == "retry") && sizes.iter().sum::<usize>() < d.len(),
                "{name}: {kinds:?} {sizes:?}"
            );
        }

        // A real peer still completes a QUIC handshake afterwards (and
        // leaves without sending anything, so membership stays as it was).
        let (endpoint, _, result) = quic_dial(w.addr, &w.pki.node, PEER_ALPN).await;
        eprintln!(
            "corpus: udp: a good node certificate afterwards -> {}",
            match &result {
                Ok(_) => "handshake completed".to_string(),
                Err(e) => format!("handshake failed: {e}"),
            }
        );
        let conn = result.expect("a good peer's handshake after the corpus");
        conn.close(quinn::VarInt::from_u32(0), b"done");
        endpoint.close(quinn::VarInt::from_u32(0), b"");
    });
    w.finish();
}

#[test]
fn bad_peer_certificates_and_a_wrong_alpn_are_refused_on_the_quic_port() {
    let w = Watched::start();
    let pki = &w.pki;
    let cases: Vec<(&str, TlsFiles, &[u8], &str, &str)> = vec![
        // (input, certificate, ALPN, what the client sees, what the node logs)
        (
            "a node certificate with ALPN h3",
            pki.node.clone(),
            b"h3",
            "error 120: peer doesn't support any known protocol",
            "error 120",
        ),
        (
            "a client certificate",
            pki.client.clone(),
            PEER_ALPN,
            NOT_A_NODE_REASON,
            "not a node",
        ),
        (
            "a certificate without EKU",
            pki.cert_with_eku("no-eku-peer", vec![]),
            PEER_ALPN,
            NOT_A_NODE_REASON,
            "not a node",
        ),
        (
            "a certificate with EKU serverAuth only",
            pki.cert_with_eku(
                "server-only-peer",
                vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
            ),
            PEER_ALPN,
            "",
            "extended key usage",
        ),
        (
            "an expired node certificate",
            pki.cert("expired-peer", Role::Node, Issuer::Ours, Validity::Expired),
            PEER_ALPN,
            "",
            "expired",
        ),
        (
            "a not-yet-valid node certificate",
            pki.cert(
                "early-peer",
                Role::Node,
                Issuer::Ours,
                Validity::NotYetValid,
            ),
            PEER_ALPN,
            "",
            "not valid yet",
        ),
        (
            "a node certificate from another CA",
            pki.cert("foreign-peer", Role::Node, Issuer::Other, Validity::Now),
            PEER_ALPN,
            "",
            "UnknownIssuer",
        ),
    ];
    w.rt.block_on(async {
        for (round, (name, cert, alpn, client_sees, node_logs)) in
            (0..QUIC_ROUNDS).flat_map(|round| cases.iter().map(move |c| (round, c)))
        {
            let mark = w.log_mark();
            let (local, how) = quic_refused(w.addr, cert, alpn).await;
            let line = w.log_line(mark, &["refused peer connection", &local.to_string()]);
            if round == 0 {
                eprintln!(
                    "corpus: quic: {name} -> client: {how}; node log: {}",
                    line.as_deref().unwrap_or("(nothing)")
                );
            }
            assert!(
                how.contains(client_sees) && !how.contains("done, then closed: closed by peer: 0"),
                "{name}: expected {client_sees:?}, got {how}"
            );
            let line = line.unwrap_or_else(|| panic!("{name}: the node logged no refusal"));
            assert!(
                line.contains("WARN") && line.contains(node_logs),
                "{name}: the warning does not name the reason ({node_logs:?}): {line}"
            );
        }
        eprintln!("corpus: quic: each case {QUIC_ROUNDS} times, each from a new endpoint");
    });
    w.finish();
}
