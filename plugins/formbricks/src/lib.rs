//! `formbricks`: Formbricks survey responses as records, polled from the
//! Management API (`GET /api/v1/management/responses`) and received as
//! webhooks (`responseCreated`, `responseUpdated`, `responseFinished`).
//! One record per response: id = the response id, type
//! `formbricks.response`, payload = the response. See README.md.

mod checkpoint;
mod config;
mod poll;
mod response;
mod webhook;

pub use checkpoint::{Checkpoint, SurveyState};
pub use config::FormbricksConfig;
pub use response::{RECORD_TYPE, response_record};

use switchyard_plugin_sdk::http::{Client, OffsetConfig, PaginationConfig, Paginator, RetryConfig};

/// Surveys per page when listing them.
const SURVEY_PAGE_SIZE: u64 = 100;
use switchyard_plugin_sdk::{ConfigErrors, Plugin, PluginError};

/// The configured plugin: the API client and what to poll.
#[derive(Debug)]
pub struct Formbricks {
    client: Client,
    /// The same API with a single attempt per call, for the start-up check.
    probe: Client,
    paginator: Paginator,
    /// Pages `GET /api/v1/management/surveys` (`limit`, `offset`).
    survey_paginator: Paginator,
    /// The surveys to poll; `None`: every survey the key can read.
    survey_ids: Option<Vec<String>>,
    /// The environment variable holding the key, for error messages.
    api_key_env: String,
}

impl Formbricks {
    /// Validates the configuration and builds the API client.
    ///
    /// # Errors
    /// Every bad key, and a missing or empty `api_key_env` variable.
    pub fn new(config: FormbricksConfig) -> Result<Self, ConfigErrors> {
        let (http, pagination) = config.http()?;
        let client = Client::new(&http).map_err(config::rename_http_errors)?;
        // The start-up key check tries once: the hub's restart policy retries it.
        let probe = Client::new(&http.with_retry(RetryConfig::default().with_max_attempts(1)))
            .map_err(config::rename_http_errors)?;
        let paginator = Paginator::new(&pagination).map_err(config::rename_http_errors)?;
        let survey_paginator = Paginator::new(&PaginationConfig::Offset(
            OffsetConfig::new(SURVEY_PAGE_SIZE)
                .with_params("offset", "limit")
                .with_records_path("/data"),
        ))
        .map_err(config::rename_http_errors)?;
        Ok(Formbricks {
            survey_paginator,
            client,
            probe,
            paginator,
            survey_ids: config.survey_ids,
            api_key_env: config.api_key_env,
        })
    }
}

impl Formbricks {
    /// Checks the key at start with `GET /api/v1/management/me`. A refused
    /// key (401/403) or an unreachable API makes `Configure` answer
    /// UNAVAILABLE: the hub retries the start under the plugin's restart
    /// policy and marks it `failed` when that runs out, with this message
    /// (naming the variable) as `last_error`.
    ///
    /// # Errors
    /// [`ConfigErrors::unavailable`] with the reason.
    pub async fn check_key(&self) -> Result<(), ConfigErrors> {
        match self.probe.send(self.probe.get("management/me")).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let error = self.api_error(err);
                let code = error.code().unwrap_or("upstream_unreachable").to_owned();
                Err(ConfigErrors::unavailable(
                    PluginError::retryable(error.message().to_owned()).with_code(code),
                ))
            }
        }
    }
}

/// The plugin definition: a polling input and a webhook input in one binary.
pub fn plugin() -> Plugin<Formbricks> {
    Plugin::new("formbricks", env!("CARGO_PKG_VERSION"))
        .description("Formbricks survey responses: polled from the Management API and received as Standard Webhooks")
        .factory(|config: FormbricksConfig| async move {
            let formbricks = Formbricks::new(config)?;
            formbricks.check_key().await?;
            Ok(formbricks)
        })
        .polling_input()
        .webhook_input()
}
