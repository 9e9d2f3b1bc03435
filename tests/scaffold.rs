//! `switchyard new`: generated plugins build, pass their own tests, and run
//! under the real hub with their generated plugins.toml, answering a call.
//!
//! Rust projects are built with the workspace's target dir (and the Cargo.lock
//! `switchyard new` copies in), so dependencies are not compiled again.
//! Python projects need `plugins/python/build.sh` (without it the test is
//! skipped with a notice, unless `CI` is set, where it fails); Go projects use
//! the Go SDK in `sdk/go`, whose stubs are committed. Python projects install
//! their `requirements.txt` (the `switchyard-plugin` package from the checkout)
//! into one virtualenv that every generated project links as its `.venv`.
//! The Rust and Python polling inputs read a fake list API served by this test.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use switchyard_e2e::{Hub, bin_path, profile_dir, run_to_completion, without_cargo_test_env};

const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `command`, failing the test with its output unless it succeeds.
#[track_caller]
fn run_ok(command: &mut Command, what: &str) -> String {
    let outcome = run_to_completion(command, BUILD_TIMEOUT);
    assert!(
        outcome.status.success(),
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        outcome.status,
        outcome.stdout,
        outcome.stderr
    );
    outcome.stdout
}

/// `switchyard new NAME --role ROLE --lang LANG --dir PARENT/NAME`.
#[track_caller]
fn generate(parent: &Path, name: &str, role: &str, lang: &str) -> PathBuf {
    let dir = parent.join(name);
    let stdout = run_ok(
        Command::new(bin_path("switchyard"))
            .args(["new", name, "--role", role, "--lang", lang, "--dir"])
            .arg(&dir),
        "switchyard new",
    );
    assert!(stdout.contains("Next steps"), "{stdout}");
    assert!(
        stdout.contains(&format!("cd {}", dir.display())),
        "{stdout}"
    );
    for file in ["README.md", "plugins.toml"] {
        assert!(
            dir.join(file).is_file(),
            "{file} missing in {}",
            dir.display()
        );
    }
    dir
}

/// Starts a hub on the project's generated plugins.toml (its relative
/// `command` made absolute, since the hub's config lives in its own temp dir),
/// waits for the plugin to run, and makes one call.
#[track_caller]
fn call_under_hub(project: &Path, name: &str, kind: &str, body: &Value) -> (Hub, Value) {
    let config = std::fs::read_to_string(project.join("plugins.toml")).expect("plugins.toml");
    let config = config.replace(
        "command = \"",
        &format!("command = \"{}/", project.display()),
    );
    let hub = Hub::start(&config);
    let plugin = hub.wait_for_state(name, "running", START_TIMEOUT);
    assert_eq!(plugin["plugin_name"], name);
    let response = hub.call(name, kind, body);
    assert_eq!(
        response.status, 200,
        "call/{kind} answered {}: {}",
        response.status, response.text
    );
    (hub, response.body)
}

/// True when the optional toolchain is there; otherwise prints a notice (or
/// fails under CI).
fn available(path: &Path, what: &str, build: &str) -> bool {
    if path.exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} ({}) is missing under CI: run {build}",
        path.display()
    );
    eprintln!(
        "NOTICE: skipping: {what} ({}) is missing; run {build}",
        path.display()
    );
    false
}

/// Builds and tests a generated Rust project with the workspace's target dir.
#[track_caller]
fn build_rust(project: &Path, name: &str) {
    assert!(
        project.join("Cargo.lock").is_file(),
        "the workspace's Cargo.lock is copied in"
    );
    let target = profile_dir()
        .parent()
        .map_or_else(|| repo_root().join("target"), Path::to_path_buf);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for args in [&["build"][..], &["test"][..]] {
        let mut command = Command::new(&cargo);
        without_cargo_test_env(&mut command);
        run_ok(
            command
                .args(args)
                .current_dir(project)
                .env("CARGO_TARGET_DIR", &target)
                // The project is its own workspace, without our profile: its
                // dependencies would be built with full debug info, about 20%
                // slower, and none of our own dependency builds reused.
                .env("CARGO_PROFILE_DEV_DEBUG", "false"),
            &format!("cargo {} in {}", args[0], project.display()),
        );
    }
    // plugins.toml names target/debug/NAME in the project: link the build there.
    let linked = project.join("target/debug");
    std::fs::create_dir_all(&linked).expect("target/debug");
    std::os::unix::fs::symlink(target.join("debug").join(name), linked.join(name))
        .expect("link the binary");
}

/// Serves what the Rust and Python polling-input skeletons read, Stripe style:
/// `GET /v1/items` answers items "1" to "10" on one page
/// (`{"data": [...], "next_cursor": null}`), and nothing after "10".
/// Returns its base URL; the thread ends with the test process.
fn fake_list_api() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake API");
    let address = listener.local_addr().expect("fake API address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Skip the headers (GET requests have no body).
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|read| read > 2) {
                header.clear();
            }
            let target = request_line.split(' ').nth(1).unwrap_or("");
            // Items "1" to "10" for the list; nothing for other paths or for what
            // follows "10" (`starting_after=`, the skeleton's next poll).
            let items: Vec<Value> =
                if target.starts_with("/v1/items") && !target.contains("starting_after=") {
                    (1..=10)
                        .map(|n| json!({"id": n.to_string(), "text": format!("item {n}")}))
                        .collect()
                } else {
                    Vec::new()
                };
            let body = json!({"data": items, "next_cursor": null}).to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.get_mut().write_all(answer.as_bytes());
        }
    });
    format!("http://{address}/v1")
}

/// Runs the project's plugin under a hub and checks one call of its role
/// against what the skeleton does.
#[track_caller]
fn check_under_hub(project: &Path, name: &str, role: &str, lang: &str) {
    match role {
        "polling-input" if lang == "python" || lang == "rust" => {
            let toml_path = project.join("plugins.toml");
            let toml_text = std::fs::read_to_string(&toml_path).expect("plugins.toml");
            assert!(
                toml_text.contains("http://127.0.0.1:8080/v1"),
                "{toml_text}"
            );
            std::fs::write(
                &toml_path,
                toml_text.replace("http://127.0.0.1:8080/v1", &fake_list_api()),
            )
            .expect("point plugins.toml at the fake API");
            let (_hub, answer) = call_under_hub(project, name, "poll", &json!({}));
            let batch = &answer["batches"][0];
            assert_eq!(
                batch["records"].as_array().map(Vec::len),
                Some(10),
                "{answer}"
            );
            assert_eq!(batch["records"][0]["id"], "1", "{answer}");
            // The next poll asks for what follows the last item: the position
            // is {"cursor": "10"} in Python and {"kind":"cursor","cursor":"10"} in Rust.
            let checkpoint = batch["checkpoint"].as_str().unwrap_or_default();
            let position: Value = serde_json::from_slice(
                &base64::engine::general_purpose::STANDARD
                    .decode(checkpoint)
                    .expect("a base64 checkpoint"),
            )
            .expect("a JSON checkpoint");
            assert_eq!(position["cursor"], "10", "{answer}");
        }
        "enrichment" => {
            let body =
                json!({"records": [{"id": "1", "payload": {"text": "hello switchyard world"}}]});
            let (_hub, answer) = call_under_hub(project, name, "enrich", &body);
            assert_eq!(
                answer["results"][0]["record"]["metadata"]["word_count"], "3",
                "{answer}"
            );
        }
        "output" => {
            let body = json!({"events": [{"kind": "updated", "record": {"id": "7", "payload": {"a": 1}}}]});
            let (hub, answer) = call_under_hub(project, name, "events", &body);
            assert_eq!(answer["acks"][0]["ok"], true, "{answer}");
            let file = hub.dir().join(format!("{name}-events.jsonl"));
            let lines = std::fs::read_to_string(&file)
                .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
            assert!(lines.contains("\"id\":\"7\""), "{lines}");
            assert!(lines.contains("\"kind\":\"updated\""), "{lines}");
        }
        "polling-input" => {
            let (_hub, answer) = call_under_hub(project, name, "poll", &json!({}));
            let batch = &answer["batches"][0];
            assert_eq!(
                batch["records"].as_array().map(Vec::len),
                Some(10),
                "{answer}"
            );
            assert_eq!(batch["records"][0]["id"], "1", "{answer}");
            assert_eq!(
                batch["checkpoint"], "MTA=",
                "the checkpoint is \"10\": {answer}"
            );
        }
        "webhook-input" => {
            let body = json!({"body": "{\"id\": \"42\", \"hello\": \"world\"}"});
            let (hub, answer) = call_under_hub(project, name, "webhook", &body);
            assert_eq!(answer["records"][0]["id"], "42", "{answer}");
            let refused = hub.call(name, "webhook", &json!({"body": "[1, 2]"}));
            assert_eq!(refused.status, 400, "{}", refused.text);
        }
        other => panic!("unknown role {other}"),
    }
}

const ROLES: [&str; 4] = ["polling-input", "webhook-input", "enrichment", "output"];

#[test]
fn rust_plugins_of_every_role_build_pass_their_tests_and_run_under_the_hub() {
    let temp = tempfile::tempdir().expect("temp dir");
    for role in ROLES {
        let name = format!("sy-new-rust-{role}");
        let project = generate(temp.path(), &name, role, "rust");
        build_rust(&project, &name);
        check_under_hub(&project, &name, role, "rust");
    }
}

#[test]
fn python_plugins_of_every_role_pass_their_tests_and_run_under_the_hub() {
    let python = repo_root().join("plugins/python/.venv/bin/python");
    if !available(&python, "the Python virtualenv", "plugins/python/build.sh") {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    // One virtualenv with the first project's requirements.txt, linked as every project's .venv.
    let venv = temp.path().join("venv");
    run_ok(
        Command::new(&python).arg("-m").arg("venv").arg(&venv),
        "python -m venv",
    );
    for (index, role) in ROLES.into_iter().enumerate() {
        let name = format!("sy-new-py-{role}");
        let project = generate(temp.path(), &name, role, "python");
        if index == 0 {
            run_ok(
                Command::new(venv.join("bin/python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .args(["-r", "requirements.txt"])
                    .current_dir(&project),
                "pip install -r requirements.txt",
            );
        }
        std::os::unix::fs::symlink(&venv, project.join(".venv")).expect("link .venv");
        let stdout = run_ok(
            Command::new(project.join(".venv/bin/python"))
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                .current_dir(&project),
            &format!("pytest in {}", project.display()),
        );
        assert!(stdout.contains("passed"), "{stdout}");
        check_under_hub(&project, &name, role, "python");
    }
}

#[test]
fn go_plugins_of_every_role_build_pass_their_tests_and_run_under_the_hub() {
    let temp = tempfile::tempdir().expect("temp dir");
    for role in ROLES {
        let name = format!("sy-new-go-{role}");
        let project = generate(temp.path(), &name, role, "go");
        for args in [
            &["build", "-o", "bin/", "."][..],
            &["test", "-count=1", "./..."][..],
        ] {
            run_ok(
                Command::new("go").args(args).current_dir(&project),
                &format!("go {} in {}", args[0], project.display()),
            );
        }
        check_under_hub(&project, &name, role, "go");
    }
}

#[test]
fn refuses_bad_names_and_existing_directories() {
    let temp = tempfile::tempdir().expect("temp dir");
    let outcome = run_to_completion(
        Command::new(bin_path("switchyard"))
            .args(["new", "bad name", "--role", "output", "--lang", "rust"])
            .current_dir(temp.path()),
        Duration::from_secs(30),
    );
    assert!(!outcome.status.success());
    assert!(
        outcome.stderr.contains("contains ' '"),
        "{}",
        outcome.stderr
    );
    std::fs::create_dir(temp.path().join("taken")).expect("dir");
    let outcome = run_to_completion(
        Command::new(bin_path("switchyard"))
            .args(["new", "taken", "--role", "output", "--lang", "rust"])
            .current_dir(temp.path()),
        Duration::from_secs(30),
    );
    assert!(!outcome.status.success());
    assert!(
        outcome.stderr.contains("already exists"),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        std::fs::read_dir(temp.path().join("taken"))
            .expect("dir")
            .count(),
        0
    );
}
