//! Seeded UDP forwarding proxy that injects delay, reordering and loss.
//!
//! The chaos harness cannot rely on `tc netem` or `NFQUEUE`, so peer traffic is
//! routed through one proxy per node instead: node `X` listens on
//! `node_addr(X)` but advertises `proxy_addr(X)`, and the proxy in front of it
//! forwards every datagram, applying the current [`Faults`] on the way.
//!
//! For every distinct source address that sends to the proxy's front socket a
//! dedicated back socket is bound lazily, so the target sees each source as a
//! distinct peer and its replies are routed back to the right source through
//! the front socket. Faults apply to both directions.
//!
//! Held datagrams wait in one timer queue per direction (a binary heap drained
//! by a single task), not in a task per datagram. All randomness comes from
//! [`StdRng`]s seeded from the `seed` passed to [`start`], so a run with the
//! same seed and the same arrival sequence makes the same decisions.
//!
//! Network errors never stop the proxy: they are logged with
//! [`tracing::warn!`] and the datagram is skipped.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Size of the receive buffer: the largest UDP payload.
const DATAGRAM_BUF: usize = 65_535;

/// Upper bound on the hold time of one datagram, whatever the settings say.
const MAX_DELAY: Duration = Duration::from_secs(3_600);

/// Most datagrams one direction holds at once; beyond that they are dropped.
const MAX_HELD: usize = 65_536;

/// Pause after a failed receive, so a persistent error cannot spin a core.
const RECV_ERROR_BACKOFF: Duration = Duration::from_millis(1);

/// Salt mixed into the seed of the target-to-source direction's RNG.
const REPLY_SEED_SALT: u64 = 0x9E37_79B9_7F4A_7C15;

/// Fault settings for one proxy.
///
/// The default value injects nothing: every datagram is forwarded at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Base hold time, in milliseconds, applied to every datagram.
    pub delay_ms: u64,
    /// Extra hold time drawn uniformly from `0..=jitter_ms` milliseconds per
    /// datagram; larger than the gap between datagrams, it reorders them.
    pub jitter_ms: u64,
    /// Share of datagrams dropped, in percent (`0..=100`; larger values act
    /// as 100).
    pub loss_percent: u8,
}

impl Faults {
    /// Whether these settings hold datagrams at all.
    fn delays(&self) -> bool {
        self.delay_ms > 0 || self.jitter_ms > 0
    }
}

/// Datagram counters, summed over both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to the operating system for delivery (the send call
    /// succeeded), whether they were held first or not.
    pub forwarded: u64,
    /// Datagrams held for a delay before being forwarded.
    pub delayed: u64,
    /// Datagrams discarded on purpose: by the configured loss, or because a
    /// direction already held too many datagrams.
    pub dropped: u64,
}

/// State shared by the handle and the proxy's tasks.
#[derive(Debug, Default)]
struct Shared {
    faults: Mutex<Faults>,
    forwarded: AtomicU64,
    delayed: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, AtomicOrdering::Relaxed);
    }
}

/// Owner of the shutdown signal; dropped with the last [`ProxyHandle`].
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    front_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

/// Handle to a running proxy.
///
/// Cheap to clone. The proxy stops when [`ProxyHandle::shutdown`] is called or
/// when the last clone is dropped: its tasks end and its sockets close.
#[derive(Clone, Debug)]
pub struct ProxyHandle {
    inner: Arc<Inner>,
}

impl ProxyHandle {
    /// The address the proxy listens on; peers of the target send here.
    pub fn front_addr(&self) -> SocketAddr {
        self.inner.front_addr
    }

    /// Replaces the fault settings; they apply to datagrams received after
    /// this call (datagrams already held keep their release time).
    pub fn set(&self, faults: Faults) {
        tracing::debug!(front = %self.inner.front_addr, ?faults, "proxy faults set");
        self.inner.shared.set_faults(faults);
    }

    /// Turns all faults off: datagrams received from now on are forwarded at
    /// once. Datagrams already held are still released at their time.
    pub fn clear(&self) {
        self.set(Faults::default());
    }

    /// A snapshot of the datagram counters.
    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        Stats {
            forwarded: shared.forwarded.load(AtomicOrdering::Relaxed),
            delayed: shared.delayed.load(AtomicOrdering::Relaxed),
            dropped: shared.dropped.load(AtomicOrdering::Relaxed),
        }
    }

    /// Stops the proxy: its tasks end, held datagrams are discarded and its
    /// sockets close. Calling it again, or from another clone, does nothing.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

/// Starts a proxy in front of `target`, listening on `front` (port 0 allowed),
/// with a seeded RNG.
///
/// Must be called within a Tokio runtime; the proxy runs on spawned tasks.
///
/// # Errors
///
/// Returns the error from binding the front socket or reading its address.
pub async fn start(front: SocketAddr, target: SocketAddr, seed: u64) -> io::Result<ProxyHandle> {
    let front_socket = Arc::new(UdpSocket::bind(front).await?);
    let front_addr = front_socket.local_addr()?;
    let shared = Arc::new(Shared::default());
    let (shutdown, shutdown_rx) = watch::channel(false);

    let (to_target_tx, to_target_rx) = mpsc::unbounded_channel();
    let (to_source_tx, to_source_rx) = mpsc::unbounded_channel();
    tokio::spawn(release_held(
        to_target_rx,
        Arc::clone(&shared),
        shutdown_rx.clone(),
    ));
    tokio::spawn(release_held(
        to_source_rx,
        Arc::clone(&shared),
        shutdown_rx.clone(),
    ));

    let front_task = FrontTask {
        front: front_socket,
        target,
        shared: Arc::clone(&shared),
        shutdown: shutdown_rx,
        rng: StdRng::seed_from_u64(seed),
        reply_rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed ^ REPLY_SEED_SALT))),
        to_target: to_target_tx,
        to_source: to_source_tx,
        sessions: HashMap::new(),
    };
    tokio::spawn(front_task.run());

    tracing::debug!(%front_addr, %target, seed, "proxy started");
    Ok(ProxyHandle {
        inner: Arc::new(Inner {
            shared,
            front_addr,
            shutdown,
        }),
    })
}

/// Resolves once the proxy is told to stop or every handle is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender (owned by the handles) was dropped: stop too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// What to do with one datagram under the current faults.
#[derive(Debug)]
enum Verdict {
    Drop,
    Now,
    Hold(Instant),
}

/// Draws the fate of one datagram received now.
fn decide(shared: &Shared, rng: &mut StdRng) -> Verdict {
    let faults = shared.faults();
    if faults.loss_percent > 0 && rng.random_range(0..100u8) < faults.loss_percent {
        return Verdict::Drop;
    }
    if !faults.delays() {
        return Verdict::Now;
    }
    let jitter = if faults.jitter_ms > 0 {
        rng.random_range(0..=faults.jitter_ms)
    } else {
        0
    };
    let hold = Duration::from_millis(faults.delay_ms.saturating_add(jitter)).min(MAX_DELAY);
    Verdict::Hold(Instant::now() + hold)
}

/// Applies the verdict for one datagram: drop it, send it now, or queue it.
async fn dispatch(
    verdict: Verdict,
    shared: &Shared,
    queue: &mpsc::UnboundedSender<Held>,
    socket: &Arc<UdpSocket>,
    dest: SocketAddr,
    payload: &[u8],
) {
    match verdict {
        Verdict::Drop => Shared::count(&shared.dropped),
        Verdict::Now => send(shared, socket, dest, payload).await,
        Verdict::Hold(due) => {
            Shared::count(&shared.delayed);
            let held = Held {
                due,
                seq: 0,
                socket: Arc::clone(socket),
                dest,
                payload: payload.to_vec(),
            };
            // Fails only when the release task has stopped, i.e. on shutdown.
            let _ = queue.send(held);
        }
    }
}

/// Sends one datagram, counting it on success and logging a failure.
async fn send(shared: &Shared, socket: &UdpSocket, dest: SocketAddr, payload: &[u8]) {
    match socket.send_to(payload, dest).await {
        Ok(_) => Shared::count(&shared.forwarded),
        Err(error) => tracing::warn!(%dest, %error, "proxy failed to forward a datagram"),
    }
}

/// Receives from the front socket and forwards each source's datagrams to the
/// target through that source's back socket.
struct FrontTask {
    front: Arc<UdpSocket>,
    target: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    /// RNG for the source-to-target direction.
    rng: StdRng,
    /// RNG for the target-to-source direction, shared by the back readers.
    reply_rng: Arc<Mutex<StdRng>>,
    to_target: mpsc::UnboundedSender<Held>,
    to_source: mpsc::UnboundedSender<Held>,
    /// Back socket of each source seen so far.
    sessions: HashMap<SocketAddr, Arc<UdpSocket>>,
}

impl FrontTask {
    async fn run(mut self) {
        let mut buf = vec![0u8; DATAGRAM_BUF];
        let mut shutdown = self.shutdown.clone();
        loop {
            let received = tokio::select! {
                biased;
                () = stopped(&mut shutdown) => break,
                received = self.front.recv_from(&mut buf) => received,
            };
            match received {
                Ok((len, source)) => self.forward(&buf[..len], source).await,
                Err(error) => {
                    tracing::warn!(front = ?self.front.local_addr().ok(), %error, "proxy front receive failed");
                    tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                }
            }
        }
        tracing::debug!(target = %self.target, "proxy front task stopped");
    }

    async fn forward(&mut self, payload: &[u8], source: SocketAddr) {
        let Some(back) = self.back_socket(source).await else {
            return;
        };
        let verdict = decide(&self.shared, &mut self.rng);
        dispatch(
            verdict,
            &self.shared,
            &self.to_target,
            &back,
            self.target,
            payload,
        )
        .await;
    }

    /// The back socket for `source`, bound (and its reader spawned) on first use.
    async fn back_socket(&mut self, source: SocketAddr) -> Option<Arc<UdpSocket>> {
        if let Some(back) = self.sessions.get(&source) {
            return Some(Arc::clone(back));
        }
        let back = match UdpSocket::bind(back_bind_addr(self.target)).await {
            Ok(socket) => Arc::new(socket),
            Err(error) => {
                tracing::warn!(%source, %error, "proxy could not bind a back socket; datagram skipped");
                return None;
            }
        };
        tracing::debug!(%source, back = ?back.local_addr().ok(), target = %self.target, "proxy session opened");
        let reader = BackTask {
            back: Arc::clone(&back),
            front: Arc::clone(&self.front),
            source,
            target: self.target,
            shared: Arc::clone(&self.shared),
            rng: Arc::clone(&self.reply_rng),
            to_source: self.to_source.clone(),
        };
        tokio::spawn(reader.run(self.shutdown.clone()));
        match self.sessions.entry(source) {
            Entry::Occupied(entry) => Some(Arc::clone(entry.get())),
            Entry::Vacant(entry) => Some(Arc::clone(entry.insert(back))),
        }
    }
}

/// Local address for a back socket: loopback when the target is on loopback,
/// otherwise the unspecified address, in the target's address family.
fn back_bind_addr(target: SocketAddr) -> SocketAddr {
    let ip = match (target.ip(), target.ip().is_loopback()) {
        (IpAddr::V4(_), true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (IpAddr::V4(_), false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (IpAddr::V6(_), true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (IpAddr::V6(_), false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// Receives the target's replies on one back socket and forwards them to the
/// source through the front socket.
struct BackTask {
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    source: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    rng: Arc<Mutex<StdRng>>,
    to_source: mpsc::UnboundedSender<Held>,
}

impl BackTask {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut buf = vec![0u8; DATAGRAM_BUF];
        loop {
            let received = tokio::select! {
                biased;
                () = stopped(&mut shutdown) => break,
                received = self.back.recv_from(&mut buf) => received,
            };
            match received {
                Ok((len, from)) if from == self.target => {
                    let verdict = {
                        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
                        decide(&self.shared, &mut rng)
                    };
                    dispatch(
                        verdict,
                        &self.shared,
                        &self.to_source,
                        &self.front,
                        self.source,
                        &buf[..len],
                    )
                    .await;
                }
                Ok((_, from)) => {
                    tracing::debug!(%from, source = %self.source, "proxy ignored a datagram not from its target");
                }
                Err(error) => {
                    tracing::warn!(source = %self.source, %error, "proxy back receive failed");
                    tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                }
            }
        }
        tracing::debug!(source = %self.source, "proxy session closed");
    }
}

/// A datagram waiting in a timer queue.
#[derive(Debug)]
struct Held {
    due: Instant,
    /// Arrival order in the queue; breaks ties between equal `due` times.
    seq: u64,
    socket: Arc<UdpSocket>,
    dest: SocketAddr,
    payload: Vec<u8>,
}

impl Held {
    fn key(&self) -> (Instant, u64) {
        (self.due, self.seq)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

/// The timer queue of one direction: holds datagrams until they are due, then
/// sends them.
async fn release_held(
    mut queue: mpsc::UnboundedReceiver<Held>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut heap: BinaryHeap<Held> = BinaryHeap::new();
    let mut next_seq: u64 = 0;
    loop {
        let next_due = heap.peek().map(|held| held.due);
        tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            () = sleep_until_some(next_due) => {
                let now = Instant::now();
                while heap.peek().is_some_and(|held| held.due <= now) {
                    if let Some(held) = heap.pop() {
                        send(&shared, &held.socket, held.dest, &held.payload).await;
                    }
                }
            }
            received = queue.recv() => match received {
                Some(mut held) => {
                    if heap.len() >= MAX_HELD {
                        Shared::count(&shared.dropped);
                        tracing::warn!(dest = %held.dest, "proxy timer queue full; datagram dropped");
                        continue;
                    }
                    held.seq = next_seq;
                    next_seq = next_seq.wrapping_add(1);
                    heap.push(held);
                }
                None => break,
            },
        }
    }
    if !heap.is_empty() {
        tracing::debug!(
            discarded = heap.len(),
            "proxy stopped with datagrams still held"
        );
    }
}

/// Sleeps until `due`, or forever when there is nothing to wait for.
async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bound on every wait in these tests.
    const DEADLINE: Duration = Duration::from_secs(10);

    fn localhost() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    async fn bind() -> UdpSocket {
        UdpSocket::bind(localhost())
            .await
            .expect("bind test socket")
    }

    /// Receives one datagram within the deadline.
    async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; DATAGRAM_BUF];
        let (len, from) = tokio::time::timeout(DEADLINE, socket.recv_from(&mut buf))
            .await
            .expect("datagram before the deadline")
            .expect("receive");
        buf.truncate(len);
        (buf, from)
    }

    /// A UDP server that answers every datagram with `payload|source`, where
    /// `source` is the address it saw the datagram come from. Its task ends
    /// with the test's runtime.
    async fn echo_server() -> SocketAddr {
        let socket = bind().await;
        let addr = socket.local_addr().expect("echo addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; DATAGRAM_BUF];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let mut reply = buf[..len].to_vec();
                reply.extend_from_slice(format!("|{from}").as_bytes());
                if socket.send_to(&reply, from).await.is_err() {
                    break;
                }
            }
        });
        addr
    }

    /// Reads `u32` sequence numbers from `sink` until `count` arrived or the
    /// deadline passed; returns them in arrival order.
    async fn collect_numbers(sink: &UdpSocket, count: usize, deadline: Instant) -> Vec<u32> {
        let mut seen = Vec::with_capacity(count);
        let mut buf = vec![0u8; DATAGRAM_BUF];
        while seen.len() < count {
            match tokio::time::timeout_at(deadline, sink.recv_from(&mut buf)).await {
                Ok(Ok((4, _))) => seen.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])),
                Ok(Ok((len, _))) => panic!("unexpected datagram of {len} bytes"),
                Ok(Err(error)) => panic!("sink receive failed: {error}"),
                Err(_) => break,
            }
        }
        seen
    }

    /// Waits until `check` holds for the proxy's stats, within the deadline.
    async fn wait_for_stats(proxy: &ProxyHandle, check: impl Fn(Stats) -> bool) -> Stats {
        let waited = tokio::time::timeout(DEADLINE, async {
            loop {
                let stats = proxy.stats();
                if check(stats) {
                    return stats;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("stats condition not met: {:?}", proxy.stats()))
    }

    fn counts(forwarded: u64, delayed: u64, dropped: u64) -> Stats {
        Stats {
            forwarded,
            delayed,
            dropped,
        }
    }

    /// Waits until the proxy's stats equal `expected` (a send is counted just
    /// after it completes, so the receiver may see the datagram first).
    async fn expect_stats(proxy: &ProxyHandle, expected: Stats) {
        wait_for_stats(proxy, |stats| stats == expected).await;
    }

    /// Waits until `addr` can be bound again, i.e. the proxy closed it.
    async fn wait_until_rebindable(addr: SocketAddr) {
        let rebound = tokio::time::timeout(DEADLINE, async {
            loop {
                if UdpSocket::bind(addr).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(rebound.is_ok(), "{addr} still bound after the deadline");
    }

    #[tokio::test]
    async fn forwards_both_ways_without_faults() {
        let target = echo_server().await;
        let proxy = start(localhost(), target, 1).await.expect("start proxy");
        let client = bind().await;

        for round in 0..3 {
            let message = format!("hello {round}");
            client
                .send_to(message.as_bytes(), proxy.front_addr())
                .await
                .expect("send");
            let (reply, from) = recv(&client).await;
            assert_eq!(from, proxy.front_addr(), "reply comes from the proxy");
            let reply = String::from_utf8(reply).expect("utf8");
            assert!(reply.starts_with(&format!("{message}|")), "got {reply}");
        }
        expect_stats(&proxy, counts(6, 0, 0)).await;
    }

    #[tokio::test]
    async fn distinct_sources_get_distinct_back_sockets() {
        let target = echo_server().await;
        let proxy = start(localhost(), target, 2).await.expect("start proxy");
        let first = bind().await;
        let second = bind().await;

        let mut seen_by_target = Vec::new();
        for (name, client) in [("first", &first), ("second", &second)] {
            for _ in 0..2 {
                client
                    .send_to(name.as_bytes(), proxy.front_addr())
                    .await
                    .expect("send");
                let (reply, from) = recv(client).await;
                assert_eq!(from, proxy.front_addr());
                let reply = String::from_utf8(reply).expect("utf8");
                let (echoed, source) = reply.split_once('|').expect("echo format");
                assert_eq!(echoed, name, "reply reached the client that asked");
                let source: SocketAddr = source.parse().expect("source address");
                assert_ne!(source, client.local_addr().expect("client addr"));
                seen_by_target.push(source);
            }
        }
        assert_eq!(
            seen_by_target[0], seen_by_target[1],
            "one back socket per source"
        );
        assert_eq!(
            seen_by_target[2], seen_by_target[3],
            "one back socket per source"
        );
        assert_ne!(
            seen_by_target[0], seen_by_target[2],
            "sources are told apart"
        );
    }

    #[tokio::test]
    async fn delay_holds_datagrams_at_least_base() {
        let target = echo_server().await;
        let proxy = start(localhost(), target, 3).await.expect("start proxy");
        proxy.set(Faults {
            delay_ms: 100,
            jitter_ms: 0,
            loss_percent: 0,
        });
        let client = bind().await;

        let sent_at = Instant::now();
        client
            .send_to(b"ping", proxy.front_addr())
            .await
            .expect("send");
        let (reply, _) = recv(&client).await;
        let elapsed = sent_at.elapsed();

        assert!(reply.starts_with(b"ping|"));
        // Held on the way in and on the way back.
        assert!(
            elapsed >= Duration::from_millis(200),
            "round trip took {elapsed:?}"
        );
        expect_stats(&proxy, counts(2, 2, 0)).await;
    }

    #[tokio::test]
    async fn jitter_reorders_datagrams() {
        let sink = bind().await;
        let proxy = start(localhost(), sink.local_addr().expect("sink addr"), 4)
            .await
            .expect("start proxy");
        proxy.set(Faults {
            delay_ms: 0,
            jitter_ms: 40,
            loss_percent: 0,
        });
        let client = bind().await;

        for n in 0..50u32 {
            client
                .send_to(&n.to_be_bytes(), proxy.front_addr())
                .await
                .expect("send");
        }
        let arrived = collect_numbers(&sink, 50, Instant::now() + DEADLINE).await;

        let mut sorted = arrived.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..50).collect::<Vec<_>>(),
            "every datagram arrives once"
        );
        assert_ne!(arrived, sorted, "jitter reorders datagrams");
        expect_stats(&proxy, counts(50, 50, 0)).await;
    }

    #[tokio::test]
    async fn loss_drops_about_the_configured_share() {
        const SENT: u32 = 400;
        const SENTINEL: u32 = u32::MAX;
        let sink = bind().await;
        let proxy = start(localhost(), sink.local_addr().expect("sink addr"), 5)
            .await
            .expect("start proxy");
        proxy.set(Faults {
            delay_ms: 0,
            jitter_ms: 0,
            loss_percent: 50,
        });
        let client = bind().await;

        // Drain the sink concurrently so its receive buffer never overflows;
        // stop at the sentinel, which is sent last and never dropped.
        let receiver = tokio::spawn(async move {
            let mut received = 0u64;
            let mut buf = vec![0u8; DATAGRAM_BUF];
            loop {
                let (len, _) = tokio::time::timeout(DEADLINE, sink.recv_from(&mut buf))
                    .await
                    .expect("sentinel before the deadline")
                    .expect("sink receive");
                assert_eq!(len, 4);
                if buf[..4] == SENTINEL.to_be_bytes() {
                    return received;
                }
                received += 1;
            }
        });
        for n in 0..SENT {
            client
                .send_to(&n.to_be_bytes(), proxy.front_addr())
                .await
                .expect("send");
            if n % 16 == 15 {
                // Pace the burst so no socket buffer on the path overflows.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let stats = wait_for_stats(&proxy, |s| s.forwarded + s.dropped == u64::from(SENT)).await;
        proxy.clear();
        client
            .send_to(&SENTINEL.to_be_bytes(), proxy.front_addr())
            .await
            .expect("send");
        let received = tokio::time::timeout(DEADLINE, receiver)
            .await
            .expect("receiver before the deadline")
            .expect("receiver task");

        assert!(
            (100..=300).contains(&received),
            "received {received}, stats {stats:?}"
        );
        assert_eq!(stats.dropped + received, u64::from(SENT), "stats {stats:?}");
        assert_eq!(stats.delayed, 0);
    }

    #[tokio::test]
    async fn clear_restores_immediate_forwarding() {
        let sink = bind().await;
        let proxy = start(localhost(), sink.local_addr().expect("sink addr"), 6)
            .await
            .expect("start proxy");
        let client = bind().await;

        proxy.set(Faults {
            delay_ms: 500,
            jitter_ms: 0,
            loss_percent: 0,
        });
        client
            .send_to(&1u32.to_be_bytes(), proxy.front_addr())
            .await
            .expect("send");
        wait_for_stats(&proxy, |s| s.delayed == 1).await;

        proxy.clear();
        client
            .send_to(&2u32.to_be_bytes(), proxy.front_addr())
            .await
            .expect("send");

        let arrived = collect_numbers(&sink, 2, Instant::now() + DEADLINE).await;
        assert_eq!(
            arrived,
            vec![2, 1],
            "the datagram sent after clear overtakes the held one"
        );
        expect_stats(&proxy, counts(2, 1, 0)).await;
    }

    #[tokio::test]
    async fn shutdown_stops_forwarding_and_closes_sockets() {
        let sink = bind().await;
        let proxy = start(localhost(), sink.local_addr().expect("sink addr"), 7)
            .await
            .expect("start proxy");
        let client = bind().await;
        // Hold one datagram so shutdown has something to discard.
        proxy.set(Faults {
            delay_ms: 200,
            jitter_ms: 0,
            loss_percent: 0,
        });
        client
            .send_to(&1u32.to_be_bytes(), proxy.front_addr())
            .await
            .expect("send");
        wait_for_stats(&proxy, |s| s.delayed == 1).await;

        let front = proxy.front_addr();
        let other = proxy.clone();
        proxy.shutdown();
        other.shutdown();
        wait_until_rebindable(front).await;

        let arrived = collect_numbers(&sink, 1, Instant::now() + Duration::from_millis(400)).await;
        assert!(
            arrived.is_empty(),
            "held datagram discarded on shutdown, got {arrived:?}"
        );
        assert_eq!(other.stats().forwarded, 0);
    }

    #[tokio::test]
    async fn dropping_every_handle_stops_the_proxy() {
        let target = echo_server().await;
        let proxy = start(localhost(), target, 8).await.expect("start proxy");
        let front = proxy.front_addr();
        let client = bind().await;
        client
            .send_to(b"open a session", front)
            .await
            .expect("send");
        recv(&client).await;

        let clone = proxy.clone();
        drop(proxy);
        drop(clone);
        wait_until_rebindable(front).await;
    }
}
