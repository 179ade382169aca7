//! Certificate rotation without downtime: on SIGHUP (through
//! [`NodeHandle::reload_tls`](crate::NodeHandle::reload_tls)) or when the
//! certificate, key or CA file changes, the node loads the three files again
//! with every start-up check, and new connections on both protocols (the
//! client API over TLS, peers over QUIC) use them; established connections
//! keep theirs until they close. A set of files that fails a check is
//! logged and the node keeps presenting what it had.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vergent_tls::TlsFiles;
use vergent_transport::Transport;

/// How often the files are looked at for changes.
const POLL: Duration = Duration::from_secs(5);

/// Why a reload was refused; the node keeps its current identity.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A file is missing or unreadable, or the three do not fit together.
    #[error("TLS: {0}")]
    Tls(#[from] vergent_tls::Error),
    /// The certificate cannot serve (no server authentication).
    #[error(
        "TLS: {path} is not a node certificate (its extended key usage grants the {role} role); \
         a node needs server and client authentication"
    )]
    NotANodeCertificate {
        /// The certificate file.
        path: std::path::PathBuf,
        /// The role it grants.
        role: vergent_tls::Role,
    },
    /// The peer transport refused the new configuration.
    #[error("peer transport: {0}")]
    Transport(#[from] vergent_transport::Error),
}

/// What the node presents now, as a reload reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    /// The certificate's serial number, lowercase hex.
    pub serial_hex: String,
    /// Its subject.
    pub subject: String,
    /// End of its validity.
    pub not_after: String,
}

/// The files' identity on disk: a change to any of them is a new stamp.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &TlsFiles) -> Stamp {
    [&files.cert, &files.key, &files.ca]
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Reloads the node's TLS identity into the API listener and the transport.
pub(crate) struct TlsReload {
    files: TlsFiles,
    api: watch::Sender<Arc<rustls::ServerConfig>>,
    transport: Transport,
    /// The files as last looked at; one reload at a time.
    last: Mutex<Stamp>,
}

impl std::fmt::Debug for TlsReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReload")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsReload {
    /// Watches `files`, feeding `api` and `transport`.
    pub(crate) fn new(
        files: TlsFiles,
        api: watch::Sender<Arc<rustls::ServerConfig>>,
        transport: Transport,
    ) -> Self {
        let last = Mutex::new(stamp(&files));
        Self {
            files,
            api,
            transport,
            last,
        }
    }

    /// Loads the files and presents them on new connections, or says why not.
    pub(crate) fn reload(&self, trigger: &str) -> Result<Presented, ReloadError> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        *last = stamp(&self.files);
        let result = self.load_and_swap();
        match &result {
            Ok(p) => info!(
                trigger,
                serial = %p.serial_hex,
                subject = %p.subject,
                not_after = %p.not_after,
                "reloaded the TLS certificate, key and CA; new connections use them"
            ),
            Err(e) => warn!(
                trigger,
                error = %e,
                "TLS reload refused; still presenting the previous certificate"
            ),
        }
        result
    }

    fn load_and_swap(&self) -> Result<Presented, ReloadError> {
        let identity = vergent_tls::Identity::load(&self.files)?;
        if identity.role() != vergent_tls::Role::Node {
            return Err(ReloadError::NotANodeCertificate {
                path: self.files.cert.clone(),
                role: identity.role(),
            });
        }
        let api = vergent_tls::server_config(&identity, &[b"h2"])?;
        let leaf =
            identity
                .cert_chain()
                .first()
                .ok_or_else(|| vergent_tls::Error::NoCertificate {
                    path: self.files.cert.clone(),
                })?;
        let info = vergent_tls::inspect(leaf.as_ref())?;
        // Both or neither: the transport first, as it can still refuse.
        self.transport.reload_identity(&identity)?;
        self.api.send_replace(Arc::new(api));
        Ok(Presented {
            serial_hex: info.serial_hex,
            subject: info.subject,
            not_after: info.not_after,
        })
    }

    /// Whether a file changed since it was last looked at.
    fn changed(&self) -> bool {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) != stamp(&self.files)
    }
}

/// Reloads whenever the files change, until `shutdown` (a signal reloads
/// through [`TlsReload::reload`] directly).
pub(crate) async fn run(reload: Arc<TlsReload>, shutdown: CancellationToken) {
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = poll.tick() => {
                if !reload.changed() {
                    continue;
                }
                "files changed"
            }
        };
        let r = reload.clone();
        // Reading files and parsing certificates: off the async workers.
        let _ = tokio::task::spawn_blocking(move || r.reload(trigger)).await;
    }
}
