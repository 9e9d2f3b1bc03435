//! The gRPC side of the SDK, and the only place that names protobuf types:
//! the services a plugin serves and the client the test harness drives them
//! with.
//!
//! - `convert.rs`: every conversion between protobuf messages and the SDK's
//!   own types; the only module that builds or reads protobuf fields;
//! - `plugin.rs`: `switchyard.v1.Plugin` (`GetMetadata`, `Configure`);
//! - `polling_input.rs`, `webhook_input.rs`, `enricher.rs`, `output.rs`: one
//!   file per role service, each driving the author's role trait;
//! - `batches.rs`: the driver of the two batch streams (`Enrich`, `HandleEvent`);
//! - `go_plugin.rs`: go-plugin's `GRPCController`, `GRPCStdio` and `GRPCBroker`;
//! - `client.rs`: the client half, for [`crate::testing`].
//!
//! Dependencies point one way: these modules use the role traits, the plugin
//! definition and the plain types; none of those knows this module exists.
//! The roles a plugin serves reach [`build_routes`] through
//! [`RoleRegistry`], which `plugin.rs` declares and this module implements.

mod batches;
pub(crate) mod client;
mod convert;
mod enricher;
mod go_plugin;
mod output;
mod plugin;
mod polling_input;
mod webhook_input;

use std::sync::{Arc, PoisonError, RwLock};

use switchyard_wire::handshake::HEALTH_SERVICE_NAME;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::service::{Routes, RoutesBuilder};

use crate::health::HealthState;
use crate::plugin::{Factory, Info, Plugin, RoleRegistry};
use crate::role::{Enricher, Output, PollingInput, WebhookInput};
use crate::types::RoleKind;

/// The largest message accepted or sent (tonic's default decode limit is 4
/// MiB): 65 MiB, so a webhook body at the largest `max_body` the hub allows
/// (64 MiB) arrives with the rest of its request, and the record made of it
/// goes back, to an enricher and to an output with what else it carries.
pub(crate) const MAX_MESSAGE_BYTES: usize = 65 * 1024 * 1024;

/// State shared by every service of one running plugin.
pub(crate) struct Shared<T> {
    info: Info,
    config_schema: String,
    roles: Vec<RoleKind>,
    factory: Factory<T>,
    instance: RwLock<Option<Arc<T>>>,
    configure_lock: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
}

impl<T> Shared<T> {
    /// The current role implementation, or FAILED_PRECONDITION before a successful Configure.
    fn instance(&self) -> Result<Arc<T>, Status> {
        self.instance
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "plugin {} is not configured: call Configure with a valid configuration first",
                    self.info.name
                ))
            })
    }

    fn set_instance(&self, instance: Option<Arc<T>>) {
        *self
            .instance
            .write()
            .unwrap_or_else(PoisonError::into_inner) = instance;
    }
}

/// Builds every service of `plugin` into one router. `shutdown` ends the
/// long-lived streams (and is what go-plugin's Controller.Shutdown triggers).
pub(crate) async fn build_routes<T: Send + Sync + 'static>(
    plugin: Plugin<T>,
    shutdown: CancellationToken,
) -> Routes {
    let roles: Vec<RoleKind> = plugin.roles.iter().map(|(role, _)| *role).collect();
    let shared = Arc::new(Shared {
        info: plugin.info,
        config_schema: plugin.config_schema,
        roles,
        factory: plugin.factory,
        instance: RwLock::new(None),
        configure_lock: tokio::sync::Mutex::new(()),
        shutdown: shutdown.clone(),
    });
    let (reporter, health) = tonic_health::server::health_reporter();
    publish_health(reporter, plugin.health.subscribe(), shutdown.clone()).await;

    let mut routes = RoutesBuilder::default();
    routes.add_service(health);
    go_plugin::add_services(&mut routes, &shutdown);
    plugin::add_service(&mut routes, &shared);
    let mut registry = Registry {
        shared: &shared,
        routes: &mut routes,
    };
    for (_, add) in &plugin.roles {
        add(&mut registry);
    }
    routes.routes()
}

/// Keeps the gRPC health service (both the `plugin` service and the whole
/// server, `""`) saying what the plugin's [`Health`](crate::Health) says,
/// from now until `shutdown`.
async fn publish_health(
    reporter: tonic_health::server::HealthReporter,
    mut changes: tokio::sync::watch::Receiver<HealthState>,
    shutdown: CancellationToken,
) {
    async fn set(reporter: &tonic_health::server::HealthReporter, state: &HealthState) {
        let status = match state {
            HealthState::Serving => tonic_health::ServingStatus::Serving,
            HealthState::NotServing(_) => tonic_health::ServingStatus::NotServing,
        };
        reporter.set_service_status("", status).await;
        reporter
            .set_service_status(HEALTH_SERVICE_NAME, status)
            .await;
    }
    let now = changes.borrow_and_update().clone();
    set(&reporter, &now).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = changes.borrow_and_update().clone();
                    set(&reporter, &now).await;
                }
            }
        }
    });
}

/// Adds the role services of one plugin to its router.
struct Registry<'a, T> {
    shared: &'a Arc<Shared<T>>,
    routes: &'a mut RoutesBuilder,
}

impl<T: Send + Sync + 'static> RoleRegistry<T> for Registry<'_, T> {
    fn polling_input(&mut self)
    where
        T: PollingInput,
    {
        polling_input::add_service(self.routes, self.shared);
    }

    fn webhook_input(&mut self)
    where
        T: WebhookInput,
    {
        webhook_input::add_service(self.routes, self.shared);
    }

    fn enricher(&mut self)
    where
        T: Enricher,
    {
        enricher::add_service(self.routes, self.shared);
    }

    fn output(&mut self)
    where
        T: Output,
    {
        output::add_service(self.routes, self.shared);
    }
}
