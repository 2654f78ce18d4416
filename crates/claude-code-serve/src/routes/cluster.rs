//! `GET /v1/cluster`: the members of the cluster this host joined.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{Caller, Scope},
    body::ErrorBody,
    cluster::Member,
    error::ApiError,
    state::AppState,
};

/// `GET /v1/cluster`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClusterView {
    /// This host's node name.
    node: String,
    /// This host's connection to the NATS server: `connected`, or `disconnected` (it
    /// reconnects on its own; the members are then unknown and listed empty).
    nats: &'static str,
    /// How long the connection has been down, in seconds (only while `disconnected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnected_secs: Option<f64>,
    /// Seconds after its last heartbeat that a member drops out.
    ttl_secs: f64,
    /// The live members (this host included), by node name, with their capacity and
    /// session counts from their last heartbeat.
    members: Vec<Member>,
}

/// The cluster's live members, as this host sees them. A host started without
/// `--cluster` answers 404 `not_clustered`. While the connection to NATS is down it
/// answers at once with `nats: "disconnected"` and no members.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses(
        (status = 200, description = "This host's node name, its connection to NATS and the live members (none while `nats` is `disconnected`)", body = ClusterView),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "`not_clustered`: the host runs without `--cluster`", body = ErrorBody),
        (status = 503, description = "`cluster_unavailable`: the NATS server does not answer", body = ErrorBody),
    ))]
pub(crate) async fn view(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<ClusterView>, ApiError> {
    caller.require(Scope::Read)?;
    let Some(cluster) = state.cluster() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_clustered",
            "this host runs alone: start it with --cluster nats://HOST:PORT (or [cluster] url) to join a cluster",
        ));
    };
    if let Some(down) = cluster.link().down_for() {
        return Ok(Json(ClusterView {
            node: cluster.node().to_string(),
            nats: "disconnected",
            disconnected_secs: Some(down.as_secs_f64()),
            ttl_secs: cluster.ttl().as_secs_f64(),
            members: Vec::new(),
        }));
    }
    let members = cluster.members().await.map_err(|e| ApiError::cluster(&e))?;
    Ok(Json(ClusterView {
        node: cluster.node().to_string(),
        nats: "connected",
        disconnected_secs: None,
        ttl_secs: cluster.ttl().as_secs_f64(),
        members,
    }))
}
