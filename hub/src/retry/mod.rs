//! The one call path: every call the hub makes to a plugin's role services
//! (scheduled polls, webhook deliveries, enrichment, output events, the
//! admin API's call endpoints) goes through [`Call::run`], under the
//! plugin's retry policy (`[plugins.NAME.retry]`).
//!
//! * [`attempt`]: one attempt, returning an [`attempt::Outcome`]: wait until
//!   the plugin runs and reports SERVING (a plugin being restarted, or one
//!   that reports NOT_SERVING, gets no work), check it serves the role, ask
//!   the circuit breaker, run the call under the attempt's deadline, and
//!   classify what happened (feeding the breaker and the metrics).
//! * [`classify`]: which failures are retried, and after how long.
//! * [`metrics`]: `switchyard_plugin_calls_total` and friends.
//!
//! [`Call::run`] is the short loop around [`attempt::run`]: a retryable
//! failure is retried after the backoff delay (or the plugin's retry-after
//! hint, if longer, but never longer than `max_backoff`: past that the call
//! gives up at once and the hint travels in the [`GiveUp`]); a permanent
//! one is returned at once. Nothing is dropped silently: every retry is a
//! `warn` event and every give-up an `error` event naming the plugin, the
//! RPC, the attempts and the last error.
//!
//! Unary and streaming calls take the same path: an attempt is whatever the
//! caller's closure does with the connection, so a streamed poll (whose
//! batches are committed as they arrive) or an event stream (whose acks are
//! kept as they arrive) is one attempt, bounded by one deadline.
//!
//! Item-level failures inside a successful call (an `Enrich` result or an
//! `EventAck` carrying a [`crate::domain::Failure`]) are the caller's to
//! retry: [`classify::failure`] and [`delay`] give the same policy for them.

pub mod attempt;
pub mod classify;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::backoff;
use crate::config::RetryConfig;
use crate::domain::Role;
use crate::rpc::CallError;
use crate::supervisor::{PluginHandle, RunningPlugin};
use attempt::Outcome;

/// Which role call this is: names it in logs and metrics (`rpc` label) and
/// says which role the plugin must serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// `PollingInput.Poll`.
    Poll,
    /// `WebhookInput.HandleWebhook`.
    Webhook,
    /// `Enricher.Enrich`.
    Enrich,
    /// `Output.HandleEvent`.
    Events,
}

impl Rpc {
    /// The name in logs and the `rpc` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rpc::Poll => "poll",
            Rpc::Webhook => "webhook",
            Rpc::Enrich => "enrich",
            Rpc::Events => "events",
        }
    }

    /// The role a plugin must serve to take this call.
    pub fn role(self) -> Role {
        match self {
            Rpc::Poll => Role::PollingInput,
            Rpc::Webhook => Role::WebhookInput,
            Rpc::Enrich => Role::Enrichment,
            Rpc::Events => Role::Output,
        }
    }
}

/// What one attempt's closure can fail with: the call itself, or the
/// caller's own work inside the attempt (committing a streamed poll's
/// batches), which ends the call at once without counting against the
/// plugin.
#[derive(Debug)]
pub enum AttemptError {
    /// The call to the plugin failed.
    Call(CallError),
    /// The caller's own work failed; the call is abandoned.
    Local(LocalError),
}

/// A caller's own error inside an attempt (see [`AttemptError::Local`]).
pub type LocalError = Arc<dyn std::error::Error + Send + Sync>;

impl From<CallError> for AttemptError {
    fn from(error: CallError) -> Self {
        AttemptError::Call(error)
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttemptFailure {
    /// The call failed.
    #[error("{0}")]
    Call(CallError),
    /// The call did not finish within the attempt's `timeout`.
    #[error("the call did not finish within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The plugin was not running (being restarted) for the whole attempt.
    #[error("it was not running within {} (it is {state})", humantime::format_duration(*waited))]
    NotRunning {
        /// Its state at the end of the wait.
        state: &'static str,
        /// How long the attempt waited.
        waited: Duration,
    },
    /// The plugin runs but reported NOT_SERVING for the whole attempt.
    #[error("it reports that it is not serving")]
    NotServing,
    /// The circuit breaker refused the call.
    #[error("its circuit breaker is open (after repeated failures)")]
    CircuitOpen,
}

/// Why a call failed for good.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GiveUp {
    /// The hub is shutting down (or the caller stopped waiting).
    #[error("the hub is shutting down")]
    Cancelled,
    /// The plugin is stopped or failed: it will not come back without an
    /// operator, so the call is not retried.
    #[error("it is not running (it is {state})")]
    Stopped {
        /// Its state.
        state: &'static str,
    },
    /// The plugin does not serve the role the call needs.
    #[error("it does not serve the {role} role (it serves: {served})")]
    RoleNotServed {
        /// The role the call needs.
        role: &'static str,
        /// The roles it serves.
        served: String,
    },
    /// A permanent error: not retried.
    #[error("{0}")]
    Permanent(CallError),
    /// Every attempt failed (or the next wait would be longer than the
    /// policy's `max_backoff`).
    #[error("gave up after {attempts} attempts; the last one failed: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        last: AttemptFailure,
        /// How long the plugin (or its breaker) asked to be left alone.
        retry_after: Option<Duration>,
    },
    /// The caller's own work inside the attempt failed.
    #[error("{0}")]
    Local(LocalError),
}

impl GiveUp {
    /// How long the plugin (or its open breaker) asked callers to wait
    /// before the next call, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GiveUp::Exhausted { retry_after, .. } => *retry_after,
            GiveUp::Permanent(error) => error.retry_after(),
            _ => None,
        }
    }

    /// Whether the plugin was unavailable (stopped, restarting, not serving,
    /// breaker open, wrong role) rather than failing the work itself: the
    /// work is held back until it can take it, never dead-lettered for it.
    pub fn plugin_unavailable(&self) -> bool {
        match self {
            GiveUp::Stopped { .. } | GiveUp::RoleNotServed { .. } => true,
            GiveUp::Exhausted { last, .. } => matches!(
                last,
                AttemptFailure::NotRunning { .. }
                    | AttemptFailure::NotServing
                    | AttemptFailure::CircuitOpen
            ),
            GiveUp::Cancelled | GiveUp::Permanent(_) | GiveUp::Local(_) => false,
        }
    }
}

/// The delay before retry number `retry` (1 for the first retry) under
/// `config`, or the plugin's `hint` if that is longer.
pub fn delay(config: &RetryConfig, retry: u32, hint: Option<Duration>) -> Duration {
    let computed = backoff::delay(&config.backoff, retry.saturating_sub(1), backoff::random());
    hint.map_or(computed, |hint| hint.max(computed))
}

/// One logical call to a plugin, built with its options and made with
/// [`Call::run`].
///
/// ```no_run
/// # async fn example(plugin: &switchyard_hub::supervisor::PluginHandle) {
/// use switchyard_hub::retry::{AttemptError, Call, Rpc};
///
/// let records = vec![];
/// let outcomes = Call::new(plugin, Rpc::Enrich)
///     .run(|plugin| {
///         let records = records.clone();
///         async move { Ok::<_, AttemptError>(plugin.roles.enrich(&records).await?) }
///     })
///     .await;
/// # let _ = outcomes;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Call<'a> {
    plugin: &'a PluginHandle,
    rpc: Rpc,
    timeout: Duration,
    max_attempts: u32,
    cancel: Option<&'a CancellationToken>,
}

impl<'a> Call<'a> {
    /// A call of `rpc` to `plugin` under its retry policy.
    pub fn new(plugin: &'a PluginHandle, rpc: Rpc) -> Self {
        let config = plugin.retry_config();
        Call {
            plugin,
            rpc,
            timeout: config.timeout,
            max_attempts: config.max_attempts.max(1),
            cancel: None,
        }
    }

    /// Bounds each attempt by `timeout` instead of the policy's (a poll's
    /// own `[plugins.NAME.poll] timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Makes a single attempt (a synchronous webhook, whose sender waits).
    pub fn once(mut self) -> Self {
        self.max_attempts = 1;
        self
    }

    /// Abandons the call (at any point, [`GiveUp::Cancelled`]) when `cancel`
    /// fires.
    pub fn cancel(mut self, cancel: &'a CancellationToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Makes the call: `work` is called with the plugin's current [`RunningPlugin`] for
    /// each attempt. It runs in a `call` span naming the plugin and RPC.
    pub async fn run<T, E, F, Fut>(self, mut work: F) -> Result<T, GiveUp>
    where
        F: FnMut(RunningPlugin) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<AttemptError>,
    {
        let span =
            tracing::info_span!("call", plugin = %self.plugin.name(), rpc = self.rpc.as_str());
        async move {
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                if attempts > 1 {
                    metrics::global().retried(self.plugin.shared_name(), self.rpc);
                }
                let outcome =
                    attempt::run(self.plugin, self.rpc, self.timeout, self.cancel, &mut work).await;
                let (failure, hint) = match outcome {
                    Outcome::Done(value) => return Ok(value),
                    Outcome::GiveUp(reason) => return Err(self.give_up(attempts, reason)),
                    Outcome::Retry { failure, after } => (failure, after),
                };
                // A wait longer than the policy's longest backoff (a long
                // retry-after hint, an open breaker's cool-down) is not
                // waited out here: the caller gets the failure (and the
                // hint) now.
                let config = self.plugin.retry_config();
                let too_long = hint.is_some_and(|hint| hint > config.backoff.max);
                if attempts >= self.max_attempts || too_long {
                    let reason = GiveUp::Exhausted {
                        attempts,
                        last: failure,
                        retry_after: hint,
                    };
                    return Err(self.give_up(attempts, reason));
                }
                let wait = delay(config, attempts, hint);
                tracing::warn!(
                    attempt = attempts,
                    max_attempts = self.max_attempts,
                    error = %failure,
                    delay = %humantime::format_duration(wait),
                    "Call to plugin failed; retrying."
                );
                if !sleep(wait, self.cancel).await {
                    return Err(GiveUp::Cancelled);
                }
            }
        }
        .instrument(span)
        .await
    }

    fn give_up(&self, attempts: u32, reason: GiveUp) -> GiveUp {
        if !matches!(reason, GiveUp::Cancelled) {
            metrics::global().gave_up(self.plugin.shared_name(), self.rpc);
            tracing::error!(
                attempts,
                error = %reason,
                "Call to plugin failed for good; giving up."
            );
        }
        reason
    }
}

/// Makes one call of `rpc` to `plugin` with the default options
/// (`Call::new(plugin, rpc).run(work)`).
pub async fn call<T, E, F, Fut>(plugin: &PluginHandle, rpc: Rpc, work: F) -> Result<T, GiveUp>
where
    F: FnMut(RunningPlugin) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<AttemptError>,
{
    Call::new(plugin, rpc).run(work).await
}

/// Sleeps for `delay` unless `cancel` fires first (then `false`).
pub async fn sleep(delay: Duration, cancel: Option<&CancellationToken>) -> bool {
    match cancel {
        Some(cancel) => tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        },
        None => {
            tokio::time::sleep(delay).await;
            true
        }
    }
}
