//! `GET /api/v1/cluster`: the hubs sharing this hub's database, their last
//! heartbeat and the work each owns, and every lease (see
//! [`crate::cluster`]). A hub alone on SQLite lists itself, owning all its
//! work.

use axum::Json;
use axum::extract::State;
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

fn time(ms: i64) -> Option<String> {
    crate::store::ms_to_time(ms).map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Answers `{hub, shared, lease_ttl_ms, hubs: [{id, listen, started_at,
/// last_heartbeat_at, alive, owns}], leases: [{work, owner, epoch,
/// expires_at, expired}]}`; 503 `store_unavailable` when the database
/// cannot be read.
pub async fn cluster(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::StoreUnavailable);
    };
    let (Some(ttl), Some(alive_for)) = (cluster.lease_ttl(), cluster.alive_for()) else {
        let owns: Vec<String> = cluster.held().into_keys().collect();
        return Ok(Json(json!({
            "hub": cluster.id(),
            "shared": false,
            "lease_ttl_ms": null,
            "hubs": [{
                "id": cluster.id(),
                "listen": null,
                "started_at": null,
                "last_heartbeat_at": null,
                "alive": true,
                "owns": owns,
            }],
            "leases": [],
        })));
    };
    let store = &state
        .ingest
        .as_ref()
        .ok_or(ApiError::StoreUnavailable)?
        .store;
    let view = store.cluster_view().await?;
    let alive_ms = i64::try_from(alive_for.as_millis()).unwrap_or(i64::MAX);
    let hubs: Vec<Value> = view
        .hubs
        .iter()
        .map(|hub| {
            let owns: Vec<&str> = view
                .leases
                .iter()
                .filter(|lease| {
                    lease.owner.as_deref() == Some(hub.id.as_str()) && lease.expires_at > view.now
                })
                .map(|lease| lease.work.as_str())
                .collect();
            json!({
                "id": hub.id,
                "listen": hub.listen,
                "started_at": time(hub.started_at),
                "last_heartbeat_at": time(hub.heartbeat_at),
                "alive": hub.heartbeat_at > view.now - alive_ms,
                "owns": owns,
            })
        })
        .collect();
    let leases: Vec<Value> = view
        .leases
        .iter()
        .map(|lease| {
            json!({
                "work": lease.work,
                "owner": lease.owner,
                "epoch": lease.epoch,
                "acquired_at": time(lease.acquired_at),
                "expires_at": time(lease.expires_at),
                "expired": lease.expires_at <= view.now,
            })
        })
        .collect();
    Ok(Json(json!({
        "hub": cluster.id(),
        "shared": true,
        "lease_ttl_ms": u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        "hubs": hubs,
        "leases": leases,
    })))
}
