//! Writing a planned project to disk: a new directory only, and nothing left
//! behind when a write fails.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use super::ScaffoldError;
use super::project::ProjectFile;

/// Creates `dir` (which must not exist; its parent is created if missing) and
/// writes `files` into it. On failure the directory is removed again.
///
/// # Errors
/// [`ScaffoldError::Exists`] when `dir` exists, [`ScaffoldError::Io`] otherwise.
pub fn write_project(dir: &Path, files: &[ProjectFile]) -> Result<(), ScaffoldError> {
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
            action: "cannot create",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    // create_dir (not create_dir_all) fails if the directory appeared meanwhile.
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ScaffoldError::Exists(dir.to_path_buf()));
        }
        Err(source) => {
            return Err(ScaffoldError::Io {
                action: "cannot create",
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    let written = files.iter().try_for_each(|file| write_file(dir, file));
    if written.is_err() {
        let _ = fs::remove_dir_all(dir);
    }
    written
}

fn write_file(dir: &Path, file: &ProjectFile) -> Result<(), ScaffoldError> {
    let path = dir.join(&file.path);
    let io_error = |action, source| ScaffoldError::Io {
        action,
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|err| io_error("cannot create the directory of", err))?;
    }
    let mode = if file.executable { 0o755 } else { 0o644 };
    let mut handle = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .map_err(|err| io_error("cannot create", err))?;
    handle
        .write_all(file.contents.as_bytes())
        .map_err(|err| io_error("cannot write", err))?;
    // The umask may have removed bits the launcher needs.
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .map_err(|err| io_error("cannot set the permissions of", err))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(path: &str, executable: bool) -> ProjectFile {
        ProjectFile {
            path: PathBuf::from(path),
            contents: format!("contents of {path}"),
            executable,
        }
    }

    #[test]
    fn writes_files_with_their_modes_in_a_new_directory() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("nested/plugin");
        write_project(&dir, &[file("src/lib.rs", false), file("run", true)]).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("src/lib.rs")).unwrap(),
            "contents of src/lib.rs"
        );
        let mode = fs::metadata(dir.join("run")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn refuses_an_existing_directory_and_leaves_it_alone() {
        let temp = tempfile::tempdir().unwrap();
        fs::write(temp.path().join("keep"), "x").unwrap();
        let err = write_project(temp.path(), &[file("a", false)]).unwrap_err();
        assert!(matches!(err, ScaffoldError::Exists(_)), "{err}");
        assert!(!temp.path().join("a").exists());
        assert!(temp.path().join("keep").exists());
    }

    #[test]
    fn removes_what_it_wrote_when_a_write_fails() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("plugin");
        let err = write_project(&dir, &[file("a", false), file("a", false)]).unwrap_err();
        assert!(matches!(err, ScaffoldError::Io { .. }), "{err}");
        assert!(!dir.exists());
    }
}
