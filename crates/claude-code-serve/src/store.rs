//! The host's durable state in SQLite (`<data dir>/claude-code.db`): tenants and hashed
//! tokens, dynamic sessions, the cost ledger and the audit trail. Migrations live in
//! `migrations/` and are applied in order on open (tracked by `PRAGMA user_version`).
//!
//! The database runs in WAL mode with `synchronous = NORMAL`: a committed transaction
//! survives the host being killed (`kill -9`); an operating-system crash or power loss
//! may lose the last few. Reads (token checks, listings) use their own connection, so
//! they never wait for a write to reach the disk.
//!
//! `claude-code token create` uses [`Store::create_token`] on the same file, also while
//! a host runs.
//!
//! ```no_run
//! use claude_code_serve::{store::Store, Scope};
//! let store = Store::open("/var/lib/claude-code".as_ref())?;
//! let token = store.create_token("acme", Scope::Write)?;
//! println!("{}", token.secret);
//! # Ok::<(), claude_code_serve::store::StoreError>(())
//! ```

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::Scope;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "claude-code.db";

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_audit_events.sql"),
    include_str!("../migrations/0003_carried_spend.sql"),
];

/// What went wrong with the state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {dir}: {source}")]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("state store ({path}): {source}")]
    Sqlite {
        /// The database file (or `:memory:`).
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer version of this program.
    #[error(
        "the state store {path} has schema version {found}, newer than this program's {known}; \
         run a newer claude-code or use another --data-dir"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// Its schema version.
        found: i64,
        /// The newest this program knows.
        known: i64,
    },
    /// A tenant name that is not 1-64 characters of `A-Z a-z 0-9 _ -`.
    #[error("tenant name {0:?} must be 1-64 characters of A-Z, a-z, 0-9, _ or -")]
    BadTenant(String),
    /// A blocking task could not run (the runtime is shutting down).
    #[error("the state store's worker stopped: {0}")]
    Worker(String),
}

/// A token just created: `secret` is shown once and never stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewToken {
    /// The token's public id (also its prefix).
    pub id: String,
    /// The whole bearer token, `cch_<id>_<secret>`.
    pub secret: String,
    /// Its tenant.
    pub tenant: String,
    /// Its scope.
    pub scope: Scope,
}

/// A stored token, without its secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenInfo {
    /// Its public id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its scope.
    pub scope: Scope,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Who a verified token belongs to.
#[derive(Debug, Clone)]
pub(crate) struct TokenOwner {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) scope: Scope,
}

/// A dynamic session as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredSession {
    pub(crate) tenant: String,
    pub(crate) name: String,
    /// The creation request's `template` and `options`, as JSON.
    pub(crate) spec: String,
    pub(crate) session_id: Option<String>,
}

/// One finished turn for the ledger.
#[derive(Debug, Clone)]
pub(crate) struct TurnRow {
    pub(crate) tenant: String,
    /// `session`, `pool` or `query`.
    pub(crate) kind: &'static str,
    /// The session or pool name (`-` for queries).
    pub(crate) target: String,
    pub(crate) session_id: Option<String>,
    pub(crate) cost_usd: f64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) is_error: bool,
}

/// One API call for the audit trail.
#[derive(Debug, Clone)]
pub(crate) struct AuditRow {
    pub(crate) at: i64,
    pub(crate) request_id: String,
    pub(crate) tenant: Option<String>,
    pub(crate) token_id: Option<String>,
    pub(crate) method: String,
    pub(crate) route: String,
    pub(crate) status: u16,
    pub(crate) millis: u64,
}

/// One session event for the audit trail (a redacted SDK audit event).
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) at: i64,
    /// The SDK event's kind (`tool_use`, `permission_decision`, …).
    pub(crate) kind: &'static str,
    pub(crate) tenant: Option<String>,
    pub(crate) session: Option<String>,
    /// The event as JSON.
    pub(crate) detail: String,
}

/// One row of the audit trail as read back: an HTTP call or a session event.
#[derive(Debug, Clone)]
pub(crate) struct StoredAudit {
    pub(crate) at: i64,
    pub(crate) kind: String,
    pub(crate) tenant: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) token_id: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) route: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) millis: Option<u64>,
    pub(crate) detail: Option<String>,
}

/// Which audit rows to read (newest first).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    /// Only this tenant's rows (`None`: every tenant's).
    pub(crate) tenant: Option<String>,
    /// Only rows of this kind.
    pub(crate) kind: Option<String>,
    /// Only rows of this session.
    pub(crate) session: Option<String>,
    /// Only rows at or after this time (seconds since the epoch).
    pub(crate) since: Option<i64>,
    /// Most rows.
    pub(crate) limit: u32,
}

/// Turns and USD of one session or pool, from the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) turns: u64,
    pub(crate) cost_usd: f64,
}

/// The state store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    path: Arc<str>,
    read: Arc<Mutex<Connection>>,
    write: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating it and the directory if needed) `<dir>/claude-code.db` and
    /// applies the migrations it lacks.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join(DB_FILE);
        let path: Arc<str> = file.display().to_string().into();
        let err = |source| StoreError::Sqlite {
            path: path.to_string(),
            source,
        };
        let write = Connection::open(&file).map_err(err)?;
        write
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        write
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(err)?;
        migrate(&write, &path)?;
        let read = Connection::open(&file).map_err(err)?;
        read.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        Ok(Store {
            path,
            read: Arc::new(Mutex::new(read)),
            write: Arc::new(Mutex::new(write)),
        })
    }

    /// A store that lives in memory only (lost when the host stops).
    pub fn in_memory() -> Result<Store, StoreError> {
        let path: Arc<str> = ":memory:".into();
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: path.to_string(),
            source,
        })?;
        migrate(&conn, &path)?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(Store {
            path,
            read: conn.clone(),
            write: conn,
        })
    }

    /// The database file (or `:memory:`).
    pub fn path(&self) -> &str {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.to_string(),
            source,
        }
    }

    fn with_write<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn).map_err(self.err())
    }

    fn with_read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn).map_err(self.err())
    }

    /// Runs `f` on a blocking thread (SQLite calls block).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Creates a token for `tenant` (creating the tenant if new). The returned secret is
    /// the only copy: the store keeps its SHA-256.
    pub fn create_token(&self, tenant: &str, scope: Scope) -> Result<NewToken, StoreError> {
        if !crate::state::is_valid_name(tenant) {
            return Err(StoreError::BadTenant(tenant.to_string()));
        }
        let id = hex(&random::<8>());
        let secret = hex(&random::<32>());
        let hash = Sha256::digest(secret.as_bytes()).to_vec();
        let now = now();
        self.with_write(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?1, ?2)",
                params![tenant, now],
            )?;
            tx.execute(
                "INSERT INTO tokens (id, tenant, scope, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, tenant, scope.as_str(), hash, now],
            )?;
            tx.commit()
        })?;
        Ok(NewToken {
            secret: format!("cch_{id}_{secret}"),
            id,
            tenant: tenant.to_string(),
            scope,
        })
    }

    /// Revokes a token; `false` if there was no such (unrevoked) token.
    pub fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let n = self.with_write(|c| {
            c.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now()],
            )
        })?;
        Ok(n > 0)
    }

    /// Every token, without secrets.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.with_read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, tenant, scope, created_at, revoked_at IS NOT NULL FROM tokens ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    scope: Scope::parse(&r.get::<_, String>(2)?).unwrap_or(Scope::Read),
                    created_at: r.get(3)?,
                    revoked: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Whether any unrevoked token exists (then every request needs one).
    pub fn has_tokens(&self) -> Result<bool, StoreError> {
        self.with_read(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM tokens WHERE revoked_at IS NULL)",
                [],
                |r| r.get(0),
            )
        })
    }

    /// The owner of a bearer token, or `None` when it is malformed, unknown, revoked or
    /// wrong. The secret is compared in constant time, by its hash.
    pub(crate) fn verify(&self, token: &str) -> Result<Option<TokenOwner>, StoreError> {
        let Some((id, secret)) = token
            .strip_prefix("cch_")
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        let row: Option<(String, String, Vec<u8>)> = self.with_read(|c| {
            c.query_row(
                "SELECT tenant, scope, hash FROM tokens WHERE id = ?1 AND revoked_at IS NULL",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
        })?;
        let Some((tenant, scope, hash)) = row else {
            return Ok(None);
        };
        let given = Sha256::digest(secret.as_bytes());
        if !bool::from(given.as_slice().ct_eq(&hash)) {
            return Ok(None);
        }
        Ok(Scope::parse(&scope).map(|scope| TokenOwner {
            id: id.to_string(),
            tenant,
            scope,
        }))
    }

    /// Records a dynamic session; `false` if the tenant already has one of that name.
    pub(crate) fn insert_session(&self, s: &StoredSession) -> Result<bool, StoreError> {
        let n = self.with_write(|c| {
            c.execute(
                "INSERT OR IGNORE INTO sessions (tenant, name, spec, session_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.tenant, s.name, s.spec, s.session_id, now()],
            )
        })?;
        Ok(n > 0)
    }

    /// Forgets a dynamic session (its ledger rows stay).
    pub(crate) fn delete_session(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.with_write(|c| {
            c.execute(
                "DELETE FROM sessions WHERE tenant = ?1 AND name = ?2",
                params![tenant, name],
            )
        })?;
        Ok(())
    }

    /// Every dynamic session, oldest first.
    pub(crate) fn sessions(&self) -> Result<Vec<StoredSession>, StoreError> {
        self.with_read(|c| {
            let mut stmt = c.prepare(
                "SELECT tenant, name, spec, session_id FROM sessions ORDER BY created_at, rowid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredSession {
                    tenant: r.get(0)?,
                    name: r.get(1)?,
                    spec: r.get(2)?,
                    session_id: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Commits one turn to the ledger and, for a dynamic session, its conversation id.
    pub(crate) fn record_turn(&self, t: &TurnRow) -> Result<(), StoreError> {
        self.with_write(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO turns (at, tenant, kind, target, session_id, cost_usd, input_tokens, output_tokens, is_error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    now(),
                    t.tenant,
                    t.kind,
                    t.target,
                    t.session_id,
                    t.cost_usd,
                    t.input_tokens as i64,
                    t.output_tokens as i64,
                    t.is_error
                ],
            )?;
            if t.kind == "session" {
                if let Some(id) = &t.session_id {
                    tx.execute(
                        "UPDATE sessions SET session_id = ?3 WHERE tenant = ?1 AND name = ?2",
                        params![t.tenant, t.target, id],
                    )?;
                }
            }
            tx.commit()
        })
    }

    /// Turns and cost per session of a tenant, from the ledger (with what sessions
    /// taken over from other cluster members carried, see [`Store::carry_spend`]).
    pub(crate) fn session_totals(
        &self,
        tenant: &str,
    ) -> Result<HashMap<String, Totals>, StoreError> {
        self.with_read(|c| {
            let mut stmt = c.prepare(
                "SELECT target, SUM(n), SUM(usd) FROM ( \
                   SELECT target, COUNT(*) AS n, COALESCE(SUM(cost_usd), 0) AS usd FROM turns \
                   WHERE tenant = ?1 AND kind = 'session' GROUP BY target \
                   UNION ALL \
                   SELECT target, SUM(turns), SUM(cost_usd) FROM carried \
                   WHERE tenant = ?1 GROUP BY target \
                 ) GROUP BY target",
            )?;
            let rows = stmt.query_map(params![tenant], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Totals {
                        turns: r.get::<_, i64>(1)?.max(0) as u64,
                        cost_usd: r.get(2)?,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// What a tenant spent in total (with what its sessions taken over from other
    /// cluster members carried).
    pub(crate) fn tenant_spend(&self, tenant: &str) -> Result<f64, StoreError> {
        self.with_read(|c| {
            c.query_row(
                "SELECT (SELECT COALESCE(SUM(cost_usd), 0) FROM turns WHERE tenant = ?1) \
                      + (SELECT COALESCE(SUM(cost_usd), 0) FROM carried WHERE tenant = ?1)",
                params![tenant],
                |r| r.get(0),
            )
        })
    }

    /// Brings a session's ledger up to what its checkpoint says it spent on its earlier
    /// owners (`totals`, cumulative: what those owners' ledgers held for it, carried
    /// spend included): records the difference to this store's own figures for the
    /// session, so that a session that comes back to a host that owned it before is not
    /// counted twice. Returns the session's totals afterwards.
    pub(crate) fn carry_spend(
        &self,
        tenant: &str,
        target: &str,
        from_node: Option<&str>,
        totals: Totals,
    ) -> Result<Totals, StoreError> {
        self.with_write(|c| {
            let tx = c.transaction()?;
            let (turns, usd): (i64, f64) = tx.query_row(
                "SELECT \
                   (SELECT COUNT(*) FROM turns WHERE tenant = ?1 AND kind = 'session' AND target = ?2) \
                   + (SELECT COALESCE(SUM(turns), 0) FROM carried WHERE tenant = ?1 AND target = ?2), \
                   (SELECT COALESCE(SUM(cost_usd), 0) FROM turns WHERE tenant = ?1 AND kind = 'session' AND target = ?2) \
                   + (SELECT COALESCE(SUM(cost_usd), 0) FROM carried WHERE tenant = ?1 AND target = ?2)",
                params![tenant, target],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let here = Totals {
                turns: turns.max(0) as u64,
                cost_usd: usd,
            };
            let more_turns = totals.turns.saturating_sub(here.turns);
            let more_usd = (totals.cost_usd - here.cost_usd).max(0.0);
            if more_turns > 0 || more_usd > 0.0 {
                tx.execute(
                    "INSERT INTO carried (at, tenant, target, from_node, turns, cost_usd) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![now(), tenant, target, from_node, more_turns as i64, more_usd],
                )?;
            }
            tx.commit()?;
            Ok(Totals {
                turns: here.turns + more_turns,
                cost_usd: here.cost_usd + more_usd,
            })
        })
    }

    /// Appends API calls and session events to the audit trail, in one transaction.
    pub(crate) fn append_audit(
        &self,
        rows: &[AuditRow],
        events: &[EventRow],
    ) -> Result<(), StoreError> {
        self.with_write(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO audit (at, kind, request_id, tenant, token_id, method, route, status, millis) \
                     VALUES (?1, 'http', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for a in rows {
                    stmt.execute(params![
                        a.at,
                        a.request_id,
                        a.tenant,
                        a.token_id,
                        a.method,
                        a.route,
                        a.status,
                        a.millis as i64
                    ])?;
                }
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO audit (at, kind, tenant, session, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for e in events {
                    stmt.execute(params![e.at, e.kind, e.tenant, e.session, e.detail])?;
                }
            }
            tx.commit()
        })
    }

    /// Audit rows, newest first.
    pub(crate) fn audit(&self, filter: &AuditFilter) -> Result<Vec<StoredAudit>, StoreError> {
        self.with_read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT at, kind, tenant, session, request_id, token_id, method, route, status, \
                        millis, detail FROM audit \
                 WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR kind = ?2) \
                   AND (?3 IS NULL OR session = ?3) AND (?4 IS NULL OR at >= ?4) \
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![
                    filter.tenant,
                    filter.kind,
                    filter.session,
                    filter.since,
                    filter.limit
                ],
                |r| {
                    Ok(StoredAudit {
                        at: r.get(0)?,
                        kind: r.get(1)?,
                        tenant: r.get(2)?,
                        session: r.get(3)?,
                        request_id: r.get(4)?,
                        token_id: r.get(5)?,
                        method: r.get(6)?,
                        route: r.get(7)?,
                        status: r.get(8)?,
                        millis: r.get::<_, Option<i64>>(9)?.map(|m| m.max(0) as u64),
                        detail: r.get(10)?,
                    })
                },
            )?;
            rows.collect()
        })
    }
}

/// Applies the migrations the database lacks, each in its own transaction.
fn migrate(conn: &Connection, path: &str) -> Result<(), StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            path: path.to_string(),
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}\nPRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS's generator failing is not recoverable; tokens must never be predictable.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random generator failed");
    buf
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_the_whole_secret_and_not_after_revocation() {
        let store = Store::in_memory().expect("store");
        assert!(!store.has_tokens().expect("query"));
        let t = store.create_token("acme", Scope::Write).expect("token");
        assert!(store.has_tokens().expect("query"));
        let owner = store.verify(&t.secret).expect("verify").expect("valid");
        assert_eq!(owner.tenant, "acme");
        assert_eq!(owner.scope, Scope::Write);
        let mut wrong = t.secret.clone();
        wrong.pop();
        wrong.push('x');
        assert!(store.verify(&wrong).expect("verify").is_none());
        assert!(store.verify("cch_nope").expect("verify").is_none());
        assert!(store.verify("").expect("verify").is_none());
        assert!(store.revoke_token(&t.id).expect("revoke"));
        assert!(store.verify(&t.secret).expect("verify").is_none());
        assert!(!store.has_tokens().expect("query"));
        assert!(matches!(
            store.create_token("a/b", Scope::Read),
            Err(StoreError::BadTenant(_))
        ));
    }

    #[test]
    fn the_secret_is_not_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let t = store.create_token("acme", Scope::Admin).expect("token");
        drop(store);
        let bytes = std::fs::read(dir.path().join(DB_FILE)).expect("db");
        let wal = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))).unwrap_or_default();
        let secret = t.secret.rsplit('_').next().expect("secret part");
        for file in [&bytes, &wal] {
            assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }

    #[test]
    fn http_rows_of_a_version_1_store_survive_the_audit_migration_and_filters_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Connection::open(dir.path().join(DB_FILE)).expect("open");
        c.execute_batch(MIGRATIONS[0]).expect("0001");
        c.execute_batch(
            "INSERT INTO audit (at, request_id, tenant, token_id, method, route, status, millis) \
             VALUES (100, 'r1', 'acme', 'tok', 'GET', '/v1/sessions', 200, 3); \
             PRAGMA user_version = 1;",
        )
        .expect("old row");
        drop(c);
        let store = Store::open(dir.path()).expect("migrates");
        let event = |at, kind, tenant: &str, session: &str| EventRow {
            at,
            kind,
            tenant: Some(tenant.into()),
            session: Some(session.into()),
            detail: "{}".into(),
        };
        store
            .append_audit(
                &[],
                &[
                    event(200, "tool_use", "acme", "s1"),
                    event(300, "permission_decision", "acme", "s1"),
                    event(300, "tool_use", "other", "s1"),
                ],
            )
            .expect("append");
        let all = |f: AuditFilter| store.audit(&AuditFilter { limit: 100, ..f }).expect("read");
        let acme = all(AuditFilter {
            tenant: Some("acme".into()),
            ..AuditFilter::default()
        });
        assert_eq!(
            acme.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
            ["permission_decision", "tool_use", "http"]
        );
        let old = &acme[2];
        assert_eq!(
            (
                old.request_id.as_deref(),
                old.route.as_deref(),
                old.status,
                old.millis
            ),
            (Some("r1"), Some("/v1/sessions"), Some(200), Some(3))
        );
        let tool_uses = all(AuditFilter {
            tenant: Some("acme".into()),
            kind: Some("tool_use".into()),
            session: Some("s1".into()),
            ..AuditFilter::default()
        });
        assert_eq!(tool_uses.len(), 1);
        let recent = all(AuditFilter {
            since: Some(250),
            ..AuditFilter::default()
        });
        assert_eq!(recent.len(), 2);
        let one = store
            .audit(&AuditFilter {
                limit: 1,
                ..AuditFilter::default()
            })
            .expect("read");
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open(dir.path()).expect("store"));
        let c = Connection::open(dir.path().join(DB_FILE)).expect("open");
        c.execute_batch("PRAGMA user_version = 99").expect("pragma");
        drop(c);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn the_ledger_sums_per_session_and_tenant() {
        let store = Store::in_memory().expect("store");
        let row = |tenant: &str, target: &str, cost| TurnRow {
            tenant: tenant.into(),
            kind: "session",
            target: target.into(),
            session_id: Some("s1".into()),
            cost_usd: cost,
            input_tokens: 1,
            output_tokens: 2,
            is_error: false,
        };
        store.record_turn(&row("a", "x", 0.5)).expect("row");
        store.record_turn(&row("a", "x", 0.25)).expect("row");
        store.record_turn(&row("b", "x", 1.0)).expect("row");
        let totals = store.session_totals("a").expect("totals");
        assert_eq!(
            totals.get("x"),
            Some(&Totals {
                turns: 2,
                cost_usd: 0.75
            })
        );
        assert_eq!(store.tenant_spend("b").expect("spend"), 1.0);
    }

    #[test]
    fn carried_spend_tops_the_ledger_up_to_the_checkpoint_and_never_counts_twice() {
        let store = Store::in_memory().expect("store");
        let row = |target: &str, cost| TurnRow {
            tenant: "a".into(),
            kind: "session",
            target: target.into(),
            session_id: None,
            cost_usd: cost,
            input_tokens: 1,
            output_tokens: 2,
            is_error: false,
        };
        let carried = |turns, cost_usd| Totals { turns, cost_usd };
        // Taken over with 3 turns and $1.50 spent elsewhere.
        let t = store
            .carry_spend("a", "x", Some("node-a"), carried(3, 1.5))
            .expect("carry");
        assert_eq!(t, carried(3, 1.5));
        store.record_turn(&row("x", 0.5)).expect("row");
        assert_eq!(
            store.session_totals("a").expect("totals").get("x"),
            Some(&carried(4, 2.0))
        );
        assert_eq!(store.tenant_spend("a").expect("spend"), 2.0);
        // It moves away and back with 6 turns and $3.00 in all: only the difference is
        // added, not the whole again.
        let t = store
            .carry_spend("a", "x", Some("node-b"), carried(6, 3.0))
            .expect("carry");
        assert_eq!(t, carried(6, 3.0));
        assert_eq!(
            store.session_totals("a").expect("totals").get("x"),
            Some(&carried(6, 3.0))
        );
        // A checkpoint behind this store's figures adds nothing.
        let t = store
            .carry_spend("a", "x", None, carried(1, 0.1))
            .expect("carry");
        assert_eq!(t, carried(6, 3.0));
        assert_eq!(store.tenant_spend("a").expect("spend"), 3.0);
        assert!(store.session_totals("b").expect("totals").is_empty());
    }
}
