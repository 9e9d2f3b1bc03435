//! The polling input: walks `GET /api/v1/management/responses` per survey.

use serde_json::Value;
use switchyard_plugin_sdk::http::{HttpError, StatusCode};
use switchyard_plugin_sdk::{Emitter, PluginError, PollRequest, PollingInput, Record};

use crate::Formbricks;
use crate::checkpoint::Checkpoint;
use crate::response::response_record;

impl Formbricks {
    /// The surveys to poll, in a stable order: `survey_ids`, or every survey
    /// from `GET /api/v1/management/surveys`.
    async fn surveys(&self) -> Result<Vec<String>, PluginError> {
        if let Some(ids) = &self.survey_ids {
            return Ok(ids.clone());
        }
        // `limit`/`offset` (not `skip`, unlike responses), `{"data": [...]}`.
        let mut ids: Vec<String> = Vec::new();
        let mut position = None;
        loop {
            let page = self
                .survey_paginator
                .next_page(
                    &self.client,
                    self.client.get("management/surveys"),
                    position.as_ref(),
                )
                .await
                .map_err(|err| self.api_error(err))?;
            ids.extend(
                page.records
                    .iter()
                    .filter_map(|survey| survey.get("id").and_then(Value::as_str))
                    .map(str::to_owned),
            );
            match page.next {
                Some(next) => position = Some(next),
                None => break,
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// An API failure as a plugin error; a refused key says which one.
    pub(crate) fn api_error(&self, err: HttpError) -> PluginError {
        match err.status_code() {
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => PluginError::permanent(
                format!(
                    "formbricks: the Management API refused the API key from the environment variable `{}` (api_key_env): {err}",
                    self.api_key_env
                ),
            )
            .with_code("auth_failed"),
            _ => err.into(),
        }
    }

    /// Turns one page's responses into records, skipping (with a warning)
    /// any without an id; notes their `updatedAt` in the survey's state.
    fn page_records(
        &self,
        survey: &str,
        responses: &[Value],
        checkpoint: &mut Checkpoint,
    ) -> Vec<Record> {
        let state = checkpoint.survey(survey);
        let mut records = Vec::with_capacity(responses.len());
        for response in responses {
            let updated = response.get("updatedAt").and_then(Value::as_str);
            if !state.observe(updated) {
                continue;
            }
            match response_record(response) {
                Ok(record) => records.push(record),
                Err(err) => tracing::warn!(survey, error = %err, "Skipped a response."),
            }
        }
        records
    }
}

impl PollingInput for Formbricks {
    #[tracing::instrument(name = "formbricks.poll", skip_all)]
    async fn poll(&self, request: PollRequest, mut emitter: Emitter) -> Result<(), PluginError> {
        let mut checkpoint = Checkpoint::parse(request.checkpoint.as_deref())?;
        let surveys = self.surveys().await?;
        checkpoint.begin(&surveys);
        let limit = u64::from(request.max_records);
        let mut emitted: u64 = 0;
        for survey in &surveys {
            if !checkpoint.pending(survey) {
                continue;
            }
            loop {
                let position = checkpoint.survey(survey).next.clone();
                let first = self
                    .client
                    .get("management/responses")
                    .query(&[("surveyId", survey)]);
                let page = self
                    .paginator
                    .next_page(&self.client, first, position.as_ref())
                    .await
                    .map_err(|err| self.api_error(err))?;
                let records = self.page_records(survey, &page.records, &mut checkpoint);
                let cycle = checkpoint.cycle;
                let state = checkpoint.survey(survey);
                let finished = page.next.is_none();
                if finished {
                    state.finish_walk(cycle);
                } else {
                    state.next = page.next;
                }
                emitted += records.len() as u64;
                tracing::debug!(
                    survey,
                    records = records.len(),
                    finished,
                    "Read a page of responses."
                );
                emitter
                    .emit_with_checkpoint(records, checkpoint.to_bytes()?)
                    .await?;
                if limit > 0 && emitted >= limit {
                    return Ok(());
                }
                if finished {
                    break;
                }
            }
        }
        Ok(())
    }
}
