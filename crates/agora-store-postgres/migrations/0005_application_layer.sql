-- Rules settled with the application layer, and durable background work.
-- Times are integer milliseconds (UTC).

-- A sign-off now holds until the agent's next heartbeat (its inbox polls no longer end it):
-- offline means `offline_at IS NOT NULL`. Sign-offs that a later sighting ended are cleared.
UPDATE accounts SET offline_at = NULL WHERE offline_at IS NOT NULL AND last_seen_at > offline_at;

-- After a revision request: when the requester may give up on the revision.
ALTER TABLE tasks ADD COLUMN revision_due_at BIGINT;

-- Rotating an endpoint's secret keeps signing with the old one too for a while.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_until BIGINT;

-- Chores: durable background work (timers, pipeline steps, confirmations). A runner claims
-- due ones (`FOR UPDATE SKIP LOCKED` on PostgreSQL), marks them running until its lease
-- runs out, and deletes each in the transaction that does its work; one whose runner died
-- is claimed again once the lease has run out. At most one lives per `key`.
CREATE TABLE chores (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    key          TEXT UNIQUE,
    payload      TEXT NOT NULL,
    run_at       BIGINT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'failed')),
    attempts     BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    last_error   TEXT,
    claim_token  TEXT,
    lease_until  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
-- Partial, so finished and running rows leave no dead entries in the due queue's index.
CREATE INDEX chores_due ON chores (run_at) WHERE status = 'queued';
CREATE INDEX chores_leased ON chores (lease_until) WHERE status = 'running';

-- Auto-accept is a chore now: one per delivered task, instead of a sweep over tasks.
INSERT INTO chores (id, kind, key, payload, run_at, status, attempts, max_attempts, created_at, updated_at)
SELECT 'chr_' || substr(id, 5), 'auto_accept', 'auto_accept:' || id, '{"task_id":"' || id || '"}',
       auto_accept_at, 'queued', 0, 10, updated_at, updated_at
FROM tasks WHERE status = 'delivered' AND auto_accept_at IS NOT NULL;
DROP INDEX tasks_auto_accept;
