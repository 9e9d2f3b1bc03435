//! The stored data: `GET /api/v1/records[/ID]` and the dead letters
//! (`GET /api/v1/dead-letters[/ID]`, `POST /api/v1/dead-letters/ID/replay`,
//! `DELETE /api/v1/dead-letters/ID`), as `docs/admin-api.md` specifies.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::json::{RecordFieldsJson, RecordJson};
use super::{ApiError, AppState};
use crate::domain::EventKind;
use crate::pipeline::{Ingest, IngestError};
use crate::store::{DeadLetter, DeadLetterFilter, RecordFilter, Stage, StoredRecord};

/// The default page size.
const DEFAULT_LIMIT: u32 = 100;
/// The largest page size.
const MAX_LIMIT: u32 = 1000;
/// The most record bytes a page holds past its first item: a page of
/// large records or letters is shorter (its `next_cursor` goes on), so one
/// request cannot make the hub read `limit` records of tens of MiB at once.
const PAGE_BYTES: usize = 16 * 1024 * 1024;

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadQuery(format!("malformed query string: {}", rejection.body_text()))
    }
}

fn ingest(state: &AppState) -> Result<&Ingest, ApiError> {
    state.ingest.as_ref().ok_or(ApiError::StoreUnavailable)
}

fn parse_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("{what} {text:?}")))
}

fn parse_cursor(cursor: Option<&str>) -> Result<i64, ApiError> {
    match cursor {
        None | Some("") => Ok(0),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| ApiError::BadQuery(format!("invalid cursor {text:?}"))),
    }
}

fn check_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::BadQuery(format!(
            "`limit` must be between 1 and {MAX_LIMIT}, found {limit}"
        ))),
    }
}

fn kind_str(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Created => "created",
        EventKind::Updated => "updated",
    }
}

/// A stored record: the hub's `id`, the record's own id as `source_id`,
/// the record's other fields ([`RecordFieldsJson`]) and the store's own.
#[derive(Debug, Serialize)]
pub struct StoredRecordJson {
    id: i64,
    source_id: String,
    #[serde(flatten)]
    fields: RecordFieldsJson,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<StoredRecord> for StoredRecordJson {
    fn from(stored: StoredRecord) -> Self {
        let (source_id, fields) = RecordFieldsJson::split(stored.record);
        StoredRecordJson {
            id: stored.id,
            source_id,
            fields,
            version: stored.version,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }
}

/// A dead letter.
#[derive(Debug, Serialize)]
pub struct DeadLetterJson {
    id: i64,
    plugin: String,
    stage: &'static str,
    record: RecordJson,
    event_id: Option<i64>,
    event_kind: Option<&'static str>,
    error: String,
    attempts: i64,
    first_failed_at: DateTime<Utc>,
    last_failed_at: DateTime<Utc>,
}

impl From<DeadLetter> for DeadLetterJson {
    fn from(letter: DeadLetter) -> Self {
        DeadLetterJson {
            id: letter.id,
            plugin: letter.plugin,
            stage: letter.stage.as_str(),
            record: RecordJson::from(letter.record),
            event_id: letter.event.map(|(id, _)| id),
            event_kind: letter.event.map(|(_, kind)| kind_str(kind)),
            error: letter.error,
            attempts: letter.attempts,
            first_failed_at: letter.first_failed_at,
            last_failed_at: letter.last_failed_at,
        }
    }
}

/// The query of `GET /api/v1/records`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    source: Option<String>,
    #[serde(rename = "type")]
    record_type: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    cursor: Option<String>,
    order: Option<RecordOrder>,
}

/// The `order` of `GET /api/v1/records`: `oldest` (the default) or `newest`
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RecordOrder {
    Oldest,
    Newest,
}

/// `GET /api/v1/records`: stored records, oldest first, one page at a time.
pub async fn list_records(
    State(state): State<AppState>,
    query: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query?;
    let ingest = ingest(&state)?;
    let filter = RecordFilter {
        source: query.source,
        record_type: query.record_type,
        since: query.since,
        until: query.until,
        newest_first: query.order == Some(RecordOrder::Newest),
    };
    let page = ingest
        .store
        .list_records(
            &filter,
            parse_cursor(query.cursor.as_deref())?,
            check_limit(query.limit)?,
            PAGE_BYTES,
        )
        .await?;
    let records: Vec<StoredRecordJson> = page.records.into_iter().map(Into::into).collect();
    Ok(Json(json!({
        "records": records,
        "next_cursor": page.next_after.map(|id| id.to_string()),
    })))
}

/// `GET /api/v1/records/ID`: one stored record, or 404.
pub async fn get_record(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StoredRecordJson>, ApiError> {
    let ingest = ingest(&state)?;
    let id = parse_id(&id, "record")?;
    match ingest.store.get_record(id).await? {
        Some(record) => Ok(Json(record.into())),
        None => Err(ApiError::NotFound(format!("record {id}"))),
    }
}

/// The query of `GET /api/v1/dead-letters`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    plugin: Option<String>,
    stage: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/dead-letters`: dead letters, oldest first, one page at a time.
pub async fn list_dead_letters(
    State(state): State<AppState>,
    query: Result<Query<DeadLettersQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query?;
    let ingest = ingest(&state)?;
    let stage = match query.stage.as_deref() {
        None => None,
        Some(text) => Some(Stage::parse(text).ok_or_else(|| {
            ApiError::BadQuery(format!(
                "unknown stage {text:?}; expected \"enrich\", \"output\" or \"webhook\""
            ))
        })?),
    };
    let filter = DeadLetterFilter {
        plugin: query.plugin,
        stage,
    };
    let (letters, next) = ingest
        .store
        .list_dead_letters(
            &filter,
            parse_cursor(query.cursor.as_deref())?,
            check_limit(query.limit)?,
            PAGE_BYTES,
        )
        .await?;
    let letters: Vec<DeadLetterJson> = letters.into_iter().map(Into::into).collect();
    Ok(Json(json!({
        "dead_letters": letters,
        "next_cursor": next.map(|id| id.to_string()),
    })))
}

async fn find_dead_letter(ingest: &Ingest, id: &str) -> Result<DeadLetter, ApiError> {
    let id = parse_id(id, "dead letter")?;
    ingest
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("dead letter {id}")))
}

/// `GET /api/v1/dead-letters/ID`.
pub async fn get_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterJson>, ApiError> {
    let ingest = ingest(&state)?;
    Ok(Json(find_dead_letter(ingest, &id).await?.into()))
}

/// `DELETE /api/v1/dead-letters/ID`: 204, or 404.
pub async fn delete_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ingest = ingest(&state)?;
    let letter = find_dead_letter(ingest, &id).await?;
    let mut tx = ingest.store.begin().await?;
    let deleted = tx.delete_dead_letter(letter.id).await?;
    tx.commit().await?;
    if deleted {
        tracing::info!(dead_letter = letter.id, plugin = %letter.plugin, "Dead letter deleted.");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("dead letter {}", letter.id)))
    }
}

/// `POST /api/v1/dead-letters/ID/replay`: an output event is queued for
/// redelivery to that output (202); an enrichment failure runs the record
/// through its chain again and stores it (200), or parks it again.
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ingest = ingest(&state)?;
    let letter = find_dead_letter(ingest, &id).await?;
    match (letter.stage, letter.event) {
        (Stage::Output, Some((event_id, _))) => {
            let serves_output = state.plugin(&letter.plugin).is_ok();
            if !serves_output {
                return Err(ApiError::OutputGone(letter.plugin));
            }
            let mut tx = ingest.store.begin().await?;
            tx.enqueue_replay(&letter.plugin, event_id).await?;
            tx.delete_dead_letter(letter.id).await?;
            tx.commit().await?;
            tracing::info!(dead_letter = letter.id, plugin = %letter.plugin, event = event_id, "Dead letter queued for redelivery.");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "outcome": "queued", "plugin": letter.plugin, "event_id": event_id })),
            )
                .into_response())
        }
        (Stage::Enrich, _) => {
            let source = letter.record.source.clone();
            let prepared = tokio::time::timeout(
                state.call_timeout,
                ingest.prepare(&source, vec![letter.record.clone()]),
            )
            .await
            .map_err(|_| ApiError::ChainTimeout {
                seconds: state.call_timeout.as_secs(),
            })?
            .map_err(|failure| ApiError::Enrichment(IngestError::from(failure).to_string()))?;
            let mut tx = ingest.store.begin().await?;
            let outcomes = ingest.write(&mut tx, &source, &prepared).await?;
            tx.delete_dead_letter(letter.id).await?;
            tx.commit().await?;
            // Counted under the enricher that dead-lettered the record (a
            // configured instance name), never under the record's `source`,
            // which a plugin chooses.
            ingest.count(&letter.plugin, &outcomes);
            let body = match outcomes.first() {
                Some(outcome) => {
                    tracing::info!(
                        dead_letter = letter.id,
                        record = outcome.record_id(),
                        "Dead letter replayed and stored."
                    );
                    json!({ "outcome": "stored", "record_id": outcome.record_id() })
                }
                None => {
                    tracing::warn!(
                        dead_letter = letter.id,
                        "Replayed dead letter failed enrichment again."
                    );
                    json!({ "outcome": "dead-lettered", "error": prepared.dead_letters.first().map(|l| l.error.clone()) })
                }
            };
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        (Stage::Webhook, _) => {
            let queued = match &state.webhooks {
                Some(webhooks) => webhooks.replay_dead_letter(&letter).await?,
                None => false,
            };
            if queued {
                Ok((
                    StatusCode::ACCEPTED,
                    Json(json!({ "outcome": "queued", "plugin": letter.plugin })),
                )
                    .into_response())
            } else {
                Err(ApiError::DeliveryGone {
                    id: letter.id,
                    plugin: letter.plugin,
                })
            }
        }
        (stage, _) => Err(ApiError::NotReplayable(stage)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt as _;

    use std::collections::BTreeMap;

    use super::*;
    use crate::config::PipelineConfig;
    use crate::domain::Record;
    use crate::http::AppParts;
    use crate::pipeline::{Chain, metrics};
    use crate::store::{NewDeadLetter, Store, testing};
    use crate::supervisor::Registry;

    async fn state(dir: &std::path::Path) -> AppState {
        AppState::from(parts(dir).await)
    }

    async fn parts(dir: &std::path::Path) -> AppParts {
        let store = Store::open(&testing::sqlite_url(dir)).await.unwrap();
        let metrics = metrics::global().clone();
        let chain = Chain::new(
            PipelineConfig::default(),
            Registry::default(),
            metrics.clone(),
            CancellationToken::new(),
        );
        AppParts {
            plugins: Registry::default(),
            call_timeout: std::time::Duration::from_secs(5),
            webhooks: None,
            admin_token: None,
            ingest: Some(Ingest {
                store,
                chain: Arc::new(chain),
                metrics,
            }),
            reloader: None,
            polls: Default::default(),
            cluster: None,
        }
    }

    async fn send(state: &AppState, method: &str, uri: &str) -> (u16, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = super::super::router(state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn record(id: &str, record_type: &str) -> Record {
        Record {
            id: id.to_owned(),
            source: String::new(),
            record_type: record_type.to_owned(),
            occurred_at: None,
            payload: json!({ "id": id }).into(),
            metadata: BTreeMap::new(),
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn records_are_listed_paged_filtered_and_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let store = &state.ingest.as_ref().unwrap().store;
        let mut tx = store.begin().await.unwrap();
        tx.upsert_records(
            "gen",
            &[record("a", "x"), record("b", "y"), record("c", "x")],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let (status, page) = send(&state, "GET", "/api/v1/records?limit=2").await;
        assert_eq!(status, 200);
        assert_eq!(page["records"].as_array().unwrap().len(), 2);
        assert_eq!(page["records"][0]["source_id"], "a");
        assert_eq!(page["records"][0]["source"], "gen");
        assert_eq!(page["records"][0]["version"], 1);
        let cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let (_, next) = send(
            &state,
            "GET",
            &format!("/api/v1/records?limit=2&cursor={cursor}"),
        )
        .await;
        assert_eq!(next["records"][0]["source_id"], "c");
        assert_eq!(next["next_cursor"], serde_json::Value::Null);

        let (_, typed) = send(&state, "GET", "/api/v1/records?type=x&source=gen").await;
        assert_eq!(typed["records"].as_array().unwrap().len(), 2);
        let (_, later) = send(&state, "GET", "/api/v1/records?since=2999-01-01T00:00:00Z").await;
        assert!(later["records"].as_array().unwrap().is_empty());

        let id = page["records"][1]["id"].as_i64().unwrap();
        let (status, one) = send(&state, "GET", &format!("/api/v1/records/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(one["source_id"], "b");
        assert_eq!(one["payload"]["id"], "b");

        for (uri, expected) in [
            ("/api/v1/records/999", 404),
            ("/api/v1/records/abc", 404),
            ("/api/v1/records?limit=0", 400),
            ("/api/v1/records?limit=5000", 400),
            ("/api/v1/records?cursor=-3", 400),
            ("/api/v1/records?since=yesterday", 400),
            ("/api/v1/records?colour=red", 400),
        ] {
            let (status, body) = send(&state, "GET", uri).await;
            assert_eq!(status, expected, "{uri}: {body}");
            assert!(body["error"].is_string(), "{uri}: {body}");
        }
    }

    #[tokio::test]
    async fn dead_letters_are_listed_fetched_deleted_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let store = &state.ingest.as_ref().unwrap().store;
        let mut tx = store.begin().await.unwrap();
        let letter = NewDeadLetter {
            plugin: "gone".to_owned(),
            stage: Stage::Output,
            record: record("a", "x"),
            event: Some((7, EventKind::Created)),
            error: "refused".to_owned(),
            attempts: 2,
            first_failed_at: Utc::now(),
        };
        let id = tx.add_dead_letter(&letter).await.unwrap();
        tx.commit().await.unwrap();

        let (status, list) = send(
            &state,
            "GET",
            "/api/v1/dead-letters?stage=output&plugin=gone",
        )
        .await;
        assert_eq!(status, 200);
        let first = &list["dead_letters"][0];
        assert_eq!(first["id"], id);
        assert_eq!(first["event_id"], 7);
        assert_eq!(first["event_kind"], "created");
        assert_eq!(first["attempts"], 2);
        assert_eq!(first["record"]["id"], "a");
        let (_, none) = send(&state, "GET", "/api/v1/dead-letters?stage=enrich").await;
        assert!(none["dead_letters"].as_array().unwrap().is_empty());
        let (status, _) = send(&state, "GET", "/api/v1/dead-letters?stage=nope").await;
        assert_eq!(status, 400);
        let (status, one) = send(&state, "GET", &format!("/api/v1/dead-letters/{id}")).await;
        assert_eq!((status, one["plugin"].as_str()), (200, Some("gone")));

        // The output is not configured any more: the replay is refused and
        // the letter kept.
        let (status, body) =
            send(&state, "POST", &format!("/api/v1/dead-letters/{id}/replay")).await;
        assert_eq!(status, 409, "{body}");
        let (status, _) = send(&state, "DELETE", &format!("/api/v1/dead-letters/{id}")).await;
        assert_eq!(status, 204);
        let (status, _) = send(&state, "DELETE", &format!("/api/v1/dead-letters/{id}")).await;
        assert_eq!(status, 404);
        let (status, _) = send(&state, "POST", &format!("/api/v1/dead-letters/{id}/replay")).await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn without_a_store_the_endpoints_answer_503() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = parts(dir.path()).await;
        parts.ingest = None;
        let state = AppState::from(parts);
        let (status, body) = send(&state, "GET", "/api/v1/records").await;
        assert_eq!(status, 503, "{body}");
    }
}
