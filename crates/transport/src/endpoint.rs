//! The QUIC endpoint: one UDP socket that both accepts and dials.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};
use vergent_tls::{Identity, Role};

use crate::{Error, FrameReader, FrameWriter};

/// ALPN of the peer protocol, so a gRPC client can never be mistaken for a peer.
const ALPN: &[u8] = b"vergent-peer/1";
/// QUIC application close code for a peer whose certificate is not a node's.
const CLOSE_NOT_A_NODE: u32 = 2;

/// Timing knobs of the transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Keep-alive ping interval on idle connections.
    pub keep_alive: Duration,
    /// A connection with no traffic (keep-alives included) for this long is closed.
    pub idle_timeout: Duration,
    /// Time allowed for a QUIC + TLS handshake.
    pub handshake_timeout: Duration,
    /// First redial delay after a failure; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest redial delay.
    pub backoff_max: Duration,
    /// Incoming handshakes in progress at once; more are refused (QUIC
    /// CONNECTION_REFUSED), so a flood cannot queue unbounded work.
    pub max_handshakes: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_handshakes: 64,
        }
    }
}

/// Who is on the other end of a connection, from its verified certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The peer's UDP address (its listening address: peers dial from the socket they listen on).
    pub addr: SocketAddr,
    /// Common name of its certificate.
    pub cn: Option<String>,
}

/// Something a peer sent us.
#[derive(Debug)]
pub enum Incoming {
    /// An unreliable datagram.
    Datagram {
        /// The sender.
        peer: PeerIdentity,
        /// The payload.
        bytes: Bytes,
    },
    /// A bidirectional stream the peer opened.
    Stream {
        /// The opener.
        peer: PeerIdentity,
        /// Our sending half.
        writer: FrameWriter,
        /// Our receiving half.
        reader: FrameReader,
    },
}

enum Slot {
    Connected(quinn::Connection),
    Failed { retry_at: Instant, delay: Duration },
}

struct Shared {
    slots: Mutex<HashMap<SocketAddr, Slot>>,
    incoming: mpsc::Sender<Incoming>,
}

/// A QUIC endpoint bound to the node's port.
#[derive(Clone)]
pub struct Transport {
    endpoint: quinn::Endpoint,
    /// What this node presents when it dials; replaced by
    /// [`Transport::reload_identity`].
    client: Arc<RwLock<quinn::ClientConfig>>,
    config: TransportConfig,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

fn quinn_transport(config: &TransportConfig) -> Result<Arc<quinn::TransportConfig>, Error> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(config.keep_alive));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(config.idle_timeout)
            .map_err(|e| Error::QuicTls(format!("idle timeout: {e}")))?,
    ));
    Ok(Arc::new(t))
}

/// The QUIC server and client configurations presenting `identity`.
fn quic_configs(
    identity: &Identity,
    config: &TransportConfig,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), Error> {
    let server_tls = vergent_tls::server_config(identity, &[ALPN])?;
    let client_tls = vergent_tls::client_config(identity, &[ALPN])?;
    let transport = quinn_transport(config)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(server_tls).map_err(|e| Error::QuicTls(e.to_string()))?,
    ));
    server.transport_config(transport.clone());
    let mut client = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(client_tls).map_err(|e| Error::QuicTls(e.to_string()))?,
    ));
    client.transport_config(transport);
    Ok((server, client))
}

impl Transport {
    /// Binds the UDP socket and starts accepting peers. Must run inside a
    /// tokio runtime. Returns the receiver of everything peers send.
    pub fn bind(
        addr: SocketAddr,
        identity: &Identity,
        config: TransportConfig,
    ) -> Result<(Self, mpsc::Receiver<Incoming>), Error> {
        vergent_tls::install_default_provider();
        let (server, client) = quic_configs(identity, &config)?;
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let endpoint = quinn::Endpoint::new(
            restart_stable_endpoint(identity),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| Error::Bind { addr, source })?;
        let (tx, rx) = mpsc::channel(1024);
        let shared = Arc::new(Shared {
            slots: Mutex::new(HashMap::new()),
            incoming: tx,
        });
        let me = Self {
            endpoint,
            client: Arc::new(RwLock::new(client)),
            config,
            shared,
        };
        tokio::spawn(me.clone().accept_loop());
        Ok((me, rx))
    }

    /// Presents `identity` (certificate, key and CA) from now on: new
    /// connections in both directions use it; established ones keep the
    /// identity they were made with until they close.
    pub fn reload_identity(&self, identity: &Identity) -> Result<(), Error> {
        let (server, client) = quic_configs(identity, &self.config)?;
        self.endpoint.set_server_config(Some(server));
        *self.client.write().unwrap_or_else(PoisonError::into_inner) = client;
        Ok(())
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.endpoint.local_addr().map_err(|source| Error::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })
    }

    async fn accept_loop(self) {
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.config.max_handshakes.max(1),
        ));
        while let Some(incoming) = self.endpoint.accept().await {
            // A source address is validated (a Retry round trip) before the
            // node spends a handshake, and its signature, on it: spoofed
            // Initials cost one stateless Retry packet each.
            if !incoming.remote_address_validated() && incoming.may_retry() {
                if let Err(e) = incoming.retry() {
                    debug!(error = %e, "could not send a QUIC retry");
                }
                continue;
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!(peer = %incoming.remote_address(), "refusing a peer connection: too many handshakes in progress");
                incoming.refuse();
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let addr = incoming.remote_address();
                let conn = match tokio::time::timeout(me.config.handshake_timeout, incoming).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        warn!(peer = %addr, error = %e, "refused peer connection");
                        return;
                    }
                    Err(_) => {
                        warn!(peer = %addr, "refused peer connection: handshake timed out");
                        return;
                    }
                };
                match verify_node(&conn) {
                    Ok(peer) => {
                        debug!(peer = %addr, cn = ?peer.cn, "peer connected");
                        {
                            let mut slots = me.lock();
                            let reuse = !matches!(slots.get(&addr), Some(Slot::Connected(c)) if c.close_reason().is_none());
                            if reuse {
                                slots.insert(addr, Slot::Connected(conn.clone()));
                            }
                        }
                        me.serve(conn, peer);
                    }
                    Err(e) => {
                        warn!(peer = %addr, error = %e, "refused peer connection");
                        conn.close(
                            quinn::VarInt::from_u32(CLOSE_NOT_A_NODE),
                            b"not a node certificate",
                        );
                    }
                }
            });
        }
    }

    /// Forwards the peer's datagrams and streams to the incoming channel.
    fn serve(&self, conn: quinn::Connection, peer: PeerIdentity) {
        let tx = self.shared.incoming.clone();
        let (c, p) = (conn.clone(), peer.clone());
        tokio::spawn(async move {
            while let Ok(bytes) = c.read_datagram().await {
                if tx
                    .send(Incoming::Datagram {
                        peer: p.clone(),
                        bytes,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let tx = self.shared.incoming.clone();
        tokio::spawn(async move {
            while let Ok((send, recv)) = conn.accept_bi().await {
                let item = Incoming::Stream {
                    peer: peer.clone(),
                    writer: FrameWriter { inner: send },
                    reader: FrameReader { inner: recv },
                };
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        self.shared
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The live connection to `to`, dialing (with backoff) when there is none.
    async fn connection(&self, to: SocketAddr) -> Result<quinn::Connection, Error> {
        let previous_delay = {
            let slots = self.lock();
            match slots.get(&to) {
                Some(Slot::Connected(c)) if c.close_reason().is_none() => return Ok(c.clone()),
                Some(Slot::Failed { retry_at, .. }) if Instant::now() < *retry_at => {
                    return Err(Error::Backoff(to));
                }
                Some(Slot::Failed { delay, .. }) => Some(*delay),
                _ => None,
            }
        };
        match self.dial(to).await {
            Ok((conn, peer)) => {
                self.lock().insert(to, Slot::Connected(conn.clone()));
                self.serve(conn.clone(), peer);
                Ok(conn)
            }
            Err(e) => {
                let delay = previous_delay
                    .map(|d| (d * 2).min(self.config.backoff_max))
                    .unwrap_or(self.config.backoff_min);
                self.lock().insert(
                    to,
                    Slot::Failed {
                        retry_at: Instant::now() + delay,
                        delay,
                    },
                );
                Err(e)
            }
        }
    }

    async fn dial(&self, to: SocketAddr) -> Result<(quinn::Connection, PeerIdentity), Error> {
        let err = |reason: String| Error::Connection { addr: to, reason };
        let connecting = self
            .endpoint
            .connect_with(
                self.client
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
                to,
                &to.ip().to_string(),
            )
            .map_err(|e| err(e.to_string()))?;
        let conn = tokio::time::timeout(self.config.handshake_timeout, connecting)
            .await
            .map_err(|_| err("handshake timed out".into()))?
            .map_err(|e| err(e.to_string()))?;
        let peer = verify_node(&conn)?;
        Ok((conn, peer))
    }

    /// Sends a datagram to `to`, connecting first if needed.
    pub async fn send_datagram(&self, to: SocketAddr, bytes: Bytes) -> Result<(), Error> {
        let conn = self.connection(to).await?;
        conn.send_datagram(bytes)
            .map_err(|e| Error::Datagram(e.to_string()))
    }

    /// Opens a bidirectional frame stream to `to`, connecting first if needed.
    pub async fn open_stream(&self, to: SocketAddr) -> Result<(FrameWriter, FrameReader), Error> {
        let conn = self.connection(to).await?;
        let (send, recv) = conn.open_bi().await.map_err(|e| Error::Connection {
            addr: to,
            reason: e.to_string(),
        })?;
        Ok((FrameWriter { inner: send }, FrameReader { inner: recv }))
    }

    /// The verified identity of the peer at `to`, if connected right now.
    pub fn peer_identity(&self, to: SocketAddr) -> Option<PeerIdentity> {
        match self.lock().get(&to) {
            Some(Slot::Connected(c)) if c.close_reason().is_none() => verify_node(c).ok(),
            _ => None,
        }
    }

    /// Whether a live connection to `to` exists right now.
    pub fn is_connected(&self, to: SocketAddr) -> bool {
        matches!(self.lock().get(&to), Some(Slot::Connected(c)) if c.close_reason().is_none())
    }

    /// Closes every connection and waits (bounded) for peers to be told.
    pub async fn shutdown(&self) {
        self.endpoint.close(quinn::VarInt::from_u32(0), b"shutdown");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Accepts only peers whose verified certificate is a node certificate.
/// QUIC endpoint settings that are the same in every life of the process,
/// derived from the node's private key: the stateless-reset key, and the key
/// that signs connection IDs. A node killed and restarted on its port then
/// recognises the connection IDs of its previous life and answers their
/// packets with a reset its peers accept, so they redial at once instead of
/// sending into a dead connection until its idle timeout. (With quinn's
/// default random keys the new process drops those packets as foreign.)
/// Anyone without the private key can forge neither.
fn restart_stable_endpoint(identity: &Identity) -> quinn::EndpointConfig {
    let label = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"vergent quic endpoint keys v1");
    let secret = ring::hmac::sign(&label, identity.private_key().secret_der());
    let secret = secret.as_ref();
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret[..16]);
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&secret[16..24]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

fn verify_node(conn: &quinn::Connection) -> Result<PeerIdentity, Error> {
    let addr = conn.remote_address();
    let certs = conn
        .peer_identity()
        .and_then(|any| {
            any.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or_else(|| Error::Connection {
            addr,
            reason: "no peer certificate".into(),
        })?;
    let leaf = certs.first().ok_or_else(|| Error::Connection {
        addr,
        reason: "empty peer certificate chain".into(),
    })?;
    let info = vergent_tls::peer_info(leaf.as_ref())?;
    if info.role != Role::Node {
        return Err(Error::NotANode {
            addr,
            role: info.role.to_string(),
        });
    }
    Ok(PeerIdentity { addr, cn: info.cn })
}
