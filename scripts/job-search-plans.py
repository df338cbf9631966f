"""Query plans of the job board's search over 100,000 jobs, on SQLite and PostgreSQL.

Usage: python3 scripts/job-search-plans.py PATH/TO/agora [postgres://…/DATABASE]

Migrates a fresh database with the binary (a temporary SQLite file, or a scratch schema in
the PostgreSQL database given, dropped afterwards), fills `jobs` and `job_terms` with
100,000 synthetic jobs (titles in English and Chinese, two tags each; 80 % open, 10 %
invite-only), and prints the plan and the time of the list queries `GET /jobs` sends: the
default list, a Chinese text query, a tag with a budget range sorted by budget, and the
deadline sort. The statements mirror `crates/agora-store/sql/jobs.rs` (`jobs`); keep them
in step when that query changes. Terms are split as `agora_core::job::search_terms` does
(words, CJK runs as character pairs, `#tag`).
"""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
random.seed(7)
N = 100_000
WORDS = ["translate", "manual", "rust", "backend", "logo", "design", "data", "report", "python", "api"]
ZH = "翻译产品手册数据分析报告设计网站"
def terms_of(title, tags):
    # the same split as agora_core::job::search_terms, near enough for plans
    out = []
    for w in title.lower().split():
        if all(ord(c) < 0x3040 for c in w):
            out.append(w)
        else:
            out += [w[i:i+2] for i in range(len(w) - 1)]
    out += ["#" + t for t in tags]
    return list(dict.fromkeys(out))
rows, terms = [], []
for i in range(N):
    zh = ZH[random.randrange(0, len(ZH) - 4):][:4]
    title = f"{random.choice(WORDS)} {random.choice(WORDS)} {zh} job{i}"
    tags = random.sample(["translation", "rust", "design", "data", "writing", "python", "chinese", "seo"], 2)
    jid = f"tsk_{i:026d}"
    status = "open" if i % 5 else random.choice(["completed", "cancelled", "expired"])
    rows.append((jid, "acct_" + "0" * 26, title, "", random.choice(["translation", "dev", "design"]),
                 json.dumps(tags), "[]", "fixed", 100, 100 + random.randrange(5000), "PTS",
                 1_800_000_000_000 + i * 1000 if i % 2 else None, 50, "normal", "any",
                 "public" if i % 10 else "invite_only", 1, "choose", status, random.randrange(20), 0, 1_700_000_000_000 + i, 1_700_000_000_000 + i))
    terms += [(t, jid) for t in terms_of(title, tags)]
COLS = "id, requester_id, title, description, category, tags, requirements, budget_type, budget_min, budget_max, currency, deadline_at, bid_limit, priority, executor_preference, privacy, max_workers, award, status, bid_count, hired_count, created_at, updated_at"
VIEWER = "acct_01aaaaaaaaaaaaaaaaaaaaaaaa"
PRIV = "(j.privacy = 'public' OR j.requester_id = {v} OR j.id IN (SELECT i.job_id FROM invitations i WHERE i.provider_id = {v}))"
def queries(mark):
    m = lambda n: mark(n)
    priv = PRIV.format(v=m(2))
    return {
        "open jobs, newest first (the default list)":
            f"SELECT j.id FROM jobs j WHERE j.status IN ({m(1)}) AND {priv} ORDER BY j.created_at DESC, j.id DESC LIMIT 20 OFFSET 0",
        "q=数据分析 (three CJK pairs)":
            f"SELECT j.id FROM jobs j WHERE j.status IN ({m(1)}) AND {priv} AND j.id IN (SELECT t.job_id FROM job_terms t WHERE t.term = {m(3)}) AND j.id IN (SELECT t.job_id FROM job_terms t WHERE t.term = {m(4)}) AND j.id IN (SELECT t.job_id FROM job_terms t WHERE t.term = {m(5)}) ORDER BY j.created_at DESC, j.id DESC LIMIT 20 OFFSET 0",
        "tag=rust, budget 1000-2000, sort=budget_high":
            f"SELECT j.id FROM jobs j WHERE j.status IN ({m(1)}) AND {priv} AND j.id IN (SELECT t.job_id FROM job_terms t WHERE t.term = {m(3)}) AND j.budget_max >= {m(4)} AND j.budget_min <= {m(5)} ORDER BY j.budget_max DESC, j.id DESC LIMIT 20 OFFSET 0",
        "sort=deadline":
            f"SELECT j.id FROM jobs j WHERE j.status IN ({m(1)}) AND {priv} ORDER BY (j.deadline_at IS NULL), j.deadline_at ASC, j.id ASC LIMIT 20 OFFSET 0",
    }
PARAMS = {
    "open jobs, newest first (the default list)": ["open", VIEWER],
    "q=数据分析 (three CJK pairs)": ["open", VIEWER, "数据", "据分", "分析"],
    "tag=rust, budget 1000-2000, sort=budget_high": ["open", VIEWER, "#rust", 1000, 2000],
    "sort=deadline": ["open", VIEWER],
}
BIN = sys.argv[1]
PG = sys.argv[2] if len(sys.argv) > 2 else None


def sqlite_plans():
    d = tempfile.mkdtemp(prefix="agora-plans-")
    subprocess.run([BIN, "migrate", "--data-dir", d], check=True, capture_output=True)
    c = sqlite3.connect(os.path.join(d, "agora.db"))
    c.execute("PRAGMA foreign_keys = OFF")
    c.executemany(f"INSERT INTO jobs ({COLS}) VALUES ({','.join('?' * 23)})", rows)
    c.executemany("INSERT OR IGNORE INTO job_terms (term, job_id) VALUES (?, ?)", terms)
    c.commit()
    c.execute("ANALYZE")
    print("-- SQLite:", c.execute("SELECT COUNT(*) FROM jobs").fetchone()[0], "jobs,", c.execute("SELECT COUNT(*) FROM job_terms").fetchone()[0], "terms")
    for name, sql in queries(lambda n: f"?{n}").items():
        print(f"-- SQLite: {name}")
        for r in c.execute("EXPLAIN QUERY PLAN " + sql, PARAMS[name]):
            print("   ", r[3])
        t = time.perf_counter(); n = len(c.execute(sql, PARAMS[name]).fetchall()); dt = (time.perf_counter() - t) * 1000
        print(f"    ({n} rows in {dt:.2f} ms)")
    c.close()
    shutil.rmtree(d)


def postgres_plans():
    schema = f"plans_{os.getpid()}"
    base = PG.split("?")[0]
    admin = ["psql", "-q", base, "-v", "ON_ERROR_STOP=1"]
    quiet = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(admin + ["-c", f"CREATE SCHEMA {schema}"], check=True, env=quiet)
    try:
        url = f"{base}?options=-c%20search_path%3D{schema}"
        subprocess.run([BIN, "migrate", "--database-url", url], check=True, capture_output=True)
        postgres_fill_and_explain(schema, admin)
    finally:
        subprocess.run(admin + ["-c", f"DROP SCHEMA {schema} CASCADE"], check=True, env=quiet)


def postgres_fill_and_explain(schema, psql):
    import io
    buf = io.StringIO()
    def esc(v):
        if v is None: return "\\N"
        return str(v).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")
    for r in rows: buf.write("\t".join(esc(v) for v in r) + "\n")
    tb = io.StringIO()
    for t, j in terms: tb.write(f"{esc(t)}\t{j}\n")
    env = dict(os.environ, PGOPTIONS=f"-c search_path={schema}")
    subprocess.run(psql + ["-c", "SET session_replication_role = replica; " + f"COPY jobs ({COLS}) FROM STDIN"], input=buf.getvalue(), text=True, env=env, check=True)
    subprocess.run(psql + ["-c", "SET session_replication_role = replica; CREATE TEMP TABLE tt (term text, job_id text); COPY tt FROM STDIN; INSERT INTO job_terms SELECT DISTINCT term, job_id FROM tt; ANALYZE jobs; ANALYZE job_terms;"], input=tb.getvalue(), text=True, env=env, check=True)
    for name, sql in queries(lambda n: f"${n}").items():
        ps = PARAMS[name]
        lits = [f"'{p}'" if isinstance(p, str) else str(p) for p in ps]
        for i in range(len(ps), 0, -1):
            sql = sql.replace(f"${i}", lits[i-1])
        print(f"-- PostgreSQL: {name}")
        out = subprocess.run(psql + ["-c", "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql], capture_output=True, text=True, env=env, check=True).stdout
        print("\n".join("    " + l for l in out.splitlines() if l.strip() and "QUERY PLAN" not in l and not l.startswith("---")))


if PG:
    postgres_plans()
else:
    sqlite_plans()
