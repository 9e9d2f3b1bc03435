//! The environment a cargo run from a test must not inherit. Shared by the
//! hub's tests (`hub/tests/common`, through `#[path]`) and this crate.

use std::process::Command;

/// Removes from `command` the variables cargo sets for a test process
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, `OUT_DIR`, ...), for a cargo run
/// from a test. Build scripts may ask to run again when one of them
/// changes (ring's asks for `CARGO_PKG_NAME` and `OUT_DIR`): a nested cargo
/// that saw the test's values rebuilt ring and the 24 crates above it, and
/// the next build from a shell rebuilt them again.
pub fn without_cargo_test_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let set_by_cargo = name == "OUT_DIR"
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_BIN_")
            || matches!(
                name,
                "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            );
        if set_by_cargo {
            command.env_remove(name);
        }
    }
}
