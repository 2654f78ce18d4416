-- The host's durable state. Applied once, in order, by `store.rs` (PRAGMA user_version).

CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

-- Bearer tokens: only the SHA-256 of the secret part is kept.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES tenants(name),
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    hash       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Dynamic sessions: what `POST /v1/sessions` asked for, and the last conversation id,
-- so that a restarted host lists them (hibernated) and resumes each conversation.
CREATE TABLE sessions (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    session_id TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- The cost ledger: one row per finished turn, committed before the client sees `result`.
CREATE TABLE turns (
    id            INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    tenant        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('session', 'pool', 'query')),
    target        TEXT NOT NULL,
    session_id    TEXT,
    cost_usd      REAL NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    is_error      INTEGER NOT NULL
);
CREATE INDEX turns_by_target ON turns (tenant, kind, target);

-- Every API call: who, what, the outcome. Never a token or a prompt.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    tenant     TEXT,
    token_id   TEXT,
    method     TEXT NOT NULL,
    route      TEXT NOT NULL,
    status     INTEGER NOT NULL,
    millis     INTEGER NOT NULL
);
CREATE INDEX audit_by_tenant ON audit (tenant, at);
