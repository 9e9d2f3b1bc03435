//! The connection to NATS shared by the `nats-input` and `nats-output`
//! plugins: the server URL and optional credentials, each secret read from
//! the environment variable its `*_env` key names, and the plugin's health
//! following the connection.

use std::time::Duration;

use switchyard_plugin_sdk::{ConfigErrors, Health, PluginError};

/// How to reach the NATS server: the `url`, `token_env`, `user` and
/// `password_env` keys of the plugin's `config` table.
#[derive(Debug, Clone, Default)]
pub struct ConnectConfig {
    /// The server, `nats://HOST:PORT` (several may be given, comma-separated).
    pub url: String,
    /// The environment variable holding a token (token authentication).
    pub token_env: Option<String>,
    /// The user name (user/password authentication, with `password_env`).
    pub user: Option<String>,
    /// The environment variable holding the password for `user`.
    pub password_env: Option<String>,
}

impl ConnectConfig {
    /// Checks the keys and connects. While the connection is down (the
    /// client reconnects on its own) `health` says NOT_SERVING, so the hub
    /// sends no work instead of failing it.
    ///
    /// # Errors
    /// Bad keys or unset secrets as config errors; a server that cannot be
    /// reached as a retryable start failure ([`ConfigErrors::unavailable`]).
    pub async fn connect(
        &self,
        name: &str,
        health: &Health,
    ) -> Result<async_nats::Client, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if self.url.trim().is_empty() {
            errors.push("url", "must name a NATS server, like nats://127.0.0.1:4222");
        }
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .event_callback({
                let health = health.clone();
                let url = self.url.clone();
                move |event| {
                    let health = health.clone();
                    let url = url.clone();
                    async move {
                        match event {
                            async_nats::Event::Disconnected => {
                                health.set_not_serving(format!("disconnected from NATS at {url}"));
                            }
                            async_nats::Event::Connected => health.set_serving(),
                            other => tracing::info!(event = %other, "NATS connection event."),
                        }
                    }
                }
            });
        if let Some(var) = &self.token_env {
            match secret(var) {
                Some(token) => options = options.token(token),
                None => errors.push("token_env", unset(var)),
            }
        }
        match (&self.user, &self.password_env) {
            (Some(user), Some(var)) => match secret(var) {
                Some(password) => options = options.user_and_password(user.clone(), password),
                None => errors.push("password_env", unset(var)),
            },
            (None, None) => {}
            (Some(_), None) => errors.push("password_env", "is required with `user`"),
            (None, Some(_)) => errors.push("user", "is required with `password_env`"),
        }
        errors.into_result()?;
        options.connect(self.url.as_str()).await.map_err(|err| {
            ConfigErrors::unavailable(PluginError::retryable(format!(
                "{name}: cannot connect to NATS at {}: {err}",
                self.url
            )))
        })
    }
}

fn secret(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|value| !value.is_empty())
}

fn unset(var: &str) -> String {
    format!("the environment variable `{var}` is not set or empty")
}
