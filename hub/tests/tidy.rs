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

/// Every top-level module of hub/src and the top-level modules its
/// non-test code names with `crate::X`.
fn module_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let module_of = |path: &Path| -> String {
        let relative = path.strip_prefix(&root).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        first.to_string_lossy().trim_end_matches(".rs").to_owned()
    };
    let modules: std::collections::BTreeSet<String> = files
        .iter()
        .map(|path| module_of(path))
        .filter(|module| module != "lib" && module != "main")
        .collect();
    let mut graph = std::collections::BTreeMap::new();
    for path in &files {
        let from = module_of(path);
        if !modules.contains(&from) {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        // Unit tests (at the bottom of a file) may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let edges: &mut std::collections::BTreeSet<String> = graph.entry(from.clone()).or_default();
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for (index, _) in line.match_indices("crate::") {
                let rest = &line[index + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name != from && modules.contains(&name) {
                    edges.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn hub_modules_have_no_cycles() {
    let graph = module_graph();
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        module: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(start) = path.iter().position(|seen| seen == module) {
            panic!("module cycle: {} -> {module}", path[start..].join(" -> "));
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(module.to_owned());
    }
    let mut done = std::collections::BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
    // The layering ARCHITECTURE.md describes: the supervisor knows nothing
    // of the call path above it, and the pure cores depend on nothing of
    // the hub's but config.
    assert!(!graph["supervisor"].contains("retry"));
    for pure in ["breaker", "backoff", "domain"] {
        let allowed: std::collections::BTreeSet<String> = ["config".to_owned()].into();
        assert!(
            graph
                .get(pure)
                .is_none_or(|edges| edges.is_subset(&allowed)),
            "{pure} depends on {:?}",
            graph[pure]
        );
    }
}

#[test]
fn every_role_call_goes_through_the_one_call_path() {
    // Role RPCs are made only inside work handed to `retry::Call` (or its
    // shorthand `retry::call`), which applies health, breaker, retries,
    // deadlines and metrics.
    let role_calls = [
        ".roles.poll(",
        ".roles.poll_stream(",
        ".roles.webhook(",
        ".roles.enrich(",
        ".roles.events(",
        ".roles.events_each(",
    ];
    let files: std::collections::BTreeSet<String> = role_calls
        .iter()
        .flat_map(|needle| files_containing(needle))
        .collect();
    assert!(
        !files.is_empty(),
        "no role call found: the needles are stale"
    );
    for file in files {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src")
                .join(&file),
        )
        .unwrap();
        assert!(
            text.contains("Call::new(") || text.contains("retry::call("),
            "{file} calls a plugin's role service outside the call path"
        );
    }
    // Only the call path drives the breaker and the progress deadline, and
    // there is no second retry engine.
    for needle in [
        ".breaker()",
        "record_call_progress(",
        "record_call_timeout(",
    ] {
        for file in files_containing(needle) {
            assert!(
                file.starts_with("retry/") || file == "supervisor/mod.rs",
                "{file} uses `{needle}`"
            );
        }
    }
    assert!(files_containing("fn retry_delay").is_empty());
    // gRPC codes travel as `tonic::Code`, never as text parsed back.
    assert!(files_containing("format!(\"{:?}\", status.code())").is_empty());
    for literal in [
        "\"DeadlineExceeded\"",
        "\"Unavailable\"",
        "\"Unknown\"",
        "\"Cancelled\"",
    ] {
        assert!(
            files_containing(literal).is_empty(),
            "{literal} is compared as text"
        );
    }
}
