//! `switchyard conformance` end to end: the real `switchyard` binary against
//! the deliberately broken `misbehave-plugin` (each break fails exactly the
//! check it breaks, and nothing else) and against every plugin we ship
//! (each passes every check of its roles).

#![allow(clippy::unwrap_used)]

mod common;
#[path = "fakes/formbricks.rs"]
mod fake_formbricks;
#[path = "fakes/receiver.rs"]
mod fake_receiver;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use switchyard_hub::conformance::CHECKS;

fn switchyard() -> PathBuf {
    common::built("switchyard")
}

fn misbehave() -> PathBuf {
    common::built("misbehave-plugin")
}

/// A finished `switchyard conformance --format json` run.
struct Run {
    exit: i32,
    /// Check name to (status, detail).
    checks: BTreeMap<String, (String, String)>,
    stderr: String,
}

impl Run {
    fn with_status(&self, status: &str) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|(_, (found, _))| found == status)
            .map(|(check, _)| check.as_str())
            .collect()
    }

    fn describe(&self) -> String {
        let mut text = String::new();
        for (check, (status, detail)) in &self.checks {
            text.push_str(&format!("\n  {check}: {status} {detail}"));
        }
        format!("exit {}{text}\nstderr:\n{}", self.exit, self.stderr)
    }
}

/// Runs `switchyard conformance --format json EXTRA -- PLUGIN`.
fn conformance(extra: &[&str], plugin: &Path) -> Run {
    let output = Command::new(switchyard())
        .arg("conformance")
        .args(["--format", "json"])
        .args(extra)
        .arg("--")
        .arg(plugin)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "the report is not JSON ({err}): {}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            (
                check["check"].as_str().unwrap().to_owned(),
                (
                    check["status"].as_str().unwrap().to_owned(),
                    check["detail"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect::<BTreeMap<_, _>>();
    let names: Vec<&str> = checks.keys().map(String::as_str).collect();
    let mut expected = CHECKS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "the report must list every check once");
    Run {
        exit: output.status.code().unwrap_or(-1),
        checks,
        stderr,
    }
}

/// Runs misbehave-plugin with `breaks` and asserts that exactly `failing`
/// fail, with the detail of each containing the matching `says`, and that
/// every other check passes (`skipped` lists the ones that cannot run).
fn assert_breaks(breaks: &str, failing: &[(&str, &str)], skipped: &[&str]) {
    let env = format!("MISBEHAVE={breaks}");
    let run = conformance(&["--env", &env], &misbehave());
    let expected: Vec<&str> = failing.iter().map(|(check, _)| *check).collect();
    assert_eq!(
        run.with_status("FAIL"),
        expected,
        "{breaks}: {}",
        run.describe()
    );
    for (check, says) in failing {
        let detail = &run.checks[*check].1;
        assert!(
            detail.contains(says),
            "{breaks}: {check}: {detail:?} lacks {says:?}"
        );
    }
    assert_eq!(
        run.with_status("SKIP"),
        skipped,
        "{breaks}: {}",
        run.describe()
    );
    let expected_exit = if failing.is_empty() { 0 } else { 1 };
    assert_eq!(run.exit, expected_exit, "{breaks}: {}", run.describe());
    assert_eq!(
        run.with_status("PASS").len(),
        CHECKS.len() - failing.len() - skipped.len(),
        "{breaks}: {}",
        run.describe()
    );
}

#[test]
fn misbehave_without_breaks_passes_every_check() {
    assert_breaks("", &[], &[]);
}

#[test]
fn ignoring_the_cookie_fails_cookie() {
    assert_breaks(
        "no-cookie-check",
        &[("cookie", "printed a handshake line")],
        &[],
    );
}

#[test]
fn a_bad_handshake_line_fails_handshake_and_skips_what_needs_it() {
    let needs_handshake: Vec<&str> = {
        let mut checks: Vec<&str> = CHECKS
            .iter()
            .copied()
            .filter(|check| !["cookie", "handshake"].contains(check))
            .collect();
        checks.sort_unstable();
        checks
    };
    assert_breaks(
        "bad-handshake",
        &[("handshake", "incompatible app protocol version 99")],
        &needs_handshake,
    );
}

#[test]
fn not_serving_fails_health() {
    assert_breaks("not-serving", &[("health", "NOT_SERVING")], &[]);
}

#[test]
fn no_schema_fails_metadata() {
    assert_breaks("no-schema", &[("metadata", "schema is empty")], &[]);
}

#[test]
fn accepting_a_bad_config_fails_configure_bad() {
    assert_breaks(
        "accept-bad-config",
        &[("configure-bad", "accepted a config with the unknown key")],
        &[],
    );
}

#[test]
fn a_slow_shutdown_fails_shutdown() {
    assert_breaks("slow-shutdown", &[("shutdown", "SIGTERM")], &[]);
}

#[test]
fn a_nondeterministic_poll_fails_poll_determinism() {
    assert_breaks(
        "nondeterministic-poll",
        &[("poll-determinism", "different records")],
        &[],
    );
}

#[test]
fn reordered_enrichment_fails_enrich() {
    assert_breaks(
        "enrich-reorder",
        &[("enrich", "ids and order must be kept")],
        &[],
    );
}

#[test]
fn enriched_records_without_ids_fail_enrich() {
    assert_breaks("enrich-drop-id", &[("enrich", "empty id")], &[]);
}

#[test]
fn double_acks_fail_output_acks() {
    assert_breaks("double-ack", &[("output-acks", "twice")], &[]);
}

#[test]
fn a_webhook_without_records_fails_webhook() {
    assert_breaks("webhook-no-records", &[("webhook", "no records")], &[]);
}

#[test]
fn two_breaks_fail_two_checks_and_skip_wins_over_a_failure() {
    let run = conformance(
        &[
            "--env",
            "MISBEHAVE=double-ack,no-schema",
            "--skip",
            "output-acks",
        ],
        &misbehave(),
    );
    assert_eq!(run.with_status("FAIL"), ["metadata"], "{}", run.describe());
    assert_eq!(
        run.with_status("SKIP"),
        ["output-acks"],
        "{}",
        run.describe()
    );
    assert_eq!(run.exit, 1);
}

#[test]
fn sample_records_and_webhook_body_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample.jsonl");
    std::fs::write(
        &sample,
        "{\"id\":\"s-1\",\"payload\":{\"text\":\"a\"}}\n{\"id\":\"s-2\",\"payload\":{\"text\":\"b\"}}\n",
    )
    .unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, "{\"hello\":\"world\"}").unwrap();
    let run = conformance(
        &[
            "--sample",
            sample.to_str().unwrap(),
            "--webhook-body",
            body.to_str().unwrap(),
        ],
        &misbehave(),
    );
    assert_eq!(run.exit, 0, "{}", run.describe());
    assert!(
        run.checks["enrich"].1.starts_with("2 records: 2 enriched"),
        "{}",
        run.describe()
    );
    assert!(
        run.checks["output-acks"].1.starts_with("2 events"),
        "{}",
        run.describe()
    );
    assert!(
        run.checks["webhook"]
            .1
            .starts_with("a 17-byte JSON webhook became 1 record"),
        "{}",
        run.describe()
    );
}

#[test]
fn bad_inputs_are_named_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "rate = ").unwrap();
    let output = Command::new(switchyard())
        .args(["conformance", "--config"])
        .arg(&config)
        .arg("--")
        .arg(misbehave())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml: not a TOML table"), "{stderr}");
    let output = Command::new(switchyard())
        .args(["conformance", "--", "/nonexistent/plugin"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("/nonexistent/plugin: not an executable file")
    );
}

/// Asserts that `plugin` passes every check of its roles and that the rest
/// are skipped for not being its roles.
fn assert_conforms(plugin: &Path, config: Option<&str>, roles_skipped: &[&str]) {
    assert_conforms_with(plugin, config, &[], roles_skipped);
}

/// [`assert_conforms`] with `args` added to the command line (`--env`,
/// `--webhook-body`; `@DIR@` in them is the temp dir).
fn assert_conforms_with(
    plugin: &Path,
    config: Option<&str>,
    args: &[&str],
    roles_skipped: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let mut extra: Vec<String> = args
        .iter()
        .map(|arg| arg.replace("@DIR@", &dir.path().display().to_string()))
        .collect();
    if let Some(config) = config {
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            config.replace("@DIR@", &dir.path().display().to_string()),
        )
        .unwrap();
        extra.extend(["--config".to_owned(), path.display().to_string()]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = conformance(&extra, plugin);
    let name = plugin.display();
    assert_eq!(run.exit, 0, "{name}: {}", run.describe());
    assert!(
        run.with_status("FAIL").is_empty(),
        "{name}: {}",
        run.describe()
    );
    assert_eq!(
        run.with_status("SKIP"),
        roles_skipped,
        "{name}: {}",
        run.describe()
    );
    for check in roles_skipped {
        assert!(
            run.checks[*check].1.contains("does not declare"),
            "{name}: {check} was skipped for another reason: {}",
            run.describe()
        );
    }
}

#[test]
fn generator_conforms() {
    let plugin = common::built("generator");
    assert_conforms(&plugin, None, &["enrich", "output-acks", "webhook"]);
}

#[test]
fn webhook_json_conforms() {
    let plugin = common::built("webhook-json");
    assert_conforms(
        &plugin,
        None,
        &["enrich", "output-acks", "poll-determinism"],
    );
}

#[test]
fn sentiment_conforms() {
    let plugin = common::built("sentiment");
    assert_conforms(
        &plugin,
        None,
        &["output-acks", "poll-determinism", "webhook"],
    );
}

#[test]
fn jsonl_output_conforms() {
    let plugin = common::built("jsonl-output");
    assert_conforms(
        &plugin,
        Some("path = \"@DIR@/out.jsonl\"\n"),
        &["enrich", "poll-determinism", "webhook"],
    );
}

#[test]
fn formbricks_conforms() {
    let fake = fake_formbricks::FakeFormbricks::start("conformance-key");
    let responses = (0..5)
        .map(|n| {
            fake_formbricks::response(
                "s1",
                &format!("r{n}"),
                &format!("2024-04-23T08:0{n}:00.000Z"),
                "clicked",
            )
        })
        .collect();
    fake.set_survey("s1", responses);
    fake.set_survey(
        "s2",
        vec![fake_formbricks::response(
            "s2",
            "q1",
            "2024-04-23T08:00:00.000Z",
            "yes",
        )],
    );
    let plugin = common::built("formbricks");
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("webhook.json");
    std::fs::write(
        &body,
        serde_json::json!({
            "webhookId": "wh1",
            "event": "responseFinished",
            "data": fake_formbricks::response("s1", "r9", "2024-04-23T09:00:00.000Z", "yes"),
        })
        .to_string(),
    )
    .unwrap();
    let body = body.display().to_string();
    assert_conforms_with(
        &plugin,
        Some(&format!(
            "base_url = \"{}\"\napi_key_env = \"FB_KEY\"\npage_size = 2\n",
            fake.base
        )),
        &["--env", "FB_KEY=conformance-key", "--webhook-body", &body],
        &["enrich", "output-acks"],
    );
    assert!(
        fake.requests()
            .iter()
            .any(|(survey, skip, status)| survey == "s1" && *skip == 4 && *status == 200),
        "the polls walked every page: {:?}",
        fake.requests()
    );
}

#[test]
fn http_output_conforms() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = fake_receiver::Receiver::start(SECRET);
    let plugin = common::built("http-output");
    let env = format!("HOOK_SECRET={SECRET}");
    assert_conforms_with(
        &plugin,
        Some(&format!(
            "url = \"{}\"\nsecret_env = \"HOOK_SECRET\"\nbatch = 2\n",
            receiver.url
        )),
        &["--env", &env],
        &["enrich", "poll-determinism", "webhook"],
    );
    assert!(
        !receiver.bodies.lock().unwrap().is_empty(),
        "the receiver verified no POST"
    );
}

#[test]
fn python_keyword_tagger_conforms() {
    let Some(plugin) = common::keyword_tagger() else {
        return;
    };
    assert_conforms(
        &plugin,
        Some("[keywords]\npositive = [\"love\", \"great\"]\nnegative = [\"terrible\"]\n"),
        &["output-acks", "poll-determinism", "webhook"],
    );
}

#[test]
fn go_echo_conforms() {
    let Some(plugin) = common::echo_go() else {
        return;
    };
    assert_conforms(&plugin, None, &["poll-determinism", "webhook"]);
}

/// Serves `router` on an ephemeral loopback port from a background thread
/// (the conformance runs are blocking); returns `http://127.0.0.1:PORT`.
fn fake_upstream(router: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.ok();
        });
    });
    url
}

#[test]
fn llm_enrich_conforms() {
    let plugin = common::built("llm-enrich");
    // A local OpenAI-compatible server without auth, answering the default
    // (sentiment) schema like OpenAI does.
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|axum::Json(body): axum::Json<Value>| async move {
            let text = body["messages"][1]["content"].as_str().unwrap_or_default();
            let label = if text.contains("love") { "positive" } else { "negative" };
            let content = serde_json::json!({"label": label, "score": 0.5}).to_string();
            axum::Json(serde_json::json!({
                "id": "chatcmpl-c", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                             "message": {"role": "assistant", "content": content, "refusal": null}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }))
        }),
    );
    let url = fake_upstream(router);
    assert_conforms(
        &plugin,
        Some(&format!("base_url = \"{url}/v1\"\nmodel = \"llama3.1\"\n")),
        &["output-acks", "poll-determinism", "webhook"],
    );
}

#[test]
fn rest_poll_conforms() {
    let plugin = common::built("rest-poll");
    // Three pages of two items, `{"items": [...]}`, by `?page=N`.
    let router = axum::Router::new().route(
        "/items",
        axum::routing::get(
            |axum::extract::Query(query): axum::extract::Query<BTreeMap<String, String>>| async move {
                let page: u64 = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let items: Vec<Value> = (1..=5u64)
                    .skip(((page - 1) * 2) as usize)
                    .take(2)
                    .map(|n| serde_json::json!({"id": n, "updated": n}))
                    .collect();
                axum::Json(serde_json::json!({"items": items}))
            },
        ),
    );
    let url = fake_upstream(router);
    assert_conforms(
        &plugin,
        Some(&format!(
            "url = \"{url}/items\"\ntype = \"item\"\nrecords_path = \"/items\"\n\
             updated_field = \"updated\"\n\
             [pagination]\nkind = \"page\"\nsize_param = \"per_page\"\npage_size = 2\n"
        )),
        &["enrich", "output-acks", "webhook"],
    );
}
