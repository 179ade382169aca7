//! The `Backup` call: a RocksDB checkpoint of the store, taken in the data
//! dir and streamed file by file with each file's SHA-256, then removed.
//!
//! One backup runs at a time: the checkpoint's hard links pin table files
//! that compaction would otherwise delete, and two streams would double the
//! disk reads for nothing.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::Status;
use vergent_storage::Store;
use vergent_wire::api::v1 as pb;

use super::status::ApiError;

/// Bytes of file data per message: well under the gRPC message limit.
const CHUNK_BYTES: usize = 256 << 10;
/// How long a client may leave the next part unread before the backup is
/// abandoned (its checkpoint pins table files and the one backup slot).
const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// Names of checkpoint directories inside the data dir.
const CHECKPOINT_PREFIX: &str = "backup-checkpoint-";

/// The stream of a backup's parts.
pub(crate) type BackupChunks = Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

/// Admits one backup at a time (clones share the slot).
#[derive(Debug, Clone)]
pub(crate) struct BackupGate(Arc<Semaphore>);

impl Default for BackupGate {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(1)))
    }
}

impl BackupGate {
    /// Takes the node's one backup slot, or says a backup is running.
    pub(crate) fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::BackupRunning)
    }
}

/// Removes the checkpoint directory when the stream ends or is dropped
/// (the client went away), whatever state it is in.
struct Checkpoint {
    dir: PathBuf,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove a backup checkpoint");
        }
    }
}

/// Returns the stream that takes a checkpoint of `store` under `data_dir`
/// and sends it: `BackupBegin`, then every file's data and `BackupFileEnd`.
/// The checkpoint is taken once the call is answered, so a large flush
/// does not run into the client's request timeout; a failure ends the
/// stream with its status.
pub(crate) fn serve(
    store: Arc<Store>,
    data_dir: &Path,
    node_id: String,
    store_id: u64,
    permit: OwnedSemaphorePermit,
) -> BackupChunks {
    let data_dir = data_dir.to_path_buf();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let taken = tokio::task::spawn_blocking(move || take(&store, &data_dir))
            .await
            .unwrap_or_else(|e| Err(ApiError::Backup(format!("checkpoint task: {e}"))));
        let (dir, files) = match taken {
            Ok(t) => t,
            Err(e) => {
                send(&tx, Err(super::status::to_status(e))).await;
                return;
            }
        };
        let checkpoint = Checkpoint {
            dir,
            _permit: permit,
        };
        let created_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let begin = pb::BackupBegin {
            node_id,
            store_id,
            created_unix_ms,
            files: files
                .iter()
                .map(|(name, size)| pb::BackupFileInfo {
                    name: name.clone(),
                    size: *size,
                })
                .collect(),
        };
        tracing::info!(
            files = files.len(),
            bytes = files.iter().map(|(_, s)| s).sum::<u64>(),
            "backup: checkpoint taken, streaming it"
        );
        let part = pb::backup_chunk::Part::Begin(begin);
        if !send(&tx, Ok(pb::BackupChunk { part: Some(part) })).await {
            return;
        }
        for (index, (name, size)) in files.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            match send_file(&tx, &checkpoint.dir.join(name), index, *size).await {
                Ok(true) => {}
                // The client went away; the checkpoint goes with the task.
                Ok(false) => return,
                Err(e) => {
                    send(&tx, Err(super::status::to_status(e))).await;
                    return;
                }
            }
        }
        tracing::info!("backup: streamed");
        drop(checkpoint);
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Sends one file's data and its digest; fails if it is not `size` bytes.
/// `Ok(false)`: the client went away.
async fn send_file(
    tx: &mpsc::Sender<Result<pb::BackupChunk, Status>>,
    path: &Path,
    index: u32,
    size: u64,
) -> Result<bool, ApiError> {
    let io = |e: std::io::Error| ApiError::Backup(format!("reading {}: {e}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut sent = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK_BYTES];
        let n = file.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        digest.update(&buf);
        sent += n as u64;
        let part = pb::backup_chunk::Part::Data(pb::BackupData {
            file: index,
            data: buf,
        });
        if !send(tx, Ok(pb::BackupChunk { part: Some(part) })).await {
            return Ok(false);
        }
    }
    if sent != size {
        return Err(ApiError::Backup(format!(
            "{} changed while it was sent ({sent} bytes, {size} announced)",
            path.display()
        )));
    }
    let part = pb::backup_chunk::Part::FileEnd(pb::BackupFileEnd {
        file: index,
        sha256: digest.finish().as_ref().to_vec(),
    });
    Ok(send(tx, Ok(pb::BackupChunk { part: Some(part) })).await)
}

/// Queues one part for the client; false when it went away or left the
/// stream unread for [`SEND_TIMEOUT`].
async fn send(
    tx: &mpsc::Sender<Result<pb::BackupChunk, Status>>,
    part: Result<pb::BackupChunk, Status>,
) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(part)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::warn!("backup: the client read nothing for {SEND_TIMEOUT:?}; abandoned");
            false
        }
    }
}

/// Checkpoints `store` into a new directory of `data_dir` (removing any a
/// crashed backup left) and lists its files by name with their sizes.
fn take(store: &Store, data_dir: &Path) -> Result<(PathBuf, Vec<(String, u64)>), ApiError> {
    let io = |what: &str, e: std::io::Error| ApiError::Backup(format!("{what}: {e}"));
    for entry in std::fs::read_dir(data_dir).map_err(|e| io("listing the data dir", e))? {
        let entry = entry.map_err(|e| io("listing the data dir", e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(CHECKPOINT_PREFIX))
        {
            tracing::info!(dir = %entry.path().display(), "removing a checkpoint an interrupted backup left");
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| io("removing an old checkpoint", e))?;
        }
    }
    let dir = data_dir.join(format!("{CHECKPOINT_PREFIX}{}", std::process::id()));
    store
        .checkpoint(&dir)
        .map_err(|e| ApiError::Backup(format!("checkpoint: {e}")))?;
    let mut files = Vec::new();
    let listed = (|| -> std::io::Result<()> {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !vergent_types::backup::is_plain_file_name(&name) {
                return Err(std::io::Error::other(format!(
                    "unexpected file name {name:?}"
                )));
            }
            files.push((name, meta.len()));
        }
        Ok(())
    })();
    if let Err(e) = listed {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(io("listing the checkpoint", e));
    }
    files.sort();
    Ok((dir, files))
}
