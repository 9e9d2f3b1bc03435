//! The running hub: wires the config, the socket directory, the supervisor
//! and the HTTP server together, and shuts them all down in order.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Config;
use crate::http::{self, AppState, CALL_TIMEOUT};
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::supervisor::socket_dir::SocketDir;
use crate::supervisor::{Registry, Spawner, Supervisor};
use crate::webhook::Webhooks;

/// How long in-flight HTTP requests may take to finish at shutdown.
const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the hub until `shutdown` completes (a signal, in `main`), then stops
/// every plugin in parallel, stops the HTTP server and removes the socket
/// directory. Plugins that fail to start do not stop the hub.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let listener = http::bind(config.hub.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.hub.listen))?;
    run_with_listener(config, listener, shutdown).await
}

/// Registers every metric family (supervisor, calls, data path, webhooks,
/// store) and creates the series of every configured
/// plugin at zero, so `/metrics` lists each family with its HELP and TYPE
/// from the start, before its first sample. Idempotent.
pub fn register_metrics(config: &Config) {
    crate::supervisor::metrics::register();
    crate::retry::metrics::register();
    crate::pipeline::metrics::init(config);
    crate::webhook::metrics::init(config);
    crate::store::metrics::init();
}

/// [`run`] with the HTTP listener already bound (tests bind port 0 first to
/// learn the address).
pub async fn run_with_listener(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    register_metrics(&config);
    let socket_dir = SocketDir::create(config.hub.socket_dir.as_deref())
        .context("cannot create the plugin socket directory")?;
    tracing::debug!(socket_dir = %socket_dir.path().display(), "Socket directory ready.");
    let spawner = Arc::new(
        Spawner::start(tokio::runtime::Handle::current()).context("cannot start the spawner")?,
    );
    let store = Store::open(&config.hub.database.url())
        .await
        .with_context(|| format!("cannot open the database {:?}", config.hub.database))?;
    tracing::info!(database = ?config.hub.database, "Store ready.");
    let supervisor = Supervisor::start(&config.plugins, spawner, socket_dir.path().to_path_buf());
    let pipeline = Pipeline::start(&config, store.clone(), supervisor.plugins());
    let (webhooks, webhook_workers) = Webhooks::start(
        &config.plugins,
        supervisor.plugins(),
        pipeline.ingest().clone(),
    )
    .await
    .context("cannot read the webhook inbox")?;
    let state = AppState {
        plugins: Registry::new(supervisor.plugins().to_vec()),
        call_timeout: CALL_TIMEOUT,
        webhooks: Some(webhooks),
        ingest: Some(pipeline.ingest().clone()),
        polls: pipeline.polls().clone(),
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(http::serve(listener, state, async move {
        let _ = http_stopped.await;
    }));

    let mut server_result = None;
    tokio::select! {
        () = shutdown => tracing::info!("Shutting down: stopping every plugin."),
        result = &mut server => {
            tracing::error!("The HTTP server stopped unexpectedly; shutting down.");
            server_result = Some(result);
        }
    }
    let _ = stop_http.send(());
    // Pollers and deliveries stop first (what they had not committed is
    // fetched or delivered again next run), then the plugins.
    // Webhook workers stop first: a delivery in hand stays pending and is
    // handed to the plugin again next run.
    webhook_workers.stop().await;
    pipeline.stop().await;
    supervisor.stop_all().await;
    let server_result = match server_result {
        Some(result) => result,
        None => match tokio::time::timeout(HTTP_DRAIN, &mut server).await {
            Ok(result) => result,
            Err(_) => {
                server.abort();
                Ok(Ok(()))
            }
        },
    };
    store.close().await;
    drop(socket_dir);
    tracing::info!("Hub stopped.");
    server_result
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")
}
