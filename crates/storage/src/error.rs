//! Errors of the storage layer.

/// An error from the caller's stamp function, passed through unchanged.
pub type StampError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB failed; the operation did not take effect unless it was a
    /// sync failure after the write (then the write may or may not be durable).
    #[error("storage engine: {0}")]
    Engine(#[from] rocksdb::Error),
    /// Syncing the WAL to disk failed after the write; the write is in the
    /// WAL but may not survive a power loss, so it is not acknowledged.
    #[error("WAL sync failed: {0}")]
    WalSync(String),
    /// An earlier write or sync failed with an I/O error; the store refuses
    /// writes until the process restarts and recovers from the WAL.
    #[error("storage failed earlier and refuses writes until restart: {0}")]
    Failed(String),
    /// The data directory is held by another process; nothing was opened.
    #[error("data directory {path} is in use by another process (RocksDB lock held): {detail}")]
    Locked {
        /// The RocksDB directory.
        path: String,
        /// RocksDB's message.
        detail: String,
    },
    /// The data directory cannot be opened because its files are damaged.
    #[error("data directory {path} is corrupt: {detail}")]
    CorruptDir {
        /// The RocksDB directory.
        path: String,
        /// RocksDB's message.
        detail: String,
    },
    /// A stored record could not be decoded; the store is unchanged.
    #[error("corrupt record for key {key}: {source}")]
    CorruptRecord {
        /// The key, escaped for display.
        key: String,
        /// What was wrong with the bytes.
        source: crate::DecodeError,
    },
    /// The stamp function failed; nothing was written.
    #[error("could not stamp the write: {0}")]
    Stamp(StampError),
    /// The stamp function returned a version not above the stored one; nothing
    /// was written. This is a bug in the caller's clock handling.
    #[error("new version {new} is not above the stored version {stored}")]
    StaleStamp {
        /// The version the stamp function returned.
        new: String,
        /// The version already stored.
        stored: String,
    },
}

impl Error {
    /// A copy of this error for another caller who shared the failed
    /// operation (e.g. every writer of a failed group commit). A stamp error,
    /// which is opaque, is copied as its message.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Engine(e) => Self::Engine(e.clone()),
            Self::WalSync(s) => Self::WalSync(s.clone()),
            Self::Failed(s) => Self::Failed(s.clone()),
            Self::Locked { path, detail } => Self::Locked {
                path: path.clone(),
                detail: detail.clone(),
            },
            Self::CorruptDir { path, detail } => Self::CorruptDir {
                path: path.clone(),
                detail: detail.clone(),
            },
            Self::CorruptRecord { key, source } => Self::CorruptRecord {
                key: key.clone(),
                source: source.clone(),
            },
            Self::Stamp(e) => Self::Stamp(e.to_string().into()),
            Self::StaleStamp { new, stored } => Self::StaleStamp {
                new: new.clone(),
                stored: stored.clone(),
            },
        }
    }
}
