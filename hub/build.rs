//! Rebuilds the hub when a migration changes (`sqlx::migrate!` embeds
//! `migrations/` at compile time), and records what `switchyard_build_info`
//! reports besides the version: the rustc version and, when built from a git
//! checkout, the commit (`SWITCHYARD_GIT_SHA` in the build environment
//! overrides it, for builds from a tarball). Both are best effort: a label
//! that cannot be learned is left out.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=SWITCHYARD_GIT_SHA");
    if let Some(version) = rustc_version() {
        println!("cargo:rustc-env=SWITCHYARD_BUILD_RUSTC={version}");
    }
    let sha = std::env::var("SWITCHYARD_GIT_SHA")
        .ok()
        .filter(|sha| !sha.trim().is_empty())
        .or_else(git_sha);
    if let Some(sha) = sha {
        println!("cargo:rustc-env=SWITCHYARD_BUILD_GIT_SHA={}", sha.trim());
    }
}

/// `1.94.0` from `rustc 1.94.0 (4a4ef493e 2026-03-02)`.
fn rustc_version() -> Option<String> {
    let rustc = std::env::var_os("RUSTC")?;
    let output = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// Runs git in the crate's directory; its trimmed stdout on success.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}

/// The short commit of HEAD, rebuilding when HEAD moves (the HEAD file, the
/// branch's loose ref and packed-refs are watched).
fn git_sha() -> Option<String> {
    let sha = git(&["rev-parse", "--short=12", "HEAD"])?;
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.extend(git(&["rev-parse", "--git-path", "packed-refs"]));
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    for path in watched {
        let path = Path::new(&dir).join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(sha)
}
