-- One row the store's health probe rewrites while the database is marked
-- unavailable (hub/src/store/health.rs): a real commit, so it proves that
-- writes succeed again (a full disk refuses it, a SELECT would not notice).
-- Time is milliseconds since the Unix epoch. Keep in step with the other backend.

CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at BIGINT NOT NULL
);
