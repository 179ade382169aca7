//! Client errors, split by what the caller can do about them.

use vergent_wire::api::v1::ErrorCode;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local TLS files could not be loaded; nothing was sent.
    #[error("TLS setup: {0}")]
    Tls(#[from] vergent_tls::Error),
    /// The endpoint is not a valid `host:port`.
    #[error("invalid endpoint {0:?}: expected HOST:PORT")]
    BadEndpoint(String),
    /// The node could not be reached or refused the TLS handshake; nothing was
    /// applied.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The transport or TLS error.
        reason: String,
    },
    /// The call did not complete in time; a write may or may not have happened.
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The node answered with an error.
    #[error("{message}")]
    Server {
        /// The gRPC status code.
        code: tonic::Code,
        /// Vergent's stable error code, when the node sent one.
        error_code: Option<ErrorCode>,
        /// The node's message.
        message: String,
    },
    /// The node's answer was not valid.
    #[error("invalid response from node: {0}")]
    InvalidResponse(String),
}

impl Error {
    /// Whether the error is about reaching the node (network or TLS), as
    /// opposed to a refused request.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Tls(_) | Self::BadEndpoint(_)
        )
    }

    /// Vergent's stable error code, when the node sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { error_code, .. } => *error_code,
            _ => None,
        }
    }

    /// Whether a write may or may not have applied: the node said so
    /// (`OUTCOME_UNKNOWN`), or no answer came in time. Resolve with a
    /// SERIAL read; never retry blindly.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout(_)) || self.code() == Some(ErrorCode::OutcomeUnknown)
    }

    /// The first call on a new connection failed: anything but a refusal
    /// carrying a Vergent error code means the node never really answered
    /// (typically it rejected our certificate after the handshake).
    pub(crate) fn into_connect(self, endpoint: &str) -> Self {
        match self {
            Self::Server {
                error_code: None,
                code,
                message,
            } => Self::Connect {
                endpoint: endpoint.to_string(),
                reason: format!("{message} ({code:?})"),
            },
            other => other,
        }
    }

    pub(crate) fn from_status(endpoint: &str, status: tonic::Status) -> Self {
        let error_code = ErrorCode::from_status(&status);
        // Transport failures (refused connection, TLS alert) arrive without a
        // Vergent error code, as UNAVAILABLE or as UNKNOWN with a source.
        let transport = error_code.is_none()
            && (matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled
            ) || (status.code() == tonic::Code::Unknown
                && std::error::Error::source(&status).is_some()));
        if transport {
            return Self::Connect {
                endpoint: endpoint.to_string(),
                reason: describe_transport(&status),
            };
        }
        Self::Server {
            code: status.code(),
            error_code,
            message: status.message().to_string(),
        }
    }
}

/// The whole chain of a transport error, outermost first, without repeats.
fn describe_transport(status: &tonic::Status) -> String {
    let mut parts = vec![status.message().to_string()];
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        source = s.source();
    }
    parts.join(": ")
}
