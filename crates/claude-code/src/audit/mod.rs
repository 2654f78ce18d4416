//! The audit trail of a session: every tool use and tool result, every permission and
//! hook decision, every control request both ways and every call to an in-process MCP
//! tool, as typed [`AuditEvent`]s handed to a sink set with [`Options::audit`].
//!
//! Each concern emits from the one place it lives: the session's stdout reader (tool
//! uses, tool results), the control dispatcher (control requests), the permission,
//! hook and MCP wrappers in `callbacks` (decisions, tool calls). Every event is passed
//! through the session's [`Redactor`] before the sink sees it.
//!
//! **The sink never slows the session.** Events go through a bounded queue (1024 per
//! session) to a task of their own, which calls the sink with panics caught. A full
//! queue drops the event and counts it; the next event that fits is preceded by
//! [`AuditKind::Dropped`] with the count. The sink runs on a Tokio worker: it must be
//! fast and must not block. Hand events to a channel (or an append-only writer) and do
//! the slow work elsewhere. A session's events are delivered before
//! [`Session::stop`](crate::Session::stop) returns (waiting at most 2 s for the sink).
//!
//! Without [`Options::audit`] nothing of this runs: no queue, no task, no parsing.
//!
//! ```
//! use claude_code::{audit::{AuditKind, Redactor}, Options};
//! let opts = Options::new()
//!     .audit(|event| {
//!         if let AuditKind::PermissionDecision { tool, behavior, .. } = &event.kind {
//!             println!("{tool}: {behavior:?}");
//!         }
//!     })
//!     .audit_redactor(Redactor::new().secret("my-real-api-key"));
//! ```
//!
//! [`Options::audit`]: crate::Options::audit

pub mod redact;

use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use redact::{is_secret_key, Redactor};

/// Events queued per session before new ones are dropped.
const QUEUE: usize = 1024;

/// How long a stopping session waits for its sink to take the last events.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// One audited fact about a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The CLI's session (conversation) id, once known.
    pub session_id: Option<String>,
    /// The audit context of the turn running when it happened, as set with
    /// [`UserInput::with_audit_context`](crate::UserInput::with_audit_context) (e.g.
    /// who asked for the turn on a shared session); `None` between turns.
    pub context: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: AuditKind,
}

/// What an [`AuditEvent`] records. Serialized with a `"kind"` tag
/// ([`AuditKind::name`]) beside its fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// The model called a tool (a `tool_use` block of an assistant message).
    ToolUse {
        /// The tool use id.
        id: String,
        /// The tool.
        name: String,
        /// The model's input (redacted).
        input: Value,
        /// The subagent's tool use this belongs to, if any.
        parent_tool_use_id: Option<String>,
    },
    /// A tool's result came back (a `tool_result` block of a user message).
    ToolResult {
        /// The tool use it answers.
        tool_use_id: String,
        /// Whether the result is an error (a denial included).
        is_error: bool,
    },
    /// A `can_use_tool` request was answered.
    PermissionDecision {
        /// The tool.
        tool: String,
        /// The tool use id, when the CLI sent it.
        tool_use_id: Option<String>,
        /// The input asked about (redacted).
        input: Value,
        /// Allow or deny.
        behavior: Behavior,
        /// The denial's message for the model (redacted), if any.
        message: Option<String>,
        /// Whether the deny also interrupts the turn.
        interrupt: bool,
        /// Whether the allow rewrote the input.
        input_rewritten: bool,
        /// Who decided.
        decided_by: DecidedBy,
    },
    /// A hook callback was answered.
    HookDecision {
        /// The hook event (`PreToolUse`, `Stop`, …).
        event: String,
        /// The callback id (`hook_<n>`, in registration order).
        callback_id: String,
        /// The tool, for tool events.
        tool: Option<String>,
        /// The tool use id, for tool events.
        tool_use_id: Option<String>,
        /// `continue` as answered (`Some(false)` stops the agent).
        #[serde(rename = "continue")]
        continue_: Option<bool>,
        /// `decision` as answered (`block`).
        decision: Option<String>,
        /// `permissionDecision` (PreToolUse) or `decision.behavior`
        /// (PermissionRequest), if any.
        permission_decision: Option<String>,
        /// The reason given with it (redacted), if any.
        reason: Option<String>,
        /// Who decided.
        decided_by: DecidedBy,
    },
    /// A control request finished, in either direction.
    ControlRequest {
        /// Who sent it.
        direction: ControlDirection,
        /// Its subtype (`initialize`, `can_use_tool`, `interrupt`, …).
        subtype: String,
        /// Its request id.
        request_id: String,
        /// How it ended.
        outcome: ControlOutcome,
        /// From sending (or receiving) to the answer, in milliseconds.
        millis: u64,
    },
    /// The CLI called a tool of an in-process MCP server.
    McpToolCall {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
        /// The arguments (redacted).
        arguments: Value,
        /// Whether the result is an error (handler error, panic, timeout, unknown tool).
        is_error: bool,
    },
    /// Events were dropped because the sink fell behind (the queue was full).
    Dropped {
        /// How many since the last delivered event.
        count: u64,
    },
}

impl AuditKind {
    /// The `"kind"` tag: `tool_use`, `tool_result`, `permission_decision`,
    /// `hook_decision`, `control_request`, `mcp_tool_call` or `dropped`.
    pub fn name(&self) -> &'static str {
        match self {
            AuditKind::ToolUse { .. } => "tool_use",
            AuditKind::ToolResult { .. } => "tool_result",
            AuditKind::PermissionDecision { .. } => "permission_decision",
            AuditKind::HookDecision { .. } => "hook_decision",
            AuditKind::ControlRequest { .. } => "control_request",
            AuditKind::McpToolCall { .. } => "mcp_tool_call",
            AuditKind::Dropped { .. } => "dropped",
        }
    }

    /// Every [`AuditKind::name`].
    pub const NAMES: [&'static str; 7] = [
        "tool_use",
        "tool_result",
        "permission_decision",
        "hook_decision",
        "control_request",
        "mcp_tool_call",
        "dropped",
    ];
}

/// A permission decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Behavior {
    /// The tool may run.
    Allow,
    /// The tool is refused.
    Deny,
}

/// Who made a permission or hook decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecidedBy {
    /// The registered callback, with an answer that made sense.
    Callback,
    /// The callback panicked, timed out or answered nonsense, and the SDK denied the
    /// tool (fail closed) or, for an observer hook, answered the CLI with an error.
    CallbackFailed {
        /// What went wrong.
        failure: String,
    },
    /// No callback is registered: the SDK denied.
    NoCallback,
}

/// Who sent a control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ControlDirection {
    /// The CLI asked the SDK (`can_use_tool`, `hook_callback`, `mcp_message`, …).
    Inbound,
    /// The SDK asked the CLI (`initialize`, `interrupt`, `set_model`, …).
    Outbound,
}

/// How a control request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ControlOutcome {
    /// Answered with success.
    Ok,
    /// Answered with an error.
    Error {
        /// The error message (redacted).
        message: String,
    },
    /// No answer in time: the caller gave up waiting.
    Timeout,
    /// The CLI cancelled its request before the SDK answered.
    Cancelled,
}

/// The sink a session hands its audit events to (see the module docs).
pub type AuditSink = Arc<dyn Fn(&AuditEvent) + Send + Sync>;

/// What [`Options::audit`](crate::Options::audit) stores.
#[derive(Clone)]
pub(crate) struct AuditConfig {
    pub(crate) sink: AuditSink,
    pub(crate) redactor: Redactor,
}

enum Msg {
    Event(Box<AuditEvent>),
    Close(oneshot::Sender<()>),
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    redactor: Redactor,
    dropped: AtomicU64,
}

/// A session's emitter: disabled (`None`, free) or a queue to its sink task. Cheap to
/// clone.
#[derive(Clone, Default)]
pub(crate) struct Auditor(Option<Arc<Inner>>);

impl Auditor {
    /// Starts the sink task for a session (needs a Tokio runtime).
    pub(crate) fn start(config: Option<&AuditConfig>, extra_secrets: Vec<String>) -> Auditor {
        let Some(config) = config else {
            return Auditor(None);
        };
        let redactor = extra_secrets
            .into_iter()
            .fold(config.redactor.clone(), Redactor::secret);
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let sink = config.sink.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Event(event) => {
                        let call = AssertUnwindSafe(|| sink(&event));
                        if std::panic::catch_unwind(call).is_err() {
                            tracing::warn!(
                                kind = event.kind.name(),
                                "the audit sink panicked; event lost"
                            );
                        }
                    }
                    Msg::Close(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Auditor(Some(Arc::new(Inner {
            tx,
            redactor,
            dropped: AtomicU64::new(0),
        })))
    }

    /// Whether events are recorded at all.
    pub(crate) fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// The redactor, when enabled.
    pub(crate) fn redactor(&self) -> Option<&Redactor> {
        self.0.as_ref().map(|i| &i.redactor)
    }

    /// Queues one event (never waits). `build` runs only when enabled and gets the
    /// redactor, so that a disabled auditor costs nothing.
    pub(crate) fn emit(
        &self,
        session_id: Option<&str>,
        context: Option<&str>,
        build: impl FnOnce(&Redactor) -> AuditKind,
    ) {
        let Some(inner) = &self.0 else { return };
        let event = |kind| {
            Box::new(AuditEvent {
                at_ms: now_ms(),
                session_id: session_id.map(str::to_string),
                context: context.map(str::to_string),
                kind,
            })
        };
        let dropped = inner.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            let permit = inner.tx.try_reserve_many(2);
            match permit {
                Ok(mut permits) => {
                    inner.dropped.fetch_sub(dropped, Ordering::Relaxed);
                    if let Some(p) = permits.next() {
                        p.send(Msg::Event(event(AuditKind::Dropped { count: dropped })));
                    }
                    if let Some(p) = permits.next() {
                        p.send(Msg::Event(event(build(&inner.redactor))));
                    }
                }
                Err(_) => {
                    inner.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        match inner.tx.try_reserve() {
            Ok(permit) => permit.send(Msg::Event(event(build(&inner.redactor)))),
            Err(_) => {
                if inner.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("the audit sink is behind; dropping audit events");
                }
            }
        }
    }

    /// Waits (at most 2 s) until the sink has seen every event queued so far.
    pub(crate) async fn close(&self) {
        let Some(inner) = &self.0 else { return };
        let (done, wait) = oneshot::channel();
        let sent = tokio::time::timeout(CLOSE_WAIT, inner.tx.send(Msg::Close(done))).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(CLOSE_WAIT, wait).await;
        }
    }
}

/// What a callback task needs to audit its answer: the emitter and the session's
/// identity at the time the request came in.
#[derive(Clone, Default)]
pub(crate) struct AuditScope {
    pub(crate) auditor: Auditor,
    pub(crate) session_id: Option<String>,
    pub(crate) context: Option<String>,
}

impl AuditScope {
    /// Queues one event with this scope's session id and context.
    pub(crate) fn emit(&self, build: impl FnOnce(&Redactor) -> AuditKind) {
        self.auditor
            .emit(self.session_id.as_deref(), self.context.as_deref(), build);
    }

    /// A finished control request.
    pub(crate) fn control(
        &self,
        direction: ControlDirection,
        subtype: &str,
        request_id: &str,
        outcome: Result<(), ControlOutcome>,
        started: Instant,
    ) {
        self.emit(|r| AuditKind::ControlRequest {
            direction,
            subtype: subtype.to_string(),
            request_id: request_id.to_string(),
            outcome: match outcome {
                Ok(()) => ControlOutcome::Ok,
                Err(ControlOutcome::Error { message }) => ControlOutcome::Error {
                    message: r.text(&message),
                },
                Err(other) => other,
            },
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `tool_use` blocks of an assistant line and `tool_result` blocks of a user line, as
/// audit events (only called when auditing).
pub(crate) fn from_stdout_line(kind: &str, text: &str, r: &Redactor) -> Vec<AuditKind> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let parent = v
        .get("parent_tool_use_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(blocks) = v.pointer("/message/content").and_then(Value::as_array) else {
        return Vec::new();
    };
    let str_of = |b: &Value, k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    blocks
        .iter()
        .filter_map(|b| match (kind, b.get("type").and_then(Value::as_str)) {
            ("assistant", Some("tool_use" | "server_tool_use")) => Some(AuditKind::ToolUse {
                id: str_of(b, "id"),
                name: str_of(b, "name"),
                input: r.value(b.get("input").unwrap_or(&Value::Null)),
                parent_tool_use_id: parent.clone(),
            }),
            ("user", Some("tool_result")) => Some(AuditKind::ToolResult {
                tool_use_id: str_of(b, "tool_use_id"),
                is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    fn collecting() -> (AuditConfig, Arc<Mutex<Vec<AuditEvent>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let sink: AuditSink = Arc::new(move |e: &AuditEvent| {
            log.lock().expect("lock").push(e.clone());
        });
        (
            AuditConfig {
                sink,
                redactor: Redactor::new(),
            },
            seen,
        )
    }

    #[tokio::test]
    async fn events_reach_the_sink_in_order_redacted_and_serialize_with_their_kind() {
        let (config, seen) = collecting();
        let auditor = Auditor::start(Some(&config), vec!["the-real-key".into()]);
        let line = json!({"type": "assistant", "parent_tool_use_id": null, "message": {"content": [
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash",
             "input": {"command": "echo the-real-key", "api_key": "x"}}
        ]}})
        .to_string();
        for kind in from_stdout_line("assistant", &line, auditor.redactor().expect("on")) {
            auditor.emit(Some("s1"), Some("acme"), |_| kind);
        }
        let user = json!({"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true, "content": "no"}
        ]}})
        .to_string();
        for kind in from_stdout_line("user", &user, auditor.redactor().expect("on")) {
            auditor.emit(Some("s1"), None, |_| kind);
        }
        auditor.close().await;
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let v = serde_json::to_value(&seen[0]).expect("json");
        assert_eq!(v["kind"], "tool_use");
        assert_eq!(v["session_id"], "s1");
        assert_eq!(v["context"], "acme");
        assert_eq!(v["input"]["command"], "echo [redacted]");
        assert_eq!(v["input"]["api_key"], "[redacted]");
        assert!(v["at_ms"].as_u64().is_some_and(|t| t > 1_600_000_000_000));
        assert_eq!(
            seen[1].kind,
            AuditKind::ToolResult {
                tool_use_id: "toolu_1".into(),
                is_error: true
            }
        );
    }

    #[tokio::test]
    async fn a_disabled_auditor_never_builds_an_event() {
        let auditor = Auditor::start(None, Vec::new());
        assert!(!auditor.enabled());
        auditor.emit(None, None, |_| unreachable!("built while disabled"));
        auditor.close().await;
    }

    #[tokio::test]
    async fn a_panicking_sink_loses_its_event_but_the_next_ones_arrive() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let sink: AuditSink = Arc::new(move |e: &AuditEvent| {
            if matches!(e.kind, AuditKind::Dropped { count: 1 }) {
                panic!("sink bug");
            }
            log.lock().expect("lock").push(e.kind.clone());
        });
        let config = AuditConfig {
            sink,
            redactor: Redactor::new(),
        };
        let auditor = Auditor::start(Some(&config), Vec::new());
        auditor.emit(None, None, |_| AuditKind::Dropped { count: 1 });
        auditor.emit(None, None, |_| AuditKind::Dropped { count: 2 });
        auditor.close().await;
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![AuditKind::Dropped { count: 2 }]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_and_then_reports_how_many() {
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new(Some(gate_rx));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let sink: AuditSink = Arc::new(move |e: &AuditEvent| {
            // The first event blocks the sink until the test has overfilled the queue.
            if let Some(rx) = gate.lock().expect("lock").take() {
                let _ = rx.recv();
            }
            log.lock().expect("lock").push(e.kind.clone());
        });
        let config = AuditConfig {
            sink,
            redactor: Redactor::new(),
        };
        let auditor = Auditor::start(Some(&config), Vec::new());
        let tool = |n: usize| AuditKind::ToolResult {
            tool_use_id: n.to_string(),
            is_error: false,
        };
        // The sink task takes the first event and blocks; then 1024 fit, 10 are dropped.
        auditor.emit(None, None, |_| tool(0));
        let started = Instant::now();
        while auditor.0.as_ref().is_some_and(|i| i.tx.capacity() < QUEUE) {
            tokio::task::yield_now().await;
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        for n in 1..=QUEUE + 10 {
            auditor.emit(None, None, |_| tool(n));
        }
        gate_tx.send(()).expect("gate");
        auditor.close().await;
        auditor.emit(None, None, |_| tool(9999));
        auditor.close().await;
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 1 + QUEUE + 2, "first, the queue, dropped, last");
        assert_eq!(seen[QUEUE + 1], AuditKind::Dropped { count: 10 });
        assert_eq!(seen[QUEUE + 2], tool(9999));
    }
}
