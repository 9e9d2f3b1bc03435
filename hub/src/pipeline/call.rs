//! Calling plugins from the pipeline: wait until a plugin is running (a
//! plugin that is down holds work back), classify failures as retryable or
//! not under the plugin's retry policy, and compute backoff delays.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RetryConfig;
use crate::domain::Role;
use crate::retry::classify::{self, Verdict};
use crate::retry::{self, GiveUp};
use crate::rpc::CallError;
use crate::supervisor::{Connection, PluginHandle};

/// Why the pipeline could not get a call through.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallFailure {
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    Cancelled,
    /// The plugin was not running within the attempt's deadline.
    #[error("plugin `{plugin}` is not running")]
    NotRunning {
        /// The instance name.
        plugin: String,
    },
    /// The plugin runs but does not serve the role (a configuration error).
    #[error("plugin `{plugin}` does not serve the {role} role")]
    WrongRole {
        /// The instance name.
        plugin: String,
        /// The role needed.
        role: Role,
    },
    /// The call failed.
    #[error("plugin `{plugin}`: {error}")]
    Call {
        /// The instance name.
        plugin: String,
        /// What failed.
        error: CallError,
    },
    /// The retry policy gave up on the call.
    #[error("plugin `{plugin}`: {reason}")]
    GaveUp {
        /// The instance name.
        plugin: String,
        /// Why.
        reason: GiveUp,
    },
    /// The call did not finish within the attempt's deadline.
    #[error("plugin `{plugin}` did not answer within {limit:?}")]
    Timeout {
        /// The instance name.
        plugin: String,
        /// The deadline.
        limit: Duration,
    },
}

impl CallFailure {
    /// Whether trying again may help, under `policy`.
    pub fn is_retryable(&self, policy: &RetryConfig) -> bool {
        match self {
            CallFailure::Cancelled | CallFailure::WrongRole { .. } | CallFailure::GaveUp { .. } => {
                false
            }
            CallFailure::NotRunning { .. } | CallFailure::Timeout { .. } => true,
            CallFailure::Call { error, .. } => match error {
                // A crashed plugin's broken stream shows up as Unknown or
                // Cancelled: retried too (the plugin is restarted).
                CallError::Failed { code, .. } if code == "Unknown" || code == "Cancelled" => true,
                error => matches!(
                    classify::call_error(error, &policy.retryable_codes),
                    Verdict::Retry { .. }
                ),
            },
        }
    }
}

/// Waits up to `limit` until `plugin` is running, and checks it serves
/// `role`.
pub async fn running(
    plugin: &PluginHandle,
    role: Role,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Connection, CallFailure> {
    let mut connections = plugin.subscribe_connection();
    let wait = async {
        loop {
            if let Some(connection) = connections.borrow_and_update().clone() {
                return Some(connection);
            }
            if connections.changed().await.is_err() {
                return None;
            }
        }
    };
    let connection = tokio::select! {
        () = cancel.cancelled() => return Err(CallFailure::Cancelled),
        result = tokio::time::timeout(limit, wait) => result.ok().flatten(),
    };
    let connection = connection.ok_or_else(|| CallFailure::NotRunning {
        plugin: plugin.name().to_owned(),
    })?;
    if !connection.metadata.roles.contains(&role) {
        return Err(CallFailure::WrongRole {
            plugin: plugin.name().to_owned(),
            role,
        });
    }
    Ok(connection)
}

/// Runs `call` under `limit` (and the hub's shutdown), naming the plugin in
/// the failure.
pub async fn bounded<T>(
    plugin: &str,
    limit: Duration,
    cancel: &CancellationToken,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallFailure> {
    tokio::select! {
        () = cancel.cancelled() => Err(CallFailure::Cancelled),
        result = tokio::time::timeout(limit, call) => match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CallFailure::Call { plugin: plugin.to_owned(), error }),
            Err(_) => Err(CallFailure::Timeout { plugin: plugin.to_owned(), limit }),
        },
    }
}

/// The delay before retry number `step` (0 for the first retry) under
/// `policy`, at least `retry_after` when the plugin asked for one (the
/// retry module's curve).
pub fn retry_delay(policy: &RetryConfig, step: u32, retry_after: Option<Duration>) -> Duration {
    retry::delay(policy, step.saturating_add(1), retry_after)
}

/// Sleeps for `delay` unless the hub shuts down first (then `false`).
pub async fn sleep(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}
