-- A ping (POST /webhooks/{id}/ping) is logged as a delivery of its endpoint, but it is no
-- entry of the event log: its delivery has no event, so `event_seq` becomes nullable.
-- SQLite cannot drop a NOT NULL in place: both tables are rebuilt, the attempts (which
-- reference the deliveries) included, so that foreign keys hold at every step: the new
-- attempts reference the new deliveries, the old tables go child first, and renaming the
-- new deliveries table rewrites the reference to its final name.

CREATE TABLE webhook_deliveries_new (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT REFERENCES webhook_endpoints (id),
    -- The owner: the endpoint's account, or the requester of a one-off task URL.
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    url              TEXT,
    -- NULL for a ping.
    event_seq        INTEGER REFERENCES events (seq),
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    task_id          TEXT,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    round_attempts   INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    claim_token      TEXT,
    last_status_code INTEGER,
    last_error       TEXT,
    last_attempt_at  INTEGER,
    delivered_at     INTEGER,
    created_at       INTEGER NOT NULL
);
INSERT INTO webhook_deliveries_new
    (id, endpoint_id, account_id, url, event_seq, event_id, event_type, task_id, status, attempts,
     round_attempts, next_attempt_at, claim_token, last_status_code, last_error, last_attempt_at,
     delivered_at, created_at)
SELECT id, endpoint_id, account_id, url, event_seq, event_id, event_type, task_id, status, attempts,
     round_attempts, next_attempt_at, claim_token, last_status_code, last_error, last_attempt_at,
     delivered_at, created_at
FROM webhook_deliveries;

CREATE TABLE webhook_attempts_new (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries_new (id),
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    duration_ms INTEGER NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
INSERT INTO webhook_attempts_new (delivery_id, attempt, at, status_code, duration_ms, error)
SELECT delivery_id, attempt, at, status_code, duration_ms, error FROM webhook_attempts;

DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
ALTER TABLE webhook_attempts_new RENAME TO webhook_attempts;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);
CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id) WHERE task_id IS NOT NULL;
