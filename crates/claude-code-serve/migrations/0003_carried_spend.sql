-- Spend a session brought with it when this host took it over from a dead cluster member
-- (failover): the turns and USD its ledger rows on earlier owners add up to, as its
-- checkpoint carried them. A session's totals (and its budget at the credential proxy)
-- are its rows in `turns` plus its rows here; a tenant's spend likewise.
CREATE TABLE carried (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,            -- seconds since the epoch
    tenant    TEXT NOT NULL,
    target    TEXT NOT NULL,               -- the session's name
    from_node TEXT,                        -- the member whose checkpoint it came from
    turns     INTEGER NOT NULL,
    cost_usd  REAL NOT NULL
);
CREATE INDEX carried_by_target ON carried (tenant, target);
