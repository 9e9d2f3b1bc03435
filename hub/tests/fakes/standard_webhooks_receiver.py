"""A webhook receiver for hub/tests/http_output.rs that verifies every POST
with the official Standard Webhooks library (`standardwebhooks` on PyPI).

Usage: python standard_webhooks_receiver.py PORT  (0: any free port)
The secret comes from the environment variable RECEIVER_SECRET (whsec_...).
Prints `listening PORT` on stdout once it accepts connections.

POST /hook: 401 when the signature does not verify. Otherwise the answer
depends on the first event's record payload `behaviour`:
  "ok" (or absent): 204, and every event of the body is recorded as acked;
  "reject": 400;
  "busy_once": 503 with `Retry-After: 1` the first time that delivery id
  is seen, then as "ok";
  "limited_once": the same with 429;
  "slow_once": the first time, answers 204 only after 3 seconds (past the
  output's timeout), then as "ok".
GET /log: every POST as JSON: [{"webhook_id", "tenant" (the x-tenant
  header), "status", "delivery_ids", "record_ids", "at"}].
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

WEBHOOK = Webhook(os.environ["RECEIVER_SECRET"])
LOCK = threading.Lock()
LOG = []
SEEN = set()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, headers=(), body=b""):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/log":
            return self.answer(404)
        with LOCK:
            body = json.dumps(LOG).encode()
        self.answer(200, [("content-type", "application/json")], body)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        entry = {
            "webhook_id": headers.get("webhook-id"),
            "tenant": headers.get("x-tenant"),
            "at": time.time(),
        }
        try:
            payload = WEBHOOK.verify(body, headers)
        except WebhookVerificationError:
            entry["status"] = 401
            with LOCK:
                LOG.append(entry)
            return self.answer(401)
        events = payload.get("data", [])
        entry["delivery_ids"] = [event["delivery_id"] for event in events]
        entry["record_ids"] = [event["record"]["id"] for event in events]
        first = (events[0]["record"].get("payload") or {}) if events else {}
        behaviour = first.get("behaviour", "ok") if isinstance(first, dict) else "ok"
        status, extra, slow = 204, [], False
        with LOCK:
            first_time = bool(events) and events[0]["delivery_id"] not in SEEN
            if events:
                SEEN.add(events[0]["delivery_id"])
            if behaviour == "reject":
                status = 400
            elif behaviour == "busy_once" and first_time:
                status, extra = 503, [("retry-after", "1")]
            elif behaviour == "limited_once" and first_time:
                status, extra = 429, [("retry-after", "1")]
            elif behaviour == "slow_once" and first_time:
                slow = True
                entry["slow"] = True
            entry["status"] = status
            LOG.append(entry)
        if slow:
            time.sleep(3)
        self.answer(status, extra)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
