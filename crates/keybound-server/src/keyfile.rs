//! Writing files only their owner may read (private keys, refresh secrets): owner-only
//! permissions from the first byte, complete or absent (never half written), and never
//! replacing an existing file unless asked to. Used by `keybound keygen` and by
//! [`settings`](crate::settings) for its key file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` with mode 0600 (on Unix).
///
/// The contents go to a new temporary file in the same directory (created with mode
/// 0600 and `O_EXCL`), flushed to disk, then moved into place: with `replace` by an
/// atomic rename that replaces any existing file, without it by a hard link, which
/// fails with [`io::ErrorKind::AlreadyExists`] if `path` exists, so an existing file is
/// never replaced, even by a concurrent writer. The directory must exist.
pub fn write_private(path: &Path, contents: &[u8], replace: bool) -> io::Result<()> {
    if !replace && fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    let (tmp_path, mut file) = create_temp(path)?;
    let tmp = TempFile(tmp_path);
    file.write_all(contents).and_then(|()| file.sync_all())?;
    drop(file);
    if replace {
        fs::rename(&tmp.0, path)?;
    } else {
        fs::hard_link(&tmp.0, path)?;
    }
    sync_parent(path);
    Ok(())
}

/// Removes the temporary file on every path out of [`write_private`] (after a rename
/// it is already gone and the removal fails harmlessly).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options.open(&tmp)?;
    #[cfg(unix)]
    {
        // The mode above is filtered by the umask, which can only remove bits; set it
        // exactly so the file is 0600 whatever the umask.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok((tmp, file))
}

/// Makes the new directory entry durable; best effort (not all systems allow it).
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_owner_only_and_never_replaces_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        write_private(&path, b"one", false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = write_private(&path, b"two", false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write_private(&path, b"three", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"three");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
