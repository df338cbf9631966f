-- Jobs and bids (SPEC §4 "Jobs"). A job's posting is a task of kind `job`; this row holds
-- what searches filter and sort on, keyed by the posting task's id. Each hire is a task of
-- its own, with its own escrow hold.
CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY REFERENCES tasks (id),
    requester_id        TEXT NOT NULL REFERENCES accounts (id),
    title               TEXT NOT NULL,
    description         TEXT NOT NULL,
    category            TEXT,
    tags                TEXT NOT NULL,
    requirements        TEXT NOT NULL,
    budget_type         TEXT NOT NULL,
    budget_min          BIGINT NOT NULL,
    budget_max          BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    deadline_at         BIGINT,
    bid_limit           BIGINT NOT NULL,
    priority            TEXT NOT NULL,
    executor_preference TEXT NOT NULL,
    privacy             TEXT NOT NULL,
    max_workers         BIGINT NOT NULL,
    award               TEXT NOT NULL,
    status              TEXT NOT NULL,
    bid_count           BIGINT NOT NULL,
    hired_count         BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
-- One index per sort of the open list, so a page is read in order, not sorted.
CREATE INDEX jobs_newest ON jobs (status, created_at, id);
-- Deadlines first, soonest first: the `deadline` sort orders by exactly these expressions.
CREATE INDEX jobs_deadline ON jobs (status, (deadline_at IS NULL), deadline_at, id);
CREATE INDEX jobs_budget ON jobs (status, budget_max, id);
CREATE INDEX jobs_popular ON jobs (status, bid_count, id);
CREATE INDEX jobs_category ON jobs (category, status, created_at);
CREATE INDEX jobs_requester ON jobs (requester_id, created_at);

-- The search index: a job's words (CJK text as character pairs) and its tags (`#tag`);
-- see agora_core::job::search_terms.
CREATE TABLE job_terms (
    term   TEXT NOT NULL,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    PRIMARY KEY (term, job_id)
);
CREATE INDEX job_terms_job ON job_terms (job_id);

CREATE TABLE bids (
    id             TEXT PRIMARY KEY,
    job_id         TEXT NOT NULL REFERENCES jobs (id),
    bidder_id      TEXT NOT NULL REFERENCES accounts (id),
    amount         BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    message        TEXT NOT NULL,
    estimated_days BIGINT,
    sample_links   TEXT NOT NULL,
    status         TEXT NOT NULL,
    review         TEXT NOT NULL,
    counter        TEXT,
    history        TEXT NOT NULL,
    reason         TEXT,
    hire_task_id   TEXT REFERENCES tasks (id),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (job_id, bidder_id)
);
CREATE INDEX bids_bidder ON bids (bidder_id, created_at);
CREATE INDEX bids_review ON bids (review, created_at);

CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    job_id       TEXT NOT NULL REFERENCES jobs (id),
    requester_id TEXT NOT NULL REFERENCES accounts (id),
    provider_id  TEXT NOT NULL REFERENCES accounts (id),
    created_at   BIGINT NOT NULL,
    UNIQUE (job_id, provider_id)
);
CREATE INDEX invitations_provider ON invitations (provider_id, created_at);

-- Auto-bid rules (seed 004): one per account.
CREATE TABLE auto_bid_rules (
    account_id        TEXT PRIMARY KEY REFERENCES accounts (id),
    enabled           BOOLEAN NOT NULL,
    min_price         BIGINT NOT NULL,
    max_price         BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    categories        TEXT NOT NULL,
    max_deadline_days BIGINT,
    template          TEXT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX auto_bid_rules_enabled ON auto_bid_rules (enabled, currency, min_price);

-- The skill index matching reads: one row per skill of an account (skills are lower-case
-- tags), kept by the account writes.
CREATE TABLE account_skills (
    skill      TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    PRIMARY KEY (skill, account_id)
);
CREATE INDEX account_skills_account ON account_skills (account_id);
INSERT INTO account_skills (skill, account_id) SELECT DISTINCT s.value, a.id FROM accounts a, json_each(a.skills) s;
