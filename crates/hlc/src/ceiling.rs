//! Bookkeeping for a durably persisted upper bound on issued timestamps.

use crate::Timestamp;

/// Helper for persisting a ceiling: the caller persists `ceiling` durably and must not issue timestamps at or above it without first persisting a higher one.
///
/// After a restart, [`Hlc::with_floor`](crate::Hlc::with_floor) at the
/// persisted ceiling guarantees the clock never reissues a timestamp from
/// before the crash. Persisting `window_ms` ahead, and renewing once half of
/// that is used up, keeps writes of the ceiling off the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceiling {
    current: Timestamp,
    window_ms: u64,
}

impl Ceiling {
    /// Tracks `persisted`; a `window_ms` of 0 is treated as 1 so a renewed ceiling is always above the timestamp that prompted it.
    #[must_use]
    pub fn new(persisted: Timestamp, window_ms: u64) -> Self {
        Self {
            current: persisted,
            window_ms: window_ms.max(1),
        }
    }

    /// Returns Some(new_ceiling) that the caller must persist BEFORE using `ts`, when ts is within half the window of the current ceiling (or beyond it); None otherwise.
    ///
    /// "Within half the window" compares physical milliseconds:
    /// `ts.physical_ms() + window_ms / 2 >= current().physical_ms()`. The new
    /// ceiling is `ts.physical_ms() + window_ms` with logical 0, so it is above
    /// both `ts` and the old ceiling, except that at the end of the 48-bit
    /// range it saturates to [`Timestamp::MAX`]. It becomes [`Self::current`] at once.
    pub fn check(&mut self, ts: Timestamp) -> Option<Timestamp> {
        let half = self.window_ms / 2;
        if ts.physical_ms().saturating_add(half) < self.current.physical_ms() {
            return None;
        }
        let physical = ts.physical_ms().saturating_add(self.window_ms);
        self.current = if physical >= Timestamp::MAX_PHYSICAL_MS {
            Timestamp::MAX
        } else {
            Timestamp::new(physical, 0)
        };
        Some(self.current)
    }

    /// The ceiling most recently handed out by [`Self::check`], or the one passed to [`Self::new`].
    #[must_use]
    pub fn current(&self) -> Timestamp {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_440_472_123;

    #[test]
    fn timestamp_far_below_ceiling_needs_no_persist() {
        let persisted = Timestamp::new(T0 + 10_000, 0);
        let mut ceiling = Ceiling::new(persisted, 10_000);
        assert_eq!(ceiling.check(Timestamp::new(T0, 0)), None);
        assert_eq!(ceiling.check(Timestamp::new(T0 + 4_999, 9)), None);
        assert_eq!(ceiling.current(), persisted);
    }

    #[test]
    fn timestamp_within_half_window_renews_ceiling() {
        let mut ceiling = Ceiling::new(Timestamp::new(T0 + 10_000, 0), 10_000);
        let ts = Timestamp::new(T0 + 5_000, 0);
        let renewed = Timestamp::new(T0 + 15_000, 0);
        assert_eq!(ceiling.check(ts), Some(renewed));
        assert_eq!(ceiling.current(), renewed);
        // The renewal is in force: the same timestamp no longer triggers one.
        assert_eq!(ceiling.check(ts), None);
    }

    #[test]
    fn timestamp_beyond_ceiling_renews_above_it() {
        let mut ceiling = Ceiling::new(Timestamp::new(T0, 0), 1_000);
        let ts = Timestamp::new(T0 + 50_000, 7);
        assert_eq!(ceiling.check(ts), Some(Timestamp::new(T0 + 51_000, 0)));
    }

    #[test]
    fn timestamp_at_ceiling_renews() {
        let at = Timestamp::new(T0, 0);
        let mut ceiling = Ceiling::new(at, 1_000);
        assert_eq!(ceiling.check(at), Some(Timestamp::new(T0 + 1_000, 0)));
    }

    #[test]
    fn fresh_ceiling_of_zero_renews_on_first_check() {
        let mut ceiling = Ceiling::new(Timestamp::ZERO, 1_000);
        assert_eq!(
            ceiling.check(Timestamp::new(T0, 0)),
            Some(Timestamp::new(T0 + 1_000, 0))
        );
    }

    #[test]
    fn zero_window_still_renews_strictly_above_ts() {
        let mut ceiling = Ceiling::new(Timestamp::new(T0, 0), 0);
        let ts = Timestamp::new(T0, 5);
        let renewed = ceiling.check(ts).expect("at the ceiling");
        assert!(renewed > ts);
        assert_eq!(ceiling.check(Timestamp::new(T0, 6)), None);
    }

    #[test]
    fn ceiling_saturates_at_max() {
        let mut ceiling = Ceiling::new(Timestamp::ZERO, 1_000);
        let near_end = Timestamp::MAX_PHYSICAL_MS - 10;
        assert_eq!(
            ceiling.check(Timestamp::new(near_end, 0)),
            Some(Timestamp::MAX)
        );
        assert_eq!(ceiling.check(Timestamp::new(near_end - 1_000, 0)), None);
    }
}
