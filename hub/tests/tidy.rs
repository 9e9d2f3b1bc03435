//! Architecture invariants checked over the hub's source: who may spawn
//! processes, name protobuf types, know axum, or use `unsafe`; and over the
//! plugin SDK's: protobuf only in its `services/`, which nothing else uses.

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

/// The SDK's sources (relative to plugin-sdk/src, with `/`) and their text.
fn sdk_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut named: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            let name = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (name, std::fs::read_to_string(path).unwrap())
        })
        .collect();
    named.sort();
    named
}

/// Struct literals of protobuf messages in `text`: `pb::Name {` or `gp::Name {`.
fn protobuf_literals(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["pb::", "gp::"] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let last = name.rsplit("::").next().unwrap_or_default();
            if last.starts_with(|c: char| c.is_ascii_uppercase())
                && rest[name.len()..].starts_with(" {")
            {
                found.push(format!("{prefix}{name}"));
            }
        }
    }
    found
}

#[test]
fn only_the_sdk_services_name_protobuf_types() {
    // Plugin authors see SDK types only: protobuf stays inside
    // plugin-sdk/src/services/, and only its conversion module builds or
    // reads protobuf messages (the other files name them in tonic's traits).
    let sources = sdk_sources();
    assert!(
        sources
            .iter()
            .any(|(name, _)| name == "services/convert.rs")
    );
    for (name, text) in &sources {
        if name.starts_with("services/") {
            if name != "services/convert.rs" {
                let literals = protobuf_literals(text);
                assert!(literals.is_empty(), "{name} builds {literals:?}");
            }
            continue;
        }
        for needle in ["switchyard_wire::pb", "pb::", "prost", "tonic_health::pb"] {
            assert!(!text.contains(needle), "{name} names protobuf (`{needle}`)");
        }
    }
}

#[test]
fn sdk_roles_and_types_know_nothing_of_the_services() {
    // Dependencies point one way: services/ uses the roles, the plugin
    // definition and the plain types, never the reverse. Only the entry
    // points that serve a plugin (serve, the test harness, TLS's own test)
    // reach into services/.
    for (name, text) in sdk_sources() {
        if name.starts_with("services/")
            || ["lib.rs", "serve.rs", "testing.rs", "tls.rs"].contains(&name.as_str())
        {
            continue;
        }
        // Doc links may point anywhere; code may not.
        let code: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect();
        for needle in ["services::", "crate::testing", "crate::serve"] {
            let hit = code.iter().find(|line| line.contains(needle));
            assert!(hit.is_none(), "{name} depends on `{needle}`: {hit:?}");
        }
    }
}
