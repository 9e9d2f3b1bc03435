//! Architecture invariants checked over the hub's source: who may spawn
//! processes, name protobuf types, know axum, or use `unsafe`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Files under hub/src (relative, with `/`) whose text contains `needle`.
fn files_containing(needle: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut hits: Vec<String> = files
        .iter()
        .filter(|path| std::fs::read_to_string(path).unwrap().contains(needle))
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    hits.sort();
    hits
}

#[test]
fn only_spawn_rs_starts_processes() {
    // One place starts processes: `clone` + `execve` in spawn.rs.
    assert_eq!(files_containing("libc::clone("), ["supervisor/spawn.rs"]);
    assert_eq!(files_containing("libc::execve("), ["supervisor/spawn.rs"]);
    for needle in ["Command::new", ".spawn()", "fork("] {
        for file in files_containing(needle) {
            assert_eq!(file, "supervisor/spawn.rs", "{file} uses `{needle}`");
        }
    }
}

#[test]
fn only_spawn_rs_uses_unsafe() {
    // The keyword in use, not the word in a name (`is_unsafe_in_files`).
    for needle in [
        "unsafe {",
        "unsafe fn",
        "unsafe impl",
        "unsafe extern",
        "unsafe trait",
        "unsafe_code",
    ] {
        for file in files_containing(needle) {
            assert_eq!(file, "supervisor/spawn.rs", "{file} uses `{needle}`");
        }
    }
    assert!(files_containing("unsafe {").contains(&"supervisor/spawn.rs".to_owned()));
}

#[test]
fn only_rpc_names_protobuf_types() {
    for file in files_containing("switchyard_wire::pb") {
        assert!(file.starts_with("rpc/"), "{file} names pb types");
    }
}

#[test]
fn only_http_knows_axum() {
    for file in files_containing("axum::") {
        assert!(file.starts_with("http/"), "{file} uses axum");
    }
}
