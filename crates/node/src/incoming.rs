//! Accepts TCP connections and completes mTLS handshakes for the gRPC server.
//!
//! Handshakes run concurrently and with a deadline, so a slow or hostile
//! client cannot hold up the others. Refused handshakes (no client
//! certificate, unknown CA, expired certificate, TLS 1.2) are logged with the
//! peer address and never reach the API.
//!
//! Nothing a remote party does can exhaust the node's file descriptors:
//! at most `max_handshakes` unauthenticated connections are held (a new one
//! evicts the oldest, so a flood of half-open connections cannot lock out a
//! real client), and at most `max_connections` established ones (beyond
//! that a new connection is closed at once). The node derives both from its
//! file-descriptor limit, after setting aside what the storage engine may
//! open, so storage never fails for want of a descriptor.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tracing::{debug, warn};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many client connections the node holds at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnectionLimits {
    /// Connections still in their TLS handshake.
    pub(crate) max_handshakes: usize,
    /// Established (authenticated) connections.
    pub(crate) max_connections: usize,
}

/// Counters of refused and evicted connections, for `status` and tests.
#[derive(Debug, Default)]
pub(crate) struct ConnectionStats {
    /// Handshakes cut to make room for newer ones.
    pub(crate) evicted_handshakes: AtomicU64,
    /// Established connections refused at the cap.
    pub(crate) refused_connections: AtomicU64,
}

/// An established client connection; holds its slot until it closes.
pub(crate) struct Conn {
    tls: TlsStream<TcpStream>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}

impl Connected for Conn {
    type ConnectInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tls.connect_info()
    }
}

/// How long a new connection waits for a slot that an evicted handshake or
/// a closing connection is about to free before it is refused.
const SLOT_WAIT: Duration = Duration::from_millis(200);

/// Handshakes in progress, oldest first, so the oldest can be evicted.
#[derive(Default)]
struct Pending {
    next: u64,
    tasks: BTreeMap<u64, AbortHandle>,
}

/// A stream of established TLS connections, ending when `cancel` fires.
/// Each handshake uses the configuration `config` holds when the connection
/// arrives, so a reloaded certificate applies to new connections only.
pub(crate) fn tls_incoming(
    listener: TcpListener,
    config: tokio::sync::watch::Receiver<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    cancel: CancellationToken,
) -> ReceiverStream<Result<Conn, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    // Handshakes hold a slot too, so the two never exceed their sum.
    let established = Arc::new(Semaphore::new(
        limits.max_connections.max(1) + limits.max_handshakes.max(1),
    ));
    let pending = Arc::new(Mutex::new(Pending::default()));
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                () = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and similar: back off, keep serving.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Evict before taking a slot: the evicted handshake's slot is
            // what this connection is to use.
            {
                let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
                while p.tasks.len() >= limits.max_handshakes.max(1) {
                    if let Some((_, oldest)) = p.tasks.pop_first() {
                        oldest.abort();
                        stats.evicted_handshakes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            // An aborted task gives its slot (and its socket) back only once
            // the runtime drops it, so wait a moment instead of refusing at
            // once: a burst accepted without yielding would otherwise find
            // every slot held by evicted tasks and close real clients.
            let Ok(Ok(slot)) =
                tokio::time::timeout(SLOT_WAIT, established.clone().acquire_owned()).await
            else {
                stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, "refused a connection: at the connection limit");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.borrow().clone());
            let tx = tx.clone();
            let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
            let id = p.next;
            p.next += 1;
            let done = pending.clone();
            let task = tokio::spawn(async move {
                let tls = handshake(&acceptor, tcp, peer).await;
                done.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .tasks
                    .remove(&id);
                if let Some(tls) = tls {
                    let _ = tx.send(Ok(Conn { tls, _slot: slot })).await;
                }
            });
            p.tasks.insert(id, task.abort_handle());
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let (_, session) = tls.get_ref();
            let who = session
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| vergent_tls::peer_info(c.as_ref()).ok());
            debug!(%peer, cn = ?who.as_ref().and_then(|w| w.cn.clone()), "TLS client connected");
            Some(tls)
        }
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "refused TLS connection");
            None
        }
        Err(_) => {
            warn!(%peer, "refused TLS connection: handshake timed out");
            None
        }
    }
}

/// Splits the file-descriptor limit between the storage engine (its table
/// files), client connections and handshakes, keeping some for everything
/// else (the WAL, the lock file, sockets of the peer transport, logs).
/// Returns `(storage files, limits)`.
pub(crate) fn budget(
    fd_limit: u64,
    max_connections: Option<usize>,
    max_handshakes: Option<usize>,
) -> (usize, ConnectionLimits) {
    const OTHER: u64 = 64;
    let fd_limit = fd_limit.max(256);
    let storage = (fd_limit / 4).clamp(64, 4096);
    let network = fd_limit.saturating_sub(storage + OTHER) as usize;
    let handshakes = max_handshakes.unwrap_or(256).min(network / 4).max(1);
    let connections = max_connections
        .unwrap_or(usize::MAX)
        .min(network - handshakes)
        .max(1);
    (
        storage as usize,
        ConnectionLimits {
            max_handshakes: handshakes,
            max_connections: connections,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    /// A burst of half-open connections followed by a real client, all
    /// queued before the accept loop runs: the loop evicts the oldest
    /// handshakes, but an evicted task gives its slot back only once the
    /// runtime drops it, so a loop that never yields ran out of slots and
    /// closed the real client (seen as "tls handshake eof" in `badinput`).
    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_of_half_open_connections_never_closes_the_real_client_queued_behind_it() {
        vergent_tls::install_default_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = vergent_testkit::unencrypted_certs(dir.path(), "node-0");
        let server = vergent_tls::Identity::load(&certs.node).expect("node identity");
        let client = vergent_tls::Identity::load(&certs.client).expect("client identity");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let limits = ConnectionLimits {
            max_handshakes: 2,
            max_connections: 2,
        };
        let cancel = CancellationToken::new();
        let mut incoming = tls_incoming(
            listener,
            tokio::sync::watch::channel(Arc::new(
                vergent_tls::server_config(&server, &[b"h2"]).expect("server config"),
            ))
            .1,
            limits,
            Arc::new(ConnectionStats::default()),
            cancel.clone(),
        );
        // The kernel completes these TCP handshakes; nothing runs the accept
        // loop until this test awaits.
        let half_open: Vec<std::net::TcpStream> = (0..50)
            .map(|_| std::net::TcpStream::connect(addr).expect("half-open"))
            .collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(
            vergent_tls::client_config(&client, &[b"h2"]).expect("client config"),
        ));
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let handshake = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .expect("the handshake ends in time");
        assert!(
            handshake.is_ok(),
            "the real client was closed: {:?}",
            handshake.err()
        );
        let conn = tokio::time::timeout(Duration::from_secs(10), incoming.next())
            .await
            .expect("an established connection in time");
        assert!(matches!(conn, Some(Ok(_))));
        drop(half_open);
        cancel.cancel();
    }

    #[test]
    fn connections_and_storage_never_add_up_to_more_than_the_fd_limit() {
        for limit in [256u64, 512, 1024, 20_000, 1 << 20] {
            let (storage, l) = budget(limit, None, None);
            let total = storage + l.max_connections + l.max_handshakes;
            assert!(total as u64 <= limit, "limit {limit}: {storage} + {l:?}");
            assert!(storage >= 64 && l.max_connections >= 1 && l.max_handshakes >= 1);
        }
        let (_, l) = budget(1 << 20, Some(100), Some(10));
        assert_eq!((l.max_connections, l.max_handshakes), (100, 10));
    }
}
