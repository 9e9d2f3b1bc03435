//! `nats-output`: publishes every event to NATS JetStream, on a subject
//! built from the record's source and type, with `Nats-Msg-Id` set to the
//! event's delivery id so JetStream drops a redelivery inside the stream's
//! duplicate window. An event is acked to the hub only after JetStream's
//! PubAck (the message is stored). See README.md.

mod body;
pub mod subject;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use switchyard_plugin_sdk::{ConfigErrors, Health, Output, Plugin, PluginError, RecordEvent};

pub use body::body;
pub use nats_connect::ConnectConfig;

/// The `config` table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsOutputConfig {
    /// The server, `nats://HOST:PORT` (several may be given, comma-separated).
    pub url: String,
    /// The environment variable holding a token (token authentication).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The user name (user/password authentication, with `password_env`).
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the password for `user`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The subject template: `{source}`, `{type}` and `{kind}` are replaced
    /// by the record's source, type and the event kind, sanitized.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Prepended to the delivery id in `Nats-Msg-Id`, for outputs that
    /// share one stream (delivery ids are unique per output only).
    #[serde(default)]
    pub msg_id_prefix: String,
    /// The longest wait for JetStream's PubAck; a timeout is retried.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

fn default_subject() -> String {
    "switchyard.{source}.{type}".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({err}); write it like \"10s\" or \"500ms\""
        ))
    })
}

/// The configured output: one connection, a JetStream context on it.
#[derive(Debug)]
pub struct NatsOutput {
    jetstream: async_nats::jetstream::Context,
    subject: String,
    msg_id_prefix: String,
    timeout: Duration,
}

impl NatsOutput {
    /// Validates the configuration and connects; `health` follows the connection.
    ///
    /// # Errors
    /// Every bad key; an unreachable server as a retryable start failure.
    pub async fn start(config: NatsOutputConfig, health: Health) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if let Some(why) = subject::check_template(&config.subject) {
            errors.push("subject", why);
        }
        if config.timeout.is_zero() {
            errors.push("timeout", "must be more than 0s");
        }
        if config.msg_id_prefix.chars().any(char::is_control) {
            errors.push("msg_id_prefix", "must not hold control characters");
        }
        errors.into_result()?;
        let connect = ConnectConfig {
            url: config.url,
            token_env: config.token_env,
            user: config.user,
            password_env: config.password_env,
        };
        let client = connect.connect("nats-output", &health).await?;
        let jetstream = async_nats::jetstream::new(client);
        Ok(NatsOutput {
            jetstream,
            subject: config.subject,
            msg_id_prefix: config.msg_id_prefix,
            timeout: config.timeout,
        })
    }

    /// The `Nats-Msg-Id` of an event: the prefix and its delivery id.
    pub fn message_id(&self, event: &RecordEvent) -> String {
        format!("{}{}", self.msg_id_prefix, event.delivery_id)
    }

    /// Publishes one event and waits for its PubAck.
    async fn publish(&self, event: &RecordEvent) -> Result<(), PluginError> {
        let record = &event.record;
        let subject = subject::render(
            &self.subject,
            &record.source,
            &record.record_type,
            event.kind.as_str(),
        );
        let id = self.message_id(event);
        let message = async_nats::jetstream::message::PublishMessage::build()
            .payload(body(event)?.into())
            .message_id(&id)
            .header("Switchyard-Event", event.kind.as_str())
            .header("Switchyard-Record-Id", record.id.as_str())
            .header("Switchyard-Attempt", event.attempt.to_string().as_str());
        let acked = tokio::time::timeout(self.timeout, async {
            let ack = self
                .jetstream
                .send_publish(subject.clone(), message)
                .await
                .map_err(|err| failure(&subject, &err))?;
            ack.await.map_err(|err| failure(&subject, &err))
        })
        .await
        .map_err(|_| {
            PluginError::retryable(format!(
                "nats-output: no PubAck for {subject} within {}",
                humantime::format_duration(self.timeout)
            ))
            .with_code("timeout")
        })??;
        tracing::debug!(
            subject,
            msg_id = id,
            stream = acked.stream,
            sequence = acked.sequence,
            duplicate = acked.duplicate,
            "Published."
        );
        Ok(())
    }
}

/// A failed publish as the hub should see it: retryable (no stream on the
/// subject, a server down or restarting, a timeout all heal).
fn failure(subject: &str, err: &dyn std::fmt::Display) -> PluginError {
    PluginError::retryable(format!(
        "nats-output: publishing to {subject} failed: {err}"
    ))
    .with_code("publish_failed")
}

/// The plugin definition.
pub fn plugin() -> Plugin<NatsOutput> {
    let health = Health::new();
    Plugin::new("nats-output", env!("CARGO_PKG_VERSION"))
        .description("Publishes events to NATS JetStream, deduplicated by Nats-Msg-Id")
        .health(health.clone())
        .output(move |config: NatsOutputConfig| {
            let health = health.clone();
            async move { NatsOutput::start(config, health).await }
        })
}

impl Output for NatsOutput {
    #[tracing::instrument(name = "nats_output.event", skip_all, fields(delivery_id = event.delivery_id))]
    async fn handle_event(&self, event: RecordEvent) -> Result<(), PluginError> {
        self.publish(&event).await
    }
}
