//! Per-connection request rate limits (`--rate-limit`, `--rate-burst`): a
//! token bucket per client connection (GCRA, by `governor`), keyed by the
//! connection's remote address, so one busy or runaway client cannot take
//! the node from the others. Sans-IO: the clock is a parameter.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Checks between two sweeps of the buckets of connections that went quiet.
const SWEEP_EVERY: u64 = 4096;

/// A rate limit per client connection.
#[derive(Debug)]
pub(crate) struct RateLimit<C: Clock = DefaultClock> {
    limiter:
        RateLimiter<SocketAddr, DefaultKeyedStateStore<SocketAddr>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    /// Requests per second each connection may sustain.
    pub(crate) per_second: NonZeroU32,
    /// Requests a connection may send at once after being quiet.
    pub(crate) burst: NonZeroU32,
    checks: AtomicU64,
}

impl RateLimit {
    /// `per_second` sustained, `burst` at once, on the real clock.
    pub(crate) fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self::with_clock(per_second, burst, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimit<C> {
    fn with_clock(per_second: NonZeroU32, burst: NonZeroU32, clock: C) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone()),
            clock,
            per_second,
            burst,
            checks: AtomicU64::new(0),
        }
    }

    /// Admits one request of connection `conn`, or says how long it must
    /// wait before its next request would be admitted.
    pub(crate) fn admit(&self, conn: SocketAddr) -> Result<(), Duration> {
        // Buckets of closed connections would pile up: drop the full ones
        // (a full bucket is what a new connection gets anyway).
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&conn)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Connections with a bucket that is not full.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    /// A limit on a clock the test advances.
    fn manual(per_second: NonZeroU32, burst: NonZeroU32) -> RateLimit<FakeRelativeClock> {
        RateLimit::with_clock(per_second, burst, FakeRelativeClock::default())
    }

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).expect("non-zero")
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_connection_gets_its_burst_then_is_refused_with_the_time_to_wait() {
        let limit = manual(n(10), n(3));
        for _ in 0..3 {
            assert_eq!(limit.admit(addr(1)), Ok(()));
        }
        let wait = limit.admit(addr(1)).expect_err("past the burst");
        assert_eq!(wait, Duration::from_millis(100), "one token per 100 ms");
        limit.clock.advance(Duration::from_millis(100));
        assert_eq!(limit.admit(addr(1)), Ok(()));
        assert!(limit.admit(addr(1)).is_err());
    }

    #[test]
    fn connections_have_buckets_of_their_own() {
        let limit = manual(n(1), n(1));
        assert_eq!(limit.admit(addr(1)), Ok(()));
        assert!(limit.admit(addr(1)).is_err());
        assert_eq!(
            limit.admit(addr(2)),
            Ok(()),
            "another connection is not held back"
        );
    }

    #[test]
    fn the_buckets_of_quiet_connections_are_swept() {
        let limit = manual(n(1000), n(1));
        for port in 0..100 {
            let _ = limit.admit(addr(port));
        }
        assert_eq!(limit.tracked(), 100);
        limit.clock.advance(Duration::from_secs(1));
        // Enough checks of one connection to reach the next sweep.
        for _ in 0..SWEEP_EVERY {
            let _ = limit.admit(addr(9999));
            limit.clock.advance(Duration::from_millis(1));
        }
        assert!(limit.tracked() <= 1, "{} buckets left", limit.tracked());
    }
}
