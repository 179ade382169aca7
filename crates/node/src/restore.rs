//! Restoring a backup (`vergentd restore`): an offline step that turns a
//! backup directory into the data dir of a node that starts a **new
//! cluster**, never one that rejoins the cluster it was taken from.
//!
//! Why not rejoin: peers purge a tombstone once every member confirmed it,
//! so a key deleted after the backup may have no tombstone left anywhere;
//! the backup's older value would spread back and resurrect it. So the
//! restored store gets a new store id and the node id the operator names,
//! forgets every member, cursor, voting configuration and replication log
//! entry of the old cluster, and refuses contact with the old cluster's
//! nodes (`foreign/` in the roster). It must start alone the first time, forms a
//! one-voter configuration, and new nodes join it as they would any node.
//! What it keeps: every record (values and tombstones, with their
//! versions), the per-key Paxos state (a proposal it accepted is finished by
//! the next round on the key), the HLC ceiling and the Paxos floor.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use vergent_storage::{Store, StoreOptions};
use vergent_types::NodeId;
use vergent_types::backup::{FILES_DIR, MANIFEST_FILE, Manifest, ManifestError, hex};

use crate::datadir::prepare_and_lock;
use crate::identity::{NODE_ID_META, STORE_ID_META};
use crate::peer::roster::FOREIGN_META;

/// Present in a restored data dir until its first start, which must be
/// without `--peers`.
pub(crate) const RESTORED_META: &str = "restored/first_start";
/// Meta keys (exact names, or prefixes ending in `/`) that belonged to the
/// old cluster: members, retired and fenced stores, replication cursors,
/// the voting configuration, bootstrap and catch-up state, the node's ids.
/// Everything else is kept: the HLC ceiling, the Paxos floor, the
/// storage engine's own markers.
const DROPPED_META: [&str; 10] = [
    "roster/",
    "retired/",
    "fenced/",
    FOREIGN_META,
    "repl/",
    "voting/",
    "levels/",
    "bootstrap_pending",
    NODE_ID_META,
    STORE_ID_META,
];

fn dropped(name: &str) -> bool {
    DROPPED_META.iter().any(|d| {
        if d.ends_with('/') {
            name.starts_with(d)
        } else {
            name == *d
        }
    })
}

/// Why a restore did not happen. Nothing is left in the target data dir
/// except when writing it failed midway (then it says so).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The manifest is missing or unreadable.
    #[error("{path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file of the backup is missing or differs from the manifest.
    #[error("backup file {path}: {reason}; the backup is damaged or incomplete")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// How it differs.
        reason: String,
    },
    /// The target data dir already holds something.
    #[error("data directory {0} is not empty: restore only into a new, empty directory")]
    NotEmpty(PathBuf),
    /// The node id would be confused with a node of the old cluster.
    #[error(
        "node id {0} belongs to the cluster the backup was taken from; a restored node starts a new cluster and needs a new id"
    )]
    OldNodeId(String),
    /// Reading or writing files failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data dir could not be locked or the store could not be opened
    /// or rewritten.
    #[error("{0}")]
    Store(String),
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The restored node's id.
    pub node_id: NodeId,
    /// Its new store id.
    pub store_id: u64,
    /// Keys with a live value in the restored store.
    pub live_keys: u64,
    /// Nodes of the old cluster it will refuse.
    pub refused: Vec<String>,
    /// Prefixes the old cluster declared strict; the new cluster must
    /// declare them again (`vergentctl keyspace strict`).
    pub strict: Vec<Vec<u8>>,
}

/// Reads and checks the backup in `from` (every file's size and SHA-256
/// against its manifest) without writing anything.
pub fn verify(from: &Path) -> Result<Manifest, RestoreError> {
    let path = from.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| RestoreError::Manifest {
        path: path.clone(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "missing: not a backup directory, or a backup that did not finish".into()
        } else {
            e.to_string()
        },
    })?;
    let manifest = Manifest::parse(&text).map_err(|e: ManifestError| RestoreError::Manifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if manifest.files.is_empty() {
        return Err(RestoreError::Manifest {
            path,
            reason: "lists no files".into(),
        });
    }
    for f in &manifest.files {
        let path = from.join(FILES_DIR).join(&f.name);
        let (size, sum) = digest_file(&path)?;
        if size != f.size {
            return Err(RestoreError::Damaged {
                path,
                reason: format!("{size} bytes, the manifest says {}", f.size),
            });
        }
        if sum != f.sha256 {
            return Err(RestoreError::Damaged {
                path,
                reason: format!(
                    "SHA-256 {}, the manifest says {}",
                    hex(&sum),
                    hex(&f.sha256)
                ),
            });
        }
    }
    Ok(manifest)
}

/// Restores the backup in `from` into the new data dir `data_dir` as node
/// `node_id` of a new cluster (see the module doc).
pub fn restore(from: &Path, data_dir: &Path, node_id: NodeId) -> Result<Restored, RestoreError> {
    let manifest = verify(from)?;
    if manifest.node_id == node_id.as_str() {
        return Err(RestoreError::OldNodeId(node_id.to_string()));
    }
    let existed = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError::NotEmpty(data_dir.to_path_buf()));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(RestoreError::Io {
                what: "reading",
                path: data_dir.to_path_buf(),
                source,
            });
        }
    };
    // Held while the store is written, so a vergentd started meanwhile on
    // the same dir is refused.
    let _lock = prepare_and_lock(data_dir).map_err(|e| RestoreError::Store(e.to_string()))?;
    // Copied beside, then renamed: an interrupted restore leaves no `db`
    // that a node could start on.
    let partial = data_dir.join("db.restoring");
    let db = data_dir.join("db");
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { what, path, source }
    };
    std::fs::create_dir(&partial).map_err(io("creating", &partial))?;
    for f in &manifest.files {
        let src = from.join(FILES_DIR).join(&f.name);
        let dst = partial.join(&f.name);
        std::fs::copy(&src, &dst).map_err(io("copying", &src))?;
        File::open(&dst)
            .and_then(|file| file.sync_all())
            .map_err(io("syncing", &dst))?;
    }
    std::fs::rename(&partial, &db).map_err(io("renaming", &partial))?;
    File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", data_dir))?;

    let store = Store::open(&db, &StoreOptions::default())
        .map_err(|e| RestoreError::Store(format!("opening the restored store: {e}")))?;
    // Ok(Err(_)): refused for a reason found in the store, nothing rewritten.
    let rewrite =
        |store: &Store| -> Result<Result<Restored, RestoreError>, vergent_storage::Error> {
            let strict = crate::strong::voting::stored_strict_prefixes(store)?;
            let mut refused = BTreeSet::from([manifest.node_id.clone()]);
            for prefix in ["roster/", "fenced/", FOREIGN_META] {
                for (name, _) in store.scan_meta(prefix)? {
                    if let Some(id) = name.strip_prefix(prefix) {
                        refused.insert(id.to_string());
                    }
                }
            }
            if refused.contains(node_id.as_str()) {
                return Ok(Err(RestoreError::OldNodeId(node_id.to_string())));
            }
            for (name, _) in store.scan_meta("")? {
                if dropped(&name) {
                    store.delete_meta(&name)?;
                }
            }
            for id in &refused {
                store.put_meta(&format!("{FOREIGN_META}{id}"), b"")?;
            }
            let store_id = loop {
                let id = rand::random::<u64>();
                if id != 0 && id != manifest.store_id {
                    break id;
                }
            };
            store.put_meta(STORE_ID_META, &store_id.to_be_bytes())?;
            store.put_meta(NODE_ID_META, node_id.as_str().as_bytes())?;
            store.put_meta(RESTORED_META, manifest.node_id.as_bytes())?;
            // The old store's log (all but its newest entry, which the store
            // keeps so sequence numbers continue): the new cluster's nodes start
            // from repair.
            store.truncate_log(store.last_log_seq().saturating_add(1))?;
            store.sync()?;
            Ok(Ok(Restored {
                live_keys: store.live_keys()?,
                manifest: manifest.clone(),
                node_id: node_id.clone(),
                store_id,
                refused: refused.into_iter().collect(),
                strict,
            }))
        };
    let outcome = rewrite(&store);
    drop(store);
    match outcome {
        Ok(Ok(restored)) => Ok(restored),
        Ok(Err(refused)) => {
            // Nothing of it may stay: a node could start on it.
            std::fs::remove_dir_all(&db).map_err(io("removing", &db))?;
            if !existed {
                let _ = std::fs::remove_dir_all(data_dir);
            }
            Err(refused)
        }
        Err(e) => Err(RestoreError::Store(format!(
            "rewriting the restored store's metadata: {e}; remove {} and restore again",
            data_dir.display()
        ))),
    }
}

/// A file's length and SHA-256.
fn digest_file(path: &Path) -> Result<(u64, [u8; 32]), RestoreError> {
    let damaged = |reason: String| RestoreError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| damaged(e.to_string()))?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| damaged(e.to_string()))?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        size += n as u64;
    }
    let mut sum = [0u8; 32];
    sum.copy_from_slice(digest.finish().as_ref());
    Ok((size, sum))
}

/// Writes `bytes` to `path` and syncs it (used by tests to build backups).
#[cfg(test)]
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vergent_hlc::Timestamp;
    use vergent_storage::Mutation;
    use vergent_types::Version;
    use vergent_types::backup::BackupFile;

    fn version(hlc: u64) -> Version {
        Version::new(Timestamp::from_u64(hlc), NodeId::new("old-1").expect("id"))
    }

    /// A backup directory as `vergentctl backup` writes it, of a store
    /// with a value, a tombstone, members, cursors and a voting config.
    fn backup_of_old_node(root: &Path) -> PathBuf {
        let live = root.join("live");
        let store = Store::open(&live, &StoreOptions::default()).expect("open");
        store
            .write(
                b"k",
                Mutation::Put {
                    value: b"v".to_vec(),
                    ttl_ms: None,
                },
                |_| Ok(version(10)),
            )
            .expect("put");
        store
            .write(b"d", Mutation::Delete, |_| Ok(version(11)))
            .expect("delete");
        for (name, value) in [
            (NODE_ID_META, &b"old-1"[..]),
            (STORE_ID_META, &7u64.to_be_bytes()[..]),
            ("roster/old-2", b""),
            ("fenced/old-3", b""),
            ("repl/sent/old-2", b"x"),
            ("voting/config", b"x"),
            ("bootstrap_pending", b"x"),
            (crate::clock::CEILING_META, &99u64.to_be_bytes()[..]),
        ] {
            store.put_meta(name, value).expect("meta");
        }
        let cp = root.join("cp");
        store.checkpoint(&cp).expect("checkpoint");
        let backup = root.join("backup");
        std::fs::create_dir_all(backup.join(FILES_DIR)).expect("mkdir");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&cp).expect("list") {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).expect("read");
            write_synced(&backup.join(FILES_DIR).join(&name), &bytes).expect("write");
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
            files.push(BackupFile {
                name,
                size: bytes.len() as u64,
                sha256,
            });
        }
        let manifest = Manifest {
            node_id: "old-1".into(),
            store_id: 7,
            created_unix_ms: 1,
            files,
        };
        write_synced(&backup.join(MANIFEST_FILE), manifest.encode().as_bytes()).expect("manifest");
        backup
    }

    #[test]
    fn a_restored_store_keeps_the_records_and_forgets_the_old_cluster() {
        let root = tempfile::tempdir().expect("tempdir");
        let backup = backup_of_old_node(root.path());
        let target = root.path().join("new");
        let r = restore(&backup, &target, NodeId::new("new-1").expect("id")).expect("restore");
        assert_eq!(r.live_keys, 1);
        assert_eq!(r.refused, vec!["old-1", "old-2", "old-3"]);
        assert_ne!(r.store_id, 7);
        let store = Store::open(&target.join("db"), &StoreOptions::default()).expect("open");
        assert_eq!(
            store.get(b"k").expect("get").and_then(|r| r.value),
            Some(b"v".to_vec())
        );
        assert!(
            store
                .get(b"d")
                .expect("get")
                .expect("tombstone")
                .is_tombstone()
        );
        let meta: Vec<String> = store
            .scan_meta("")
            .expect("meta")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            meta,
            vec![
                "digest_built",
                "foreign/old-1",
                "foreign/old-2",
                "foreign/old-3",
                "hlc_ceiling",
                "node_id",
                RESTORED_META,
                "store_id",
            ]
        );
        assert_eq!(
            store.get_meta(NODE_ID_META).expect("meta"),
            Some(b"new-1".to_vec())
        );
        // Only the newest entry stays (the store keeps it so sequence
        // numbers continue); it is a record the store holds anyway.
        assert_eq!(
            store.first_log_seq().expect("log"),
            Some(store.last_log_seq())
        );
        assert!(!target.join("db.restoring").exists());
    }

    #[test]
    fn a_damaged_backup_is_refused_by_file_and_nothing_is_written() {
        let root = tempfile::tempdir().expect("tempdir");
        let backup = backup_of_old_node(root.path());
        let victim = std::fs::read_dir(backup.join(FILES_DIR))
            .expect("list")
            .map(|e| e.expect("entry").path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(".sst"))
            })
            .expect("a table file");
        let mut bytes = std::fs::read(&victim).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        write_synced(&victim, &bytes).expect("write");
        let target = root.path().join("new");
        let err =
            restore(&backup, &target, NodeId::new("new-1").expect("id")).expect_err("damaged");
        assert!(matches!(err, RestoreError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert!(!target.exists());
        std::fs::remove_file(&victim).expect("remove");
        let err =
            restore(&backup, &target, NodeId::new("new-1").expect("id")).expect_err("missing");
        assert!(matches!(err, RestoreError::Damaged { .. }), "{err}");
    }

    #[test]
    fn a_restore_needs_an_empty_dir_a_new_node_id_and_a_finished_backup() {
        let root = tempfile::tempdir().expect("tempdir");
        let backup = backup_of_old_node(root.path());
        let busy = root.path().join("busy");
        std::fs::create_dir_all(&busy).expect("mkdir");
        std::fs::write(busy.join("x"), b"").expect("write");
        let id = || NodeId::new("new-1").expect("id");
        assert!(matches!(
            restore(&backup, &busy, id()),
            Err(RestoreError::NotEmpty(_))
        ));
        assert!(matches!(
            restore(
                &backup,
                &root.path().join("a"),
                NodeId::new("old-1").expect("id")
            ),
            Err(RestoreError::OldNodeId(_))
        ));
        let member = root.path().join("m");
        assert!(matches!(
            restore(&backup, &member, NodeId::new("old-2").expect("id")),
            Err(RestoreError::OldNodeId(_))
        ));
        assert!(!member.exists(), "a refused restore left a data dir");
        std::fs::remove_file(backup.join(MANIFEST_FILE)).expect("remove");
        let err = restore(&backup, &root.path().join("b"), id()).expect_err("unfinished");
        assert!(err.to_string().contains("did not finish"), "{err}");
    }
}
