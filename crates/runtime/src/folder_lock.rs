//! One process per data folder: an exclusive OS lock (`flock` on Unix, `LockFileEx` on
//! Windows, through `std::fs::File::try_lock`) on `<data_dir>/erp-bridge.lock`, held for the
//! process's life and released by the OS when it ends, however it ends (even `kill -9`). The
//! holder writes its pid into the file, so a second process is refused with a message naming
//! it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data folder.
pub const LOCK_FILE: &str = "erp-bridge.lock";

/// Why the data folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum FolderLockError {
    /// Another process holds the folder.
    #[error(
        "data folder {} is in use by another erp-bridge process (pid {pid}); one process per data folder: stop it or use another data_dir",
        folder.display()
    )]
    Held {
        /// The folder.
        folder: PathBuf,
        /// The holder's pid as it wrote it (`unknown` if it could not be read).
        pid: String,
    },
    /// The lock file could not be opened, locked or written.
    #[error("data folder {}: cannot lock {LOCK_FILE}: {source}", folder.display())]
    Io {
        /// The folder.
        folder: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The held lock of a data folder; dropping it releases the folder.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    folder: PathBuf,
}

impl FolderLock {
    /// Lock `folder` for this process (it must exist), or say which process holds it.
    pub fn acquire(folder: &Path) -> Result<FolderLock, FolderLockError> {
        let io = |source| FolderLockError::Io {
            folder: folder.to_path_buf(),
            source,
        };
        let path = folder.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(FolderLockError::Held {
                    folder: folder.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(std::process::id().to_string().as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(FolderLock {
            _file: file,
            folder: folder.to_path_buf(),
        })
    }

    /// The folder held.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_folder_is_refused_naming_the_pid_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path()).unwrap();
        let err = FolderLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        FolderLock::acquire(dir.path()).unwrap();
    }
}
