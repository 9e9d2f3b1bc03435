//! Sync state through the admin API, on the real `switchyard` binary with
//! real polling plugins (`generator`, `testkit`): the checkpoint endpoints
//! (GET, PUT, DELETE), poll-now, the `last_poll_*` status fields and the
//! metadata (description, config schema) in the status.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::HubProcess;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Runs the hub on `plugins` (the `[plugins.*]` tables), with its database in
/// the temp dir.
async fn hub(plugins: &str) -> HubProcess {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://{}\"\nstop_grace = \"3s\"\nkill_grace = \"1s\"\n\n{plugins}",
        dir.path().join("hub.db").display()
    );
    HubProcess::spawn(dir, &config, port, &[], "/readyz", WAIT).await
}

async fn get(hub: &HubProcess, path: &str) -> Value {
    let (status, body) = hub.send("GET", path, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The ids (`source_id`) of every stored record of `source`, sorted
/// numerically.
async fn record_ids(hub: &HubProcess, source: &str) -> Vec<u64> {
    let page = get(hub, &format!("/api/v1/records?source={source}&limit=1000")).await;
    let mut ids: Vec<u64> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["source_id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_view_reset_set_and_poll_now() {
    let generator = common::built("generator");
    let hub = hub(&format!(
        r#"[plugins.gen]
command = "{generator}"

[plugins.gen.config]
records_per_poll = 5
batch_size = 5

[plugins.gen.poll]
interval = "1h"

[plugins.quiet]
command = "{generator}"
"#,
        generator = generator.display()
    ))
    .await;

    // The poll at start: the checkpoint is the generator's next sequence
    // number, decimal UTF-8, which is also JSON.
    let status = hub
        .wait("the first poll", || async {
            let status = get(&hub, "/api/v1/plugins/gen").await;
            (!status["last_poll_at"].is_null()).then_some(status)
        })
        .await;
    assert_eq!(status["last_poll_records"], 5, "{status}");
    assert_eq!(status["last_poll_error"], Value::Null, "{status}");
    assert_eq!(
        status["description"],
        "Emits synthetic records with sequential ids and a checkpoint"
    );
    assert_eq!(
        status["config_schema"]["properties"]["records_per_poll"]["type"], "integer",
        "{status}"
    );
    let checkpoint = get(&hub, "/api/v1/plugins/gen/checkpoint").await;
    assert_eq!(checkpoint["plugin"], "gen");
    assert_eq!(checkpoint["checkpoint"], 5);
    assert_eq!(checkpoint["checkpoint_base64"], "NQ==");
    assert!(checkpoint["updated_at"].is_string(), "{checkpoint}");
    assert_eq!(record_ids(&hub, "gen").await, (0..5).collect::<Vec<_>>());

    // Poll now, although the interval is an hour: stored at once.
    let before = status["last_poll_at"].as_str().unwrap().to_owned();
    let (code, answer) = hub.send("POST", "/api/v1/plugins/gen/poll", None).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer, json!({"plugin": "gen", "records": 5, "commits": 1}));
    assert_eq!(record_ids(&hub, "gen").await, (0..10).collect::<Vec<_>>());
    assert_eq!(
        get(&hub, "/api/v1/plugins/gen/checkpoint").await["checkpoint"],
        10
    );
    let status = get(&hub, "/api/v1/plugins/gen").await;
    assert_ne!(status["last_poll_at"].as_str().unwrap(), before);
    assert_eq!(status["last_poll_records"], 5);

    // Reset: the next poll starts from nothing and fetches 0..5 again,
    // upserted rather than duplicated.
    let (code, answer) = hub
        .send("DELETE", "/api/v1/plugins/gen/checkpoint", None)
        .await;
    assert_eq!(
        (code, answer),
        (200, json!({"plugin": "gen", "deleted": true}))
    );
    let checkpoint = get(&hub, "/api/v1/plugins/gen/checkpoint").await;
    assert_eq!(checkpoint["checkpoint"], Value::Null);
    assert_eq!(checkpoint["checkpoint_base64"], Value::Null);
    let (code, answer) = hub.send("POST", "/api/v1/plugins/gen/poll", None).await;
    assert_eq!((code, answer["records"].clone()), (200, json!(5)));
    assert_eq!(record_ids(&hub, "gen").await, (0..10).collect::<Vec<_>>());
    assert_eq!(
        get(&hub, "/api/v1/plugins/gen/checkpoint").await["checkpoint"],
        5
    );

    // Set: as JSON, then as base64; the next poll starts there.
    let (code, answer) = hub
        .send(
            "PUT",
            "/api/v1/plugins/gen/checkpoint",
            Some(json!({"checkpoint": 100})),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["checkpoint"], 100);
    assert_eq!(answer["checkpoint_base64"], "MTAw");
    hub.send("POST", "/api/v1/plugins/gen/poll", None).await;
    let ids = record_ids(&hub, "gen").await;
    assert_eq!(ids.len(), 15, "{ids:?}");
    assert_eq!(ids[10..], [100, 101, 102, 103, 104]);
    let (code, answer) = hub
        .send(
            "PUT",
            "/api/v1/plugins/gen/checkpoint",
            Some(json!({"checkpoint_base64": "MjAw"})),
        )
        .await;
    assert_eq!((code, answer["checkpoint"].clone()), (200, json!(200)));

    // A checkpoint the plugin cannot read: the poll fails, the answer and
    // the status say why, and nothing is stored.
    hub.send(
        "PUT",
        "/api/v1/plugins/gen/checkpoint",
        Some(json!({"checkpoint": "not a number"})),
    )
    .await;
    assert_eq!(
        get(&hub, "/api/v1/plugins/gen/checkpoint").await["checkpoint"],
        "not a number"
    );
    let (code, answer) = hub.send("POST", "/api/v1/plugins/gen/poll", None).await;
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["code"], "rejected", "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not a decimal sequence number"),
        "{answer}"
    );
    let status = get(&hub, "/api/v1/plugins/gen").await;
    assert!(
        status["last_poll_error"]
            .as_str()
            .is_some_and(|error| error.contains("not a decimal sequence number")),
        "{status}"
    );
    assert_eq!(status["last_poll_records"], 0);
    assert_eq!(record_ids(&hub, "gen").await.len(), 15);
    // The list shows the same fields.
    let list = get(&hub, "/api/v1/plugins").await;
    assert_eq!(list[0]["last_poll_error"], status["last_poll_error"]);
    assert_eq!(list[1]["last_poll_at"], Value::Null);

    // Bad requests and plugins without a poller.
    for body in [
        json!({}),
        json!({"checkpoint": 1, "checkpoint_base64": "MQ=="}),
        json!({"checkpoint_base64": "%%%"}),
        json!({"cursor": 1}),
    ] {
        let (code, answer) = hub
            .send("PUT", "/api/v1/plugins/gen/checkpoint", Some(body.clone()))
            .await;
        assert_eq!(
            (code, answer["code"].as_str()),
            (400, Some("bad_request")),
            "{body}: {answer}"
        );
    }
    for (method, path) in [
        ("GET", "/api/v1/plugins/quiet/checkpoint"),
        ("DELETE", "/api/v1/plugins/quiet/checkpoint"),
        ("POST", "/api/v1/plugins/quiet/poll"),
    ] {
        let (code, answer) = hub.send(method, path, None).await;
        assert_eq!(
            (code, answer["code"].as_str()),
            (404, Some("not_polled")),
            "{answer}"
        );
    }
    let (code, answer) = hub
        .send("GET", "/api/v1/plugins/nope/checkpoint", None)
        .await;
    assert_eq!(
        (code, answer["code"].as_str()),
        (404, Some("unknown_plugin"))
    );
    let (code, answer) = hub.send("POST", "/api/v1/plugins/nope/poll", None).await;
    assert_eq!(
        (code, answer["code"].as_str()),
        (404, Some("unknown_plugin"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_during_a_running_poll_takes_effect() {
    let testkit = common::built("testkit");
    let pause = tempfile::NamedTempFile::new().unwrap();
    let hub = hub(&format!(
        r#"[plugins.kit]
command = "{testkit}"

[plugins.kit.config]
poll_batches = 2
records_per_batch = 3
poll_pause_while_exists = "{pause}"

[plugins.kit.poll]
interval = "1h"
"#,
        testkit = testkit.display(),
        pause = pause.path().display()
    ))
    .await;

    // The poll at start committed its first batch and waits.
    hub.wait("the first batch's checkpoint", || async {
        let checkpoint = get(&hub, "/api/v1/plugins/kit/checkpoint").await;
        (checkpoint["checkpoint"] == 3).then_some(())
    })
    .await;
    assert_eq!(
        get(&hub, "/api/v1/plugins/kit").await["last_poll_at"],
        Value::Null
    );

    // A reset now waits for the poll, whose last commit would otherwise
    // overwrite it.
    let client = hub.http.clone();
    let url = format!("{}/api/v1/plugins/kit/checkpoint", hub.base);
    let reset = tokio::spawn(async move {
        let response = client.delete(url).send().await.unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reset.is_finished(), "the reset did not wait for the poll");
    pause.close().unwrap();
    let (code, answer) = reset.await.unwrap();
    assert_eq!(
        (code, answer),
        (200, json!({"plugin": "kit", "deleted": true}))
    );
    let status = get(&hub, "/api/v1/plugins/kit").await;
    assert_eq!(status["last_poll_records"], 6, "{status}");
    assert_eq!(record_ids(&hub, "kit").await, (0..6).collect::<Vec<_>>());
    assert_eq!(
        get(&hub, "/api/v1/plugins/kit/checkpoint").await["checkpoint"],
        Value::Null
    );

    // The next poll starts from nothing again.
    let (code, answer) = hub.send("POST", "/api/v1/plugins/kit/poll", None).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer, json!({"plugin": "kit", "records": 6, "commits": 2}));
    assert_eq!(
        get(&hub, "/api/v1/plugins/kit/checkpoint").await["checkpoint"],
        6
    );
    assert_eq!(record_ids(&hub, "kit").await, (0..6).collect::<Vec<_>>());

    // Two polls asked for at once never overlap: the second starts from
    // where the first ended.
    let pause_path = pause_path_again(&hub);
    let poll = |hub: &HubProcess| {
        let client = hub.http.clone();
        let url = format!("{}/api/v1/plugins/kit/poll", hub.base);
        tokio::spawn(async move {
            let response = client.post(url).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        })
    };
    let first = poll(&hub);
    hub.wait("the first poll's first batch", || async {
        let checkpoint = get(&hub, "/api/v1/plugins/kit/checkpoint").await;
        (checkpoint["checkpoint"] == 9).then_some(())
    })
    .await;
    let second = poll(&hub);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished() && !second.is_finished());
    std::fs::remove_file(&pause_path).unwrap();
    let expected = json!({"plugin": "kit", "records": 6, "commits": 2});
    assert_eq!(first.await.unwrap(), (200, expected.clone()));
    assert_eq!(second.await.unwrap(), (200, expected));
    assert_eq!(
        get(&hub, "/api/v1/plugins/kit/checkpoint").await["checkpoint"],
        18
    );
    assert_eq!(record_ids(&hub, "kit").await, (0..18).collect::<Vec<_>>());
}

/// Creates the pause file again (its path is in the hub's config).
fn pause_path_again(hub: &HubProcess) -> std::path::PathBuf {
    let config = std::fs::read_to_string(hub.dir().join("plugins.toml")).unwrap();
    let line = config
        .lines()
        .find(|line| line.starts_with("poll_pause_while_exists"))
        .unwrap();
    let path = std::path::PathBuf::from(line.split('"').nth(1).unwrap());
    std::fs::write(&path, b"").unwrap();
    path
}
