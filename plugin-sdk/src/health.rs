//! [`Health`]: how a connector tells the hub whether it can do its work.
//!
//! The hub asks every plugin's gRPC health service, on a schedule, whether it
//! is SERVING. A plugin whose upstream (an API, a database) is unreachable
//! should say NOT_SERVING: the hub then sends it no work, and does not restart
//! it, until it says SERVING again. This module holds only the state; the
//! gRPC layer (`services`) publishes it to the health service.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthState {
    /// The plugin can do its work.
    Serving,
    /// The plugin cannot do its work now, and why (logged, not sent on the wire:
    /// gRPC health has no field for it).
    NotServing(String),
}

/// A cloneable handle a plugin uses to report its health to the hub. Give it
/// to the plugin with [`PluginBuilder::health`](crate::PluginBuilder::health)
/// and keep a clone in the role implementation (or in an HTTP client) to flip it.
///
/// A new handle says SERVING. Every clone shares one state.
///
/// ```
/// use switchyard_plugin_sdk::{Emitter, Health, NoConfig, Plugin, PluginError, PollRequest, PollingInput};
///
/// struct Feed {
///     health: Health,
/// }
///
/// impl PollingInput for Feed {
///     async fn poll(&self, _request: PollRequest, _emitter: Emitter) -> Result<(), PluginError> {
///         // ... the upstream answered, so:
///         self.health.set_serving();
///         Ok(())
///     }
/// }
///
/// let health = Health::new();
/// let plugin = Plugin::new("feed", "0.1.0")
///     .health(health.clone())
///     .polling_input(move |_: NoConfig| {
///         let health = health.clone();
///         async move { Ok(Feed { health }) }
///     });
/// # let _ = plugin;
/// ```
#[derive(Clone)]
pub struct Health {
    state: Arc<watch::Sender<HealthState>>,
}

impl Health {
    /// A handle that starts out SERVING.
    pub fn new() -> Self {
        Health {
            state: Arc::new(watch::Sender::new(HealthState::Serving)),
        }
    }

    /// Says the plugin can do its work again.
    pub fn set_serving(&self) {
        self.state.send_if_modified(|state| {
            if *state == HealthState::Serving {
                return false;
            }
            tracing::info!("The plugin is serving again.");
            *state = HealthState::Serving;
            true
        });
    }

    /// Says the plugin cannot do its work now, for example because its
    /// upstream is unreachable. The hub sends it no work until
    /// [`Health::set_serving`]. The reason is logged once per change; do not
    /// put secrets in it.
    pub fn set_not_serving(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.state.send_if_modified(|state| {
            if matches!(state, HealthState::NotServing(current) if *current == reason) {
                return false;
            }
            tracing::warn!(reason = %reason, "The plugin reports it is not serving.");
            *state = HealthState::NotServing(reason);
            true
        });
    }

    /// What the plugin says now.
    pub fn state(&self) -> HealthState {
        self.state.borrow().clone()
    }

    /// True while the plugin says SERVING.
    pub fn is_serving(&self) -> bool {
        *self.state.borrow() == HealthState::Serving
    }

    /// Follows every change, for the gRPC layer.
    pub(crate) fn subscribe(&self) -> watch::Receiver<HealthState> {
        self.state.subscribe()
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Health")
            .field(&*self.state.borrow())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_state() {
        let health = Health::new();
        let clone = health.clone();
        assert!(health.is_serving());
        clone.set_not_serving("upstream unreachable");
        assert_eq!(
            health.state(),
            HealthState::NotServing("upstream unreachable".into())
        );
        health.set_serving();
        assert!(clone.is_serving());
    }

    #[test]
    fn subscribers_see_changes_but_not_repeats() {
        let health = Health::new();
        let mut changes = health.subscribe();
        health.set_not_serving("down");
        assert!(changes.has_changed().unwrap_or(false));
        changes.mark_unchanged();
        health.set_not_serving("down");
        assert!(!changes.has_changed().unwrap_or(true));
        health.set_serving();
        assert!(changes.has_changed().unwrap_or(false));
    }
}
