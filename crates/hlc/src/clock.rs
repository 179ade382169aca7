//! The hybrid logical clock itself, driven by injected physical time.

use crate::Timestamp;

/// Configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HlcConfig {
    /// How far a remote physical time may lead local physical time before [`Hlc::update`] refuses it.
    pub max_offset_ms: u64,
}

impl HlcConfig {
    /// Default for [`Self::max_offset_ms`].
    pub const DEFAULT_MAX_OFFSET_MS: u64 = 500;
}

impl Default for HlcConfig {
    fn default() -> Self {
        Self {
            max_offset_ms: Self::DEFAULT_MAX_OFFSET_MS,
        }
    }
}

/// The clock. Time is injected: every method takes the current physical time in ms.
///
/// Every timestamp it returns is strictly greater than everything it has
/// previously returned, been floored at, observed, or accepted via
/// [`Self::update`], whatever the physical times passed in (they may go
/// backwards). Physical times above [`Timestamp::MAX_PHYSICAL_MS`] are clamped.
///
/// When the 16-bit logical counter would overflow, the clock moves to the
/// next physical millisecond with logical 0 instead of failing, running
/// ahead of physical time by at most 1 ms per 65 536 events in one ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hlc {
    config: HlcConfig,
    last: Timestamp,
}

impl Hlc {
    /// A clock that has issued nothing yet; its first timestamp is above [`Timestamp::ZERO`].
    #[must_use]
    pub fn new(config: HlcConfig) -> Self {
        Self::with_floor(config, Timestamp::ZERO)
    }

    /// Start above a persisted ceiling so the clock never goes backwards across restarts.
    #[must_use]
    pub fn with_floor(config: HlcConfig, floor: Timestamp) -> Self {
        Self {
            config,
            last: floor,
        }
    }

    /// Timestamp for a local or send event; strictly increasing across calls.
    ///
    /// # Panics
    ///
    /// If the clock already stands at [`Timestamp::MAX`], which only a
    /// physical clock or observed timestamp in the year 10889 can cause.
    pub fn now(&mut self, physical_ms: u64) -> Timestamp {
        self.advance(physical_ms, self.last)
    }

    /// Receive event: merge `remote` and return a timestamp above both it and everything issued before.
    ///
    /// # Errors
    ///
    /// [`ClockError::RemoteTooFarAhead`], leaving the clock unchanged, if
    /// `remote.physical_ms() > physical_ms + max_offset_ms`: accepting it
    /// would drag every later local timestamp that far ahead of real time.
    ///
    /// # Panics
    ///
    /// If the merged timestamp is [`Timestamp::MAX`]; see [`Self::now`].
    pub fn update(&mut self, physical_ms: u64, remote: Timestamp) -> Result<Timestamp, ClockError> {
        let max_offset_ms = self.config.max_offset_ms;
        if remote.physical_ms() > physical_ms.saturating_add(max_offset_ms) {
            return Err(ClockError::RemoteTooFarAhead {
                remote,
                local_physical_ms: physical_ms,
                max_offset_ms,
            });
        }
        Ok(self.advance(physical_ms, self.last.max(remote)))
    }

    /// Advance so the next timestamp is above `seen` without the offset check (used for versions already stored locally).
    pub fn observe(&mut self, seen: Timestamp) {
        self.last = self.last.max(seen);
    }

    /// The last timestamp issued, observed, or set as the floor.
    #[must_use]
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// The configuration the clock was built with.
    #[must_use]
    pub fn config(&self) -> &HlcConfig {
        &self.config
    }

    /// Kulkarni's send and receive rules collapse into one: with `base` the
    /// larger of the previous and remote timestamps, take fresh physical time
    /// if it is ahead, else bump the logical counter of `base`.
    fn advance(&mut self, physical_ms: u64, base: Timestamp) -> Timestamp {
        let physical = physical_ms.min(Timestamp::MAX_PHYSICAL_MS);
        let next = if physical > base.physical_ms() {
            Timestamp::new(physical, 0)
        } else {
            base.checked_successor()
                .expect("HLC exhausted: no timestamp exists above Timestamp::MAX")
        };
        self.last = next;
        next
    }
}

/// Why [`Hlc::update`] refused a remote timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The remote physical time leads local physical time by more than the configured maximum offset.
    #[error(
        "remote HLC timestamp {remote} is more than {max_offset_ms} ms ahead of \
         local physical time {local_physical_ms} ms"
    )]
    RemoteTooFarAhead {
        /// The refused timestamp.
        remote: Timestamp,
        /// Local physical time when it was refused.
        local_physical_ms: u64,
        /// The configured limit it broke.
        max_offset_ms: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_440_472_123;

    fn clock() -> Hlc {
        Hlc::new(HlcConfig::default())
    }

    #[test]
    fn default_max_offset_is_500_ms() {
        assert_eq!(HlcConfig::default().max_offset_ms, 500);
        assert_eq!(clock().config(), &HlcConfig { max_offset_ms: 500 });
    }

    #[test]
    fn now_takes_physical_time_when_it_advances() {
        let mut hlc = clock();
        assert_eq!(hlc.now(T0), Timestamp::new(T0, 0));
        assert_eq!(hlc.now(T0 + 5), Timestamp::new(T0 + 5, 0));
        assert_eq!(hlc.last(), Timestamp::new(T0 + 5, 0));
    }

    #[test]
    fn now_bumps_logical_within_one_millisecond() {
        let mut hlc = clock();
        hlc.now(T0);
        assert_eq!(hlc.now(T0), Timestamp::new(T0, 1));
        assert_eq!(hlc.now(T0), Timestamp::new(T0, 2));
    }

    #[test]
    fn now_stays_monotonic_when_physical_time_goes_backwards() {
        let mut hlc = clock();
        hlc.now(T0);
        assert_eq!(hlc.now(T0 - 1_000), Timestamp::new(T0, 1));
        assert_eq!(hlc.now(0), Timestamp::new(T0, 2));
    }

    #[test]
    fn fresh_clock_never_issues_zero() {
        assert!(clock().now(0) > Timestamp::ZERO);
    }

    #[test]
    fn logical_overflow_advances_physical_by_one_ms() {
        let mut hlc = Hlc::with_floor(HlcConfig::default(), Timestamp::new(T0, u16::MAX - 1));
        assert_eq!(hlc.now(T0), Timestamp::new(T0, u16::MAX));
        assert_eq!(hlc.now(T0), Timestamp::new(T0 + 1, 0));
        // Real time catching up to the borrowed millisecond still bumps logical.
        assert_eq!(hlc.now(T0 + 1), Timestamp::new(T0 + 1, 1));
    }

    #[test]
    fn physical_time_beyond_48_bits_is_clamped() {
        let mut hlc = clock();
        assert_eq!(
            hlc.now(u64::MAX),
            Timestamp::new(Timestamp::MAX_PHYSICAL_MS, 0)
        );
        assert_eq!(
            hlc.now(u64::MAX),
            Timestamp::new(Timestamp::MAX_PHYSICAL_MS, 1)
        );
    }

    #[test]
    #[should_panic(expected = "HLC exhausted")]
    fn now_panics_once_the_timestamp_space_is_exhausted() {
        let mut hlc = clock();
        hlc.observe(Timestamp::MAX);
        hlc.now(0);
    }

    #[test]
    fn update_follows_kulkarni_receive_rule() {
        // Local physical time ahead of both: take it, logical resets.
        let mut hlc = clock();
        hlc.now(T0);
        assert_eq!(
            hlc.update(T0 + 10, Timestamp::new(T0 + 5, 9)),
            Ok(Timestamp::new(T0 + 10, 0))
        );
        // Remote ahead: adopt its physical part, logical = remote + 1.
        assert_eq!(
            hlc.update(T0 + 10, Timestamp::new(T0 + 20, 4)),
            Ok(Timestamp::new(T0 + 20, 5))
        );
        // Same physical as local: logical = max(local, remote) + 1.
        assert_eq!(
            hlc.update(T0 + 10, Timestamp::new(T0 + 20, 2)),
            Ok(Timestamp::new(T0 + 20, 6))
        );
        assert_eq!(
            hlc.update(T0 + 10, Timestamp::new(T0 + 20, 40)),
            Ok(Timestamp::new(T0 + 20, 41))
        );
        // Local previous ahead of remote and physical: bump local logical.
        assert_eq!(
            hlc.update(T0, Timestamp::new(T0 + 1, 0)),
            Ok(Timestamp::new(T0 + 20, 42))
        );
    }

    #[test]
    fn update_accepts_remote_exactly_at_max_offset() {
        let mut hlc = clock();
        let remote = Timestamp::new(T0 + 500, 7);
        assert_eq!(hlc.update(T0, remote), Ok(Timestamp::new(T0 + 500, 8)));
    }

    #[test]
    fn refused_remote_leaves_clock_unchanged() {
        let mut hlc = clock();
        hlc.now(T0);
        let before = hlc.clone();
        let remote = Timestamp::new(T0 + 501, 0);
        assert_eq!(
            hlc.update(T0, remote),
            Err(ClockError::RemoteTooFarAhead {
                remote,
                local_physical_ms: T0,
                max_offset_ms: 500,
            })
        );
        assert_eq!(hlc, before);
    }

    #[test]
    fn update_offset_check_does_not_overflow() {
        let mut hlc = Hlc::new(HlcConfig {
            max_offset_ms: u64::MAX,
        });
        let remote = Timestamp::new(Timestamp::MAX_PHYSICAL_MS, 0);
        assert_eq!(
            hlc.update(u64::MAX, remote),
            Ok(Timestamp::new(Timestamp::MAX_PHYSICAL_MS, 1))
        );
    }

    #[test]
    fn observe_moves_the_clock_past_seen_without_offset_check() {
        let mut hlc = clock();
        hlc.now(T0);
        let seen = Timestamp::new(T0 + 60_000, 3);
        hlc.observe(seen);
        assert_eq!(hlc.last(), seen);
        assert_eq!(hlc.now(T0), Timestamp::new(T0 + 60_000, 4));
    }

    #[test]
    fn observe_of_older_timestamp_is_a_no_op() {
        let mut hlc = clock();
        let issued = hlc.now(T0);
        hlc.observe(Timestamp::new(T0 - 1, 0));
        assert_eq!(hlc.last(), issued);
    }

    #[test]
    fn with_floor_issues_only_above_floor() {
        let floor = Timestamp::new(T0 + 1_000, 0);
        let mut hlc = Hlc::with_floor(HlcConfig::default(), floor);
        assert_eq!(hlc.last(), floor);
        assert_eq!(hlc.now(T0), Timestamp::new(T0 + 1_000, 1));
    }

    #[test]
    fn clock_error_message_names_all_values() {
        let err = ClockError::RemoteTooFarAhead {
            remote: Timestamp::new(T0, 3),
            local_physical_ms: 17,
            max_offset_ms: 500,
        };
        assert_eq!(
            err.to_string(),
            "remote HLC timestamp 2026-11-23T13:27:52.123Z+3 is more than 500 ms \
             ahead of local physical time 17 ms"
        );
    }
}
