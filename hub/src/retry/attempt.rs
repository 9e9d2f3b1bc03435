//! One attempt of a call: wait for a serving plugin, check its role, ask the
//! circuit breaker, run the caller's work under the attempt's deadline, and
//! classify what happened. Every attempt is counted in
//! `switchyard_plugin_calls_total` with its outcome.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::time::Instant as Deadline;
use tokio_util::sync::CancellationToken;

use super::classify::{self, Verdict};
use super::{AttemptError, AttemptFailure, GiveUp, Rpc, metrics};
use crate::breaker::Breaker;
use crate::rpc::CallError;
use crate::supervisor::{PluginHandle, PluginState, RunningPlugin};

/// How one attempt ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The call succeeded.
    Done(T),
    /// The attempt failed in a way another attempt may fix, not before
    /// `after` if the plugin (or its breaker) said so.
    Retry {
        /// Why it failed.
        failure: AttemptFailure,
        /// The retry-after hint.
        after: Option<Duration>,
    },
    /// No other attempt will help.
    GiveUp(GiveUp),
}

/// Makes one attempt of `rpc` to `plugin`, bounded by `timeout` from now
/// (waiting for the plugin included; that wait is also bounded by the
/// plugin's retry `timeout`, so a poll with a long timeout of its own still
/// notices soon that its plugin is down).
pub async fn run<T, E, F, Fut>(
    plugin: &PluginHandle,
    rpc: Rpc,
    timeout: Duration,
    cancel: Option<&CancellationToken>,
    work: &mut F,
) -> Outcome<T>
where
    F: FnMut(RunningPlugin) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<AttemptError>,
{
    let started = Deadline::now();
    let deadline = started + timeout;
    let wait_deadline = started + timeout.min(plugin.retry_config().timeout);
    let name = plugin.shared_name();
    let record = |outcome: &'static str| {
        metrics::global().attempt(name, rpc, outcome, started.elapsed());
    };
    let running = match until_cancelled(cancel, wait_serving(plugin, wait_deadline)).await {
        None => return Outcome::GiveUp(GiveUp::Cancelled),
        Some(Ready::Serving(running)) => *running,
        Some(Ready::Stopped(state)) => {
            record("not_running");
            return Outcome::GiveUp(GiveUp::Stopped { state });
        }
        Some(Ready::NotServing) => {
            record("not_serving");
            return retry(AttemptFailure::NotServing, None);
        }
        Some(Ready::NotRunning(state)) => {
            record("not_running");
            let waited = wait_deadline - started;
            return retry(AttemptFailure::NotRunning { state, waited }, None);
        }
    };
    let role = rpc.role();
    if !running.metadata.roles.contains(&role) {
        let served = running
            .metadata
            .roles
            .iter()
            .map(|role| role.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        record("wrong_role");
        return Outcome::GiveUp(GiveUp::RoleNotServed {
            role: role.as_str(),
            served,
        });
    }
    if let Err(wait) = with_breaker(plugin, |breaker| breaker.try_acquire(Instant::now())) {
        record("circuit_open");
        return retry(AttemptFailure::CircuitOpen, Some(wait));
    }
    let generation = running.generation;
    let result = until_cancelled(cancel, tokio::time::timeout_at(deadline, work(running))).await;
    let Some(result) = result else {
        // Abandoned by the caller: neither the plugin's success nor its
        // failure. A half-open probe is given back.
        with_breaker(plugin, |breaker| breaker.on_abandoned());
        return Outcome::GiveUp(GiveUp::Cancelled);
    };
    match result {
        Ok(Ok(value)) => {
            with_breaker(plugin, Breaker::on_success);
            plugin.record_call_progress();
            record("ok");
            Outcome::Done(value)
        }
        Ok(Err(error)) => match error.into() {
            AttemptError::Local(error) => {
                // The plugin did its part; the caller's own work failed.
                with_breaker(plugin, Breaker::on_success);
                plugin.record_call_progress();
                record("aborted");
                Outcome::GiveUp(GiveUp::Local(error))
            }
            AttemptError::Call(error) => {
                plugin.record_call_progress();
                failed(plugin, generation, error, &record).await
            }
        },
        Err(_) => {
            plugin.record_call_timeout();
            with_breaker(plugin, |breaker| breaker.on_failure(Instant::now()));
            record("timeout");
            retry(AttemptFailure::Timeout(timeout), None)
        }
    }
}

fn retry<T>(failure: AttemptFailure, after: Option<Duration>) -> Outcome<T> {
    Outcome::Retry { failure, after }
}

/// Classifies a failed call. A plugin that died under the call is the
/// supervisor's business: the call is retried (on the next process) and
/// the failure is not held against the breaker.
async fn failed<T>(
    plugin: &PluginHandle,
    generation: u64,
    error: CallError,
    record: &impl Fn(&'static str),
) -> Outcome<T> {
    let verdict = classify::call_error(&error, &plugin.retry_config().retryable_codes);
    let died = match verdict {
        Verdict::Permanent => died_under_call(plugin, generation, &error).await,
        Verdict::Retry { .. } => plugin
            .running()
            .is_none_or(|now| now.generation != generation),
    };
    match (verdict, died) {
        (_, true) => {
            record("plugin_died");
            retry(AttemptFailure::Call(error), None)
        }
        (Verdict::Permanent, false) => {
            record(outcome_of(&error));
            Outcome::GiveUp(GiveUp::Permanent(error))
        }
        (Verdict::Retry { after }, false) => {
            with_breaker(plugin, |breaker| breaker.on_failure(Instant::now()));
            record(outcome_of(&error));
            retry(AttemptFailure::Call(error), after)
        }
    }
}

/// How waiting for the plugin ended.
enum Ready {
    Serving(Box<RunningPlugin>),
    Stopped(&'static str),
    NotServing,
    NotRunning(&'static str),
}

/// Waits until the plugin runs and its last health check said SERVING, or
/// it is stopped for good, or `deadline` passes.
async fn wait_serving(plugin: &PluginHandle, deadline: Deadline) -> Ready {
    let mut statuses = plugin.subscribe();
    let mut running = plugin.subscribe_running();
    loop {
        let (state, healthy) = {
            let status = statuses.borrow_and_update();
            (status.state, status.healthy)
        };
        let current = running.borrow_and_update().clone();
        match state {
            PluginState::Stopped | PluginState::Failed => return Ready::Stopped(state.as_str()),
            PluginState::Running => {
                if let Some(current) = current
                    && healthy
                {
                    return Ready::Serving(Box::new(current));
                }
            }
            PluginState::Starting | PluginState::Stopping | PluginState::Backoff => {}
        }
        tokio::select! {
            changed = statuses.changed() => if changed.is_err() { return Ready::Stopped("gone") },
            changed = running.changed() => if changed.is_err() { return Ready::Stopped("gone") },
            () = tokio::time::sleep_until(deadline) => {
                return if state == PluginState::Running {
                    Ready::NotServing
                } else {
                    Ready::NotRunning(state.as_str())
                };
            }
        }
    }
}

/// Runs `future` unless `cancel` fires first (then `None`).
async fn until_cancelled<F: Future>(
    cancel: Option<&CancellationToken>,
    future: F,
) -> Option<F::Output> {
    match cancel {
        Some(cancel) => tokio::select! {
            () = cancel.cancelled() => None,
            output = future => Some(output),
        },
        None => Some(future.await),
    }
}

fn with_breaker<T>(plugin: &PluginHandle, use_it: impl FnOnce(&mut Breaker) -> T) -> T {
    let (result, state) = {
        let mut breaker = match plugin.breaker().lock() {
            Ok(breaker) => breaker,
            Err(poisoned) => poisoned.into_inner(),
        };
        let result = use_it(&mut breaker);
        (result, breaker.state(Instant::now()))
    };
    metrics::global().breaker(plugin.shared_name(), state);
    result
}

/// How long a failed call waits for the supervisor to notice that the
/// plugin died, when the error looks like a broken connection.
const DEATH_GRACE: Duration = Duration::from_millis(200);

/// Whether the plugin process that served the call (`generation`) is gone.
/// A transport-level error (the connection broke) usually arrives just before
/// the supervisor reaps the process, so for those this waits up to
/// [`DEATH_GRACE`] for the running plugin to change.
async fn died_under_call(plugin: &PluginHandle, generation: u64, error: &CallError) -> bool {
    let mut running = plugin.subscribe_running();
    let gone = |running: &Option<RunningPlugin>| {
        running
            .as_ref()
            .is_none_or(|now| now.generation != generation)
    };
    if gone(&running.borrow_and_update()) {
        return true;
    }
    let transport_like = matches!(
        error.code(),
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
    tokio::time::timeout(DEATH_GRACE, running.wait_for(gone))
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
