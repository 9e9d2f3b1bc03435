//! Calling plugins reliably: the retry policy (`[plugins.NAME.retry]`), the
//! per-plugin circuit breaker, and [`call`], which every caller of a plugin
//! (the call endpoints, polls, webhooks, enrichment, delivery) goes through.
//!
//! * [`backoff`]: the exponential backoff curve with jitter (pure).
//! * [`breaker`]: the circuit breaker state machine (pure).
//! * [`classify`]: which failures are retried, and after how long.
//!
//! [`call`] makes one logical call in up to `max_attempts` attempts. Each
//! attempt waits for the plugin to be running and healthy (a plugin being
//! restarted is waited for, up to the attempt's `timeout`), asks the circuit
//! breaker, and runs the call under the same deadline. A retryable failure is
//! retried after the backoff delay (or the plugin's retry-after hint, if
//! longer, but never longer than `max_backoff`: past that the call gives up
//! at once); a permanent one is returned at once. Nothing is dropped silently:
//! every retry is a `warn` event and every give-up an `error` event naming
//! the plugin, the RPC, the attempts and the last error.
//!
//! Item-level failures inside a successful call (an `Enrich` result or an
//! `EventAck` carrying a [`crate::domain::Failure`]) are the caller's to
//! retry: [`classify::failure`] and [`delay`] give the same policy for them.

pub mod backoff;
pub mod breaker;
pub mod classify;

use std::future::Future;
use std::time::{Duration, Instant};

use crate::config::RetryConfig;
use crate::domain::Role;
use crate::metrics;
use crate::rpc::CallError;
use crate::supervisor::{Connection, PluginHandle, PluginState};
use classify::Verdict;

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
    /// The plugin runs but reports NOT_SERVING.
    #[error("it reports that it is not serving")]
    NotServing,
    /// The circuit breaker refused the call.
    #[error("its circuit breaker is open (after repeated failures)")]
    CircuitOpen,
}

/// Why a call failed for good.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GiveUp {
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
    /// Every attempt failed.
    #[error("gave up after {attempts} attempts; the last one failed: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        last: AttemptFailure,
    },
}

/// The delay before retry number `retry` (1 for the first retry) under
/// `config`, or the plugin's `hint` if that is longer.
pub fn delay(config: &RetryConfig, retry: u32, hint: Option<Duration>) -> Duration {
    let computed = backoff::delay(&config.backoff, retry.saturating_sub(1), backoff::random());
    hint.map_or(computed, |hint| hint.max(computed))
}

/// How waiting for the plugin ended.
enum Ready {
    Connected(Box<Connection>),
    Stopped(&'static str),
    NotServing,
    Timeout(&'static str),
}

/// Waits until the plugin runs and is healthy, until `deadline`.
async fn wait_ready(plugin: &PluginHandle, deadline: tokio::time::Instant) -> Ready {
    let mut statuses = plugin.subscribe();
    let mut connections = plugin.subscribe_connection();
    loop {
        let (state, healthy) = {
            let status = statuses.borrow_and_update();
            (status.state, status.healthy)
        };
        match state {
            PluginState::Stopped | PluginState::Failed => return Ready::Stopped(state.as_str()),
            PluginState::Running => {
                if let Some(connection) = connections.borrow_and_update().clone() {
                    if healthy {
                        return Ready::Connected(Box::new(connection));
                    }
                    return Ready::NotServing;
                }
            }
            PluginState::Starting | PluginState::Stopping | PluginState::Backoff => {}
        }
        tokio::select! {
            changed = statuses.changed() => if changed.is_err() { return Ready::Stopped("gone") },
            changed = connections.changed() => if changed.is_err() { return Ready::Stopped("gone") },
            () = tokio::time::sleep_until(deadline) => return Ready::Timeout(state.as_str()),
        }
    }
}

fn with_breaker<T>(plugin: &PluginHandle, use_it: impl FnOnce(&mut breaker::Breaker) -> T) -> T {
    let (result, state) = {
        let mut breaker = match plugin.breaker().lock() {
            Ok(breaker) => breaker,
            Err(poisoned) => poisoned.into_inner(),
        };
        let result = use_it(&mut breaker);
        (result, breaker.state(Instant::now()))
    };
    metrics::global().set_breaker(plugin.name(), state.as_str());
    result
}

/// Makes one logical call to `plugin` under its retry policy: `attempt` is
/// called with the plugin's current connection for each attempt. `rpc`
/// names the call in logs and metrics (`poll`, `webhook`, `enrich`, `events`);
/// `role` is the role the call needs.
pub async fn call<T, F, Fut>(
    plugin: &PluginHandle,
    rpc: &'static str,
    role: Role,
    mut attempt: F,
) -> Result<T, GiveUp>
where
    F: FnMut(Connection) -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let config = plugin.retry_config().clone();
    let name = plugin.name();
    let metrics = metrics::global();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        if attempts > 1 {
            metrics.retried(name, rpc);
        }
        let started = tokio::time::Instant::now();
        let deadline = started + config.timeout;
        let (failure, hint) = match wait_ready(plugin, deadline).await {
            Ready::Stopped(state) => {
                metrics.call(name, rpc, "not_running", started.elapsed());
                return Err(give_up(name, rpc, attempts, GiveUp::Stopped { state }));
            }
            Ready::NotServing => (AttemptFailure::NotServing, None),
            Ready::Timeout(state) => (
                AttemptFailure::NotRunning {
                    state,
                    waited: config.timeout,
                },
                None,
            ),
            Ready::Connected(connection) => {
                if !connection.metadata.roles.contains(&role) {
                    let served = connection
                        .metadata
                        .roles
                        .iter()
                        .map(|role| role.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(GiveUp::RoleNotServed {
                        role: role.as_str(),
                        served,
                    });
                }
                match with_breaker(plugin, |breaker| breaker.try_acquire(Instant::now())) {
                    Err(wait) => {
                        metrics.call(name, rpc, "circuit_open", started.elapsed());
                        (AttemptFailure::CircuitOpen, Some(wait))
                    }
                    Ok(()) => {
                        let generation = connection.generation;
                        let result = tokio::time::timeout_at(deadline, attempt(*connection)).await;
                        let took = started.elapsed();
                        match result {
                            Ok(Ok(value)) => {
                                with_breaker(plugin, breaker::Breaker::on_success);
                                plugin.record_call_progress();
                                metrics.call(name, rpc, "ok", took);
                                return Ok(value);
                            }
                            Ok(Err(error)) => {
                                plugin.record_call_progress();
                                // A plugin that died under the call is the
                                // supervisor's business: retry, and do not
                                // hold it against the breaker.
                                let verdict = classify::call_error(&error, &config.retryable_codes);
                                let died = match verdict {
                                    Verdict::Permanent => {
                                        died_under_call(plugin, generation, &error).await
                                    }
                                    Verdict::Retry { .. } => plugin
                                        .connection()
                                        .is_none_or(|now| now.generation != generation),
                                };
                                match verdict {
                                    Verdict::Permanent if !died => {
                                        metrics.call(name, rpc, outcome_of(&error), took);
                                        return Err(give_up(
                                            name,
                                            rpc,
                                            attempts,
                                            GiveUp::Permanent(error),
                                        ));
                                    }
                                    Verdict::Permanent => {
                                        metrics.call(name, rpc, "plugin_died", took);
                                        (AttemptFailure::Call(error), None)
                                    }
                                    Verdict::Retry { after } => {
                                        if !died {
                                            with_breaker(plugin, |breaker| {
                                                breaker.on_failure(Instant::now())
                                            });
                                        }
                                        metrics.call(name, rpc, outcome_of(&error), took);
                                        (AttemptFailure::Call(error), after)
                                    }
                                }
                            }
                            Err(_) => {
                                plugin.record_call_timeout();
                                with_breaker(plugin, |breaker| breaker.on_failure(Instant::now()));
                                metrics.call(name, rpc, "timeout", took);
                                (AttemptFailure::Timeout(config.timeout), None)
                            }
                        }
                    }
                }
            }
        };
        // A wait longer than the policy's longest backoff (a long retry-after
        // hint, an open breaker's cool-down) is not waited out here: the
        // caller gets the failure now.
        let too_long = hint.is_some_and(|hint| hint > config.backoff.max);
        if attempts >= config.max_attempts || too_long {
            return Err(give_up(
                name,
                rpc,
                attempts,
                GiveUp::Exhausted {
                    attempts,
                    last: failure,
                },
            ));
        }
        let wait = delay(&config, attempts, hint);
        tracing::warn!(
            plugin = %name,
            rpc,
            attempt = attempts,
            max_attempts = config.max_attempts,
            error = %failure,
            delay = %humantime::format_duration(wait),
            "Call to plugin failed; retrying."
        );
        tokio::time::sleep(wait).await;
    }
}

/// How long a failed call waits for the supervisor to notice that the
/// plugin died, when the error looks like a broken connection.
const DEATH_GRACE: Duration = Duration::from_millis(200);

/// Whether the plugin process that served the call (`generation`) is gone.
/// A transport-level error (the connection broke) usually arrives just before
/// the supervisor reaps the process, so for those this waits up to
/// [`DEATH_GRACE`] for the connection to change.
async fn died_under_call(plugin: &PluginHandle, generation: u64, error: &CallError) -> bool {
    let mut connections = plugin.subscribe_connection();
    let gone = |connection: &Option<Connection>| {
        connection
            .as_ref()
            .is_none_or(|now| now.generation != generation)
    };
    if gone(&connections.borrow_and_update()) {
        return true;
    }
    let transport_like = matches!(
        classify::grpc_code(error),
        Some(
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::Internal
        )
    );
    if !transport_like {
        return false;
    }
    tokio::time::timeout(DEATH_GRACE, connections.wait_for(gone))
        .await
        .is_ok_and(|result| result.is_ok())
}

/// The outcome label of a failed call.
fn outcome_of(error: &CallError) -> &'static str {
    match error {
        CallError::Rejected(_) => "rejected",
        CallError::Protocol(_) => "protocol_error",
        CallError::Failed { .. } => "failed",
    }
}

fn give_up(plugin: &str, rpc: &'static str, attempts: u32, reason: GiveUp) -> GiveUp {
    metrics::global().call_gave_up(plugin, rpc);
    tracing::error!(
        plugin = %plugin,
        rpc,
        attempts,
        error = %reason,
        "Call to plugin failed for good; giving up."
    );
    reason
}
