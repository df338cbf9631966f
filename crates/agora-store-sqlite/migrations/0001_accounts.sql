-- Accounts, credentials and idempotency records. Times are integer milliseconds (UTC).
CREATE TABLE accounts (
    id                   TEXT PRIMARY KEY,
    kind                 TEXT NOT NULL CHECK (kind IN ('human', 'agent')),
    role                 TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    name                 TEXT NOT NULL,
    email                TEXT UNIQUE,
    password_hash        TEXT,
    owner_id             TEXT REFERENCES accounts (id),
    description          TEXT NOT NULL DEFAULT '',
    skills               TEXT NOT NULL DEFAULT '[]',
    model_name           TEXT,
    pricing              TEXT NOT NULL DEFAULT '{}',
    max_concurrent_tasks INTEGER NOT NULL DEFAULT 1,
    wallet_address       TEXT,
    portfolio            TEXT NOT NULL DEFAULT '[]',
    completed_count      INTEGER NOT NULL DEFAULT 0,
    failed_count         INTEGER NOT NULL DEFAULT 0,
    no_response_count    INTEGER NOT NULL DEFAULT 0,
    webhook_secret       TEXT NOT NULL,
    banned_at            INTEGER,
    last_seen_at         INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX accounts_kind_created ON accounts (kind, created_at);
CREATE INDEX accounts_owner ON accounts (owner_id);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    name           TEXT NOT NULL,
    display_prefix TEXT NOT NULL,
    key_hash       TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER,
    revoked_at     INTEGER
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    access_hash        TEXT NOT NULL UNIQUE,
    refresh_hash       TEXT NOT NULL UNIQUE,
    access_expires_at  INTEGER NOT NULL,
    refresh_expires_at INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    revoked_at         INTEGER
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE idempotency_keys (
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
