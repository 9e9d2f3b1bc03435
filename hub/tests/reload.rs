//! Hot reload, end to end: the real `switchyard` binary and real plugin
//! binaries. A reload (SIGHUP or `POST /api/v1/reload`) applies the
//! difference: unchanged plugins keep their pid, changed ones get a new
//! one, removed ones are stopped, new ones started, `[pipeline]` applies to
//! the next record; an invalid file or a `[hub]` change changes nothing;
//! and no accepted webhook is lost when reloads happen under load.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

type Hub = common::HubProcess;

/// The `[hub]` table and the plugins every config of these tests shares;
/// `@NAME@` stands for a plugin binary.
fn render(port: u16, dir: &std::path::Path, body: &str) -> String {
    let mut text = format!(
        "[hub]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://hub.db\"\nstop_grace = \"2s\"\nkill_grace = \"1s\"\n{body}"
    );
    for name in ["generator", "webhook-json", "sentiment", "jsonl-output"] {
        text = text.replace(
            &format!("@{name}@"),
            &common::built(name).display().to_string(),
        );
    }
    text.replace("@DIR@", &dir.display().to_string())
}

async fn get(hub: &Hub, path: &str) -> (u16, Value) {
    hub.send("GET", path, None).await
}

async fn post(hub: &Hub, path: &str, body: Value) -> (u16, Value) {
    hub.send("POST", path, Some(body)).await
}

/// The plugin's pid once it is running.
async fn running_pid(hub: &Hub, name: &str) -> i32 {
    hub.wait(&format!("{name} to run"), || async {
        let (status, body) = get(hub, &format!("/api/v1/plugins/{name}")).await;
        (status == 200 && body["state"] == "running")
            .then(|| body["pid"].as_i64())
            .flatten()
            .map(|pid| i32::try_from(pid).unwrap())
    })
    .await
}

/// Whether a process with this pid exists (the hub reaps its children, so a
/// stopped plugin's pid disappears).
fn process_exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Every record of `source`, by `source_id` -> payload.
async fn records(hub: &Hub, source: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/records?source={source}&limit=1000");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, body) = get(hub, &path).await;
        assert_eq!(status, 200, "{body}");
        all.extend(body["records"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

const V1: &str = r#"
[plugins.hooks]
command = "@webhook-json@"
[plugins.hooks.webhook]
auth = "none"

[plugins.gen]
command = "@generator@"
[plugins.gen.poll]
interval = "1h"
[plugins.gen.config]
total = 3
record_type = "v1"

[plugins.sink]
command = "@jsonl-output@"
[plugins.sink.config]
path = "@DIR@/sink.jsonl"
[plugins.sink.output]

[plugins.mood]
command = "@sentiment@"
"#;

/// V1 with `gen` changed, `sink` removed, `more` added and `mood` put in
/// the enrichment chain; `hooks` and `mood` unchanged.
const V2: &str = r#"
[plugins.hooks]
command = "@webhook-json@"
[plugins.hooks.webhook]
auth = "none"

[plugins.gen]
command = "@generator@"
[plugins.gen.poll]
interval = "1h"
[plugins.gen.config]
total = 5
record_type = "v2"

[plugins.more]
command = "@generator@"
[plugins.more.poll]
interval = "1h"
[plugins.more.config]
total = 2

[plugins.mood]
command = "@sentiment@"

[pipeline]
enrich = ["mood"]
"#;

#[tokio::test]
async fn a_reload_applies_the_difference_and_keeps_unchanged_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = render(port, dir.path(), V1);
    let hub = Hub::spawn(dir, &text, port, &[], "/readyz", Duration::from_secs(30)).await;
    let config_path = hub.dir().join("plugins.toml");

    let hooks = running_pid(&hub, "hooks").await;
    let gen_v1 = running_pid(&hub, "gen").await;
    let sink = running_pid(&hub, "sink").await;
    let mood = running_pid(&hub, "mood").await;

    // Before the reload, webhooks are not enriched.
    let (status, _) = post(
        &hub,
        "/webhooks/hooks",
        json!({"id": "before", "text": "great, I love it"}),
    )
    .await;
    assert_eq!(status, 202);

    // SIGHUP with V2.
    std::fs::write(&config_path, render(port, hub.dir(), V2)).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(hub.pid()).unwrap()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    hub.wait("`more` to be started by the reload", || async {
        let (status, _) = get(&hub, "/api/v1/plugins/more").await;
        (status == 200).then_some(())
    })
    .await;
    let more = running_pid(&hub, "more").await;
    let gen_v2 = running_pid(&hub, "gen").await;
    assert_eq!(
        running_pid(&hub, "hooks").await,
        hooks,
        "unchanged: same process; log:\n{}",
        hub.log()
    );
    assert_eq!(
        running_pid(&hub, "mood").await,
        mood,
        "unchanged: same process"
    );
    assert_ne!(gen_v2, gen_v1, "changed: restarted with its new section");
    assert!(!process_exists(gen_v1), "the old gen process is gone");
    assert!(more > 0);
    let (status, body) = get(&hub, "/api/v1/plugins/sink").await;
    assert_eq!(status, 404, "removed: no longer listed: {body}");
    // The sync-state endpoints follow: the new poller is reachable.
    let (status, body) = post(&hub, "/api/v1/plugins/more/poll", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&hub, "/api/v1/plugins/more/checkpoint").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checkpoint"], json!(2), "{body}");
    hub.wait("the removed sink's process to be gone", || async {
        (!process_exists(sink)).then_some(())
    })
    .await;
    // The restarted generator polled at once with its new config, from the
    // checkpoint the old one committed: records 3 and 4, of the new type.
    hub.wait("gen's new records, of the new type", || async {
        let records = records(&hub, "gen").await;
        let types: Vec<&str> = records
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        (types == ["v1", "v1", "v1", "v2", "v2"]).then_some(())
    })
    .await;

    // [pipeline] applies to the next record.
    let (status, _) = post(
        &hub,
        "/webhooks/hooks",
        json!({"id": "after", "text": "great, I love it"}),
    )
    .await;
    assert_eq!(status, 202);
    let stored = hub
        .wait("both webhooks to be stored", || async {
            let records = records(&hub, "hooks").await;
            (records.len() == 2).then_some(records)
        })
        .await;
    let by_id = |id: &str| {
        stored
            .iter()
            .find(|record| record["source_id"] == id)
            .unwrap()
            .clone()
    };
    assert!(by_id("before")["payload"].get("sentiment").is_none());
    assert!(
        by_id("after")["payload"]["sentiment"].is_object(),
        "{}",
        by_id("after")
    );

    // An invalid file changes nothing: 400 with file:line.
    std::fs::write(
        &config_path,
        render(
            port,
            hub.dir(),
            &format!("{V2}\n[plugins.broken]\ncomand = \"x\"\n"),
        ),
    )
    .unwrap();
    let (status, body) = post(&hub, "/api/v1/reload", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_config");
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("plugins.toml:")
                && e.as_str().unwrap().contains("comand")),
        "{body}"
    );
    assert!(
        hub.log().contains("Reload refused"),
        "the refusal is logged"
    );
    assert_eq!(running_pid(&hub, "gen").await, gen_v2);
    assert_eq!(running_pid(&hub, "hooks").await, hooks);

    // A [hub] key that cannot change live is refused, naming it.
    let moved = render(port, hub.dir(), V2).replace(
        &format!("listen = \"127.0.0.1:{port}\""),
        "listen = \"127.0.0.1:1\"",
    );
    std::fs::write(&config_path, moved).unwrap();
    let (status, body) = post(&hub, "/api/v1/reload", json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "restart_required");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("restart the hub to change `listen`"),
        "{body}"
    );

    // The same file again through the API: nothing to do.
    std::fs::write(&config_path, render(port, hub.dir(), V2)).unwrap();
    let (status, body) = post(&hub, "/api/v1/reload", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["started"], json!([]));
    assert_eq!(body["restarted"], json!([]));
    assert_eq!(body["stopped"], json!([]));
    assert_eq!(body["unchanged"], json!(["hooks", "gen", "more", "mood"]));
    assert_eq!(running_pid(&hub, "gen").await, gen_v2);
}

const LOADED: &str = r#"
[plugins.hooks]
command = "@webhook-json@"
[plugins.hooks.webhook]
auth = "none"
[plugins.hooks.config]
default_type = "TYPE"

[plugins.gen]
command = "@generator@"
[plugins.gen.poll]
interval = "1h"
[plugins.gen.config]
total = 1
"#;

#[tokio::test]
async fn no_accepted_webhook_is_lost_when_reloads_restart_its_plugin_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = render(port, dir.path(), &LOADED.replace("TYPE", "round-0"));
    let hub =
        Arc::new(Hub::spawn(dir, &text, port, &[], "/readyz", Duration::from_secs(120)).await);
    let config_path = hub.dir().join("plugins.toml");
    running_pid(&hub, "hooks").await;

    // Four senders post distinct ids until told to stop (at most
    // `PER_SENDER` each, so that storing them stays quick on a slow
    // machine); a 503 or 429 is retried (as a webhook sender would), only a
    // 202 counts as accepted.
    const PER_SENDER: usize = 300;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for sender in 0..4 {
        let hub = hub.clone();
        let stop = stop.clone();
        let sent = sent.clone();
        senders.push(tokio::spawn(async move {
            let mut accepted = BTreeSet::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < PER_SENDER {
                let id = format!("{sender}-{n}");
                loop {
                    let response = hub
                        .http
                        .post(format!("{}/webhooks/hooks", hub.base))
                        .json(&json!({"id": id}))
                        .send()
                        .await
                        .unwrap();
                    match response.status().as_u16() {
                        202 => break,
                        429 | 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                        other => panic!("webhook {id} answered {other}"),
                    }
                }
                accepted.insert(id);
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            accepted
        }));
    }

    // Three reloads that restart the webhook plugin (its section changes)
    // and one that restarts nothing, while the senders post.
    let before_reloads = sent.load(Ordering::Relaxed);
    for round in 1..=3 {
        std::fs::write(
            &config_path,
            render(
                port,
                hub.dir(),
                &LOADED.replace("TYPE", &format!("round-{round}")),
            ),
        )
        .unwrap();
        let (status, body) = post(&hub, "/api/v1/reload", json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["restarted"], json!(["hooks"]), "{body}");
        assert_eq!(body["unchanged"], json!(["gen"]), "{body}");
        running_pid(&hub, "hooks").await;
    }
    let (status, body) = post(&hub, "/api/v1/reload", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let after_reloads = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut accepted = BTreeSet::new();
    for sender in senders {
        accepted.extend(sender.await.unwrap());
    }
    assert!(
        after_reloads > before_reloads,
        "no webhook was accepted while the reloads ran ({before_reloads} before, {after_reloads} after)"
    );

    // Every accepted delivery ends up stored, once.
    let stored = hub
        .wait("every accepted webhook to be stored", || async {
            let records = records(&hub, "hooks").await;
            (records.len() >= accepted.len()).then_some(records)
        })
        .await;
    let ids: BTreeSet<String> = stored
        .iter()
        .map(|record| record["source_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), stored.len(), "no record stored twice");
    assert_eq!(ids, accepted, "exactly the accepted webhooks are stored");
    let (_, dead) = get(&hub, "/api/v1/dead-letters").await;
    assert_eq!(dead["dead_letters"], json!([]), "{dead}");
}
