//! The running hub: wires the config, the socket directory, the supervisor
//! and the HTTP server together, and shuts them all down in order.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cluster::{Cluster, Demand};
use crate::config::{Config, Database};
use crate::http::{self, AppState, CALL_TIMEOUT};
use crate::pipeline::Pipeline;
use crate::reload::{self, Plan, ReloadError, Reloader};
use crate::store::Store;
use crate::store::hub_lock::HubLock;
use crate::supervisor::socket_dir::SocketDir;
use crate::supervisor::{Registry, Spawner, Supervisor};
use crate::webhook::{Webhooks, Workers};

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
    crate::cluster::metrics::init();
    crate::build_info::register();
}

/// [`run`] with the HTTP listener already bound (tests bind port 0 first to
/// learn the address).
pub async fn run_with_listener(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Listen for SIGHUP first: its default action would end the hub.
    let mut hangups = hangup_signals();
    register_metrics(&config);
    let systemd = crate::systemd::Notifier::from_env().map(Arc::new);
    let webhook_listener = match config.hub.access.webhook_listen {
        Some(address) => Some(
            http::bind_webhooks(address)
                .await
                .with_context(|| format!("cannot listen on {address} (`webhook_listen`)"))?,
        ),
        None => None,
    };
    let socket_dir = SocketDir::create(config.hub.socket_dir.as_deref())
        .context("cannot create the plugin socket directory")?;
    tracing::debug!(socket_dir = %socket_dir.path().display(), "Socket directory ready.");
    let spawner = Arc::new(
        Spawner::start(tokio::runtime::Handle::current()).context("cannot start the spawner")?,
    );
    // SQLite serves one hub: held until this function returns (or the
    // process ends, however it ends).
    let _hub_lock = match &config.hub.database {
        Database::Sqlite { path, .. } => Some(HubLock::acquire(path)?),
        Database::Postgres(_) => None,
    };
    let store = Store::open(&config.hub.database.url())
        .await
        .with_context(|| format!("cannot open the database {:?}", config.hub.database))?;
    tracing::info!(database = ?config.hub.database, "Store ready.");
    // PostgreSQL may be shared by many hubs: leased work, and the plugins
    // only that work needs started on demand (`crate::cluster`).
    let hub_id = config.hub.cluster.hub_id();
    let cluster = match &config.hub.database {
        Database::Sqlite { .. } => Cluster::solo(&hub_id),
        Database::Postgres(_) => Cluster::join(
            store.clone(),
            &hub_id,
            config.hub.listen.to_string(),
            config.hub.cluster.lease_ttl,
        ),
    };
    let standby = standby_plugins(&config, &cluster);
    let supervisor = Supervisor::start_with_standby(
        &config.plugins,
        spawner,
        socket_dir.path().to_path_buf(),
        standby.clone(),
    );
    let registry = Registry::new(supervisor.plugins().to_vec());
    let demand = Demand::new(registry.clone(), standby);
    let pipeline = Pipeline::start(
        &config,
        store.clone(),
        registry.clone(),
        cluster.clone(),
        demand.clone(),
    );
    let (webhooks, webhook_workers) = Webhooks::start(
        &config.plugins,
        supervisor.plugins(),
        pipeline.ingest().clone(),
        cluster.clone(),
    )
    .await
    .context("cannot read the webhook inbox")?;
    let (reloader, mut reloads) = Reloader::channel();
    let state = AppState::from(http::AppParts {
        plugins: registry.clone(),
        call_timeout: CALL_TIMEOUT,
        webhooks: Some(webhooks.clone()),
        ingest: Some(pipeline.ingest().clone()),
        polls: pipeline.polls().clone(),
        reloader: Some(reloader),
        admin_token: config
            .hub
            .access
            .admin_token
            .as_ref()
            .map(http::AdminToken::new),
        cluster: Some(cluster.clone()),
    });
    let mut running = Running {
        config,
        supervisor,
        pipeline,
        webhooks,
        webhook_workers,
        registry,
        cluster: cluster.clone(),
        demand,
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(http::serve_all(
        listener,
        webhook_listener,
        state,
        async move {
            let _ = http_stopped.await;
        },
    ));
    // Ready: the store is open, the listeners are bound and served, every
    // plugin's start is under way (`crate::systemd`).
    let stop_watchdog = tokio_util::sync::CancellationToken::new();
    if let Some(notifier) = &systemd {
        notifier.ready();
        let notifier = notifier.clone();
        let cancel = stop_watchdog.clone();
        tokio::spawn(async move { notifier.watchdog(cancel).await });
    }

    let mut server_result = None;
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("Shutting down: stopping every plugin.");
                break;
            }
            result = &mut server => {
                tracing::error!("The HTTP server stopped unexpectedly; shutting down.");
                server_result = Some(result);
                break;
            }
            Some(request) = reloads.recv() => {
                let outcome = running.reload().await;
                let _ = request.reply.send(outcome);
            }
            Some(()) = next_hangup(&mut hangups) => {
                tracing::info!("Received SIGHUP: reloading the config file.");
                // The outcome is logged by `reload`.
                let _ = running.reload().await;
            }
        }
    }
    if let Some(notifier) = &systemd {
        notifier.stopping();
    }
    let _ = stop_http.send(());
    // Refuse reloads from now on (a request already queued gets
    // "shutting down").
    drop(reloads);
    // Webhook workers stop first: a delivery in hand stays pending and is
    // handed to the plugin again next run. Then pollers and deliveries
    // (what they had not committed is fetched or delivered again next run),
    // then the plugins.
    running.webhook_workers.stop().await;
    running.pipeline.stop().await;
    // The leased work has stopped: give its leases up so the other hubs
    // take it over at once.
    cluster.leave().await;
    running.supervisor.stop_all().await;
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
    // Pings until the end: stopping every plugin may take a while.
    stop_watchdog.cancel();
    tracing::info!("Hub stopped.");
    server_result
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")
}

/// The plugins that start stopped and run only while this hub holds their
/// work: none for a hub alone.
fn standby_plugins(config: &Config, cluster: &Cluster) -> BTreeSet<String> {
    if cluster.is_shared() {
        crate::cluster::demand::on_demand_plugins(config)
    } else {
        BTreeSet::new()
    }
}

/// SIGHUP, if the hub can listen for it (it logs why not otherwise).
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(stream) => Some(stream),
        Err(err) => {
            tracing::warn!(error = %err, "Cannot listen for SIGHUP; reload through POST /api/v1/reload.");
            None
        }
    }
}

/// The next SIGHUP; never completes without a signal stream.
async fn next_hangup(hangups: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangups {
        Some(stream) => stream.recv().await,
        None => std::future::pending().await,
    }
}

/// The running hub's parts that a reload changes, and the config they run.
struct Running {
    config: Config,
    supervisor: Supervisor,
    pipeline: Pipeline,
    webhooks: Webhooks,
    webhook_workers: Workers,
    registry: Registry,
    cluster: Cluster,
    demand: Demand,
}

impl Running {
    /// Re-reads the config file and applies the difference (see
    /// [`crate::reload`]); logs the outcome.
    async fn reload(&mut self) -> Result<Plan, ReloadError> {
        let outcome = match crate::config::load(&self.config.path) {
            Err(errors) => Err(ReloadError::Invalid(errors)),
            Ok(new) => match reload::plan(&self.config, &new) {
                Ok(plan) => {
                    self.apply(&plan, new).await;
                    Ok(plan)
                }
                Err(err) => Err(err),
            },
        };
        match &outcome {
            Ok(plan) => tracing::info!(
                started = ?plan.started,
                restarted = ?plan.restarted,
                stopped = ?plan.stopped,
                unchanged = plan.unchanged.len(),
                pipeline_changed = plan.pipeline_changed,
                "Config reloaded."
            ),
            Err(err) => tracing::error!(error = %err, "Reload refused; nothing changed."),
        }
        outcome
    }

    /// Stops what the plan stops or restarts, then starts what it starts or
    /// restarts with its new section, then swaps the `[pipeline]` table.
    async fn apply(&mut self, plan: &Plan, new: Config) {
        for name in &plan.stopped {
            self.webhooks.close(&mut self.webhook_workers, name).await;
            self.pipeline.stop_plugin(name).await;
            self.supervisor.remove(name).await;
        }
        for name in &plan.restarted {
            // The endpoint stays open meanwhile: deliveries go on being
            // committed to the inbox and wait there for the new process.
            self.webhook_workers.stop_one(name).await;
            self.pipeline.stop_plugin(name).await;
            self.supervisor.remove(name).await;
        }
        register_metrics(&new);
        let standby = standby_plugins(&new, &self.cluster);
        self.supervisor.set_standby(standby.clone());
        self.demand.set_on_demand(standby);
        let mut launched = Vec::new();
        for plugin in &new.plugins {
            if plan.started.contains(&plugin.name) || plan.restarted.contains(&plugin.name) {
                launched.push((plugin, self.supervisor.launch(plugin)));
            }
        }
        self.registry.replace(
            new.plugins
                .iter()
                .filter_map(|plugin| self.supervisor.plugin(&plugin.name).cloned())
                .collect(),
        );
        self.pipeline.set_config(&new);
        for (plugin, handle) in launched {
            self.pipeline.start_plugin(plugin, &handle);
            if let Err(err) = self
                .webhooks
                .open(&mut self.webhook_workers, plugin, &handle)
                .await
            {
                tracing::error!(plugin = %plugin.name, error = %err, "Cannot open the plugin's webhook endpoint: its inbox cannot be read.");
            }
        }
        self.config = new;
    }
}
