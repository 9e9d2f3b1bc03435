//! The hub end to end with a real gRPC plugin (`examples/fake_plugin.rs`):
//! handshake, status API, the call endpoints, a crash, a rejected
//! configuration, and a stop that must escalate to SIGKILL.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Hub, assert_group_gone, poll_until};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_plugin_serves_every_call_through_the_api() {
    let hub = Hub::start(
        "[plugins.fake]\ncommand = \"@FAKE@\"\n[plugins.fake.config]\nthreshold = 0.5\n",
    )
    .await;
    let (status, body) = hub.get("/healthz").await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));

    let plugin = hub.wait_plugin("fake", |p| p["state"] == "running").await;
    assert_eq!(plugin["name"], "fake");
    assert_eq!(plugin["plugin_name"], "fake");
    assert_eq!(plugin["version"], "0.0.1");
    assert_eq!(plugin["protocol_version"], 1);
    assert_eq!(plugin["restarts"], 0);
    assert_eq!(plugin["last_error"], Value::Null);
    assert_eq!(
        plugin["roles"],
        json!(["polling-input", "webhook-input", "enrichment", "output"])
    );
    assert!(plugin["pid"].as_u64().unwrap() > 0);
    assert!(plugin["started_at"].as_str().unwrap().ends_with('Z'));
    let pgid = plugin["pid"].as_i64().unwrap() as i32;

    let (status, body) = hub.get("/readyz").await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    let (status, list) = hub.get("/api/v1/plugins").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Enrich: many records, answered out of order by the plugin, returned in order.
    let records: Vec<Value> = (0..150)
        .map(|n| {
            let id = if n == 7 {
                "fail-7".to_owned()
            } else {
                n.to_string()
            };
            json!({"id": id, "payload": {"n": n}})
        })
        .collect();
    let (status, body) = hub
        .post(
            "/api/v1/plugins/fake/call/enrich",
            json!({"records": records}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 150);
    assert_eq!(results[0]["record"]["id"], "0");
    assert_eq!(
        results[0]["record"]["payload"],
        json!({"n": 0, "enriched": true})
    );
    assert_eq!(results[149]["record"]["id"], "149");
    assert_eq!(
        results[7]["failure"],
        json!({"message": "cannot enrich fail-7", "retryable": false, "retry_after_ms": null, "code": "nope"})
    );

    // Events: delivery ids 1, 2, ... and acks in input order.
    let (status, body) = hub
        .post(
            "/api/v1/plugins/fake/call/events",
            json!({"events": [
                {"kind": "created", "record": {"id": "a", "payload": 1}},
                {"kind": "updated", "record": {"id": "nack-b", "payload": 2}},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acks"][0], json!({"delivery_id": 1, "ok": true}));
    assert_eq!(body["acks"][1]["delivery_id"], 2);
    assert_eq!(body["acks"][1]["ok"], false);
    assert_eq!(body["acks"][1]["failure"]["retry_after_ms"], 1500);

    // Poll: base64 checkpoints both ways.
    let (status, body) = hub
        .post(
            "/api/v1/plugins/fake/call/poll",
            json!({"checkpoint": "NQ==", "max_records": 0}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["batches"][0]["records"][0]["id"], "6");
    assert_eq!(body["batches"][0]["checkpoint"], Value::Null);
    assert_eq!(body["batches"][1]["checkpoint"], "Nw==");

    // Webhook: a reply, and INVALID_ARGUMENT -> 400.
    let (status, body) = hub
        .post(
            "/api/v1/plugins/fake/call/webhook",
            json!({"method": "POST", "path": "/webhooks/fake", "query": "", "headers": [["content-type", "application/json"]], "body": "{\"a\":1}"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"][0]["payload"], json!({"a": 1}));
    assert_eq!(
        body["reply"],
        json!({"status": 200, "headers": [["x-fake", "yes"]], "body": "thanks"})
    );
    let (status, body) = hub
        .post("/api/v1/plugins/fake/call/webhook", json!({"body": "bad"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("the body is bad"),
        "{body}"
    );

    // Errors: unknown plugin, malformed body.
    let (status, body) = hub.get("/api/v1/plugins/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "there is no plugin named `nope`");
    let (status, _) = hub
        .post("/api/v1/plugins/fake/call/enrich", json!({"recs": []}))
        .await;
    assert_eq!(status, 400);

    // A graceful stop: Shutdown is honoured, nothing is left behind.
    hub.shut_down().await;
    assert_group_gone(pgid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_reported_from_the_wait_status() {
    let hub = Hub::start(
        "[plugins.enrich-only]\ncommand = \"@FAKE@\"\nenv = { FAKE_ROLES = \"enrichment\", FAKE_CHILD = \"1\" }\n[plugins.enrich-only.restart]\npolicy = \"never\"\n",
    )
    .await;
    let plugin = hub
        .wait_plugin("enrich-only", |p| p["state"] == "running")
        .await;
    let pid = plugin["pid"].as_i64().unwrap() as i32;

    // A role the plugin does not serve is a 409.
    let (status, body) = hub
        .post("/api/v1/plugins/enrich-only/call/poll", json!({}))
        .await;
    assert_eq!(status, 409, "{body}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let plugin = hub
        .wait_plugin("enrich-only", |p| p["state"] == "stopped")
        .await;
    assert_eq!(
        plugin["last_error"],
        "plugin `enrich-only` killed by signal SIGKILL"
    );
    assert_eq!(plugin["pid"], Value::Null);
    // The grandchild it left in its group is killed too.
    assert_group_gone(pid).await;

    let (status, body) = hub
        .post(
            "/api/v1/plugins/enrich-only/call/enrich",
            json!({"records": []}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"],
        "plugin `enrich-only` is not running (it is stopped)"
    );
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_configuration_fails_the_start_and_readiness_waits() {
    let hub = Hub::start(
        "[plugins.picky]\ncommand = \"@FAKE@\"\nconfig = { reject = true }\n[plugins.fine]\ncommand = \"@FAKE@\"\n",
    )
    .await;
    // A rejected configuration would be rejected again: no restart loop.
    let plugin = hub.wait_plugin("picky", |p| p["state"] == "failed").await;
    assert_eq!(plugin["restarts"], 0);
    assert!(
        plugin["last_exit"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("failed to start: rejected its configuration"),
        "{plugin}"
    );
    // It names the line of the `config` table, as config errors do: the
    // guard's `[hub]` table takes lines 1-4, `[plugins.picky]` is on 5.
    let error = plugin["last_error"].as_str().unwrap();
    let config_path = hub.dir().join("plugins.toml");
    assert!(
        error.starts_with(&format!(
            "{}:7: plugin `picky` rejected its configuration: reject: must not be true; the table is unusable",
            config_path.display()
        )),
        "{error}"
    );
    hub.wait_plugin("fine", |p| p["state"] == "running").await;
    let (status, body) = hub.get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"status": "starting", "waiting_for": ["picky"]})
    );
    let (_, list) = hub.get("/api/v1/plugins").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["picky", "fine"], "config order");
    hub.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stubborn_plugin_is_killed_with_its_whole_group() {
    let hub = Hub::start(
        "[plugins.stubborn]\ncommand = \"@FAKE@\"\nstop_grace = \"300ms\"\nenv = { FAKE_STUBBORN = \"1\", FAKE_CHILD = \"1\" }\n",
    )
    .await;
    let plugin = hub
        .wait_plugin("stubborn", |p| p["state"] == "running")
        .await;
    let pgid = plugin["pid"].as_i64().unwrap() as i32;
    hub.shut_down().await;
    // Shutdown and SIGTERM were ignored; SIGKILL took the group.
    poll_until(Duration::from_secs(5), || {
        (!common::group_exists(pgid)).then_some(())
    })
    .await;
}
