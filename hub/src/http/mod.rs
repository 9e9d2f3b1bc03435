//! The hub's HTTP server (the only module that knows axum): health, the
//! plugin status API and the call-a-plugin-by-hand endpoints, exactly as
//! `docs/admin-api.md` specifies.
//!
//! * [`admin`]: `/healthz`, `/readyz`, `/api/v1/plugins[/NAME]`.
//! * [`calls`]: the call endpoints, `/api/v1/plugins/NAME/call/...`.
//! * [`control`]: `/api/v1/plugins/NAME/{restart,stop,start}` and `/metrics`.
//! * [`data`]: `/api/v1/records[/ID]` and `/api/v1/dead-letters[/ID[/replay]]`.
//! * [`sync`]: `/api/v1/plugins/NAME/checkpoint` (GET, PUT, DELETE) and
//!   `POST /api/v1/plugins/NAME/poll`.
//! * [`error`]: [`ApiError`] -> status code + `{"error": ..., "code": ...}`,
//!   the 404/405 fallbacks, and the middleware that gives every other error
//!   answer that shape.
//! * [`json`]: the JSON shapes (the record's in one place, [`json::RecordJson`]).
//! * [`metrics_text`]: `/metrics` in the classic Prometheus text format.
//! * [`webhooks`]: `POST /webhooks/NAME`.

pub mod admin;
pub mod calls;
pub mod control;
pub mod data;
pub mod error;
pub mod json;
pub mod metrics_text;
pub mod sync;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use error::ApiError;

use crate::pipeline::PollControl;
use crate::supervisor::{PluginHandle, Registry};
use json::PluginStatusJson;

/// How long a call made through the API may take before it answers 504.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler can see.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The plugins the hub runs now (a reload changes them): reach them
    /// through [`AppState::plugin`] and [`AppState::plugin_list`].
    pub plugins: Registry,
    /// The per-call timeout.
    pub call_timeout: Duration,
    /// The webhook endpoints (`POST /webhooks/NAME`); `None` answers 404.
    pub webhooks: Option<crate::webhook::Webhooks>,
    /// The ingest path (and the store behind it) of the records and
    /// dead-letter endpoints; `None` answers 503.
    pub ingest: Option<crate::pipeline::Ingest>,
    /// The pollers' controls, by plugin name (checkpoint endpoints, poll
    /// now, `last_poll_*`): reach one through [`AppState::poller`].
    pub polls: crate::pipeline::PollControls,
}

impl AppState {
    /// The plugin named `name`, or a 404.
    pub fn plugin(&self, name: &str) -> Result<PluginHandle, ApiError> {
        self.plugins
            .get(name)
            .ok_or_else(|| ApiError::UnknownPlugin(name.to_owned()))
    }

    /// Every plugin the hub runs now, in config order.
    pub fn plugin_list(&self) -> Arc<[PluginHandle]> {
        self.plugins.snapshot()
    }

    /// The poller of plugin `name`: 404 if there is no such plugin, or if
    /// it has no `[plugins.NAME.poll]`.
    pub fn poller(&self, name: &str) -> Result<(PluginHandle, PollControl), ApiError> {
        let plugin = self.plugin(name)?;
        let control = self
            .polls
            .get(name)
            .ok_or_else(|| ApiError::NotPolled(name.to_owned()))?;
        Ok((plugin, control))
    }

    /// The status of `plugin` as the API shows it, with its last poll.
    pub fn status_json(&self, plugin: &PluginHandle) -> PluginStatusJson {
        PluginStatusJson::of(plugin)
            .with_last_poll(self.polls.get(plugin.name()).and_then(|c| c.last_poll()))
    }
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/api/v1/plugins", get(admin::list_plugins))
        .route("/api/v1/plugins/{name}", get(admin::get_plugin))
        .route("/api/v1/plugins/{name}/call/poll", post(calls::poll))
        .route("/api/v1/plugins/{name}/call/webhook", post(calls::webhook))
        .route("/api/v1/plugins/{name}/call/enrich", post(calls::enrich))
        .route("/api/v1/plugins/{name}/call/events", post(calls::events))
        .route("/api/v1/plugins/{name}/restart", post(control::restart))
        .route("/api/v1/plugins/{name}/stop", post(control::stop))
        .route("/api/v1/plugins/{name}/start", post(control::start))
        .route(
            "/api/v1/plugins/{name}/checkpoint",
            get(sync::get_checkpoint)
                .put(sync::put_checkpoint)
                .delete(sync::delete_checkpoint),
        )
        .route("/api/v1/plugins/{name}/poll", post(sync::poll_now))
        .route("/metrics", get(control::metrics))
        .route("/webhooks/{name}", post(webhooks::receive))
        .route("/api/v1/records", get(data::list_records))
        .route("/api/v1/records/{id}", get(data::get_record))
        .route("/api/v1/dead-letters", get(data::list_dead_letters))
        .route(
            "/api/v1/dead-letters/{id}",
            get(data::get_dead_letter).delete(data::delete_dead_letter),
        )
        .route(
            "/api/v1/dead-letters/{id}/replay",
            post(data::replay_dead_letter),
        )
        // After every route: it applies to the routes registered before it.
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::no_route)
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(state)
}

/// Binds the listen address; logs the address actually bound (port 0 picks
/// a free port).
pub async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, "HTTP server listening");
    Ok(listener)
}

/// Serves until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
