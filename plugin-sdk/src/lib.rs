//! Write Switchyard connector plugins in Rust.
//!
//! A plugin is a small binary the Switchyard hub launches and drives over gRPC
//! (go-plugin compatible). With this SDK you write:
//!
//! 1. a configuration struct (`serde::Deserialize` + `schemars::JsonSchema`);
//!    the SDK advertises its JSON Schema and decodes `Configure`'s JSON into
//!    it, reporting bad keys by name;
//! 2. a type implementing one or more role traits: [`PollingInput`],
//!    [`WebhookInput`], [`Enricher`], [`Output`], with plain Rust types
//!    ([`Record`], [`RecordEvent`], [`WebhookRequest`], [`PluginError`]);
//! 3. a `main` that describes the plugin with [`Plugin::new`] and calls
//!    [`serve`], which does the handshake, serves gRPC, logs to stderr in the
//!    form the hub expects, and exits cleanly when asked.
//!
//! Role calls before a successful `Configure` fail with FAILED_PRECONDITION;
//! each successful `Configure` builds a fresh instance with your factory.
//!
//! # Example: a complete enrichment plugin
//!
//! ```no_run
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//! use switchyard_plugin_sdk::{Enricher, Plugin, PluginError, Record, serve};
//!
//! /// The `config` table in plugins.toml.
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct TaggerConfig {
//!     /// The metadata key to set.
//!     key: String,
//!     /// The value to set it to.
//!     #[serde(default = "default_value")]
//!     value: String,
//! }
//!
//! fn default_value() -> String {
//!     "seen".into()
//! }
//!
//! struct Tagger {
//!     config: TaggerConfig,
//! }
//!
//! impl Enricher for Tagger {
//!     async fn enrich(&self, mut record: Record) -> Result<Record, PluginError> {
//!         let payload = record.payload_json()?;
//!         if !payload.is_object() {
//!             return Err(PluginError::permanent("the payload is not a JSON object"));
//!         }
//!         record.metadata.insert(self.config.key.clone(), self.config.value.clone());
//!         Ok(record)
//!     }
//! }
//!
//! fn main() {
//!     let plugin = Plugin::new("tagger", env!("CARGO_PKG_VERSION"))
//!         .description("Tags every record with a metadata entry")
//!         .enricher(|config: TaggerConfig| async move { Ok(Tagger { config }) });
//!     serve(plugin)
//! }
//! ```
//!
//! Test it in-process with [`testing::TestHarness`], which serves the real
//! gRPC services over a temporary Unix socket.
//!
//! The SDK's structs and enums are `#[non_exhaustive]`, so new fields do not
//! break plugins: build them with their constructors and `with_*` methods,
//! for example
//! `RecordEvent::new(1, EventKind::Created, Record::new("42", "order").with_metadata("k", "v"))`
//! or `WebhookResponse::records(records).with_reply(HttpReply::new(200))`,
//! and read or change their public fields as you like.
//!
//! A type serving several roles registers them on one factory:
//! `Plugin::new(..).factory(|c: MyConfig| async move { Ok(My::new(c)) }).polling_input().output()`.
//!
//! Logging: use `tracing`; [`serve`] installs a subscriber that writes hclog
//! JSON lines to stderr (filter from `SWITCHYARD_LOG`, default `info`).
//! Never print to stdout: it carries the handshake (after it, stdout is
//! pointed at stderr, so a stray `println!` only becomes a log line).

mod authority;
mod concurrency;
mod config;
mod error;
mod health;
pub mod http;
pub mod log;
pub mod payload_path;
mod plugin;
mod role;
mod serve;
mod services;
pub mod testing;
mod tls;
mod types;

pub use config::{NoConfig, decode_config, schema_json};
pub use error::{ConfigError, ConfigErrors, PluginError};
pub use health::{Health, HealthState};
pub use plugin::{Plugin, PluginBuilder};
pub use role::{Emitter, Enricher, Output, PollingInput, WebhookInput};
pub use serve::{LaunchError, check_launch, handshake_line, serve};
pub use types::{
    EventKind, HttpReply, PollBatch, PollRequest, Record, RecordEvent, RoleKind, WebhookRequest,
    WebhookResponse,
};

/// Re-exported so plugins use the same versions as the SDK.
pub use {chrono, schemars, serde_json};

/// Compiles the examples of README.md (the crates.io page) as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
