//! The audit trail's writer: handlers and the hosted sessions' audit sinks hand rows to
//! a channel, one task appends them to the state store in batches (one transaction
//! each) and, when configured, to a JSON lines file, so that neither a request nor a
//! session ever waits for the disk. [`AuditLog::flush`] waits until everything handed
//! over is committed (and the file flushed).
//!
//! Rows are HTTP calls (one per `/v1` request, from `auth.rs`) and session events: what
//! the SDK reports through [`Options::audit`] for every hosted session (named, dynamic,
//! pool members, the warm spares behind `/v1/query`), already redacted by the SDK with
//! the host's [`Redactor`] (secret keys, `Bearer` credentials, the host's `cch_` tokens,
//! `sk-ant-` keys, the sessions' API keys). Each event is stored with its tenant and
//! session: fixed for a tenant's own session; for shared sessions (pools, spares) taken
//! from the turn's audit context (`<tenant>/<label>`, set by the turn's route), and
//! `NULL` between turns (such rows belong to the host and no tenant sees them).

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use claude_code::{
    audit::{AuditEvent, Redactor},
    Options,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditRow, EventRow, Store};

/// Most rows per transaction.
const BATCH: usize = 256;

/// The prefix of every bearer token the host issues (`cch_<id>_<secret>`).
pub(crate) const TOKEN_PREFIX: &str = "cch_";

enum Msg {
    Row(AuditRow),
    Event(EventRow),
    Flush(oneshot::Sender<()>),
}

/// Whose events a hosted session reports.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// A tenant's own session (named in the configuration, or dynamic).
    Tenant {
        /// The tenant.
        tenant: String,
        /// The session's name as the tenant knows it.
        session: String,
    },
    /// A session shared by every tenant (a pool member, a warm spare): the turn's audit
    /// context names the tenant; `label` is the session column between turns.
    Shared {
        /// `pool:<name>` or `query`.
        label: String,
    },
}

/// The audit trail's entry point. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    tx: mpsc::UnboundedSender<Msg>,
    redactor: Redactor,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

/// The JSON lines file, appended to by the writer task.
type Jsonl = Arc<Mutex<std::io::BufWriter<std::fs::File>>>;

impl AuditLog {
    /// Starts the writer; with `jsonl`, also appends every row to that file (created
    /// with its directory if missing, mode 0600).
    pub(crate) fn start(store: Store, jsonl: Option<&Path>) -> Result<AuditLog, crate::ServeError> {
        let file = match jsonl {
            Some(path) => Some(open_jsonl(path)?),
            None => None,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut rows = Vec::new();
            let mut events = Vec::new();
            let mut flushes = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    match msg {
                        Msg::Row(row) => rows.push(row),
                        Msg::Event(event) => events.push(event),
                        Msg::Flush(done) => flushes.push(done),
                    }
                    if rows.len() + events.len() < BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if !rows.is_empty() || !events.is_empty() {
                    let (rows, events) = (std::mem::take(&mut rows), std::mem::take(&mut events));
                    let file = file.clone();
                    let written = store
                        .run(move |s| {
                            let stored = s.append_audit(&rows, &events);
                            if let Some(file) = &file {
                                if let Err(e) = append_lines(file, &rows, &events) {
                                    tracing::error!(error = %e, "cannot write the audit JSON lines file");
                                }
                            }
                            stored
                        })
                        .await;
                    if let Err(e) = written {
                        tracing::error!(error = %e, "cannot write the audit trail");
                    }
                }
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Ok(AuditLog {
            tx,
            redactor: Redactor::new().token_prefix(TOKEN_PREFIX),
        })
    }

    /// Queues one HTTP row.
    pub(crate) fn record(&self, row: AuditRow) {
        let _ = self.tx.send(Msg::Row(row));
    }

    /// `options` with a sink that hands the session's audit events to this log (never
    /// blocking the session) as `owner`'s, redacted with the host's redactor.
    pub(crate) fn attach(&self, options: Options, owner: Owner) -> Options {
        let log = self.clone();
        options
            .audit(move |event| log.event(event, &owner))
            .audit_redactor(self.redactor.clone())
    }

    /// Queues one session event.
    fn event(&self, event: &AuditEvent, owner: &Owner) {
        let (tenant, session) = match owner {
            Owner::Tenant { tenant, session } => (Some(tenant.clone()), Some(session.clone())),
            Owner::Shared { label } => {
                match event.context.as_deref().and_then(|c| c.split_once('/')) {
                    Some((tenant, label)) => (Some(tenant.to_string()), Some(label.to_string())),
                    None => (None, Some(label.clone())),
                }
            }
        };
        let detail = match serde_json::to_string(event) {
            Ok(detail) => detail,
            Err(e) => {
                tracing::error!(error = %e, "an audit event could not be serialized");
                return;
            }
        };
        let _ = self.tx.send(Msg::Event(EventRow {
            at: i64::try_from(event.at_ms / 1000).unwrap_or(i64::MAX),
            kind: event.kind.name(),
            tenant,
            session,
            detail,
        }));
    }

    /// Also redacts `secret` wherever it appears in session events: the host's real
    /// credentials, which its children never hold (they get a credential-proxy token)
    /// but a tool input may still quote.
    pub(crate) fn redact_secret(&mut self, secret: impl Into<String>) {
        self.redactor = self.redactor.clone().secret(secret);
    }

    /// Waits until every row queued before this call is committed (and written to the
    /// JSON lines file, flushed).
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// The audit context a turn on a shared session carries: `<tenant>/<label>`.
pub(crate) fn turn_context(tenant: &str, label: &str) -> String {
    format!("{tenant}/{label}")
}

fn open_jsonl(path: &Path) -> Result<Jsonl, crate::ServeError> {
    let err = |source| crate::ServeError::AuditFile {
        path: PathBuf::from(path),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let file = open.open(path).map_err(err)?;
    Ok(Arc::new(Mutex::new(std::io::BufWriter::new(file))))
}

/// Appends one JSON object per row (HTTP calls as `kind: "http"`; session events as
/// the SDK's event with `tenant` and `session` added) and flushes.
fn append_lines(file: &Jsonl, rows: &[AuditRow], events: &[EventRow]) -> std::io::Result<()> {
    let mut out = file.lock().unwrap_or_else(PoisonError::into_inner);
    for r in rows {
        let line = json!({
            "kind": "http", "at": r.at, "tenant": r.tenant, "request_id": r.request_id,
            "token_id": r.token_id, "method": r.method, "route": r.route,
            "status": r.status, "millis": r.millis,
        });
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    for e in events {
        let mut line = match serde_json::from_str::<Value>(&e.detail) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        line.insert("at".into(), json!(e.at));
        line.insert("tenant".into(), json!(e.tenant));
        line.insert("session".into(), json!(e.session));
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
