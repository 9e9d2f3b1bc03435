//! A plugin's own word on its health, through the real gRPC services: the
//! health service follows [`Health`], and a factory that cannot reach its
//! upstream makes `Configure` fail as UNAVAILABLE (so the hub retries the start)
//! instead of rejecting the configuration.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use switchyard_plugin_sdk::testing::{Code, TestHarness};
use switchyard_plugin_sdk::{
    Emitter, Health, NoConfig, Plugin, PluginError, PollRequest, PollingInput,
};

struct Feed;

impl PollingInput for Feed {
    async fn poll(&self, _request: PollRequest, _emitter: Emitter) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Waits until the health service says `serving` about `service`.
async fn until_health(harness: &TestHarness, service: &str, serving: bool) {
    for _ in 0..500 {
        if harness.health(service).await.unwrap() == serving {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("health of {service:?} never became serving={serving}");
}

#[tokio::test]
async fn the_health_service_follows_the_plugins_health_handle() {
    let health = Health::new();
    let plugin = Plugin::new("feed", "0.1.0")
        .health(health.clone())
        .polling_input(|_: NoConfig| async { Ok(Feed) });
    let harness = TestHarness::start(plugin).await.unwrap();
    assert!(harness.health("plugin").await.unwrap());
    assert!(harness.health("").await.unwrap());

    health.set_not_serving("the upstream answers 503");
    until_health(&harness, "plugin", false).await;
    until_health(&harness, "", false).await;

    health.set_serving();
    until_health(&harness, "plugin", true).await;
    until_health(&harness, "", true).await;
    harness.stop().await;
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpstreamConfig {
    /// Whether the fake upstream answers.
    reachable: bool,
}

async fn connect(config: UpstreamConfig) -> Result<Feed, PluginError> {
    if config.reachable {
        Ok(Feed)
    } else {
        Err(
            PluginError::retryable("https://api.example.test is unreachable")
                .with_retry_after(Duration::from_secs(3)),
        )
    }
}

#[tokio::test]
async fn an_unreachable_upstream_at_configure_is_unavailable_not_a_rejection() {
    let plugin = Plugin::new("feed", "0.1.0")
        .polling_input(|config: UpstreamConfig| async move { Ok(connect(config).await?) });
    let harness = TestHarness::start(plugin).await.unwrap();

    let status = harness
        .configure(serde_json::json!({ "reachable": false }))
        .await
        .expect_err("UNAVAILABLE, not a list of rejected keys");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("unreachable"), "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get("switchyard-retry-after-ms")
            .and_then(|value| value.to_str().ok()),
        Some("3000")
    );
    let unconfigured = harness.poll(None).await.expect_err("not configured");
    assert_eq!(unconfigured.code(), Code::FailedPrecondition);

    assert_eq!(
        harness
            .configure(serde_json::json!({ "reachable": true }))
            .await
            .unwrap(),
        Ok(())
    );
    harness.poll(None).await.unwrap();
    harness.stop().await;
}

#[tokio::test]
async fn a_permanent_error_from_the_factory_is_a_rejection_of_the_table() {
    let plugin = Plugin::new("feed", "0.1.0").polling_input(|_: NoConfig| async {
        Err::<Feed, _>(PluginError::permanent("the API key was refused (401)").into())
    });
    let harness = TestHarness::start(plugin).await.unwrap();
    let problems = harness
        .configure(serde_json::json!({}))
        .await
        .unwrap()
        .expect_err("rejected");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "");
    assert!(problems[0].message.contains("401"), "{problems:?}");
    harness.stop().await;
}
