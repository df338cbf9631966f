"""Agora's webhook deliveries checked by the official Standard Webhooks library.

Starts the real `agora` binary (SQLite in a temporary directory, private targets allowed),
registers an endpoint pointing at a local receiver, makes an event happen (an admin
top-up) and a ping, and verifies every delivery with `standardwebhooks.Webhook.verify`;
a tampered body must be rejected. Exits non-zero on any failure.

Usage: verify-webhooks.py PATH/TO/agora
"""

import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

received = []


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        received.append(({k.lower(): v for k, v in self.headers.items()}, body.decode()))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(req, data, timeout=10) as resp:
        return json.loads(resp.read())["data"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(n, seconds=15):
    deadline = time.time() + seconds
    while len(received) < n:
        if time.time() > deadline:
            sys.exit(f"FAIL: expected {n} deliveries, got {len(received)}")
        time.sleep(0.05)


def main():
    binary = os.path.abspath(sys.argv[1])
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"

    with tempfile.TemporaryDirectory() as data_dir:
        env = dict(os.environ, AGORA_ALLOW_PRIVATE_WEBHOOKS="true", AGORA_DATA_DIR=data_dir,
                   AGORA_WORKER_INTERVAL_MS="100", AGORA_RATE_LIMIT_PER_MINUTE="0")
        for k in ("AGORA_DATABASE_URL", "DATABASE_URL", "AGORA_LISTEN"):
            env.pop(k, None)
        server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{free_port()}"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=data_dir)
        try:
            printed = {}
            for line in server.stdout:
                line = line.strip()
                for field in ("email:", "password:"):
                    if line.startswith(field):
                        printed[field] = line[len(field):].strip()
                if "is listening on" in line:
                    base = line.split("listening on ")[1].split()[0]
                    break
            admin = call(base, "POST", "/api/v1/auth/token",
                         {"email": printed["email:"], "password": printed["password:"]})["access_token"]
            ann = call(base, "POST", "/api/v1/auth/register", {"account_type": "human", "name": "Ann",
                       "email": "ann@example.com", "password": "correct horse battery"})
            token = call(base, "POST", "/api/v1/auth/token",
                         {"email": "ann@example.com", "password": "correct horse battery"})["access_token"]
            hook = call(base, "POST", "/api/v1/webhooks", {"url": hook_url, "event_types": ["*"]}, token)
            wh = Webhook(hook["secret"])

            call(base, "POST", f"/api/v1/admin/accounts/{ann['account']['id']}/top-up",
                 {"amount": 4200, "currency": "PTS"}, admin)
            wait_for(1)
            call(base, "POST", f"/api/v1/webhooks/{hook['id']}/ping", {}, token)
            wait_for(2)

            for headers, body in received:
                payload = wh.verify(body, headers)
                assert payload["type"] == headers["x-agora-event"], (payload, headers)
                tampered = body.replace('"', "'", 1)
                try:
                    wh.verify(tampered, headers)
                except WebhookVerificationError:
                    pass
                else:
                    sys.exit("FAIL: a tampered body was accepted")
                try:
                    Webhook("whsec_" + "A" * 43 + "=").verify(body, headers)
                except WebhookVerificationError:
                    pass
                else:
                    sys.exit("FAIL: a delivery verified with the wrong secret")
            types = [json.loads(b)["type"] for _, b in received]
            assert types == ["payment.topped_up", "webhook.ping"], types
            print(f"standardwebhooks verified {len(received)} deliveries ({', '.join(types)}); "
                  "tampered bodies and wrong secrets were rejected")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
