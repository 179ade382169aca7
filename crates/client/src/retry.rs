//! When a failed call is sent again and when its endpoint is left: a pure
//! function of the operation, the error, the attempts made, the time left
//! and a random draw, so the rules are tested without sockets or clocks.

use std::time::Duration;

use crate::Consistency;
use crate::Error;
use crate::error::Outcome;

/// How the client repeats a failed call it may repeat (which calls, see the
/// crate documentation). Every attempt, waits included, stays within the
/// call's deadline ([`ClientConfig::request_timeout`](crate::ClientConfig)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts of one call at most, the first included (1: never repeat).
    pub max_attempts: u32,
    /// The wait before the second attempt, doubled before each further one.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    /// Up to 10 attempts, waiting about 50 ms, 100 ms, ... up to 1 s between them.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryConfig {
    /// Never repeat a call (a failed call still moves later calls to the
    /// next endpoint when its node is unavailable).
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before attempt `attempts + 1`: the doubled backoff, capped,
    /// then drawn from its upper half by `jitter` in `[0, 1]` ("equal
    /// jitter", so clients that failed together spread out but none retries
    /// at once).
    fn backoff(&self, attempts: u32, jitter: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        let base = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// What a call is, as far as sending it again goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Changes nothing a client could tell from one call: a get at any
    /// level (a SERIAL read may complete a pending write, the same one
    /// whoever reads), a scan, a status, opening a watch. Repeated on any
    /// error that may pass, an unknown outcome included.
    Read,
    /// A put at ONE. Repeated on an unknown outcome too: the same value is
    /// then written again under a newer version, which wins by
    /// last-writer-wins; both writes fall within the call, so the result is
    /// one the call could have had anyway. The version returned is the last
    /// attempt's, and a reader may see the value under the earlier version
    /// first.
    PutAtOne,
    /// A delete at ONE, or a put or delete at the server's default level
    /// (which `--default-write-consistency` may make QUORUM or ALL).
    /// Repeated only when the error proves nothing was applied: a repeated
    /// delete would report `existed` false for a value the first attempt
    /// deleted, and the default level may be one that must not be repeated.
    WriteIfNotApplied,
    /// Never repeated by the client, as docs/consistency.md promises: a CAS,
    /// a put or delete at SERIAL, QUORUM or ALL, a configuration change. The
    /// caller decides, with [`Error::is_retryable`] and
    /// [`Error::is_outcome_unknown`].
    Once,
}

impl Op {
    /// A put at `level` (`Unspecified`: the server's default).
    pub(crate) fn put(level: Consistency) -> Self {
        match level {
            Consistency::One => Self::PutAtOne,
            Consistency::Unspecified => Self::WriteIfNotApplied,
            Consistency::Quorum | Consistency::All | Consistency::Serial => Self::Once,
        }
    }

    /// A delete at `level` (`Unspecified`: the server's default).
    pub(crate) fn delete(level: Consistency) -> Self {
        match level {
            Consistency::One | Consistency::Unspecified => Self::WriteIfNotApplied,
            Consistency::Quorum | Consistency::All | Consistency::Serial => Self::Once,
        }
    }

    /// Whether a failure with `outcome` allows sending the call again.
    fn may_repeat(self, outcome: Outcome) -> bool {
        match (self, outcome) {
            (_, Outcome::Refused) | (Self::Once, _) => false,
            (Self::WriteIfNotApplied, outcome) => outcome == Outcome::NotApplied,
            (Self::Read | Self::PutAtOne, Outcome::NotApplied | Outcome::Unknown) => true,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Leave the endpoint in use for the next one, for this call's next
    /// attempt and for later calls.
    pub(crate) fail_over: bool,
    /// Send the call again after this wait; `None`: report the error.
    pub(crate) retry_after: Option<Duration>,
}

/// Decides after attempt number `attempts` (1 for the first) of `op` failed
/// with `error`, `time_left` before the call's deadline; `jitter` is a
/// uniform draw from `[0, 1]`.
pub(crate) fn decide(
    config: &RetryConfig,
    op: Op,
    error: &Error,
    attempts: u32,
    time_left: Duration,
    jitter: f64,
) -> Decision {
    let fail_over = error.is_node_unavailable();
    let retry_after = (op.may_repeat(error.outcome()) && attempts < config.max_attempts)
        .then(|| config.backoff(attempts, jitter))
        // A wait that would end past the deadline leaves no time to try.
        .filter(|wait| *wait < time_left);
    Decision {
        fail_over,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    const PLENTY: Duration = Duration::from_secs(10);

    fn refused_connection() -> Error {
        Error::Connect {
            endpoint: "n1:7000".into(),
            reason: "Connection refused (os error 111)".into(),
        }
    }

    fn reset_connection() -> Error {
        Error::Transport {
            endpoint: "n1:7000".into(),
            reason: "connection reset".into(),
        }
    }

    fn refusal(code: tonic::Code, error_code: ErrorCode) -> Error {
        Error::Server {
            code,
            error_code: Some(error_code),
            message: "refused".into(),
        }
    }

    fn retries(op: Op, error: &Error) -> bool {
        decide(&RetryConfig::default(), op, error, 1, PLENTY, 0.5)
            .retry_after
            .is_some()
    }

    #[test]
    fn a_read_is_repeated_on_any_error_that_may_pass_even_an_unknown_outcome() {
        for e in [
            refused_connection(),
            reset_connection(),
            refusal(tonic::Code::Unavailable, ErrorCode::Bootstrapping),
            refusal(tonic::Code::Unavailable, ErrorCode::ShuttingDown),
            refusal(tonic::Code::DeadlineExceeded, ErrorCode::ReadTimeout),
            refusal(tonic::Code::DeadlineExceeded, ErrorCode::OutcomeUnknown),
        ] {
            assert!(retries(Op::Read, &e), "{e:?}");
        }
    }

    #[test]
    fn a_refused_request_is_never_repeated_whatever_the_operation() {
        for e in [
            refusal(tonic::Code::InvalidArgument, ErrorCode::EmptyKey),
            refusal(tonic::Code::InvalidArgument, ErrorCode::ValueTooLarge),
            refusal(tonic::Code::FailedPrecondition, ErrorCode::StrongKeyspace),
            Error::InvalidResponse("missing version".into()),
            Error::BadEndpoint("nohost".into()),
        ] {
            for op in [Op::Read, Op::PutAtOne, Op::WriteIfNotApplied, Op::Once] {
                assert!(!retries(op, &e), "{op:?} {e:?}");
            }
        }
    }

    #[test]
    fn a_put_at_one_is_repeated_after_an_unknown_outcome_and_when_not_sent() {
        assert_eq!(Op::put(Consistency::One), Op::PutAtOne);
        assert!(retries(Op::PutAtOne, &refused_connection()));
        assert!(retries(Op::PutAtOne, &reset_connection()));
    }

    #[test]
    fn a_delete_at_one_or_a_write_at_the_default_level_is_repeated_only_when_not_applied() {
        assert_eq!(Op::delete(Consistency::One), Op::WriteIfNotApplied);
        assert_eq!(Op::put(Consistency::Unspecified), Op::WriteIfNotApplied);
        assert_eq!(Op::delete(Consistency::Unspecified), Op::WriteIfNotApplied);
        let op = Op::WriteIfNotApplied;
        assert!(retries(op, &refused_connection()));
        assert!(retries(
            op,
            &refusal(tonic::Code::Unavailable, ErrorCode::Bootstrapping)
        ));
        assert!(!retries(op, &reset_connection()));
        assert!(!retries(op, &Error::Timeout(PLENTY)));
        assert!(!retries(
            op,
            &refusal(tonic::Code::Unavailable, ErrorCode::ShuttingDown)
        ));
    }

    #[test]
    fn a_cas_or_a_strong_write_is_never_repeated_even_when_not_sent() {
        for level in [Consistency::Serial, Consistency::Quorum, Consistency::All] {
            assert_eq!(Op::put(level), Op::Once, "{level:?}");
            assert_eq!(Op::delete(level), Op::Once, "{level:?}");
        }
        for e in [
            refused_connection(),
            reset_connection(),
            refusal(tonic::Code::Aborted, ErrorCode::Contention),
            refusal(tonic::Code::DeadlineExceeded, ErrorCode::OutcomeUnknown),
        ] {
            let d = decide(&RetryConfig::default(), Op::Once, &e, 1, PLENTY, 0.5);
            assert_eq!(d.retry_after, None, "{e:?}");
        }
    }

    #[test]
    fn a_dead_node_is_left_even_by_a_call_that_is_not_repeated() {
        let d = decide(
            &RetryConfig::default(),
            Op::Once,
            &refused_connection(),
            1,
            PLENTY,
            0.5,
        );
        assert!(d.fail_over && d.retry_after.is_none(), "{d:?}");
        let d = decide(
            &RetryConfig::default(),
            Op::Read,
            &refusal(tonic::Code::InvalidArgument, ErrorCode::EmptyKey),
            1,
            PLENTY,
            0.5,
        );
        assert!(!d.fail_over, "a refusal says nothing against the node");
    }

    #[test]
    fn no_attempt_is_made_past_the_attempt_limit_or_the_deadline() {
        let config = RetryConfig::default();
        let e = refused_connection();
        assert!(
            decide(&config, Op::Read, &e, config.max_attempts - 1, PLENTY, 0.5)
                .retry_after
                .is_some()
        );
        assert_eq!(
            decide(&config, Op::Read, &e, config.max_attempts, PLENTY, 0.5).retry_after,
            None
        );
        assert_eq!(
            decide(&RetryConfig::never(), Op::Read, &e, 1, PLENTY, 0.5).retry_after,
            None
        );
        // The first wait is 25 to 50 ms: 20 ms left is too little, 60 ms enough.
        let tight = decide(&config, Op::Read, &e, 1, Duration::from_millis(20), 0.0);
        assert_eq!(tight.retry_after, None);
        let ok = decide(&config, Op::Read, &e, 1, Duration::from_millis(60), 1.0);
        assert_eq!(ok.retry_after, Some(Duration::from_millis(50)));
    }

    #[test]
    fn waits_double_up_to_the_cap_and_jitter_spreads_them_over_the_upper_half() {
        let config = RetryConfig::default();
        let waits: Vec<_> = (1..=7).map(|a| config.backoff(a, 1.0)).collect();
        let ms = |m| Duration::from_millis(m);
        assert_eq!(
            waits,
            [
                ms(50),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(config.backoff(3, 0.0), ms(100));
        assert_eq!(config.backoff(3, 0.5), ms(150));
        // Out-of-range draws and huge attempt counts stay bounded.
        assert_eq!(config.backoff(3, 7.0), ms(200));
        assert_eq!(config.backoff(u32::MAX, 1.0), ms(1000));
    }
}
