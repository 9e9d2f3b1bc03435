-- The webhook inbox: every accepted webhook delivery, written before the hub
-- answers 202, until the plugin's records for it are stored (done) or it is
-- dead-lettered (dead). (plugin, delivery_id) is unique, so a replayed
-- delivery is stored once. Times are milliseconds since the Unix epoch.
-- Keep in step with ../postgres.

CREATE TABLE webhook_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    reply TEXT,
    updated_at BIGINT NOT NULL,
    UNIQUE (plugin, delivery_id)
);
CREATE INDEX webhook_inbox_by_status ON webhook_inbox (plugin, status, id);
