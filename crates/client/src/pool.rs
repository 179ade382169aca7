//! The endpoints a client may use, the one in use, and one gRPC channel per
//! endpoint, made when a call first needs it and kept (it reconnects by
//! itself) until the endpoint is removed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};

use crate::Error;

/// The endpoints, in the order they are tried, and the one in use.
#[derive(Debug)]
pub(crate) struct Pool {
    connector: Connector,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Never empty.
    slots: Vec<Arc<Slot>>,
    /// Index of the endpoint in use.
    current: usize,
}

/// One endpoint and its channel, once made.
#[derive(Debug)]
pub(crate) struct Slot {
    /// `host:port`.
    pub(crate) addr: String,
    channel: OnceCell<Channel>,
}

impl Slot {
    fn new(addr: String) -> Arc<Self> {
        Arc::new(Self {
            addr,
            channel: OnceCell::new(),
        })
    }
}

impl Pool {
    /// A pool of `addrs` (at least one, each a valid `host:port`, in the
    /// order to try them), the first in use.
    pub(crate) fn new(connector: Connector, addrs: Vec<String>) -> Result<Self, Error> {
        if addrs.is_empty() {
            return Err(Error::BadEndpoint(String::new()));
        }
        let mut slots: Vec<Arc<Slot>> = Vec::with_capacity(addrs.len());
        for addr in addrs {
            split_host_port(&addr)?;
            if !slots.iter().any(|s| s.addr == addr) {
                slots.push(Slot::new(addr));
            }
        }
        Ok(Self {
            connector,
            state: Mutex::new(State { slots, current: 0 }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement; a panic elsewhere
        // while holding the lock leaves nothing half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The endpoint in use.
    pub(crate) fn current(&self) -> Arc<Slot> {
        let s = self.state();
        s.slots[s.current].clone()
    }

    /// Every endpoint, in order.
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        self.state().slots.clone()
    }

    /// Makes `slot` the endpoint in use, if it is still in the pool.
    pub(crate) fn use_slot(&self, slot: &Arc<Slot>) {
        let mut s = self.state();
        if let Some(i) = s.slots.iter().position(|x| Arc::ptr_eq(x, slot)) {
            s.current = i;
        }
    }

    /// Moves on from `failed` to the next endpoint, unless another call
    /// already moved on from it (so calls failing together skip one
    /// endpoint, not one each).
    pub(crate) fn fail_over(&self, failed: &Arc<Slot>) {
        let mut s = self.state();
        if Arc::ptr_eq(&s.slots[s.current], failed) {
            s.current = (s.current + 1) % s.slots.len();
        }
    }

    /// Adds `addr` after the others; false if it is already there.
    pub(crate) fn add(&self, addr: String) -> Result<bool, Error> {
        split_host_port(&addr)?;
        let mut s = self.state();
        if s.slots.iter().any(|x| x.addr == addr) {
            return Ok(false);
        }
        s.slots.push(Slot::new(addr));
        Ok(true)
    }

    /// Removes `addr`; false if it is not there or is the only one. Calls
    /// under way on it finish; if it was in use, the next one is.
    pub(crate) fn remove(&self, addr: &str) -> bool {
        let mut s = self.state();
        let Some(i) = s.slots.iter().position(|x| x.addr == addr) else {
            return false;
        };
        if s.slots.len() == 1 {
            return false;
        }
        s.slots.remove(i);
        if i < s.current {
            s.current -= 1;
        } else if s.current == s.slots.len() {
            s.current = 0;
        }
        true
    }

    /// `slot`'s channel, connecting it the first time.
    pub(crate) async fn channel(&self, slot: &Slot) -> Result<Channel, Error> {
        slot.channel
            .get_or_try_init(|| self.connector.connect(&slot.addr))
            .await
            .cloned()
    }

    /// The channel of the endpoint in use, without waiting: a channel that
    /// connects on its first call if none is made yet.
    pub(crate) fn channel_now(&self) -> Result<Channel, Error> {
        let slot = self.current();
        if let Some(c) = slot.channel.get() {
            return Ok(c.clone());
        }
        let (endpoint, connect) = self.connector.parts(&slot.addr)?;
        let channel = endpoint.connect_with_connector_lazy(connect);
        // Keep it unless a call is connecting one right now.
        let _ = slot.channel.set(channel.clone());
        Ok(channel)
    }
}

/// Makes channels: TCP, then TLS 1.3 with the client's identity, then HTTP/2.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    /// The client's TLS configuration (identity, cluster CA, ALPN `h2`).
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// Name to verify in every node's certificate; `None`: each endpoint's host.
    pub(crate) server_name: Option<String>,
    /// Time allowed to establish a connection.
    pub(crate) connect_timeout: Duration,
}

impl Connector {
    fn parts(&self, addr: &str) -> Result<(Endpoint, TlsConnect), Error> {
        let (host, _port) = split_host_port(addr)?;
        let name = self.server_name.clone().unwrap_or(host);
        let server_name =
            ServerName::try_from(name).map_err(|_| Error::BadEndpoint(addr.to_string()))?;
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| Error::BadEndpoint(addr.to_string()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let connect = TlsConnect {
            tls: TlsConnector::from(self.tls.clone()),
            server_name,
            addr: addr.to_string(),
        };
        Ok((endpoint, connect))
    }

    /// Connects to `addr` now.
    async fn connect(&self, addr: &str) -> Result<Channel, Error> {
        let (endpoint, connect) = self.parts(addr)?;
        endpoint
            .connect_with_connector(connect)
            .await
            .map_err(|e| Error::Connect {
                endpoint: addr.to_string(),
                reason: innermost(&e),
            })
    }
}

/// The connector tonic calls for each (re)connection of a channel.
#[derive(Clone)]
struct TlsConnect {
    tls: TlsConnector,
    server_name: ServerName<'static>,
    addr: String,
}

impl tower::Service<http::Uri> for TlsConnect {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(&this.addr).await?;
            tcp.set_nodelay(true)?;
            let tls = this.tls.connect(this.server_name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// `host` and `port` of a `host:port` endpoint (`[v6]:port` too).
pub(crate) fn split_host_port(endpoint: &str) -> Result<(String, u16), Error> {
    let bad = || Error::BadEndpoint(endpoint.to_string());
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn innermost(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(addrs: &[&str]) -> Pool {
        vergent_tls::install_default_provider();
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let connector = Connector {
            tls: Arc::new(tls),
            server_name: None,
            connect_timeout: Duration::from_secs(1),
        };
        Pool::new(connector, addrs.iter().map(|a| a.to_string()).collect()).expect("pool")
    }

    fn addrs(p: &Pool) -> Vec<String> {
        p.slots().iter().map(|s| s.addr.clone()).collect()
    }

    #[test]
    fn endpoints_split_into_host_and_port() {
        assert_eq!(
            split_host_port("127.0.0.1:2001").ok(),
            Some(("127.0.0.1".into(), 2001))
        );
        assert_eq!(split_host_port("[::1]:9").ok(), Some(("::1".into(), 9)));
        assert_eq!(split_host_port("node-1:7").ok(), Some(("node-1".into(), 7)));
        for bad in ["nohost", ":1", "h:0", "h:x"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pool_needs_valid_endpoints_and_keeps_one_of_each() {
        assert!(matches!(
            Pool::new(pool(&["a:1"]).connector, vec![]),
            Err(Error::BadEndpoint(_))
        ));
        let p = pool(&["a:1", "b:2", "a:1"]);
        assert_eq!(addrs(&p), ["a:1", "b:2"]);
        assert!(matches!(p.add("nohost".into()), Err(Error::BadEndpoint(_))));
        assert!(!p.add("b:2".into()).expect("valid"));
        assert!(p.add("c:3".into()).expect("valid"));
        assert_eq!(addrs(&p), ["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn failing_over_moves_to_the_next_endpoint_once_per_failed_endpoint() {
        let p = pool(&["a:1", "b:2", "c:3"]);
        let a = p.current();
        p.fail_over(&a);
        assert_eq!(p.current().addr, "b:2");
        // A second call that failed on `a` does not skip `b`.
        p.fail_over(&a);
        assert_eq!(p.current().addr, "b:2");
        p.fail_over(&p.current());
        p.fail_over(&p.current());
        assert_eq!(p.current().addr, "a:1", "wraps around");
    }

    #[test]
    fn removing_the_endpoint_in_use_moves_to_the_next_and_the_last_one_stays() {
        let p = pool(&["a:1", "b:2", "c:3"]);
        p.use_slot(&p.slots()[1]);
        assert!(p.remove("b:2"));
        assert_eq!(p.current().addr, "c:3");
        assert!(p.remove("c:3"));
        assert_eq!(p.current().addr, "a:1", "wraps around");
        assert!(!p.remove("x:9"), "not in the pool");
        assert!(!p.remove("a:1"), "the only one left");
        assert_eq!(addrs(&p), ["a:1"]);
    }

    #[test]
    fn removing_an_endpoint_before_the_one_in_use_keeps_it_in_use() {
        let p = pool(&["a:1", "b:2", "c:3"]);
        p.use_slot(&p.slots()[2]);
        assert!(p.remove("a:1"));
        assert_eq!(p.current().addr, "c:3");
        assert!(p.remove("c:3"));
        assert_eq!(p.current().addr, "b:2", "wraps around");
    }
}
