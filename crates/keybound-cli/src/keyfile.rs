//! Writing a private key file: owner-only permissions from the first byte, complete or
//! absent (never half written), and never replacing an existing file unless asked to.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// Writes `contents` to `path` with mode 0600.
///
/// The key is written to a new temporary file in the same directory (created with
/// mode 0600 and `O_EXCL`), flushed to disk, then moved into place: with `force` by an
/// atomic rename that replaces any existing file, without it by a hard link, which
/// fails if `path` exists, so an existing key is never replaced, even by a concurrent
/// writer.
pub(crate) fn write_private(path: &Path, contents: &[u8], force: bool) -> Result<(), CliError> {
    let shown = path.display().to_string();
    let write_err = |source: io::Error| CliError::Write {
        path: shown.clone(),
        source,
    };
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(CliError::Exists { path: shown });
    }
    let (tmp_path, mut file) = create_temp(path).map_err(write_err)?;
    let tmp = TempFile(tmp_path);
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    drop(file);
    if force {
        fs::rename(&tmp.0, path).map_err(write_err)?;
    } else {
        match fs::hard_link(&tmp.0, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(CliError::Exists { path: shown });
            }
            Err(e) => return Err(write_err(e)),
        }
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
