//! Sync state of polling inputs: `GET`, `PUT` and `DELETE
//! /api/v1/plugins/NAME/checkpoint` (view, set, reset the committed
//! checkpoint) and `POST /api/v1/plugins/NAME/poll` (poll now, stored as a
//! scheduled poll is), as `docs/admin-api.md` specifies.
//!
//! Setting or resetting a checkpoint takes the poller's lock
//! ([`crate::pipeline::PollControl::exclusive`]), so it waits for a poll
//! under way to end: that poll's last commit cannot overwrite it, and the
//! next poll starts from it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::json::{decode_base64, encode_base64};
use super::{ApiError, AppState};
use crate::pipeline::PollControl;
use crate::store::{SavedCheckpoint, Store};

/// A checkpoint as the API shows it.
#[derive(Debug, Serialize)]
pub struct CheckpointJson {
    /// The instance name.
    pub plugin: String,
    /// The checkpoint parsed as JSON, when its bytes are UTF-8 JSON; else
    /// null.
    pub checkpoint: Option<Value>,
    /// The checkpoint's bytes, standard base64; null when there is none.
    pub checkpoint_base64: Option<String>,
    /// When it was committed (RFC 3339), or null.
    pub updated_at: Option<String>,
}

impl CheckpointJson {
    fn of(plugin: &str, saved: Option<SavedCheckpoint>) -> Self {
        let Some(saved) = saved else {
            return CheckpointJson {
                plugin: plugin.to_owned(),
                checkpoint: None,
                checkpoint_base64: None,
                updated_at: None,
            };
        };
        CheckpointJson {
            plugin: plugin.to_owned(),
            checkpoint: serde_json::from_slice(&saved.checkpoint).ok(),
            checkpoint_base64: Some(encode_base64(&saved.checkpoint)),
            updated_at: DateTime::from_timestamp_millis(saved.updated_at_ms)
                .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }
}

/// The body of `PUT .../checkpoint`: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutCheckpointBody {
    /// The checkpoint as JSON: its compact serialization becomes the bytes.
    #[serde(default)]
    pub checkpoint: Option<Value>,
    /// The checkpoint's bytes, standard base64.
    #[serde(default)]
    pub checkpoint_base64: Option<String>,
}

impl PutCheckpointBody {
    /// The bytes to store.
    fn into_bytes(self) -> Result<Vec<u8>, ApiError> {
        match (self.checkpoint, self.checkpoint_base64) {
            (Some(value), None) => Ok(value.to_string().into_bytes()),
            (None, Some(text)) => decode_base64(&text).map_err(|err| {
                ApiError::BadRequest(format!("`checkpoint_base64` is not valid base64: {err}"))
            }),
            (Some(_), Some(_)) => Err(ApiError::BadRequest(
                "give either `checkpoint` or `checkpoint_base64`, not both".to_owned(),
            )),
            (None, None) => Err(ApiError::BadRequest(
                "give `checkpoint` (JSON) or `checkpoint_base64`; to reset the checkpoint, use DELETE"
                    .to_owned(),
            )),
        }
    }
}

fn store(state: &AppState) -> Result<&Store, ApiError> {
    state
        .ingest
        .as_ref()
        .map(|ingest| &ingest.store)
        .ok_or(ApiError::StoreUnavailable)
}

/// Waits for the poll under way, if any, then runs `change` under the
/// poller's lock.
async fn with_poller_locked<T>(
    state: &AppState,
    name: &str,
    control: &PollControl,
    change: impl AsyncFnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let Some(_exclusive) = control.exclusive(state.call_timeout).await else {
        return Err(ApiError::PollInProgress {
            name: name.to_owned(),
            seconds: state.call_timeout.as_secs(),
        });
    };
    change().await
}

/// `GET /api/v1/plugins/NAME/checkpoint`: the committed checkpoint.
pub async fn get_checkpoint(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CheckpointJson>, ApiError> {
    state.poller(&name)?;
    let saved = store(&state)?.saved_checkpoint(&name).await?;
    Ok(Json(CheckpointJson::of(&name, saved)))
}

/// `PUT /api/v1/plugins/NAME/checkpoint`: sets the checkpoint the next poll
/// starts from; answers with it.
pub async fn put_checkpoint(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<CheckpointJson>, ApiError> {
    let (_, control) = state.active_poller(&name)?;
    let body: PutCheckpointBody =
        serde_json::from_slice(&body).map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let bytes = body.into_bytes()?;
    let store = store(&state)?;
    let saved = with_poller_locked(&state, &name, &control, async || {
        let mut tx = store.begin().await?;
        tx.save_checkpoint(&name, &bytes).await?;
        tx.commit().await?;
        Ok(store.saved_checkpoint(&name).await?)
    })
    .await?;
    tracing::info!(plugin = %name, bytes = bytes.len(), "Checkpoint set through the API.");
    Ok(Json(CheckpointJson::of(&name, saved)))
}

/// `DELETE /api/v1/plugins/NAME/checkpoint`: forgets the checkpoint, so the
/// next poll starts from none (a backfill).
pub async fn delete_checkpoint(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, control) = state.active_poller(&name)?;
    let store = store(&state)?;
    let deleted = with_poller_locked(&state, &name, &control, async || {
        let mut tx = store.begin().await?;
        let deleted = tx.delete_checkpoint(&name).await?;
        tx.commit().await?;
        Ok(deleted)
    })
    .await?;
    tracing::info!(plugin = %name, "Checkpoint reset through the API; the next poll starts from none.");
    Ok(Json(json!({ "plugin": name, "deleted": deleted })))
}

/// `POST /api/v1/plugins/NAME/poll`: polls now, through the scheduled
/// poll's own path (enrichment, one transaction per checkpoint, retries),
/// after the poll under way if any; answers when it ended.
pub async fn poll_now(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, control) = state.active_poller(&name)?;
    tracing::info!(plugin = %name, "Poll requested through the API.");
    let summary = control
        .poll_now()
        .await
        .map_err(|_| ApiError::PollerGone(name.clone()))?
        .map_err(|give_up| ApiError::from_give_up(&name, give_up))?;
    Ok(Json(
        json!({ "plugin": name, "records": summary.records, "commits": summary.commits }),
    ))
}
