//! The plugin processes that only leased work needs: started when this hub
//! takes such work, stopped when it gives the last of it up.
//!
//! On a hub sharing its database, a plugin whose every use is leased (it
//! has `[poll]` or `[output]`, no `[webhook]`, and no `[pipeline]` chain
//! names it) runs only on the hub that holds its work: it starts in
//! standby ([`on_demand_plugins`]). Webhook plugins and enrichers run on
//! every hub, because every hub receives webhooks (a synchronous plugin is
//! called while the request waits) and ingests their records. On a hub
//! alone every plugin runs all the time.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::supervisor::{PluginState, Registry};

/// The plugins of `config` that run only while their leased work is held
/// (for a hub sharing its database).
pub fn on_demand_plugins(config: &Config) -> BTreeSet<String> {
    let enrichers: BTreeSet<&str> = config
        .pipeline
        .enrich
        .iter()
        .chain(config.pipeline.sources.values().flatten())
        .map(String::as_str)
        .collect();
    config
        .plugins
        .iter()
        .filter(|plugin| {
            (plugin.poll.is_some() || plugin.output.is_some())
                && plugin.webhook.is_none()
                && !enrichers.contains(plugin.name.as_str())
        })
        .map(|plugin| plugin.name.clone())
        .collect()
}

/// Counts, per on-demand plugin, the leased works that need it now, and
/// starts or stops the plugin as the count leaves or reaches zero. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Demand {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    on_demand: Mutex<BTreeSet<String>>,
    counts: Mutex<HashMap<String, usize>>,
    /// Serializes starts and stops, so they reach each plugin in order.
    order: tokio::sync::Mutex<()>,
}

impl Demand {
    /// Demand over the plugins of `registry`; `on_demand` are those it
    /// starts and stops (empty for a hub alone).
    pub fn new(registry: Registry, on_demand: BTreeSet<String>) -> Self {
        Demand {
            inner: Arc::new(Inner {
                registry,
                on_demand: Mutex::new(on_demand),
                counts: Mutex::default(),
                order: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Whether `plugin` runs only on demand.
    pub fn is_on_demand(&self, plugin: &str) -> bool {
        lock(&self.inner.on_demand).contains(plugin)
    }

    /// Replaces the set of on-demand plugins (a reload).
    pub fn set_on_demand(&self, on_demand: BTreeSet<String>) {
        *lock(&self.inner.on_demand) = on_demand;
    }

    /// Work that needs `plugin` starts: starts it if it is on demand and
    /// stopped (the call path then waits until it serves).
    pub async fn need(&self, plugin: &str) {
        *lock(&self.inner.counts)
            .entry(plugin.to_owned())
            .or_default() += 1;
        self.settle(plugin).await;
    }

    /// Work that needed `plugin` has ended: stops it (in the background) if
    /// it is on demand and nothing else needs it.
    pub fn release(&self, plugin: &str) {
        {
            let mut counts = lock(&self.inner.counts);
            if let Some(count) = counts.get_mut(plugin) {
                *count = count.saturating_sub(1);
            }
        }
        let demand = self.clone();
        let plugin = plugin.to_owned();
        tokio::spawn(async move { demand.settle(&plugin).await });
    }

    /// Starts or stops `plugin` to match its count.
    async fn settle(&self, plugin: &str) {
        let _order = self.inner.order.lock().await;
        if !self.is_on_demand(plugin) {
            return;
        }
        let wanted = lock(&self.inner.counts)
            .get(plugin)
            .is_some_and(|count| *count > 0);
        let Some(handle) = self.inner.registry.get(plugin) else {
            return;
        };
        let state = handle.status().state;
        match (wanted, state) {
            (true, PluginState::Stopped) => {
                tracing::info!(plugin, "Starting the plugin: this hub now holds its work.");
                handle.start().await;
            }
            (false, PluginState::Starting | PluginState::Running | PluginState::Backoff) => {
                tracing::info!(
                    plugin,
                    "Stopping the plugin: this hub no longer holds its work."
                );
                handle.stop().await;
            }
            _ => {}
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_plugins_whose_every_use_is_leased_run_on_demand() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("demand-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            r#"
[pipeline]
enrich = ["tagger"]

[plugins.gen]
command = "/bin/true"
[plugins.gen.poll]
interval = "1s"

[plugins.out]
command = "/bin/true"
[plugins.out.output]

[plugins.hook]
command = "/bin/true"
[plugins.hook.webhook]
auth = "none"

[plugins.tagger]
command = "/bin/true"
[plugins.tagger.poll]
interval = "1s"
"#,
        )
        .unwrap();
        let config = crate::config::load(&path);
        let _ = std::fs::remove_file(&path);
        let config = config.unwrap();
        let names: Vec<_> = on_demand_plugins(&config).into_iter().collect();
        assert_eq!(names, ["gen", "out"]);
    }
}
