-- Hubs sharing this database (hub/src/cluster): each hub's heartbeat, and
-- one lease per piece of work (a polling schedule `poll:NAME`, an output's
-- delivery `output:NAME`, a webhook inbox's processing `inbox:NAME`). The
-- owner renews its lease; another hub takes it over once it has expired,
-- raising `epoch`, and every commit of that work checks the epoch in its own
-- transaction (fencing). Times are milliseconds since the Unix epoch, always
-- the database server's clock, never a hub's. SQLite serves one hub and has
-- no such tables.

CREATE TABLE cluster_hubs (
    id TEXT PRIMARY KEY,
    listen TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

CREATE TABLE leases (
    work TEXT PRIMARY KEY,
    owner TEXT,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);
