-- The data path: records, input checkpoints, the event outbox, per-output
-- delivery progress and dead letters. Times are milliseconds since the Unix
-- epoch (UTC); JSON is stored as text. Keep in step with ../sqlite.

CREATE TABLE records (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    record_key TEXT NOT NULL,
    source_id TEXT NOT NULL,
    record_type TEXT NOT NULL,
    occurred_at BIGINT,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    idempotency_key TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (source, record_key)
);
CREATE INDEX records_by_type ON records (record_type, id);
CREATE INDEX records_by_created ON records (created_at, id);

CREATE TABLE input_checkpoints (
    plugin TEXT PRIMARY KEY,
    checkpoint BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    record_pk BIGINT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    record_type TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE output_positions (
    output TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE output_done (
    output TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    PRIMARY KEY (output, event_id)
);

CREATE TABLE output_replays (
    output TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (output, event_id)
);

CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    plugin TEXT NOT NULL,
    stage TEXT NOT NULL,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    event_id BIGINT,
    event_kind TEXT,
    record TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    first_failed_at BIGINT NOT NULL,
    last_failed_at BIGINT NOT NULL
);
CREATE INDEX dead_letters_by_plugin ON dead_letters (plugin, stage, id);
