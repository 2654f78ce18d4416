-- The audit trail gains the sessions' own events (tool uses, permission and hook
-- decisions, control requests, in-process MCP tool calls) beside the HTTP calls.
-- SQLite cannot relax NOT NULL in place, so the table is rebuilt; HTTP rows keep their
-- columns and become kind 'http'.

CREATE TABLE audit_v2 (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,           -- seconds since the epoch
    kind       TEXT NOT NULL,              -- 'http', or an SDK event kind ('tool_use', …)
    tenant     TEXT,                       -- NULL: failed authentication, or a host event
    session    TEXT,                       -- the tenant's session name, 'pool:<name>', 'query'
    request_id TEXT,                       -- HTTP rows
    token_id   TEXT,                       -- HTTP rows
    method     TEXT,                       -- HTTP rows
    route      TEXT,                       -- HTTP rows
    status     INTEGER,                    -- HTTP rows
    millis     INTEGER,                    -- HTTP rows
    detail     TEXT                        -- event rows: the redacted event as JSON
);
INSERT INTO audit_v2 (id, at, kind, tenant, request_id, token_id, method, route, status, millis)
    SELECT id, at, 'http', tenant, request_id, token_id, method, route, status, millis FROM audit;
DROP TABLE audit;
ALTER TABLE audit_v2 RENAME TO audit;
CREATE INDEX audit_by_tenant ON audit (tenant, at);
CREATE INDEX audit_by_session ON audit (tenant, session, kind);
