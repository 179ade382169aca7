//! Request errors and their one mapping to `tonic::Status`.

use tonic::{Code, Status};
use vergent_types::LimitError;
use vergent_wire::api::v1::{Consistency, ErrorCode};

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The key or value breaks a size rule; nothing was written.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The consistency level is not served by this node yet.
    #[error("consistency level {0} is not available on this node yet; use ONE (the default)")]
    UnsupportedConsistency(&'static str),
    /// Some other field is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] vergent_storage::Error),
    /// The node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
    /// A watch fell behind and was closed.
    #[error("watch fell behind by {0} changes and was closed; scan and watch again")]
    WatchLagged(u64),
    /// Peers refuse this node's data for good; it must be wiped.
    #[error("this node stopped serving: {0}")]
    Fenced(String),
    /// The node is filling from its peers and refuses reads meanwhile.
    #[error(
        "this node is bootstrapping ({done} of {total} differing buckets repaired so far, waiting to finish a repair session with a serving peer) and may not hold its peers' data yet; ask another node or retry"
    )]
    Bootstrapping {
        /// Buckets repaired in the current session.
        done: u64,
        /// Differing buckets found by it.
        total: u64,
    },
}

impl ApiError {
    pub(crate) fn check_consistency(raw: i32) -> Result<Consistency, Self> {
        match Consistency::try_from(raw) {
            Ok(Consistency::Unspecified | Consistency::One) => Ok(Consistency::One),
            Ok(Consistency::Quorum) => Err(Self::UnsupportedConsistency("QUORUM")),
            Ok(Consistency::All) => Err(Self::UnsupportedConsistency("ALL")),
            Ok(Consistency::Serial) => Err(Self::UnsupportedConsistency("SERIAL")),
            Err(_) => Err(Self::BadRequest(format!("unknown consistency level {raw}"))),
        }
    }
}

/// The single place where request errors become gRPC statuses.
pub(crate) fn to_status(e: ApiError) -> Status {
    let msg = e.to_string();
    let (code, error_code) = match &e {
        ApiError::Limit(LimitError::EmptyKey) => (Code::InvalidArgument, ErrorCode::EmptyKey),
        ApiError::Limit(LimitError::KeyTooLarge { .. }) => {
            (Code::InvalidArgument, ErrorCode::KeyTooLarge)
        }
        ApiError::Limit(LimitError::ValueTooLarge { .. }) => {
            (Code::InvalidArgument, ErrorCode::ValueTooLarge)
        }
        ApiError::UnsupportedConsistency(_) => {
            (Code::Unimplemented, ErrorCode::UnsupportedConsistency)
        }
        ApiError::BadRequest(_) => (Code::InvalidArgument, ErrorCode::BadRequest),
        ApiError::Storage(vergent_storage::Error::CorruptRecord { .. }) => {
            (Code::DataLoss, ErrorCode::DataCorruption)
        }
        // The node is stopping itself; another node can take the request.
        ApiError::Storage(vergent_storage::Error::Failed(_)) => {
            (Code::Unavailable, ErrorCode::StorageFailure)
        }
        ApiError::Storage(_) => (Code::Internal, ErrorCode::StorageFailure),
        ApiError::ShuttingDown => (Code::Unavailable, ErrorCode::ShuttingDown),
        ApiError::WatchLagged(_) => (Code::ResourceExhausted, ErrorCode::WatchLagged),
        ApiError::Bootstrapping { .. } => (Code::Unavailable, ErrorCode::Bootstrapping),
        ApiError::Fenced(_) => (Code::Unavailable, ErrorCode::Fenced),
    };
    if matches!(code, Code::Internal | Code::DataLoss) {
        tracing::error!(error = %msg, "request failed");
    }
    error_code.attach(Status::new(code, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_errors_are_invalid_argument_with_a_stable_code() {
        let st = to_status(ApiError::Limit(LimitError::ValueTooLarge {
            len: 5,
            max: 4,
        }));
        assert_eq!(st.code(), Code::InvalidArgument);
        assert_eq!(ErrorCode::from_status(&st), Some(ErrorCode::ValueTooLarge));
        assert!(st.message().contains("limit is 4 bytes"));
    }

    #[test]
    fn levels_other_than_one_are_refused_as_unimplemented() {
        assert_eq!(ApiError::check_consistency(0).ok(), Some(Consistency::One));
        assert_eq!(ApiError::check_consistency(1).ok(), Some(Consistency::One));
        for raw in [2, 3, 4] {
            let st = to_status(ApiError::check_consistency(raw).expect_err("refused"));
            assert_eq!(st.code(), Code::Unimplemented);
            assert_eq!(
                ErrorCode::from_status(&st),
                Some(ErrorCode::UnsupportedConsistency)
            );
        }
        let st = to_status(ApiError::check_consistency(99).expect_err("unknown"));
        assert_eq!(st.code(), Code::InvalidArgument);
    }
}
