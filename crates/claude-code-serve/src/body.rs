//! The API's JSON response bodies, typed: what the handlers send is what the OpenAPI
//! document (`openapi.rs`) describes. Request bodies live beside their handlers.

use serde::Serialize;
use utoipa::ToSchema;

/// Every error: a stable code and a message that says what to do.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable, machine-readable (`not_found`, `name_taken`, `rate_limited`, …).
    pub(crate) code: String,
    /// For people.
    pub(crate) message: String,
}

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SessionObject {
    /// Its name (unique within the tenant).
    pub(crate) name: String,
    /// `live`, `hibernated`, `restarting`, `stopped`, `exited` or `unknown`.
    pub(crate) status: &'static str,
    /// The CLI's conversation id, once known.
    pub(crate) session_id: Option<String>,
    /// The CLI's process id while live.
    pub(crate) pid: Option<u32>,
    /// Restarts of its CLI by the supervisor.
    pub(crate) restarts: u32,
    /// Turns finished (from the ledger: they survive host restarts).
    pub(crate) turns: u64,
    /// USD spent (from the ledger).
    pub(crate) cost_usd: f64,
    /// When its current or last CLI started, seconds since the epoch.
    pub(crate) started_at: Option<u64>,
    /// When a turn was last sent to it, seconds since the epoch.
    pub(crate) last_activity: Option<u64>,
    /// In a cluster: the member (node name) that holds the session. Absent on a host
    /// without `--cluster`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
}

/// `GET /v1/sessions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SessionList {
    /// The caller's sessions; in a cluster, those of every member (each with its
    /// `owner`), by name.
    pub(crate) sessions: Vec<SessionObject>,
    /// In a cluster: sessions whose owner did not answer in time (or whose owner's
    /// heartbeat expired and which have not moved yet), by name and owner only. Absent
    /// when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) unreachable: Vec<UnreachableSession>,
}

/// A session in a cluster whose owner did not answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct UnreachableSession {
    /// Its name.
    pub(crate) name: String,
    /// The member that holds its lease.
    pub(crate) owner: String,
}

/// The JSON reply of a turn (without `Accept: text/event-stream`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TurnReply {
    /// The turn's final text (empty when it failed).
    pub(crate) text: String,
    /// The conversation id.
    pub(crate) session_id: Option<String>,
    /// What the turn cost, USD.
    pub(crate) cost_usd: f64,
    /// Whether the turn ended with an error result.
    pub(crate) is_error: bool,
    /// The error result, when `is_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<TurnError>,
}

/// An error result of a turn.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TurnError {
    /// The result's subtype (`error_max_turns`, `error_during_execution`, …).
    pub(crate) subtype: String,
    /// What went wrong.
    pub(crate) message: String,
    /// The HTTP status of a failed Messages API call, if that was the cause.
    pub(crate) api_status: Option<u16>,
}

/// A session's conversation from the CLI's stored transcript.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Transcript {
    /// The conversation id (`null` before the first turn).
    pub(crate) session_id: Option<String>,
    /// Prompts and replies in order.
    pub(crate) messages: Vec<TranscriptMessage>,
}

/// One message of a transcript.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TranscriptMessage {
    /// `user` or `assistant`.
    pub(crate) role: &'static str,
    /// Its text.
    pub(crate) text: String,
}

/// `GET /v1/audit`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct AuditEvents {
    /// Newest first.
    pub(crate) events: Vec<AuditEvent>,
}

/// One row of the audit trail: an API call (`kind: "http"`) or a session event
/// (`tool_use`, `tool_result`, `permission_decision`, `hook_decision`,
/// `control_request`, `mcp_tool_call`, `dropped`). Fields that do not apply to the row's
/// kind are left out.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct AuditEvent {
    /// Seconds since the epoch.
    pub(crate) at: i64,
    /// `http`, or the session event's kind.
    pub(crate) kind: String,
    /// The caller's tenant (`null` when authentication failed).
    pub(crate) tenant: Option<String>,
    /// Session events: the tenant's session name, `pool:<name>` or `query`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<String>,
    /// HTTP: the request's `x-request-id`, or `-`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
    /// HTTP: the token's public id (absent when anonymous).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token_id: Option<String>,
    /// HTTP method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) method: Option<String>,
    /// HTTP: the route template (`/v1/sessions/{name}`), never the raw path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) route: Option<String>,
    /// HTTP: the response's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// HTTP: time to the response head, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) millis: Option<u64>,
    /// Session events: the SDK's event, redacted (`at_ms`, `session_id` of the CLI,
    /// `kind` and the kind's fields, e.g. `tool`, `behavior`, `decided_by`, `message`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) detail: Option<serde_json::Value>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    pub(crate) status: &'static str,
}

/// `GET /readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready`.
    pub(crate) status: &'static str,
    /// Whether sessions talk to the built-in mock Messages API.
    pub(crate) offline: bool,
    /// In a cluster: `connected`, or `disconnected` while the connection to the NATS
    /// server is down (the host stays ready: it still serves what is its own, and the
    /// cluster's sessions answer 503 `cluster_unavailable` / `lease_unconfirmed`). Absent
    /// without a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nats: Option<&'static str>,
}
