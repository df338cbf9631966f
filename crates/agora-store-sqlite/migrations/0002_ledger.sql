-- The event log, the double-entry ledger, escrow holds and brief quotas.
-- Times are integer milliseconds (UTC); money is integer minor units.

-- Event log (SPEC §7). Appends take the next number from the single counter row in the
-- writing transaction; the row lock serialises appends until commit, so `seq` order is
-- commit order and a reader that remembers "last seq seen" can never skip an event that
-- commits later with a lower number (see docs/architecture.md).
CREATE TABLE event_counter (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO event_counter (id, last_seq) VALUES (1, 0);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    actor_id   TEXT,
    task_id    TEXT,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_task ON events (task_id, seq);

-- Who may see an event: its webhooks, notifications and live stream are per account.
CREATE TABLE event_audience (
    account_id TEXT NOT NULL,
    seq        INTEGER NOT NULL REFERENCES events (seq),
    PRIMARY KEY (account_id, seq)
);

-- Ledger accounts: a wallet per (owner, currency, available|held), platform revenue and
-- external funding per currency. `balance` is a cache of the sum of the account's lines,
-- changed only in the transaction that writes those lines (a test compares the two).
CREATE TABLE ledger_accounts (
    key      TEXT PRIMARY KEY,
    owner_id TEXT REFERENCES accounts (id),
    currency TEXT NOT NULL,
    bucket   TEXT NOT NULL CHECK (bucket IN ('available', 'held', 'revenue', 'funding')),
    balance  INTEGER NOT NULL,
    CHECK (bucket = 'funding' OR balance >= 0)
);
CREATE INDEX ledger_accounts_owner ON ledger_accounts (owner_id);

CREATE TABLE ledger_transactions (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    currency   TEXT NOT NULL,
    actor_id   TEXT,
    hold_id    TEXT,
    ref_kind   TEXT,
    ref_id     TEXT,
    reason     TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX ledger_transactions_hold ON ledger_transactions (hold_id);

CREATE TABLE ledger_lines (
    tx_id       TEXT NOT NULL REFERENCES ledger_transactions (id),
    account_key TEXT NOT NULL REFERENCES ledger_accounts (key),
    amount      INTEGER NOT NULL,
    PRIMARY KEY (tx_id, account_key)
);
CREATE INDEX ledger_lines_account ON ledger_lines (account_key);

-- Escrow: money held from a payer for one piece of work. Every settlement draws from
-- `remaining` with a conditional update, so two settlements racing for one hold can only
-- take what is there once.
CREATE TABLE holds (
    id         TEXT PRIMARY KEY,
    payer_id   TEXT NOT NULL REFERENCES accounts (id),
    currency   TEXT NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    remaining  INTEGER NOT NULL CHECK (remaining >= 0),
    ref_kind   TEXT NOT NULL,
    ref_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX holds_ref ON holds (ref_kind, ref_id);
CREATE INDEX holds_payer ON holds (payer_id, currency);

-- AI-team brief quota: a monthly free allowance (counted per period) plus bonus and
-- purchased units; every movement is kept.
CREATE TABLE quotas (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id),
    period     TEXT NOT NULL,
    free_used  INTEGER NOT NULL CHECK (free_used >= 0),
    bonus      INTEGER NOT NULL CHECK (bonus >= 0),
    purchased  INTEGER NOT NULL CHECK (purchased >= 0)
);

CREATE TABLE quota_movements (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    kind       TEXT NOT NULL CHECK (kind IN ('consume', 'refund', 'grant')),
    bucket     TEXT NOT NULL CHECK (bucket IN ('free', 'bonus', 'purchased')),
    units      INTEGER NOT NULL,
    period     TEXT NOT NULL,
    ref        TEXT,
    reason     TEXT,
    created_at INTEGER NOT NULL
);
-- A consumption is refunded at most once.
CREATE UNIQUE INDEX quota_movements_once ON quota_movements (account_id, kind, ref) WHERE ref IS NOT NULL;
