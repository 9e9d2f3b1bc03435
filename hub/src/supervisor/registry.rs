//! The set of plugins the hub runs now, which a reload can change: readers
//! take a cheap snapshot, the reload swaps in a new list.

use std::sync::{Arc, RwLock};

use super::PluginHandle;

/// The plugins the hub runs, in config order. Cheap to clone (every clone
/// sees the same set).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    plugins: Arc<RwLock<Arc<[PluginHandle]>>>,
}

impl Registry {
    /// A registry holding `plugins`.
    pub fn new(plugins: Vec<PluginHandle>) -> Self {
        Registry {
            plugins: Arc::new(RwLock::new(plugins.into())),
        }
    }

    /// Every plugin now, in config order.
    pub fn snapshot(&self) -> Arc<[PluginHandle]> {
        match self.plugins.read() {
            Ok(plugins) => plugins.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The plugin named `name`, if the hub runs it now.
    pub fn get(&self, name: &str) -> Option<PluginHandle> {
        self.snapshot()
            .iter()
            .find(|plugin| plugin.name() == name)
            .cloned()
    }

    /// Replaces the set (a reload).
    pub fn replace(&self, plugins: Vec<PluginHandle>) {
        let plugins: Arc<[PluginHandle]> = plugins.into();
        match self.plugins.write() {
            Ok(mut current) => *current = plugins,
            Err(poisoned) => *poisoned.into_inner() = plugins,
        }
    }
}
