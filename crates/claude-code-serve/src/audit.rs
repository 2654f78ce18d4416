//! The audit trail's writer: handlers hand rows to a channel, one task appends them to
//! the state store in batches (one transaction each), so that a request never waits for
//! the disk. [`AuditLog::flush`] waits until everything handed over is committed.

use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditRow, Store};

/// Most rows per transaction.
const BATCH: usize = 256;

enum Msg {
    Row(AuditRow),
    Flush(oneshot::Sender<()>),
}

/// The audit trail's entry point. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    tx: mpsc::UnboundedSender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

impl AuditLog {
    /// Starts the writer.
    pub(crate) fn start(store: Store) -> AuditLog {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut rows = Vec::new();
            let mut flushes = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    match msg {
                        Msg::Row(row) => rows.push(row),
                        Msg::Flush(done) => flushes.push(done),
                    }
                    if rows.len() < BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if !rows.is_empty() {
                    let batch = std::mem::take(&mut rows);
                    if let Err(e) = store.run(move |s| s.append_audit(&batch)).await {
                        tracing::error!(error = %e, "cannot write the audit trail");
                    }
                }
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        AuditLog { tx }
    }

    /// Queues one row.
    pub(crate) fn record(&self, row: AuditRow) {
        let _ = self.tx.send(Msg::Row(row));
    }

    /// Waits until every row queued before this call is committed.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}
