"""Agora's HTTP API fuzzed against its own OpenAPI document with Schemathesis.

Starts the real `agora` binary (SQLite in a temporary directory, no rate limits, private
webhook targets allowed), registers a person and an agent, seeds a little data (a service,
tasks in several states, a chat, bounties, a job with a bid, a webhook with deliveries, a
spare API key) and runs Schemathesis against the served `/api/openapi.json` twice: as the
person (access token) and as the agent (API key). Only four checks run: not_a_server_error,
status_code_conformance, response_schema_conformance and content_type_conformance.
Every request goes to 127.0.0.1 (webhook targets are rewritten to a local receiver).
Exits non-zero when either run reports a failure or an error, after a summary of the
distinct failures; the server is always stopped.

Usage: schemathesis.py PATH/TO/agora [--seed N] [--max-time SECONDS]

This file is also the Schemathesis hooks module of those runs (SCHEMATHESIS_HOOKS points
at it; see the end of the file). Run as a script it must not import `schemathesis`: its own
directory comes first on sys.path, where this file has that name.
"""

import argparse
import base64
import http.server
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# ──────────────────────────────────────────────────────────────────────────────────────
# EXEMPTIONS: known failures accepted for now. There are none yet; keep it that way when
# you can. An entry drops the failures it matches, and only those, from both runs, so make
# it narrow: one operation, one check, one status and, where the response has one, the
# envelope's `error.code`. Say why it is acceptable (or which issue tracks the fix). Dropped
# failures are still listed, as exempted, at the end of the output.
#
# EXEMPTIONS = [
#     {
#         "operation": "POST /api/v1/example/{id}",  # method and path, as in the document
#         "check": "status_code_conformance",         # one of CHECKS below
#         "status": 409,                              # the response's status code
#         "error_code": "SOME_CODE",                  # the envelope's error.code; None: any
#         "reason": "why this is not a bug, or the issue that tracks it",
#     },
# ]
# ──────────────────────────────────────────────────────────────────────────────────────
# Direct work for an agent that is offline is 503 by design (SPEC §3: the agent is the
# upstream that is unavailable; the client should retry when it is online). The 503 is
# documented on these operations; not_a_server_error flags every 5xx, so exactly these —
# this operation, this check, 503, this code — are exempt.
EXEMPTIONS = [
    {
        "operation": "POST /api/v1/agents/{id}/chats",
        "check": "not_a_server_error",
        "status": 503,
        "error_code": "AGENT_OFFLINE",
        "reason": "a chat with an offline agent is 503 AGENT_OFFLINE by design (SPEC §3), and documented",
    },
    {
        "operation": "POST /api/v1/chats/{chat_id}/messages",
        "check": "not_a_server_error",
        "status": 503,
        "error_code": "AGENT_OFFLINE",
        "reason": "the next turn of a chat whose agent went offline is 503 AGENT_OFFLINE by design, and documented",
    },
    {
        "operation": "POST /api/v1/services/{id}/run",
        "check": "not_a_server_error",
        "status": 503,
        "error_code": "SERVICE_OFFLINE",
        "reason": "running the service of an offline agent is 503 SERVICE_OFFLINE by design (SPEC §4), and documented",
    },
]

CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance",
          "content_type_conformance")
# Schemathesis's own time budget for each run, all phases included: fuzzing and stateful
# testing repeat until it is spent. A run still going HARD_TIMEOUT_SLACK seconds later is
# killed and fails.
MAX_TIME = 150
HARD_TIMEOUT_SLACK = 90
# Test cases per operation in each fuzzing cycle.
MAX_EXAMPLES = 30
REQUEST_TIMEOUT = 10
# `GET /events/stream` never ends: Schemathesis reads it for this long and validates the
# events it got.
STREAM_READ_SECONDS = 1
PASSWORD = "correct horse battery staple"


# ─── The server ───────────────────────────────────────────────────────────────────────

class Sink(http.server.BaseHTTPRequestHandler):
    """Where every webhook created during the runs delivers: answers 204."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0) or 0))
        self.send_response(204)
        self.end_headers()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, *args):
        pass


class Server:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.process = None
        self.lines = queue.Queue()
        self.base = None
        self.admin = None

    def start(self):
        data_dir = os.path.join(self.workdir, "data")
        os.mkdir(data_dir)
        config = os.path.join(self.workdir, "agora.toml")
        with open(config, "w") as f:
            f.write(f"data_dir = {json.dumps(data_dir)}\n"
                    "rate_limit_per_minute = 0\n"
                    "allow_private_webhooks = true\n"
                    "\n"
                    "# Empty: no named rate limits either.\n"
                    "[rate_limits]\n")
        # Only the config file decides: no AGORA_* setting or database URL from outside.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AGORA_") and k != "DATABASE_URL"}
        self.log = open(os.path.join(self.workdir, "agora.log"), "w")
        self.process = subprocess.Popen(
            [self.binary, "serve", "--config", config, "--listen", "127.0.0.1:0"],
            env=env, cwd=self.workdir, stdout=subprocess.PIPE, stderr=self.log, text=True)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        printed = {}
        deadline = time.monotonic() + 60
        while self.base is None:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise SystemExit("FAIL: agora did not say where it is listening:\n" + self.log_tail())
            line = line.strip()
            for field in ("email:", "password:"):
                if line.startswith(field):
                    printed[field] = line[len(field):].strip()
            if "is listening on" in line:
                self.base = line.split("listening on ")[1].split()[0].rstrip("/")
        self.admin = call(self.base, "POST", "/api/v1/auth/token",
                          {"email": printed["email:"], "password": printed["password:"]})["access_token"]

    def _read_stdout(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines=30):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class ApiError(Exception):
    pass


# Everything here is on 127.0.0.1: never through a proxy from the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def call(base, method, path, body=None, token=None, idempotency_key=None, full=False):
    req = urllib.request.Request(base + path, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    if idempotency_key:
        req.add_header("idempotency-key", idempotency_key)
    data = json.dumps(body).encode() if body is not None else None
    try:
        with _LOCAL.open(req, data, timeout=30) as resp:
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise ApiError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')[:500]}") from None
    return payload if full else payload["data"]


# ─── Accounts and data for the runs to act on ─────────────────────────────────────────

def seed(server, sink_url):
    base, admin = server.base, server.admin
    api = lambda method, path, token, body=None: call(base, method, path, body, token)  # noqa: E731

    ann = call(base, "POST", "/api/v1/auth/register", {
        "account_type": "human", "name": "Ann", "email": "ann@example.com", "password": PASSWORD})
    human = call(base, "POST", "/api/v1/auth/token",
                 {"email": "ann@example.com", "password": PASSWORD})["access_token"]
    # Logging out ends the session presented: the person's run logs out with this one.
    spare_session = call(base, "POST", "/api/v1/auth/token",
                         {"email": "ann@example.com", "password": PASSWORD})["access_token"]
    scribe = call(base, "POST", "/api/v1/auth/register",
                  {"account_type": "agent", "name": "Scribe", "skills": ["writing"]})
    agent = scribe["api_key"]
    agent_key_ids = [k["id"] for k in api("GET", "/api/v1/me/keys", agent)]

    api("POST", f"/api/v1/admin/accounts/{ann['account']['id']}/top-up", admin,
        {"amount": 1_000_000, "currency": "PTS", "reason": "schemathesis"})
    api("POST", f"/api/v1/admin/accounts/{ann['account']['id']}/top-up", admin,
        {"amount": 100_000, "currency": "USD"})
    api("PATCH", "/api/v1/me", agent, {"max_concurrent_tasks": 10, "pricing": {
        "currency": "PTS", "chat_first_message": 10, "chat_subsequent_message": 5, "per_task": 20}})
    api("POST", "/api/v1/agent/heartbeat", agent, {})
    service = api("POST", "/api/v1/services", agent, {
        "name": "Haiku", "price": 10, "short_description": "A haiku on any topic",
        "input_schema": {"type": "object", "required": ["topic"],
                         "properties": {"topic": {"type": "string"}}},
        "output_schema": {"type": "object", "required": ["haiku"],
                          "properties": {"haiku": {"type": "string"}}}})
    api("POST", f"/api/v1/services/{service['id']}/favorite", human)
    api("POST", "/api/v1/webhooks", human, {"url": sink_url, "event_types": ["*"]})
    api("POST", "/api/v1/me/keys", human, {"name": "spare"})

    def run_service():
        return api("POST", f"/api/v1/services/{service['id']}/run", human,
                   {"input_data": {"topic": "autumn"}})

    def claim():
        task = api("GET", "/api/v1/agent/inbox?wait=0", agent)["task"]
        assert task is not None, "the agent's inbox was empty"
        return task["id"]

    # A delivered run waiting for Ann's acceptance, with a message and a progress report.
    run_service()
    delivered = claim()
    api("POST", f"/api/v1/tasks/{delivered}/progress", agent, {"percent": 50, "current_step": "counting"})
    api("POST", f"/api/v1/tasks/{delivered}/messages", human, {"body": "Make it about leaves"})
    api("POST", f"/api/v1/tasks/{delivered}/deliver", agent, {
        "output": {"haiku": "leaves fall"}, "ui_blocks": [{"type": "markdown", "content": "## Done"}]})
    # An accepted one, and one in a revision.
    run_service()
    accepted = claim()
    api("POST", f"/api/v1/tasks/{accepted}/deliver", agent, {"output": {"haiku": "done"}})
    api("POST", f"/api/v1/tasks/{accepted}/accept", human)
    run_service()
    revised = claim()
    api("POST", f"/api/v1/tasks/{revised}/deliver", agent, {"output": {"haiku": "first"}})
    api("POST", f"/api/v1/tasks/{revised}/revision", human, {"feedback": "five-seven-five"})
    # A chat with a completed turn.
    chat = api("POST", f"/api/v1/agents/{scribe['account']['id']}/chats", human,
               {"message": "Write a haiku about queues"})
    api("POST", f"/api/v1/tasks/{claim()}/deliver", agent, {"text": "Tasks wait in line"})
    # A failed run; one in progress; one still queued for the agent's own run to find.
    run_service()
    api("POST", f"/api/v1/tasks/{claim()}/fail", agent, {"error": "out of ink"})
    run_service()
    claim()
    run_service()
    # Bounties: one open, one claimed by the agent.
    bounty = {"short_description": "Summarise a paper", "reward_amount": 50, "max_delivery_hours": 24}
    api("POST", "/api/v1/bounties", human, {**bounty, "title": "Open bounty"})
    claimed = api("POST", "/api/v1/bounties", human, {**bounty, "title": "Claimed bounty"})
    api("POST", f"/api/v1/bounties/{claimed['id']}/claim", agent)
    api("POST", "/api/v1/chats/{}/messages".format(chat["chat_id"]), human, {"message": "Another"})
    # Jobs: one open, with the agent's bid on it, countered; an invitation; an auto-bid rule.
    job = api("POST", "/api/v1/jobs", human,
              {"title": "翻译产品手册", "tags": ["writing"], "budget_min": 100, "budget_max": 500})
    bid = api("POST", f"/api/v1/jobs/{job['job']['id']}/bids", agent, {"amount": 300, "estimated_days": 3})
    api("POST", f"/api/v1/bids/{bid['id']}/counter", human, {"amount": 250})
    api("POST", f"/api/v1/jobs/{job['job']['id']}/invitations", human,
        {"provider_id": scribe["account"]["id"]})
    api("PUT", "/api/v1/me/auto-bid-rules", agent, {"enabled": True, "min_price": 10, "max_price": 100})

    return {"human": human, "spare_session": spare_session, "agent": agent,
            "agent_key_ids": agent_key_ids}


# ─── Running Schemathesis ─────────────────────────────────────────────────────────────

def schemathesis_config(path, credential, logout_credential):
    lines = [
        "# Written by .ci/schemathesis.py for one run.",
        "headers = { Authorization = %s }" % json.dumps("Bearer " + credential),
        "",
        "[output.sanitization]",
        "# Only the credential is hidden in reports (Idempotency-Key values help diagnosis).",
        'keys-to-sanitize = ["authorization"]',
        'sensitive-markers = ["authorization"]',
        "",
        "[[operations]]",
        'include-name = "GET /api/v1/events/stream"',
        f"request-timeout = {STREAM_READ_SECONDS}",
        "max-stream-events = 50",
    ]
    if logout_credential:
        lines += [
            "",
            "# Logging out ends the session presented: not the one the run uses.",
            "[[operations]]",
            'include-name = "POST /api/v1/auth/logout"',
            "headers = { Authorization = %s }" % json.dumps("Bearer " + logout_credential),
        ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def run_schemathesis(name, server, workdir, credential, seed_value, max_time, hook_env,
                     logout_credential=None):
    rundir = os.path.join(workdir, name.split()[-1])
    os.mkdir(rundir)
    config = os.path.join(rundir, "schemathesis.toml")
    schemathesis_config(config, credential, logout_credential)
    ndjson = os.path.join(rundir, "events.ndjson")
    exempted = os.path.join(rundir, "exempted.jsonl")
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", config, "--no-color",
        "run", server.base + "/api/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-time", str(max_time),
        "--max-examples", str(MAX_EXAMPLES),
        "--request-timeout", str(REQUEST_TIMEOUT),
        "--continue-on-failure",
        "--workers", "1",
        "--seed", str(seed_value),
        "--generation-database", "none",
        "--report", "ndjson", "--report-ndjson-path", ndjson,
    ]
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in _PROXY_VARIABLES and k != "PYTHONPATH"}
    # Loading this file as the hooks module must leave no .pyc beside it.
    env.update(SCHEMATHESIS_HOOKS=os.path.abspath(__file__), AGORA_ST_EXEMPTED=exempted,
               NO_PROXY="*", PYTHONDONTWRITEBYTECODE="1", **hook_env)
    print(f"\n=== Schemathesis as {name}: {' '.join(command[3:])}", flush=True)
    started = time.monotonic()
    # Its own session, so the timeout can stop it and anything it started.
    process = subprocess.Popen(command, cwd=rundir, env=env, start_new_session=True)
    timed_out = False
    try:
        process.wait(timeout=max_time + HARD_TIMEOUT_SLACK)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    elapsed = time.monotonic() - started
    result = {"name": name, "exit_code": process.returncode, "elapsed": elapsed,
              "timed_out": timed_out, "problems": []}
    result.update(read_events(ndjson))
    result["exempted"] = read_jsonl(exempted)
    if timed_out:
        result["problems"].append(f"killed after {max_time + HARD_TIMEOUT_SLACK} s")
    if not server.alive():
        result["problems"].append("the server exited during the run:\n" + server.log_tail())
    else:
        try:
            call(server.base, "GET", "/api/v1/me", token=credential)
        except (ApiError, OSError) as e:
            result["problems"].append(f"the run's credential stopped working ({e}): "
                                      "its later results are not to be trusted")
    if not os.path.exists(ndjson):
        result["problems"].append("Schemathesis wrote no report")
    elif process.returncode != 0 and not (result["failures"] or result["errors"] or timed_out):
        result["problems"].append(f"Schemathesis exited with {process.returncode} "
                                  "and reported no failure")
    return result


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def decode_body(response):
    content = (response or {}).get("content") or {}
    if "$base64" in content:
        return base64.b64decode(content["$base64"]).decode("utf-8", errors="replace")
    return content.get("string", "") or ""


def error_code(body):
    try:
        return (json.loads(body).get("error") or {}).get("code")
    except (ValueError, AttributeError):
        return None


# Values that differ from one example to the next, so that one problem is listed once.
_VARYING = [
    (re.compile(r"\b([a-z]{2,5})_[0-9a-zA-Z]{10,}\b"), r"\1_…"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT[0-9:.]+Z\b"), "<time>"),
    (re.compile(r"^Event #\d+"), "Event #…"),
]


def normalise(text):
    """What identifies one problem in a failure message: not the offending value."""
    text = text.split("\nValue:")[0]
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return text


def read_events(path):
    """Distinct failures and errors of one run from Schemathesis's NDJSON event log."""
    failures, errors = {}, {}
    if not os.path.exists(path):
        return {"failures": {}, "errors": {}, "stats": {}}
    stats = {"scenarios": 0}
    with open(path) as f:
        for line in f:
            event = json.loads(line)
            for kind in ("NonFatalError", "FatalError"):
                if kind in event:
                    error = event[kind].get("value") or event[kind].get("exception") or {}
                    key = (event[kind].get("label") or kind, error.get("type", ""),
                           normalise((error.get("message") or "").strip().split("\n")[0]))
                    errors[key] = errors.get(key, 0) + 1
            if "ScenarioFinished" not in event:
                continue
            stats["scenarios"] += 1
            recorder = event["ScenarioFinished"].get("recorder") or {}
            for case_id, checks in (recorder.get("checks") or {}).items():
                for check in checks:
                    if check.get("status") != "failure":
                        continue
                    failure = ((check.get("failure_info") or {}).get("failure")) or {}
                    interaction = (recorder.get("interactions") or {}).get(case_id) or {}
                    response = interaction.get("response") or {}
                    request = interaction.get("request") or {}
                    body = decode_body(response)
                    status = response.get("status_code")
                    operation = failure.get("operation") or recorder.get("label")
                    message = failure.get("message") or ""
                    detail = normalise(message)
                    if check.get("name") == "status_code_conformance":
                        detail = ""  # the status and the error code say it all
                    key = (operation, check.get("name"), status, error_code(body), detail)
                    entry = failures.setdefault(key, {
                        "operation": operation, "check": check.get("name"),
                        "title": failure.get("title"), "code": failure.get("code"),
                        "status": status, "error_code": error_code(body), "message": message,
                        "body": body, "request": f"{request.get('method')} {request.get('uri')}",
                        "request_body": decode_body(request) if request.get("body") else "",
                        "count": 0})
                    entry["count"] += 1
    return {"failures": failures, "errors": errors, "stats": stats}


def clip(text, limit):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " …"


def report(results):
    print("\n" + "=" * 88)
    print("Schemathesis summary (checks: " + ", ".join(CHECKS) + ")")
    ok = True
    for result in results:
        failures = sorted(result["failures"].values(),
                          key=lambda e: (e["operation"] or "", e["check"] or "", e["status"] or 0))
        print(f"\n── As {result['name']}: {len(failures)} distinct failure(s), "
              f"{sum(result['errors'].values())} error(s), {len(result['exempted'])} exempted failure(s), "
              f"{result['elapsed']:.0f} s, Schemathesis exit code {result['exit_code']}")
        for entry in failures:
            ok = False
            code = f" {entry['error_code']}" if entry["error_code"] else ""
            print(f"  FAIL {entry['operation']} · {entry['check']} · {entry['status']}{code} "
                  f"(×{entry['count']})")
            print(f"       {entry['title']}: {clip(entry['message'], 400)}")
            print(f"       request: {clip(entry['request'], 200)}"
                  + (f"  body: {clip(entry['request_body'], 200)}" if entry["request_body"] else ""))
            print(f"       response: {clip(entry['body'], 300)}")
        for (label, title, message), count in sorted(result["errors"].items()):
            ok = False
            print(f"  ERROR {label}: {title}: {clip(message, 300)} (×{count})")
        for problem in result["problems"]:
            ok = False
            print(f"  PROBLEM {problem}")
        exempted = {}
        for entry in result["exempted"]:
            key = (entry["operation"], entry["check"], entry["status"], entry.get("error_code") or "",
                   entry["reason"])
            exempted[key] = exempted.get(key, 0) + 1
        for (operation, check, status, code, reason), count in sorted(exempted.items()):
            print(f"  exempted {operation} · {check} · {status} {code} (×{count}): {reason}")
    print("\n" + ("PASS: no failures" if ok else "FAIL: see above; reproduce with the seed printed "
                  "at the top (--seed)"))
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--seed", type=int, default=None, help="Schemathesis seed (default: random)")
    parser.add_argument("--max-time", type=int, default=MAX_TIME,
                        help=f"Schemathesis's time budget per run, seconds (default {MAX_TIME})")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    seed_value = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"Seed: {seed_value}", flush=True)

    version = subprocess.run([sys.executable, "-m", "schemathesis.cli", "--version"],
                             cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if version.returncode != 0:
        sys.exit("FAIL: Schemathesis is not installed for " + sys.executable + "\n" + version.stderr)
    print(version.stdout.strip(), flush=True)

    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}/hook"

    workdir = tempfile.mkdtemp(prefix="agora-schemathesis-")
    server = Server(binary, workdir)
    results = []
    try:
        server.start()
        print(f"agora is listening on {server.base} (work directory {workdir})", flush=True)
        accounts = seed(server, sink_url)
        hook_env = {"AGORA_ST_BASE": server.base, "AGORA_ST_SINK": sink_url}
        results.append(run_schemathesis(
            "the person", server, workdir, accounts["human"], seed_value, args.max_time,
            dict(hook_env, AGORA_ST_CREDENTIAL=accounts["human"], AGORA_ST_PROTECTED_KEYS=""),
            logout_credential=accounts["spare_session"]))
        results.append(run_schemathesis(
            "the agent", server, workdir, accounts["agent"], seed_value, args.max_time,
            dict(hook_env, AGORA_ST_CREDENTIAL=accounts["agent"],
                 AGORA_ST_PROTECTED_KEYS=",".join(accounts["agent_key_ids"]))))
    finally:
        server.stop()
        sink.shutdown()
    ok = report(results)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"Reports and the server log are kept in {workdir}")
    return 0 if ok else 1


# ─── Hooks, run inside Schemathesis (SCHEMATHESIS_HOOKS names this file) ──────────────

def _install_hooks():
    import schemathesis

    base = os.environ["AGORA_ST_BASE"]
    credential = os.environ["AGORA_ST_CREDENTIAL"]
    sink = os.environ["AGORA_ST_SINK"]
    protected_keys = set(filter(None, os.environ.get("AGORA_ST_PROTECTED_KEYS", "").split(",")))

    @schemathesis.hook
    def before_call(ctx, case, kwargs):
        label = f"{case.method.upper()} {case.operation.path}"
        # Webhooks may only reach the local receiver: anything that could parse as a URL
        # (it has a scheme) points there instead. Other strings still test validation.
        if label in ("POST /api/v1/webhooks", "PATCH /api/v1/webhooks/{id}"):
            if isinstance(case.body, dict) and isinstance(case.body.get("url"), str) \
                    and ":" in case.body["url"]:
                case.body["url"] = sink
        # The inbox long-polls for up to 60 s (30 by default): ask it not to wait.
        if label == "GET /api/v1/agent/inbox":
            query = dict(case.query or {})
            wait = query.get("wait")
            try:
                waits = wait is None or 0 < int(str(wait)) < 2**64
            except ValueError:
                waits = False
            if waits:
                query["wait"] = 0
                case.query = query
        # The run's own API key must survive: revoke or rotate a fresh one instead.
        if label in ("DELETE /api/v1/me/keys/{id}", "POST /api/v1/me/keys/{id}/rotate"):
            params = case.path_parameters or {}
            if params.get("id") in protected_keys:
                fresh = call(base, "POST", "/api/v1/me/keys", {"name": "sacrificial"}, credential)
                case.path_parameters = {**params, "id": fresh["id"]}

    @schemathesis.hook
    def filter_failure(ctx, failure, case, response):
        checks = getattr(type(failure), "checks", ()) or ()
        operation = failure.operation or f"{case.method.upper()} {case.operation.path}"
        status = response.status_code
        try:
            code = (json.loads(response.content).get("error") or {}).get("code")
        except (ValueError, AttributeError):
            code = None
        for exemption in EXEMPTIONS:
            if (exemption["operation"] == operation and exemption["check"] in checks
                    and exemption["status"] == status
                    and exemption.get("error_code") in (None, code)):
                with open(os.environ["AGORA_ST_EXEMPTED"], "a") as f:
                    f.write(json.dumps({"operation": operation, "check": exemption["check"],
                                        "status": status, "error_code": code,
                                        "reason": exemption["reason"]}) + "\n")
                return False
        return True


if __name__ == "__main__":
    sys.exit(main())
elif os.environ.get("SCHEMATHESIS_HOOKS") and os.environ.get("AGORA_ST_BASE"):
    _install_hooks()
