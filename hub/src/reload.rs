//! Hot reload: `SIGHUP` or `POST /api/v1/reload` re-reads the config file
//! with the code `switchyard check` uses and applies the difference to the
//! running hub.
//!
//! * [`plan`] (pure): which plugins start, stop, restart or stay, and
//!   whether a key that cannot change live was changed.
//! * [`Reloader`]: the handle the HTTP API and the signal handler ask
//!   through; the hub's main task ([`crate::app`]) owns the running set and
//!   applies one reload at a time.
//!
//! An invalid file, or one that changes a key that cannot change live,
//! changes nothing. A plugin whose `[plugins.NAME]` section (any of its
//! keys or subtables) changed is stopped and started again with the new
//! section; a plugin whose section is equal keeps its process.

use std::collections::HashSet;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, ConfigErrors, HubConfig, PluginConfig};

/// What a reload does to the running set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// New plugins, started.
    pub started: Vec<String>,
    /// Plugins whose section changed, stopped and started again.
    pub restarted: Vec<String>,
    /// Plugins no longer in the file, stopped (their durable state stays).
    pub stopped: Vec<String>,
    /// Plugins whose section is unchanged: they keep their process.
    pub unchanged: Vec<String>,
    /// Whether the `[pipeline]` table changed (the next batch uses it).
    pub pipeline_changed: bool,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not pass `switchyard check`.
    #[error("the config file is invalid; nothing changed:\n{0}")]
    Invalid(ConfigErrors),
    /// The file changes keys that only a restart can change.
    #[error("{}", restart_message(.0))]
    RestartRequired(Vec<&'static str>),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
}

fn restart_message(keys: &[&'static str]) -> String {
    let keys: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
    format!(
        "restart the hub to change {} in [hub]; nothing changed",
        keys.join(", ")
    )
}

/// The `[hub]` keys that differ between `old` and `new`. None of them can
/// change while the hub runs (the listeners are bound and the store is
/// open).
pub fn changed_hub_keys(old: &HubConfig, new: &HubConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.listen != new.listen {
        keys.push("listen");
    }
    if old.database != new.database {
        keys.push("database");
    }
    if old.socket_dir != new.socket_dir {
        keys.push("socket_dir");
    }
    if old.access.webhook_listen != new.access.webhook_listen {
        keys.push("webhook_listen");
    }
    if old.access.admin_token_env != new.access.admin_token_env {
        keys.push("admin_token_env");
    }
    if old.cluster.id != new.cluster.id {
        keys.push("id");
    }
    if old.cluster.lease_ttl != new.cluster.lease_ttl {
        keys.push("lease_ttl");
    }
    if keys.is_empty() && old != new {
        // A key added to [hub] later and not named above.
        keys.push("[hub]");
    }
    keys
}

/// Compares the running config with the file just read. Refuses a change
/// of a `[hub]` key; otherwise lists what to start, restart and stop.
pub fn plan(old: &Config, new: &Config) -> Result<Plan, ReloadError> {
    let hub_keys = changed_hub_keys(&old.hub, &new.hub);
    if !hub_keys.is_empty() {
        return Err(ReloadError::RestartRequired(hub_keys));
    }
    let mut plan = Plan {
        pipeline_changed: old.pipeline != new.pipeline,
        ..Plan::default()
    };
    let new_names: HashSet<&str> = new.plugins.iter().map(|p| p.name.as_str()).collect();
    for plugin in &new.plugins {
        match old.plugins.iter().find(|old| old.name == plugin.name) {
            None => plan.started.push(plugin.name.clone()),
            Some(old) if same_section(old, plugin) => plan.unchanged.push(plugin.name.clone()),
            Some(_) => plan.restarted.push(plugin.name.clone()),
        }
    }
    plan.stopped = old
        .plugins
        .iter()
        .filter(|old| !new_names.contains(old.name.as_str()))
        .map(|old| old.name.clone())
        .collect();
    Ok(plan)
}

/// Whether two `[plugins.NAME]` sections mean the same: every key equal,
/// wherever in the file they are (an edit elsewhere moves the line a
/// section starts at; that alone restarts nothing).
fn same_section(old: &PluginConfig, new: &PluginConfig) -> bool {
    let mut moved = new.clone();
    moved.config_at = old.config_at.clone();
    *old == moved
}

/// A reload asked for, and where to send its outcome.
#[derive(Debug)]
pub struct ReloadRequest {
    /// Gets the plan applied, or why nothing changed.
    pub reply: oneshot::Sender<Result<Plan, ReloadError>>,
}

/// Asks the running hub to reload its config file. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reloader {
    requests: mpsc::Sender<ReloadRequest>,
}

impl Reloader {
    /// A reloader and the receiving end the hub's main task serves.
    pub fn channel() -> (Reloader, mpsc::Receiver<ReloadRequest>) {
        let (requests, received) = mpsc::channel(4);
        (Reloader { requests }, received)
    }

    /// Re-reads the config file and applies it; returns what changed.
    pub async fn reload(&self) -> Result<Plan, ReloadError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(ReloadRequest { reply })
            .await
            .map_err(|_| ReloadError::ShuttingDown)?;
        answer.await.unwrap_or(Err(ReloadError::ShuttingDown))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(Path::new("plugins.toml"), text, Path::new("/srv"))
            .unwrap_or_else(|errors| panic!("{errors}"))
    }

    const BASE: &str = r#"
[plugins.gen]
command = "/bin/sh"
[plugins.gen.poll]
interval = "1s"

[plugins.tag]
command = "/bin/sh"

[plugins.out]
command = "/bin/sh"
[plugins.out.output]
"#;

    #[test]
    fn an_equal_file_changes_nothing() {
        let plan = plan(&config(BASE), &config(BASE)).unwrap();
        assert_eq!(plan.unchanged, ["gen", "tag", "out"]);
        assert!(plan.started.is_empty() && plan.restarted.is_empty() && plan.stopped.is_empty());
        assert!(!plan.pipeline_changed);
    }

    #[test]
    fn added_changed_and_removed_plugins_are_told_apart() {
        let new = r#"
[plugins.gen]
command = "/bin/sh"
[plugins.gen.poll]
interval = "5s"

[plugins.tag]
command = "/bin/sh"

[plugins.extra]
command = "/bin/sh"
"#;
        let plan = plan(&config(BASE), &config(new)).unwrap();
        assert_eq!(plan.restarted, ["gen"]);
        assert_eq!(plan.unchanged, ["tag"]);
        assert_eq!(plan.started, ["extra"]);
        assert_eq!(plan.stopped, ["out"]);
    }

    #[test]
    fn a_change_in_a_plugins_config_table_restarts_only_that_plugin() {
        let old = format!("{BASE}\n[plugins.tag.config]\nwords = 1\n");
        let new = format!("{BASE}\n[plugins.tag.config]\nwords = 2\n");
        let plan = plan(&config(&old), &config(&new)).unwrap();
        assert_eq!(plan.restarted, ["tag"]);
        assert_eq!(plan.unchanged, ["gen", "out"]);
    }

    #[test]
    fn a_section_that_only_moved_in_the_file_is_unchanged() {
        let new = format!("# a comment\n\n{BASE}");
        let plan = plan(&config(BASE), &config(&new)).unwrap();
        assert_eq!(plan.unchanged, ["gen", "tag", "out"]);
    }

    #[test]
    fn a_pipeline_change_is_noticed_without_restarting_anything() {
        let new = format!("{BASE}\n[pipeline]\nenrich = [\"tag\"]\n");
        let plan = plan(&config(BASE), &config(&new)).unwrap();
        assert!(plan.pipeline_changed);
        assert!(plan.restarted.is_empty());
    }

    #[test]
    fn listen_and_database_cannot_change_live() {
        let new =
            format!("[hub]\nlisten = \"127.0.0.1:9999\"\ndatabase = \"sqlite://other.db\"\n{BASE}");
        let err = plan(&config(BASE), &config(&new)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "restart the hub to change `listen`, `database` in [hub]; nothing changed"
        );
    }
}
