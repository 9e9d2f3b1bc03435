//! The plugin definition: name, version, config type, the factory that builds
//! the role implementation from the validated config, and the roles served.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt as _;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::config::{decode_config, schema_json};
use crate::error::{ConfigError, ConfigErrors, panic_message};
use crate::health::Health;
use crate::role::{Enricher, Output, PollingInput, WebhookInput};
use crate::types::RoleKind;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type Factory<T> = Arc<dyn Fn(&[u8]) -> BoxFuture<Result<T, ConfigErrors>> + Send + Sync>;
/// Registers one role of `T` with whatever serves it; see [`RoleRegistry`].
pub(crate) type AddRole<T> = fn(&mut dyn RoleRegistry<T>);

/// What serves a plugin's roles: the gRPC layer implements it, so this module
/// records which roles `T` serves (with the trait bounds proven when the
/// role was added) without knowing anything of gRPC.
pub(crate) trait RoleRegistry<T> {
    /// Serves the polling-input role with `T`.
    fn polling_input(&mut self)
    where
        T: PollingInput;
    /// Serves the webhook-input role with `T`.
    fn webhook_input(&mut self)
    where
        T: WebhookInput;
    /// Serves the enrichment role with `T`.
    fn enricher(&mut self)
    where
        T: Enricher;
    /// Serves the output role with `T`.
    fn output(&mut self)
    where
        T: Output;
}

/// How many threads run a plugin's async code unless it asks otherwise: one.
/// A single-threaded runtime answers a stream of records with no cross-thread
/// wake-ups, which halves the CPU time per record of a typical connector.
pub(crate) const DEFAULT_WORKER_THREADS: usize = 1;

/// What `GetMetadata` reports.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    pub name: String,
    pub version: String,
    pub description: String,
    pub webhook_sync_reply: bool,
    pub install_logging: bool,
    /// Threads running the plugin's async code; 1 means the main thread only.
    pub worker_threads: usize,
}

/// The start of a plugin definition: its name and version. Choose the
/// configuration and roles with [`PluginBuilder::enricher`] (and friends) or
/// [`PluginBuilder::factory`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PluginBuilder {
    info: Info,
    health: Health,
}

/// Namespace for [`Plugin::new`], the entry point of every plugin definition.
///
/// `Plugin<T>` is a complete definition: `T` is the type implementing the roles,
/// built from the configuration by the factory on every successful `Configure`
/// (a re-`Configure` replaces it). Pass it to [`serve`](crate::serve) or to
/// [`TestHarness::start`](crate::testing::TestHarness::start).
#[non_exhaustive]
pub struct Plugin<T> {
    pub(crate) info: Info,
    pub(crate) config_schema: String,
    pub(crate) factory: Factory<T>,
    pub(crate) roles: Vec<(RoleKind, AddRole<T>)>,
    pub(crate) health: Health,
}

impl Plugin<()> {
    /// Starts a definition for the plugin `name` at `version` (semver,
    /// usually `env!("CARGO_PKG_VERSION")`).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> PluginBuilder {
        PluginBuilder {
            info: Info {
                name: name.into(),
                version: version.into(),
                description: String::new(),
                webhook_sync_reply: false,
                install_logging: true,
                worker_threads: DEFAULT_WORKER_THREADS,
            },
            health: Health::new(),
        }
    }
}

impl PluginBuilder {
    /// One line saying what the plugin does.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.info.description = description.into();
        self
    }

    /// Webhook inputs: ask the hub to wait for `handle_webhook` and send its
    /// [`HttpReply`](crate::HttpReply) (for URL-verification challenges).
    pub fn webhook_sync_reply(mut self, sync: bool) -> Self {
        self.info.webhook_sync_reply = sync;
        self
    }

    /// Set to false to keep [`serve`](crate::serve) from installing its
    /// go-plugin JSON stderr logger (then install your own `tracing` subscriber).
    pub fn install_logging(mut self, install: bool) -> Self {
        self.info.install_logging = install;
        self
    }

    /// The handle the plugin reports its health with (see [`Health`]); the
    /// gRPC health service answers what it says. Without one the plugin
    /// always says SERVING.
    pub fn health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// How many threads run the plugin's async code. The default is 1:
    /// everything runs on the main thread, concurrently but not in parallel. One thread is the cheapest per
    /// record and enough for connectors that wait on I/O; give a CPU-heavy
    /// enricher more (for example the number of cores). `0` counts as 1.
    /// `tokio::task::spawn_blocking` works with any count;
    /// `tokio::task::block_in_place` needs at least 2.
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.info.worker_threads = threads.max(1);
        self
    }

    /// Declares the configuration type `C` and the factory that builds the
    /// plugin from it. Add roles afterwards with [`Plugin::polling_input`],
    /// [`Plugin::webhook_input`], [`Plugin::enricher`] and [`Plugin::output`].
    ///
    /// The factory may reject the configuration with [`ConfigErrors`] (or a
    /// single [`ConfigError`] through `?`/`.into()`).
    pub fn factory<C, T, F, Fut>(self, factory: F) -> Plugin<T>
    where
        C: DeserializeOwned + JsonSchema + Send + 'static,
        T: Send + Sync + 'static,
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ConfigErrors>> + Send + 'static,
    {
        let factory = Arc::new(factory);
        let erased: Factory<T> = Arc::new(move |json: &[u8]| {
            let decoded = decode_config::<C>(json);
            let factory = Arc::clone(&factory);
            Box::pin(async move {
                let config = decoded?;
                match AssertUnwindSafe(factory(config)).catch_unwind().await {
                    Ok(result) => result,
                    Err(panic) => Err(ConfigError::new(
                        "",
                        format!(
                            "the plugin panicked while applying the configuration: {}",
                            panic_message(&panic)
                        ),
                    )
                    .into()),
                }
            })
        });
        Plugin {
            info: self.info,
            config_schema: schema_json::<C>(),
            factory: erased,
            roles: Vec::new(),
            health: self.health,
        }
    }

    /// Shorthand for `.factory(factory).polling_input()`.
    pub fn polling_input<C, T, F, Fut>(self, factory: F) -> Plugin<T>
    where
        C: DeserializeOwned + JsonSchema + Send + 'static,
        T: PollingInput,
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ConfigErrors>> + Send + 'static,
    {
        self.factory(factory).polling_input()
    }

    /// Shorthand for `.factory(factory).webhook_input()`.
    pub fn webhook_input<C, T, F, Fut>(self, factory: F) -> Plugin<T>
    where
        C: DeserializeOwned + JsonSchema + Send + 'static,
        T: WebhookInput,
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ConfigErrors>> + Send + 'static,
    {
        self.factory(factory).webhook_input()
    }

    /// Shorthand for `.factory(factory).enricher()`.
    pub fn enricher<C, T, F, Fut>(self, factory: F) -> Plugin<T>
    where
        C: DeserializeOwned + JsonSchema + Send + 'static,
        T: Enricher,
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ConfigErrors>> + Send + 'static,
    {
        self.factory(factory).enricher()
    }

    /// Shorthand for `.factory(factory).output()`.
    pub fn output<C, T, F, Fut>(self, factory: F) -> Plugin<T>
    where
        C: DeserializeOwned + JsonSchema + Send + 'static,
        T: Output,
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ConfigErrors>> + Send + 'static,
    {
        self.factory(factory).output()
    }
}

impl<T: Send + Sync + 'static> Plugin<T> {
    /// Serves the polling-input role with `T`.
    pub fn polling_input(self) -> Self
    where
        T: PollingInput,
    {
        self.with_role(RoleKind::PollingInput, |registry| registry.polling_input())
    }

    /// Serves the webhook-input role with `T`.
    pub fn webhook_input(self) -> Self
    where
        T: WebhookInput,
    {
        self.with_role(RoleKind::WebhookInput, |registry| registry.webhook_input())
    }

    /// Serves the enrichment role with `T`.
    pub fn enricher(self) -> Self
    where
        T: Enricher,
    {
        self.with_role(RoleKind::Enrichment, |registry| registry.enricher())
    }

    /// Serves the output role with `T`.
    pub fn output(self) -> Self
    where
        T: Output,
    {
        self.with_role(RoleKind::Output, |registry| registry.output())
    }

    /// One line saying what the plugin does.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.info.description = description.into();
        self
    }

    /// See [`PluginBuilder::webhook_sync_reply`].
    pub fn webhook_sync_reply(mut self, sync: bool) -> Self {
        self.info.webhook_sync_reply = sync;
        self
    }

    /// See [`PluginBuilder::install_logging`].
    pub fn install_logging(mut self, install: bool) -> Self {
        self.info.install_logging = install;
        self
    }

    /// See [`PluginBuilder::worker_threads`].
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.info.worker_threads = threads.max(1);
        self
    }

    /// See [`PluginBuilder::health`].
    pub fn health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// The roles served so far.
    pub fn roles(&self) -> Vec<RoleKind> {
        self.roles.iter().map(|(role, _)| *role).collect()
    }

    fn with_role(mut self, role: RoleKind, add: AddRole<T>) -> Self {
        if !self.roles.iter().any(|(existing, _)| *existing == role) {
            self.roles.push((role, add));
        }
        self
    }
}

impl<T> std::fmt::Debug for Plugin<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field(
                "roles",
                &self.roles.iter().map(|(role, _)| *role).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
