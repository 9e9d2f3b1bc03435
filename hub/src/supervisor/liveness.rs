//! The liveness probe: every `interval`, `grpc.health.v1.Health/Check` for
//! the `plugin` service, bounded by `timeout`. The probe task only reports;
//! the plugin's actor counts consecutive failures and decides (it is the only
//! writer of the status and the only one that kills).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::config::HealthConfig;
use crate::rpc::plugin::{HealthStatus, PluginClient};

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// SERVING.
    Serving,
    /// Alive, but the plugin reports another status (for example its
    /// upstream is down): no work is sent, it is not killed.
    NotServing(String),
    /// No answer in time, or the call failed.
    Failed(String),
}

/// Starts probing `client` every `config.interval` (the first check one
/// interval after the start); results arrive on the returned receiver. Abort
/// the task when the process ends.
pub fn start(
    client: PluginClient,
    config: HealthConfig,
) -> (JoinHandle<()>, mpsc::Receiver<Probe>) {
    let (sender, receiver) = mpsc::channel(4);
    let task = tokio::spawn(
        async move {
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + config.interval,
                config.interval,
            );
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let probe = check(&client, config.timeout).await;
                if sender.send(probe).await.is_err() {
                    return;
                }
            }
        }
        .in_current_span(),
    );
    (task, receiver)
}

/// One health check, bounded by `timeout`.
pub async fn check(client: &PluginClient, timeout: Duration) -> Probe {
    match tokio::time::timeout(timeout, client.health()).await {
        Ok(Ok(HealthStatus::Serving)) => Probe::Serving,
        Ok(Ok(HealthStatus::NotServing(status))) => Probe::NotServing(status),
        Ok(Err(status)) => Probe::Failed(format!(
            "the health check failed: {:?}: {}",
            status.code(),
            status.message()
        )),
        Err(_) => Probe::Failed(format!(
            "the health check did not answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}
