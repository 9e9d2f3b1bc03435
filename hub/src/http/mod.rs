//! The hub's HTTP server (the only module that knows axum): health, the
//! plugin status API and the call-a-plugin-by-hand endpoints, exactly as
//! `docs/admin-api.md` specifies.
//!
//! * [`admin`]: `/healthz`, `/readyz`, `/api/v1/plugins[/NAME]`.
//! * [`calls`]: the call endpoints, `/api/v1/plugins/NAME/call/...`.
//! * [`cluster`]: `GET /api/v1/cluster`, the hubs sharing the database and
//!   what each owns.
//! * [`control`]: `/api/v1/plugins/NAME/{restart,stop,start}` and `/metrics`.
//! * [`data`]: `/api/v1/records[/ID]` and `/api/v1/dead-letters[/ID[/replay]]`.
//! * [`sync`]: `/api/v1/plugins/NAME/checkpoint` (GET, PUT, DELETE) and
//!   `POST /api/v1/plugins/NAME/poll`.
//! * [`error`]: [`ApiError`] -> status code + `{"error": ..., "code": ...}`,
//!   the 404/405 fallbacks, and the middleware that gives every other error
//!   answer that shape.
//! * [`json`]: the JSON shapes (the record's in one place, [`json::RecordJson`]).
//! * [`log_throttle`]: one log line per interval for refusals that come in
//!   floods (a full webhook inbox's 429s).
//! * [`metrics_text`]: `/metrics` in the classic Prometheus text format.
//! * [`reload`]: `POST /api/v1/reload`.
//! * [`page`]: the status page, `GET /` and its embedded assets.
//! * [`webhooks`]: `POST /webhooks/NAME`.
//! * [`routes`]: the one list of routes and who may call each; both
//!   routers are built from it.
//! * [`auth`]: the admin token middleware (`[hub] admin_token_env`).

pub mod admin;
pub mod auth;
pub mod calls;
pub mod cluster;
pub mod control;
pub mod data;
pub mod error;
pub mod json;
pub mod log_throttle;
pub mod metrics_text;
pub mod page;
pub mod reload;
pub mod routes;
pub mod sync;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::AdminToken;
pub use error::ApiError;
use routes::Access;

use crate::pipeline::PollControl;
use crate::supervisor::{PluginHandle, Registry};
use json::PluginStatusJson;

/// How long a call made through the API may take before it answers 504.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler can see: [`AppParts`] behind one `Arc`. axum clones
/// the state for every request, and a clone of the parts themselves took
/// a reference count for each of the dozens of `Arc`s inside them (about
/// 2% of the hub's CPU under synchronous webhooks).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppParts>);

impl From<AppParts> for AppState {
    fn from(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of the [`AppState`].
#[derive(Debug)]
pub struct AppParts {
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
    /// Asks the hub to reload its config file (`POST /api/v1/reload`);
    /// `None` answers 503.
    pub reloader: Option<crate::reload::Reloader>,
    /// The admin API's bearer token (`[hub] admin_token_env`), or `None`
    /// for an open admin API.
    pub admin_token: Option<AdminToken>,
    /// The pollers' controls, by plugin name (checkpoint endpoints, poll
    /// now, `last_poll_*`): reach one through [`AppState::poller`].
    pub polls: crate::pipeline::PollControls,
    /// This hub among the hubs sharing its database (`GET
    /// /api/v1/cluster`); `None` answers 503.
    pub cluster: Option<crate::cluster::Cluster>,
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

    /// [`AppState::poller`], when this hub runs the poller now (a 409
    /// while another hub sharing the database holds its lease).
    pub fn active_poller(&self, name: &str) -> Result<(PluginHandle, PollControl), ApiError> {
        let (plugin, control) = self.poller(name)?;
        if !control.is_active() {
            return Err(ApiError::PolledElsewhere(name.to_owned()));
        }
        Ok((plugin, control))
    }

    /// The status of `plugin` as the API shows it, with its last poll.
    pub fn status_json(&self, plugin: &PluginHandle) -> PluginStatusJson {
        PluginStatusJson::of(plugin)
            .with_last_poll(self.polls.get(plugin.name()).and_then(|c| c.last_poll()))
    }
}

/// Builds the main listener's router: every route of [`routes::routes`],
/// the admin routes behind the admin token when one is configured.
pub fn router(state: AppState) -> Router {
    let token = state.admin_token.clone();
    let mut router = Router::new();
    for route in routes::routes() {
        let endpoint = match (&token, route.spec.access) {
            (Some(token), Access::Admin) => {
                route
                    .endpoint
                    .route_layer(axum::middleware::from_fn_with_state(
                        token.clone(),
                        auth::require_token,
                    ))
            }
            _ => route.endpoint,
        };
        router = router.route(route.spec.path, endpoint);
    }
    // The status page holds no data: it needs no admin token.
    finish(router.merge(page::routes::<AppState>()), state)
}

/// Builds the webhook listener's router (`[hub] webhook_listen`): only
/// `POST /webhooks/NAME`, `/healthz` and `/readyz`; every other path is a
/// 404 in the JSON error shape.
pub fn webhook_router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes::routes() {
        if route.spec.access.on_webhook_listener() {
            router = router.route(route.spec.path, route.endpoint);
        }
    }
    finish(router, state)
}

/// The JSON 404 and 405 fallbacks and the error-shape middleware, after
/// every route.
fn finish(router: Router<AppState>, state: AppState) -> Router {
    router
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

/// Binds `[hub] webhook_listen`; logs the address actually bound.
pub async fn bind_webhooks(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, "Webhook listener listening (webhooks, /healthz and /readyz only)");
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

/// Serves the main listener and, when given, the webhook listener, until
/// `shutdown` completes; stops both when either fails.
pub async fn serve_all(
    listener: TcpListener,
    webhook_listener: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(webhook_listener) = webhook_listener else {
        return serve(listener, state, shutdown).await;
    };
    let stop = CancellationToken::new();
    let webhook_app = webhook_router(state.clone());
    let main = serve(listener, state, stop.clone().cancelled_owned());
    let webhooks_stop = stop.clone().cancelled_owned();
    let webhooks = async move {
        axum::serve(webhook_listener, webhook_app)
            .with_graceful_shutdown(webhooks_stop)
            .await
    };
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    // Either server failing stops the other (and the hub, in `app`).
    let _cancel_on_exit = stop.drop_guard();
    tokio::try_join!(main, webhooks).map(|_| ())
}
