//! The admin API's protection, over real HTTP against the real `switchyard`
//! binary (`common::HubProcess`) with the fake plugin: with
//! `[hub] admin_token_env`, every admin route of the hub's own route table
//! (`switchyard_hub::http::routes::table`) answers 401 in the JSON error
//! shape without the token (or with a wrong one) and works with it, while
//! probes, `/metrics` and webhooks stay open; `webhook_listen` serves only
//! webhooks and probes; the token never reaches the log; a non-loopback
//! `listen` without a token, and a token variable that is unset, are refused
//! naming the key (by `switchyard run` and `switchyard check`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::HubProcess;
use serde_json::Value;
use switchyard_hub::http::routes::{self, Access, Verb};

/// The admin token of these tests; the log must never show it.
const TOKEN: &str = "tok-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4";

/// A config with the fake plugin as webhook input and output; `hub_extra`
/// goes into `[hub]`.
fn config(port: u16, hub_extra: &str) -> String {
    format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://hub.db\"\nstop_grace = \"3s\"\nkill_grace = \"1s\"\n{hub_extra}\n\
         [plugins.fake]\ncommand = \"{}\"\n\
         [plugins.fake.webhook]\nauth = \"none\"\n\
         [plugins.fake.output]\n",
        common::fake_plugin().display()
    )
}

/// Sends `verb path` (with a `{}` JSON body for POST, PUT and DELETE) and
/// the token if given; returns the status and the body as JSON (`Null` when
/// it is not JSON).
async fn send(
    hub: &HubProcess,
    base: &str,
    verb: Verb,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(verb.as_str().as_bytes()).unwrap();
    let mut request = hub.http.request(method, format!("{base}{path}"));
    if verb != Verb::Get {
        request = request
            .header("content-type", "application/json")
            .body("{}");
    }
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The path of a route pattern with its parameters filled in.
fn concrete(pattern: &str) -> String {
    pattern.replace("{name}", "fake").replace("{id}", "1")
}

fn assert_unauthorized(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(body["code"], "unauthorized", "{what}: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_admin_route_needs_it_and_the_rest_stays_open() {
    let port = common::free_port();
    let webhook_port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::spawn(
        dir,
        &config(
            port,
            &format!(
                "admin_token_env = \"SY_ADMIN_TOKEN\"\nwebhook_listen = \"127.0.0.1:{webhook_port}\""
            ),
        ),
        port,
        &[("SY_ADMIN_TOKEN", TOKEN), ("SWITCHYARD_LOG", "debug")],
        "/readyz",
        Duration::from_secs(20),
    )
    .await;
    let main = hub.base.clone();
    let bearer = format!("Bearer {TOKEN}");
    let table = routes::table();
    let admin: Vec<_> = table
        .iter()
        .filter(|spec| spec.access == Access::Admin)
        .collect();
    assert!(admin.len() >= 15, "the route table lost routes: {table:?}");

    // Without the token, with a wrong one, or with another scheme: 401.
    for spec in &admin {
        let path = concrete(spec.path);
        let what = format!("{} {path}", spec.verb.as_str());
        let (status, body) = send(&hub, &main, spec.verb, &path, None).await;
        assert_unauthorized(status, &body, &what);
        let (status, body) = send(&hub, &main, spec.verb, &path, Some("Bearer wrong")).await;
        assert_unauthorized(status, &body, &what);
        let (status, body) = send(
            &hub,
            &main,
            spec.verb,
            &path,
            Some(&format!("Basic {TOKEN}")),
        )
        .await;
        assert_unauthorized(status, &body, &what);
    }
    // Nothing was done by those requests: the plugin still runs.
    let (_, status) = send(
        &hub,
        &main,
        Verb::Get,
        "/api/v1/plugins/fake",
        Some(&bearer),
    )
    .await;
    assert_eq!(status["state"], "running", "{status}");

    // With the token, every admin route is served (its own answer: 200, or
    // a 4xx about the request itself, never 401).
    for spec in &admin {
        let path = concrete(spec.path);
        let (status, body) = send(&hub, &main, spec.verb, &path, Some(&bearer)).await;
        assert_ne!(status, 401, "{} {path}: {body}", spec.verb.as_str());
        assert_ne!(
            body["code"],
            "unauthorized",
            "{} {path}: {body}",
            spec.verb.as_str()
        );
        assert!(
            status < 500 || status == 503,
            "{} {path}: {status} {body}",
            spec.verb.as_str()
        );
    }
    let (status, plugins) = send(&hub, &main, Verb::Get, "/api/v1/plugins", Some(&bearer)).await;
    assert_eq!(status, 200);
    assert_eq!(plugins[0]["name"], "fake", "{plugins}");

    // Probes, metrics and webhooks need no token on the main listener.
    for spec in table.iter().filter(|spec| spec.access != Access::Admin) {
        let path = concrete(spec.path);
        let (status, body) = send(&hub, &main, spec.verb, &path, None).await;
        assert!(
            (200..300).contains(&status),
            "{} {path} without a token: {status} {body}",
            spec.verb.as_str()
        );
    }

    // Unknown routes and wrong methods: the JSON 404 and 405.
    let (status, body) = send(&hub, &main, Verb::Get, "/no/such/route", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("route_not_found")),
        "{body}"
    );
    let (status, body) = send(&hub, &main, Verb::Delete, "/healthz", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );

    // The webhook listener: probes and webhooks only, everything else 404.
    let public = format!("http://127.0.0.1:{webhook_port}");
    for spec in &table {
        let path = concrete(spec.path);
        let (status, body) = send(&hub, &public, spec.verb, &path, Some(&bearer)).await;
        if spec.access.on_webhook_listener() {
            assert!((200..300).contains(&status), "{path}: {status} {body}");
        } else {
            assert_eq!(
                status,
                404,
                "{} {path} on the webhook listener: {body}",
                spec.verb.as_str()
            );
            assert_eq!(body["code"], "route_not_found", "{body}");
        }
    }
    let (status, body) = send(&hub, &public, Verb::Get, "/webhooks/fake", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
    // A webhook accepted there is stored like any other.
    let response = hub
        .http
        .post(format!("{public}/webhooks/fake"))
        .header("content-type", "application/json")
        .body(r#"{"via": "webhook_listen"}"#)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    hub.wait("the webhook's record", || async {
        let (_, records) = send(
            &hub,
            &main,
            Verb::Get,
            "/api/v1/records?source=fake",
            Some(&bearer),
        )
        .await;
        records["records"]
            .as_array()?
            .iter()
            .any(|record| record["payload"]["via"] == "webhook_listen")
            .then_some(())
    })
    .await;

    // At debug level, after all that, the token is nowhere in the log.
    let log = hub.log();
    assert!(
        log.contains("DEBUG"),
        "the hub did not log at debug level:\n{log}"
    );
    assert!(log.contains("Admin request refused"), "{log}");
    assert!(
        !log.contains(TOKEN),
        "the admin token leaked into the log:\n{log}"
    );
}

/// Runs `switchyard SUBCOMMAND --config DIR/plugins.toml` with `env` only;
/// returns whether it succeeded and its stderr.
fn run_binary(
    dir: &std::path::Path,
    subcommand: &str,
    text: &str,
    env: &[(&str, &str)],
) -> (bool, String) {
    let path = dir.join("plugins.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg(subcommand)
        .arg("--config")
        .arg(&path)
        .env_clear()
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A hub that wrongly started would run forever: bound the wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("switchyard {subcommand} did not exit: it started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_non_loopback_listen_without_a_token_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = config(port, "").replace("127.0.0.1:", "0.0.0.0:");
    for subcommand in ["run", "check"] {
        let (ok, stderr) = run_binary(dir.path(), subcommand, &text, &[]);
        assert!(!ok, "{subcommand} accepted it: {stderr}");
        assert!(
            stderr.contains("plugins.toml:2:10: `listen` in [hub] is 0.0.0.0:"),
            "{subcommand}: {stderr}"
        );
        assert!(
            stderr.contains("`admin_token_env`"),
            "{subcommand}: {stderr}"
        );
    }
    // With a token it is accepted.
    let with_token = text.replacen(
        "kill_grace = \"1s\"\n",
        "kill_grace = \"1s\"\nadmin_token_env = \"SY_ADMIN_TOKEN\"\n",
        1,
    );
    let (ok, stderr) = run_binary(
        dir.path(),
        "check",
        &with_token,
        &[("SY_ADMIN_TOKEN", TOKEN)],
    );
    assert!(ok, "{stderr}");
    // A named variable that is unset or empty is refused, its name given.
    for env in [&[][..], &[("SY_ADMIN_TOKEN", " ")][..]] {
        let (ok, stderr) = run_binary(dir.path(), "run", &with_token, env);
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains(
                "the environment variable `SY_ADMIN_TOKEN` named by `admin_token_env` in [hub] is"
            ),
            "{stderr}"
        );
    }
}
