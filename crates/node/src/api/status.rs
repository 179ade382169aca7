//! gRPC request errors and their one mapping to `tonic::Status`.

use tonic::{Code, Status};
use vergent_types::LimitError;
use vergent_wire::api::v1::{Consistency, ErrorCode};

use crate::kv::KvError;
use crate::strong::StrongError;

/// Why a gRPC request failed: the local service's error, or one about the
/// request's protocol fields.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The local service refused or failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The consistency level is not served by this node yet.
    #[error("consistency level {0} is not available on this node yet; use ONE (the default)")]
    UnsupportedConsistency(&'static str),
    /// Some other field is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// An eventual write under a prefix declared strict.
    #[error(
        "key is under the strict prefix {0:?}: eventual (ONE) writes are refused there; write it with SERIAL or CompareAndSet"
    )]
    StrictKeyspace(String),
    /// A strong operation failed or its outcome is unknown.
    #[error(transparent)]
    Strong(#[from] StrongError),
    /// The connection is over its request rate limit; nothing was done.
    #[error(
        "rate limit: this connection may send {per_second} requests per second (bursts of {burst}); nothing was done, retry in {} ms",
        retry_after.as_millis().max(1)
    )]
    RateLimited {
        /// The sustained rate allowed.
        per_second: u32,
        /// The burst allowed.
        burst: u32,
        /// How long until the next request would be admitted.
        retry_after: std::time::Duration,
    },
    /// Another backup is being taken on this node.
    #[error("a backup of this node is already running (one at a time); nothing was done")]
    BackupRunning,
    /// Taking or sending a backup failed; the store is unchanged.
    #[error("backup failed: {0}")]
    Backup(String),
}

impl ApiError {
    /// The level a request asked for (`default` when it names none).
    pub(crate) fn check_consistency(raw: i32, default: Consistency) -> Result<Consistency, Self> {
        match Consistency::try_from(raw) {
            Ok(Consistency::Unspecified) => Ok(default),
            Ok(c) => Ok(c),
            Err(_) => Err(Self::BadRequest(format!("unknown consistency level {raw}"))),
        }
    }
}

/// The single place where request errors become gRPC statuses.
pub(crate) fn to_status(e: ApiError) -> Status {
    // The local service's refusals read the same whichever path met them.
    let e = match e {
        ApiError::Strong(StrongError::Kv(k)) => ApiError::Kv(k),
        ApiError::Strong(StrongError::Storage(s)) => ApiError::Kv(KvError::Storage(s)),
        e => e,
    };
    let msg = e.to_string();
    let (code, error_code) = match &e {
        ApiError::Kv(KvError::Limit(LimitError::EmptyKey)) => {
            (Code::InvalidArgument, ErrorCode::EmptyKey)
        }
        ApiError::Kv(KvError::Limit(LimitError::KeyTooLarge { .. })) => {
            (Code::InvalidArgument, ErrorCode::KeyTooLarge)
        }
        ApiError::Kv(KvError::Limit(LimitError::ValueTooLarge { .. })) => {
            (Code::InvalidArgument, ErrorCode::ValueTooLarge)
        }
        ApiError::UnsupportedConsistency(_) => {
            (Code::Unimplemented, ErrorCode::UnsupportedConsistency)
        }
        ApiError::BadRequest(_) | ApiError::Kv(KvError::BadRequest(_)) => {
            (Code::InvalidArgument, ErrorCode::BadRequest)
        }
        ApiError::Kv(KvError::Storage(vergent_storage::Error::CorruptRecord { .. })) => {
            (Code::DataLoss, ErrorCode::DataCorruption)
        }
        // The node is stopping itself; another node can take the request.
        ApiError::Kv(KvError::Storage(vergent_storage::Error::Failed(_))) => {
            (Code::Unavailable, ErrorCode::StorageFailure)
        }
        ApiError::Kv(KvError::Storage(_)) => (Code::Internal, ErrorCode::StorageFailure),
        ApiError::Kv(KvError::ShuttingDown) => (Code::Unavailable, ErrorCode::ShuttingDown),
        ApiError::Kv(KvError::WatchLagged(_)) => (Code::ResourceExhausted, ErrorCode::WatchLagged),
        ApiError::Kv(KvError::Bootstrapping { .. }) => {
            (Code::Unavailable, ErrorCode::Bootstrapping)
        }
        ApiError::Kv(KvError::Fenced(_)) => (Code::Unavailable, ErrorCode::Fenced),
        ApiError::StrictKeyspace(_) => (Code::FailedPrecondition, ErrorCode::StrongKeyspace),
        ApiError::RateLimited { .. } => (Code::ResourceExhausted, ErrorCode::RateLimited),
        ApiError::BackupRunning => (Code::ResourceExhausted, ErrorCode::BackupRunning),
        ApiError::Backup(_) => (Code::Internal, ErrorCode::StorageFailure),
        ApiError::Strong(s) => match s {
            StrongError::NoConfig(_) => (Code::Unavailable, ErrorCode::NoVotingConfig),
            StrongError::Unavailable { .. } => (Code::Unavailable, ErrorCode::NotEnoughVoters),
            StrongError::Contention => (Code::Aborted, ErrorCode::Contention),
            StrongError::Unknown | StrongError::LevelUnknown { .. } => {
                (Code::DeadlineExceeded, ErrorCode::OutcomeUnknown)
            }
            StrongError::ReadTimeout { .. } => (Code::DeadlineExceeded, ErrorCode::ReadTimeout),
            StrongError::ClockSkew(_) => (Code::FailedPrecondition, ErrorCode::ClockSkew),
            StrongError::Corrupt(_) => (Code::DataLoss, ErrorCode::DataCorruption),
            StrongError::BadChange(_) => (Code::FailedPrecondition, ErrorCode::BadRequest),
            StrongError::Forfeit => (Code::Unavailable, ErrorCode::NotEnoughVoters),
            // Converted above.
            StrongError::Kv(_) | StrongError::Storage(_) => {
                (Code::Internal, ErrorCode::StorageFailure)
            }
            StrongError::Wire(_)
            | StrongError::Transport(_)
            | StrongError::NoAnswer(_)
            | StrongError::Task(_) => (Code::Internal, ErrorCode::Unspecified),
        },
    };
    if matches!(code, Code::Internal | Code::DataLoss) {
        tracing::error!(error = %msg, "request failed");
    }
    let mut status = error_code.attach(Status::new(code, msg));
    if let ApiError::RateLimited { retry_after, .. } = &e
        && let Ok(v) = retry_after.as_millis().max(1).to_string().parse()
    {
        status
            .metadata_mut()
            .insert(vergent_wire::RETRY_AFTER_METADATA, v);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_errors_are_invalid_argument_with_a_stable_code() {
        let st = to_status(ApiError::Kv(KvError::Limit(LimitError::ValueTooLarge {
            len: 5,
            max: 4,
        })));
        assert_eq!(st.code(), Code::InvalidArgument);
        assert_eq!(ErrorCode::from_status(&st), Some(ErrorCode::ValueTooLarge));
        assert!(st.message().contains("limit is 4 bytes"));
    }

    #[test]
    fn a_rate_limited_request_is_resource_exhausted_with_a_retry_hint() {
        let st = to_status(ApiError::RateLimited {
            per_second: 100,
            burst: 20,
            retry_after: std::time::Duration::from_micros(7_500),
        });
        assert_eq!(st.code(), Code::ResourceExhausted);
        assert_eq!(ErrorCode::from_status(&st), Some(ErrorCode::RateLimited));
        assert_eq!(
            st.metadata()
                .get(vergent_wire::RETRY_AFTER_METADATA)
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        assert!(
            st.message().contains("100 requests per second"),
            "{}",
            st.message()
        );
        assert!(
            st.message().contains("nothing was done"),
            "{}",
            st.message()
        );
    }

    #[test]
    fn strong_failures_map_to_honest_codes() {
        let cases = [
            (
                StrongError::Unavailable {
                    needed: 2,
                    voters: 3,
                    reachable: 1,
                },
                Code::Unavailable,
                ErrorCode::NotEnoughVoters,
                "needed 2 of 3 voters, reachable 1",
            ),
            (
                StrongError::Unknown,
                Code::DeadlineExceeded,
                ErrorCode::OutcomeUnknown,
                "SERIAL",
            ),
            (
                StrongError::LevelUnknown {
                    level: "QUORUM",
                    held: 1,
                    voters: 3,
                },
                Code::DeadlineExceeded,
                ErrorCode::OutcomeUnknown,
                "only 1 of the 3 voters acknowledged it in time, too few for QUORUM",
            ),
            (
                StrongError::ReadTimeout {
                    level: "ALL",
                    heard: 2,
                },
                Code::DeadlineExceeded,
                ErrorCode::ReadTimeout,
                "a read at ALL heard from 2 voters",
            ),
            (
                StrongError::Contention,
                Code::Aborted,
                ErrorCode::Contention,
                "not applied",
            ),
            (
                StrongError::NoConfig("x".into()),
                Code::Unavailable,
                ErrorCode::NoVotingConfig,
                "no voting configuration",
            ),
        ];
        for (e, code, error_code, text) in cases {
            let st = to_status(ApiError::Strong(e));
            assert_eq!(st.code(), code);
            assert_eq!(ErrorCode::from_status(&st), Some(error_code));
            assert!(st.message().contains(text), "{}", st.message());
        }
        let st = to_status(ApiError::Strong(StrongError::Kv(KvError::ShuttingDown)));
        assert_eq!(ErrorCode::from_status(&st), Some(ErrorCode::ShuttingDown));
    }

    #[test]
    fn quorum_and_all_are_refused_as_unimplemented_and_serial_is_served() {
        let check = |raw, default| ApiError::check_consistency(raw, default).ok();
        assert_eq!(check(0, Consistency::One), Some(Consistency::One));
        assert_eq!(
            check(0, Consistency::Quorum),
            Some(Consistency::Quorum),
            "unspecified takes the server's default"
        );
        assert_eq!(check(1, Consistency::All), Some(Consistency::One));
        assert_eq!(check(2, Consistency::One), Some(Consistency::Quorum));
        assert_eq!(check(3, Consistency::One), Some(Consistency::All));
        assert_eq!(check(4, Consistency::One), Some(Consistency::Serial));
        let st = to_status(ApiError::check_consistency(99, Consistency::One).expect_err("unknown"));
        assert_eq!(st.code(), Code::InvalidArgument);
    }
}
