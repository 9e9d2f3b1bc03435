//! The Switchyard hub: launches connector plugins as child processes, completes
//! the go-plugin-compatible handshake with each, supervises them, and serves
//! the HTTP admin API.
//!
//! Module map:
//! * [`app`]: the running hub, wiring everything together.
//! * [`backoff`]: the exponential backoff curve with jitter (pure), for
//!   restarts and retries.
//! * [`build_info`]: the `switchyard_build_info` metric.
//! * [`breaker`]: the per-plugin circuit breaker state machine (pure).
//! * [`cli`]: the `switchyard run|check` commands.
//! * [`config`]: `plugins.toml` -> a validated [`config::Config`].
//! * [`domain`]: the hub's own record, event and metadata types.
//! * [`rpc`]: the only module that names protobuf types (gRPC clients).
//! * [`scaffold`]: `switchyard new`, plugin skeletons in Rust, Python and Go.
//! * [`supervisor`]: spawning, handshake, stdio, stop, per-plugin actors.
//! * [`http`]: the admin API (the only module that knows axum).
//! * [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! * [`retry`]: the one call path every plugin call takes (health, breaker,
//!   retry policy, deadlines, call metrics).
//! * [`store`]: the durable store (the only module that runs SQL).
//! * [`pipeline`]: polling, enrichment and delivery to outputs.
//! * [`reload`]: hot reload of the config file (the diff, the handle).
//! * [`systemd`]: `sd_notify` readiness, stopping and watchdog pings.
//! * [`telemetry`]: tracing setup.
//! * [`webhook`]: `POST /webhooks/NAME`, the inbox worker, signature checks.

pub mod app;
pub mod backoff;
pub mod breaker;
pub mod build_info;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conformance;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod reload;
pub mod retry;
pub mod rpc;
pub mod scaffold;
pub mod store;
pub mod supervisor;
pub mod systemd;
pub mod telemetry;
pub mod webhook;
