//! The data directory: creation with private permissions and an exclusive lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::StartError;

/// Holds the data directory's `LOCK` file open; the OS releases the lock when
/// the process exits, even on `kill -9`.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

pub(crate) fn prepare_and_lock(dir: &Path) -> Result<DirLock, StartError> {
    let io_err = |source| StartError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("LOCK"))
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StartError::DataDirLocked {
                path: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    // The pid is only a hint for the error message above.
    file.set_len(0).map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    write!(file, "{}", std::process::id()).map_err(io_err)?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_with_the_holder_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = prepare_and_lock(dir.path()).expect("first lock");
        let err = prepare_and_lock(dir.path()).expect_err("second lock");
        let msg = err.to_string();
        assert!(msg.contains("locked by another vergentd"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    }

    #[test]
    fn the_lock_is_released_when_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(prepare_and_lock(dir.path()).expect("first lock"));
        prepare_and_lock(dir.path()).expect("relock after release");
    }
}
