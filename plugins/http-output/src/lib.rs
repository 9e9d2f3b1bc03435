//! `http-output`: an output that POSTs batches of events as JSON to a URL,
//! signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`). A 2xx acks the batch; 429, 5xx, timeouts and
//! connection failures are retryable (with the receiver's `Retry-After`
//! as the hint); any other 4xx is permanent. See README.md.

mod body;
mod config;
mod signature;

pub use body::{BODY_TYPE, body, message_id};
pub use config::{HttpOutputConfig, MAX_BATCH, decode_secret};
pub use signature::Signer;

use switchyard_plugin_sdk::http::{
    Client, HttpConfig, HttpError, HttpErrorKind, Method, RetryConfig, StatusCode,
};
use switchyard_plugin_sdk::{ConfigErrors, Output, Plugin, PluginError, RecordEvent};

/// The configured output.
pub struct HttpOutput {
    client: Client,
    url: String,
    signer: Signer,
    batch: usize,
    headers: Vec<(String, String)>,
}

impl std::fmt::Debug for HttpOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOutput")
            .field("url", &self.url)
            .field("batch", &self.batch)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl HttpOutput {
    /// Validates the configuration, reads the secret and builds the client.
    ///
    /// # Errors
    /// Every bad key, and an unset or malformed secret.
    pub fn new(config: HttpOutputConfig) -> Result<Self, ConfigErrors> {
        let key = config.validate()?;
        let signer = Signer::new(&key).ok_or_else(|| {
            ConfigErrors::from(switchyard_plugin_sdk::ConfigError::new(
                "secret_env",
                format!(
                    "the secret in `{}` is not a usable HMAC key",
                    config.secret_env
                ),
            ))
        })?;
        // One attempt per call: the hub owns retries (and the dead letters).
        let http = HttpConfig::default()
            .with_timeout(config.timeout)
            .with_retry(RetryConfig::default().with_max_attempts(1));
        let client = Client::new(&http)?;
        Ok(HttpOutput {
            client,
            url: config.url,
            signer,
            batch: config.batch,
            headers: config.headers.into_iter().collect(),
        })
    }

    /// POSTs one batch (at most `batch` events), signed.
    async fn post(&self, events: &[RecordEvent]) -> Result<(), PluginError> {
        let now = chrono::Utc::now();
        let timestamp = now.timestamp();
        let body = body(
            events,
            &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )?;
        let id = message_id(events);
        let signature = self.signer.sign(&id, timestamp, &body);
        let mut request = self
            .client
            .request(Method::POST, &self.url)
            .header("content-type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .header("webhook-id", id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        match self.client.send(request).await {
            Ok(response) => {
                tracing::debug!(
                    id,
                    status = response.status().as_u16(),
                    events = events.len(),
                    "Delivered a batch."
                );
                Ok(())
            }
            Err(err) => Err(outcome(&err)),
        }
    }
}

/// A failed POST as the hub should see it: 429, 5xx, timeouts and
/// connection failures retryable (with `Retry-After` as the hint), any
/// other 4xx and everything else permanent.
pub fn outcome(err: &HttpError) -> PluginError {
    let message = format!("http-output: {err}");
    let retryable = match err.status_code() {
        Some(status) => status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
        None => matches!(err.kind(), HttpErrorKind::Connect | HttpErrorKind::Timeout),
    };
    if retryable {
        let mut error = PluginError::retryable(message).with_code(err.code());
        if let Some(after) = err.retry_after() {
            error = error.with_retry_after(after);
        }
        error
    } else {
        PluginError::permanent(message).with_code(err.code())
    }
}

/// The plugin definition.
pub fn plugin() -> Plugin<HttpOutput> {
    Plugin::new("http-output", env!("CARGO_PKG_VERSION"))
        .description("POSTs batches of events as JSON, signed with Standard Webhooks headers")
        .output(|config: HttpOutputConfig| async move { HttpOutput::new(config) })
}

impl Output for HttpOutput {
    #[tracing::instrument(name = "http_output.event", skip_all, fields(delivery_id = event.delivery_id))]
    async fn handle_event(&self, event: RecordEvent) -> Result<(), PluginError> {
        self.post(std::slice::from_ref(&event)).await
    }

    #[tracing::instrument(name = "http_output.batch", skip_all, fields(events = events.len()))]
    async fn handle_batch(&self, events: Vec<RecordEvent>) -> Vec<Result<(), PluginError>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for chunk in events.chunks(self.batch) {
            let result = self.post(chunk).await;
            outcomes.extend(std::iter::repeat_n(result, chunk.len()));
        }
        outcomes
    }
}
