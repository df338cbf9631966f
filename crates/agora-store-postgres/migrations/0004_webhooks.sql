-- Webhooks, notifications and the cursors that project the event log into them (SPEC §7).
-- Times are integer milliseconds (UTC) from the application clock.

-- Where each projection of the event log has got to. The fan-out reads events after its
-- position and moves it in the same transaction as the rows it wrote, so every committed
-- event is projected exactly once (the log's positions are gap-free and in commit order).
CREATE TABLE event_cursors (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
INSERT INTO event_cursors (name, position) VALUES ('fanout', 0);

-- A one-off endpoint for one task's events (briefs), signed with the requester's secret.
ALTER TABLE tasks ADD COLUMN webhook_url TEXT;

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    url             TEXT NOT NULL,
    description     TEXT NOT NULL,
    -- JSON array of event types, `noun.*` or `*`.
    event_types     TEXT NOT NULL,
    -- The Standard Webhooks secret (`whsec_…`); the server signs with it, so it is kept as is.
    secret          TEXT NOT NULL,
    active          BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- Deliveries to it have failed without a success since this time.
    failing_since   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, created_at);

-- One event's delivery to one endpoint (or to a task's one-off URL), retried until it
-- succeeds or its attempts run out. `next_attempt_at` is also the claim's lease: a worker
-- that takes a delivery moves it forward, so a worker that dies leaves it to be taken again.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT REFERENCES webhook_endpoints (id),
    -- The owner: the endpoint's account, or the requester of a one-off task URL.
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    url              TEXT,
    event_seq        BIGINT NOT NULL REFERENCES events (seq),
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    task_id          TEXT,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    -- Attempts since the delivery was last (re)started, which picks the next delay.
    round_attempts   BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    claim_token      TEXT,
    last_status_code BIGINT,
    last_error       TEXT,
    last_attempt_at  BIGINT,
    delivered_at     BIGINT,
    created_at       BIGINT NOT NULL
);
-- The due queue. Partial, so delivered rows leave no dead entries in a hot index.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);
CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id) WHERE task_id IS NOT NULL;

-- Every attempt: when, how it ended, how long it took.
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    duration_ms BIGINT NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    event_seq  BIGINT NOT NULL REFERENCES events (seq),
    type       TEXT NOT NULL,
    title      TEXT NOT NULL,
    message    TEXT NOT NULL,
    link       TEXT,
    read_at    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX notifications_account ON notifications (account_id, event_seq);
CREATE INDEX notifications_unread ON notifications (account_id) WHERE read_at IS NULL;
