//! Finding the workspace's built binaries from inside a test executable.

use std::path::{Path, PathBuf};

/// The environment variable that overrides where binaries are looked up.
const BIN_DIR_OVERRIDE: &str = "SWITCHYARD_E2E_BIN_DIR";

/// The cargo profile directory the current test executable was built into,
/// for example `target/debug`.
///
/// Test executables live in `target/debug/deps/NAME-HASH`, so this is the
/// parent of `deps`. Set `SWITCHYARD_E2E_BIN_DIR` to look elsewhere.
pub fn profile_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(BIN_DIR_OVERRIDE) {
        return PathBuf::from(dir);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => panic!("cannot find the current test executable: {err}"),
    };
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The absolute path of the workspace binary `name` (for example `switchyard`,
/// `testkit` or `misbehave`).
///
/// # Panics
///
/// When the binary has not been built, with a message saying how to build it.
#[track_caller]
pub fn bin_path(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "the `{name}` binary is missing at {}: run `cargo build --workspace --bins` \
         before `cargo test -p switchyard-e2e`",
        path.display()
    );
    path
}
