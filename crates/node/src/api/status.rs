//! gRPC request errors and their one mapping to `tonic::Status`.

use tonic::{Code, Status};
use vergent_types::LimitError;
use vergent_wire::api::v1::{Consistency, ErrorCode};

use crate::kv::KvError;

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
        let st = to_status(ApiError::Kv(KvError::Limit(LimitError::ValueTooLarge {
            len: 5,
            max: 4,
        })));
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
