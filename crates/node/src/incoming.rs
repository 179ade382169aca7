//! Accepts TCP connections and completes mTLS handshakes for the gRPC server.
//!
//! Handshakes run concurrently and with a deadline, so a slow or hostile
//! client cannot hold up the others. Refused handshakes (no client
//! certificate, unknown CA, expired certificate, TLS 1.2) are logged with the
//! peer address and never reach the API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream of established TLS connections, ending when `cancel` fires.
pub(crate) fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    cancel: CancellationToken,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
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
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(tls) = handshake(&acceptor, tcp, peer).await {
                    let _ = tx.send(Ok(tls)).await;
                }
            });
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
