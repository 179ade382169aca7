//! Taking a backup of one node into a local directory ([`Client::backup`]).
//!
//! The directory gets the node's store files under `db/`, each checked
//! against the SHA-256 the node computed while reading it, and last the
//! manifest (`vergent-backup.txt`, see [`vergent_types::backup`]): a
//! directory without a manifest is a backup that did not finish.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use vergent_types::backup::{BackupFile, FILES_DIR, MANIFEST_FILE, Manifest, is_plain_file_name};
use vergent_wire::api::v1 as pb;
use vergent_wire::api::v1::backup_chunk::Part;

use crate::client::cluster;
use crate::retry::Op;
use crate::{Client, Error};

/// How long the stream may stay silent before the backup is abandoned
/// (the node takes the checkpoint before its first message).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A finished backup.
#[derive(Debug, Clone)]
pub struct Backup {
    /// Where it was written.
    pub dir: PathBuf,
    /// Its manifest (also in `dir`).
    pub manifest: Manifest,
    /// The endpoint it was taken from.
    pub endpoint: String,
}

/// The file being received.
struct Receiving {
    file: File,
    path: PathBuf,
    written: u64,
    digest: ring::digest::Context,
}

impl Receiving {
    /// Creates `name` in `dir`; an existing file is an error, not overwritten.
    fn create(dir: &Path, name: &str) -> Result<Self, Error> {
        let path = dir.join(name);
        let file = File::create_new(&path).map_err(io("creating", &path))?;
        Ok(Self {
            file,
            path,
            written: 0,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
        })
    }
}

impl Client {
    /// Takes a consistent backup of the node in use (a checkpoint of its
    /// store) into `dir`, which must not exist or be empty. Every file is
    /// checked against the node's SHA-256 and synced; the manifest is
    /// written last. Restore it with `vergentd restore`.
    pub async fn backup(&self, dir: &Path) -> Result<Backup, Error> {
        prepare_dir(dir)?;
        let (mut stream, slot) = self
            .run_on(Op::Once, |ch| async move {
                cluster(ch)
                    .max_decoding_message_size(4 << 20)
                    .backup(pb::BackupRequest {})
                    .await
            })
            .await?;
        let endpoint = slot.addr.clone();
        let bad = |why: String| Error::InvalidResponse(format!("backup: {why}"));
        let begin = match next(&mut stream, &endpoint).await? {
            Some(Part::Begin(b)) => b,
            other => return Err(bad(format!("expected the file list first, got {other:?}"))),
        };
        for f in &begin.files {
            if !is_plain_file_name(&f.name) {
                return Err(bad(format!("unsafe file name {:?}", f.name)));
            }
        }
        let files_dir = dir.join(FILES_DIR);
        std::fs::create_dir_all(&files_dir).map_err(io("creating", &files_dir))?;
        let mut done: Vec<BackupFile> = Vec::with_capacity(begin.files.len());
        let mut current: Option<Receiving> = None;
        while let Some(part) = next(&mut stream, &endpoint).await? {
            match part {
                Part::Data(d) => {
                    let expected = u32::try_from(done.len()).unwrap_or(u32::MAX);
                    if d.file != expected {
                        return Err(bad(format!(
                            "data of file {} while file {expected} is due",
                            d.file
                        )));
                    }
                    let info = begin
                        .files
                        .get(d.file as usize)
                        .ok_or_else(|| bad(format!("file {} was not announced", d.file)))?;
                    let r = match &mut current {
                        Some(r) => r,
                        None => current.insert(Receiving::create(&files_dir, &info.name)?),
                    };
                    r.written += d.data.len() as u64;
                    if r.written > info.size {
                        return Err(bad(format!("{} is longer than announced", info.name)));
                    }
                    r.digest.update(&d.data);
                    r.file.write_all(&d.data).map_err(io("writing", &r.path))?;
                }
                Part::FileEnd(end) => {
                    let expected = u32::try_from(done.len()).unwrap_or(u32::MAX);
                    if end.file != expected {
                        return Err(bad(format!(
                            "end of file {} while file {expected} is due",
                            end.file
                        )));
                    }
                    let info = begin
                        .files
                        .get(end.file as usize)
                        .ok_or_else(|| bad(format!("file {} was not announced", end.file)))?;
                    // An empty file has no data message.
                    let r = match current.take() {
                        Some(r) => r,
                        None => Receiving::create(&files_dir, &info.name)?,
                    };
                    if r.written != info.size {
                        return Err(bad(format!(
                            "{} has {} bytes, {} announced",
                            info.name, r.written, info.size
                        )));
                    }
                    let mut sha256 = [0u8; 32];
                    sha256.copy_from_slice(r.digest.finish().as_ref());
                    if end.sha256 != sha256 {
                        return Err(bad(format!(
                            "{}: the received bytes do not match the node's SHA-256",
                            info.name
                        )));
                    }
                    r.file.sync_all().map_err(io("syncing", &r.path))?;
                    done.push(BackupFile {
                        name: info.name.clone(),
                        size: info.size,
                        sha256,
                    });
                }
                Part::Begin(_) => return Err(bad("a second file list".into())),
            }
        }
        if done.len() != begin.files.len() {
            return Err(bad(format!(
                "the stream ended after {} of {} files",
                done.len(),
                begin.files.len()
            )));
        }
        let manifest = Manifest {
            node_id: begin.node_id,
            store_id: begin.store_id,
            created_unix_ms: begin.created_unix_ms,
            files: done,
        };
        let path = dir.join(MANIFEST_FILE);
        let mut file = File::create_new(&path).map_err(io("creating", &path))?;
        file.write_all(manifest.encode().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io("writing", &path))?;
        for d in [&files_dir, dir] {
            File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", d))?;
        }
        Ok(Backup {
            dir: dir.to_path_buf(),
            manifest,
            endpoint,
        })
    }
}

/// The next part of the stream, within [`IDLE_TIMEOUT`].
async fn next(
    stream: &mut tonic::Streaming<pb::BackupChunk>,
    endpoint: &str,
) -> Result<Option<Part>, Error> {
    match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
        Err(_) => Err(Error::Timeout(IDLE_TIMEOUT)),
        Ok(None) => Ok(None),
        Ok(Some(Err(status))) => Err(Error::from_status(endpoint, status)),
        Ok(Some(Ok(chunk))) => Ok(chunk.part),
    }
}

/// Creates `dir`, or accepts it when it exists and is empty.
fn prepare_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Local(format!(
                    "{} is not empty: a backup goes into a new or empty directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))
        }
        Err(e) => Err(io("reading", dir)(e)),
    }
}

/// Maps a local I/O error on `path` to [`Error::Local`].
fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.display().to_string();
    move |e| Error::Local(format!("{what} {path}: {e}"))
}
