-- The work engine: tasks of every kind, their messages, chats and services (SPEC §3, §4).
-- Times are integer milliseconds (UTC) from the application clock; money is integer
-- minor units; JSON is text.

-- An agent may sign itself off: it is offline from `offline_at` until it is next seen.
ALTER TABLE accounts ADD COLUMN offline_at INTEGER;

-- Every kind of work is one row here with one status column, changed only by the state
-- machine (agora-core `task::apply`).
CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    requester_id     TEXT NOT NULL REFERENCES accounts (id),
    assignee_id      TEXT REFERENCES accounts (id),
    title            TEXT NOT NULL,
    description      TEXT NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,
    -- Kind-specific terms that are read with the task but never queried: schemas, bounty
    -- penalty and delivery hours, the service's name and version at run time.
    details          TEXT NOT NULL,
    progress         TEXT,
    price            INTEGER,
    currency         TEXT,
    hold_id          TEXT REFERENCES holds (id),
    chat_id          TEXT,
    service_id       TEXT,
    lease_expires_at INTEGER,
    deadline_at      INTEGER,
    delivered_at     INTEGER,
    auto_accept_at   INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- The inbox: an agent's queued tasks in arrival order. Partial, so that claims (which move
-- rows out of `queued`) do not leave dead entries behind in a hot index.
CREATE INDEX tasks_inbox ON tasks (assignee_id, created_at, id) WHERE status = 'queued';
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE status = 'in_progress';
CREATE INDEX tasks_auto_accept ON tasks (auto_accept_at) WHERE status = 'delivered';
CREATE INDEX tasks_assignee_status ON tasks (assignee_id, status);
CREATE INDEX tasks_requester ON tasks (requester_id, created_at);
CREATE INDEX tasks_kind_status ON tasks (kind, status, created_at);
CREATE INDEX tasks_chat ON tasks (chat_id, created_at);

-- Messages between a task's requester and its assignee.
CREATE TABLE task_messages (
    id         TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL REFERENCES tasks (id),
    author_id  TEXT NOT NULL REFERENCES accounts (id),
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX task_messages_task ON task_messages (task_id, created_at);

-- A 1:1 conversation with an agent; each user turn is a chat task carrying `messages`.
CREATE TABLE chats (
    id           TEXT PRIMARY KEY,
    requester_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id     TEXT NOT NULL REFERENCES accounts (id),
    messages     TEXT NOT NULL,
    -- The turn waiting for the agent's reply; a chat has at most one at a time.
    open_task_id TEXT,
    turns        INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX chats_requester ON chats (requester_id, created_at);

-- Published services: an agent runs them; the agent or its owner manages them.
CREATE TABLE services (
    id                TEXT PRIMARY KEY,
    agent_id          TEXT NOT NULL REFERENCES accounts (id),
    name              TEXT NOT NULL,
    version           TEXT NOT NULL,
    short_description TEXT NOT NULL,
    description       TEXT NOT NULL,
    price             INTEGER NOT NULL CHECK (price >= 0),
    currency          TEXT NOT NULL,
    input_schema      TEXT NOT NULL,
    output_schema     TEXT NOT NULL,
    published         BOOLEAN NOT NULL,
    paid_count        INTEGER NOT NULL DEFAULT 0,
    favorite_count    INTEGER NOT NULL DEFAULT 0,
    total_revenue     INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX services_agent ON services (agent_id);
CREATE INDEX services_created ON services (created_at);

CREATE TABLE service_favorites (
    service_id TEXT NOT NULL REFERENCES services (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (service_id, account_id)
);

-- Each event's place in its task's timeline (1, 2, 3…), numbered with the global `seq`
-- under the same counter lock, so it is gap-free per task too.
ALTER TABLE events ADD COLUMN task_seq INTEGER;
CREATE UNIQUE INDEX events_task_seq ON events (task_id, task_seq);
