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
    /// The node could not be reached or refused the TLS handshake; the
    /// request was never sent, so nothing was applied.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The transport or TLS error.
        reason: String,
    },
    /// The connection failed while the call was under way (reset, closed,
    /// a protocol error): the request may have reached the node, so a write
    /// may or may not have happened.
    #[error("connection to {endpoint} lost during the call: {reason}")]
    Transport {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
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
    /// A local file or directory could not be used (a backup's target, say).
    #[error("{0}")]
    Local(String),
}

impl Error {
    /// Whether the error is about reaching the node (network or TLS), as
    /// opposed to a refused request.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Transport { .. } | Self::Tls(_) | Self::BadEndpoint(_)
        )
    }

    /// Whether the request certainly never reached the node (no connection
    /// could be made, bad TLS files or endpoint): nothing was applied.
    pub fn is_not_sent(&self) -> bool {
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
        matches!(self, Self::Timeout(_) | Self::Transport { .. })
            || self.code() == Some(ErrorCode::OutcomeUnknown)
    }

    /// Whether the same request may be sent again, to this node or another,
    /// without any risk of applying it twice, and may then succeed: the error
    /// proves nothing was applied and its cause may pass.
    ///
    /// True for [`Error::Connect`] (no connection, so never sent) and for
    /// these refusals, each of which the node sends before changing
    /// anything: `BOOTSTRAPPING`, `FENCED` (another node may serve),
    /// `CONTENTION`, `NOT_ENOUGH_VOTERS`, `NO_VOTING_CONFIG`,
    /// `READ_TIMEOUT` and `RATE_LIMITED` (the cause may pass). False for an unknown outcome
    /// ([`Error::Transport`], [`Error::Timeout`], `OUTCOME_UNKNOWN`, and
    /// `SHUTTING_DOWN` or `STORAGE_FAILURE`, which can come after a write
    /// was queued), for a request that would be refused again (an invalid
    /// key or value, a strict keyspace, an invalid answer) and for local
    /// setup errors ([`Error::Tls`], [`Error::BadEndpoint`]).
    ///
    /// This holds for any operation, a CAS or a strong write included: the
    /// caller may repeat those on such an error. The client repeats only
    /// reads and writes at ONE by itself (see the crate documentation).
    pub fn is_retryable(&self) -> bool {
        self.outcome() == Outcome::NotApplied
    }

    /// What the error proves about whether the request was applied.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Self::Connect { .. } => Outcome::NotApplied,
            Self::Transport { .. } | Self::Timeout(_) => Outcome::Unknown,
            Self::Tls(_) | Self::BadEndpoint(_) | Self::InvalidResponse(_) | Self::Local(_) => {
                Outcome::Refused
            }
            Self::Server { error_code, .. } => match error_code {
                Some(
                    ErrorCode::Bootstrapping
                    | ErrorCode::Fenced
                    | ErrorCode::Contention
                    | ErrorCode::NotEnoughVoters
                    | ErrorCode::NoVotingConfig
                    | ErrorCode::ReadTimeout
                    | ErrorCode::RateLimited
                    | ErrorCode::BackupRunning,
                ) => Outcome::NotApplied,
                Some(
                    ErrorCode::ShuttingDown | ErrorCode::StorageFailure | ErrorCode::OutcomeUnknown,
                ) => Outcome::Unknown,
                // Codes added later stay unretried until classified here.
                _ => Outcome::Refused,
            },
        }
    }

    /// Whether the node in use cannot serve now (unreachable, silent past
    /// the deadline, stopping, filling from peers, fenced, cut off from the
    /// voters, or its storage stopped), so later calls should go to another
    /// endpoint.
    pub(crate) fn is_node_unavailable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Transport { .. } | Self::Timeout(_) => true,
            Self::Server {
                code, error_code, ..
            } => match error_code {
                Some(
                    ErrorCode::ShuttingDown
                    | ErrorCode::Bootstrapping
                    | ErrorCode::Fenced
                    | ErrorCode::NotEnoughVoters,
                ) => true,
                Some(ErrorCode::StorageFailure) => *code == tonic::Code::Unavailable,
                _ => false,
            },
            Self::Tls(_) | Self::BadEndpoint(_) | Self::InvalidResponse(_) | Self::Local(_) => {
                false
            }
        }
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
            // The connection dropped under the first call (a TLS 1.3 server
            // refusing our certificate closes it then): still no connection.
            Self::Transport { reason, .. } => Self::Connect {
                endpoint: endpoint.to_string(),
                reason,
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
            let reason = describe_transport(&status);
            // Only a failure to connect proves the request was not sent: a
            // reset or closed connection may come after the node read it.
            return if is_connect_failure(&status) {
                Self::Connect {
                    endpoint: endpoint.to_string(),
                    reason,
                }
            } else {
                Self::Transport {
                    endpoint: endpoint.to_string(),
                    reason,
                }
            };
        }
        Self::Server {
            code: status.code(),
            error_code,
            message: status.message().to_string(),
        }
    }
}

/// What a failed call proves about whether its request was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing was applied, and the cause may pass (or spare another node).
    NotApplied,
    /// The request may have been applied.
    Unknown,
    /// Sending it again would meet the same refusal or local error.
    Refused,
}

/// Whether a transport failure happened while connecting (refused, no
/// route, TLS handshake), before any request could be sent.
fn is_connect_failure(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        // hyper-util's connector failures ("tcp connect error", "client
        // error (Connect)") also wrap TLS handshake refusals.
        let m = s.to_string();
        if m.contains("tcp connect error") || m.contains("(Connect)") {
            return true;
        }
        source = s.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn transport_status(source: std::io::Error) -> tonic::Status {
        let mut s = tonic::Status::unavailable("transport error");
        s.set_source(Arc::new(source));
        s
    }

    #[test]
    fn a_refused_connection_is_known_not_to_have_sent_anything() {
        let e = Error::from_status(
            "n1:7000",
            transport_status(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        );
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        assert!(e.is_not_sent() && e.is_connection());
        assert!(!e.is_outcome_unknown());
    }

    #[test]
    fn a_connection_reset_during_a_call_leaves_its_outcome_unknown() {
        // The request may have been read before the reset: a strong write
        // sent this way can have applied (seen in the chaos suite).
        let e = Error::from_status(
            "n1:7000",
            transport_status(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection error: connection reset",
            )),
        );
        assert!(matches!(e, Error::Transport { .. }), "{e:?}");
        assert!(e.is_outcome_unknown(), "{e}");
        assert!(!e.is_not_sent());
        assert!(e.is_connection(), "still about reaching the node");
        assert!(e.to_string().contains("connection reset"), "{e}");
    }

    #[test]
    fn a_connection_dropped_under_the_first_call_is_a_failure_to_connect() {
        let e = Error::from_status(
            "n1:7000",
            transport_status(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "stream closed because of a broken pipe",
            )),
        )
        .into_connect("n1:7000");
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("cannot connect to n1:7000"),
            "{e}"
        );
    }

    fn refusal(code: tonic::Code, error_code: Option<ErrorCode>) -> Error {
        Error::Server {
            code,
            error_code,
            message: "refused".into(),
        }
    }

    #[test]
    fn only_errors_that_prove_nothing_was_applied_are_retryable() {
        let tls = Error::Tls(vergent_tls::Error::Read {
            path: "client.key".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        let connect = Error::Connect {
            endpoint: "n1:7000".into(),
            reason: "connection refused".into(),
        };
        let transport = Error::Transport {
            endpoint: "n1:7000".into(),
            reason: "connection reset".into(),
        };
        let cases = [
            (tls, false),
            (Error::BadEndpoint("nohost".into()), false),
            (connect, true),
            (transport, false),
            (Error::Timeout(std::time::Duration::from_secs(1)), false),
            (Error::InvalidResponse("missing version".into()), false),
            (refusal(tonic::Code::Internal, None), false),
            (refusal(tonic::Code::Unavailable, None), false),
        ];
        for (e, retryable) in cases {
            assert_eq!(e.is_retryable(), retryable, "{e:?}");
            // Retryable means known not applied: never an unknown outcome.
            assert!(!(e.is_retryable() && e.is_outcome_unknown()), "{e:?}");
        }
    }

    #[test]
    fn refusals_are_retryable_only_for_codes_sent_before_anything_changed() {
        let retryable = [
            ErrorCode::Bootstrapping,
            ErrorCode::Fenced,
            ErrorCode::Contention,
            ErrorCode::NotEnoughVoters,
            ErrorCode::NoVotingConfig,
            ErrorCode::ReadTimeout,
            ErrorCode::RateLimited,
            ErrorCode::BackupRunning,
        ];
        let mut seen = 0;
        // Every code the client knows, including any added after this test.
        for code in (0..64).filter_map(|i| ErrorCode::try_from(i).ok()) {
            seen += 1;
            let e = refusal(tonic::Code::Unavailable, Some(code));
            assert_eq!(e.is_retryable(), retryable.contains(&code), "{code:?}");
            assert!(!(e.is_retryable() && e.is_outcome_unknown()), "{code:?}");
        }
        assert!(seen >= 20, "only {seen} codes enumerated");
    }

    #[test]
    fn a_node_that_cannot_serve_is_left_for_another_but_a_refused_request_is_not() {
        let unavailable = [
            Error::Connect {
                endpoint: "n1:7000".into(),
                reason: "connection refused".into(),
            },
            Error::Transport {
                endpoint: "n1:7000".into(),
                reason: "connection reset".into(),
            },
            Error::Timeout(std::time::Duration::from_secs(1)),
            refusal(tonic::Code::Unavailable, Some(ErrorCode::ShuttingDown)),
            refusal(tonic::Code::Unavailable, Some(ErrorCode::Bootstrapping)),
            refusal(tonic::Code::Unavailable, Some(ErrorCode::Fenced)),
            refusal(tonic::Code::Unavailable, Some(ErrorCode::NotEnoughVoters)),
            refusal(tonic::Code::Unavailable, Some(ErrorCode::StorageFailure)),
        ];
        for e in unavailable {
            assert!(e.is_node_unavailable(), "{e:?}");
        }
        let serving = [
            Error::BadEndpoint("nohost".into()),
            Error::InvalidResponse("missing version".into()),
            refusal(tonic::Code::Internal, Some(ErrorCode::StorageFailure)),
            refusal(tonic::Code::InvalidArgument, Some(ErrorCode::EmptyKey)),
            refusal(tonic::Code::Aborted, Some(ErrorCode::Contention)),
            refusal(
                tonic::Code::DeadlineExceeded,
                Some(ErrorCode::OutcomeUnknown),
            ),
            refusal(tonic::Code::DeadlineExceeded, Some(ErrorCode::ReadTimeout)),
        ];
        for e in serving {
            assert!(!e.is_node_unavailable(), "{e:?}");
        }
    }

    #[test]
    fn a_failure_of_the_connector_counts_as_not_sent() {
        #[derive(Debug)]
        struct ConnectError;
        impl std::fmt::Display for ConnectError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl std::error::Error for ConnectError {}
        let mut s = tonic::Status::unavailable("transport error");
        s.set_source(Arc::new(ConnectError));
        assert!(Error::from_status("n1:7000", s).is_not_sent());
    }
}
