"""A fake MapGuide mapagent for tether's end-to-end tests (tests/mapguide.rs).

usage: python3 support_mapagent.py PORT NAME

Every path answers as /mapguide/mapagent/mapagent.fcgi does (the real API's shape):
- OPERATION=CREATESESSION (query string or urlencoded POST body): a new session id, made
  and kept in this server's memory, as the whole text/plain body;
- any other OPERATION: SESSION= from the query string or from an
  application/x-www-form-urlencoded POST body; an id this server does not hold is answered
  559 ("session expired"), a held one 200 with "NAME SESSION-AS-SEEN";
- CREATESESSION with FORMAT=json: {"session": {"id": ID}, "ok": true} (application/json);
  with GZIP=1: the body gzip-compressed (Content-Encoding: gzip); with PAD=N: N spaces
  after the id;
- any path ending in /echo: the request body exactly as received (chunked decoded);
- GET /stats: JSON {"created": n, "ok": n, "unknown": n, "seen": [every SESSION value it
  was sent]}, for the test to check that no tether tag ever reached the backend.
"""
import gzip
import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

PORT, NAME = int(sys.argv[1]), sys.argv[2]
LOCK = threading.Lock()
SESSIONS = set()
STATS = {"created": 0, "ok": 0, "unknown": 0, "seen": []}


class Agent(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, code, body, ctype="text/plain", gz=False):
        data = body.encode()
        self.send_response(code)
        if gz:
            data = gzip.compress(data)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def params(self, body):
        query = urlsplit(self.path).query
        pairs = parse_qsl(query, keep_blank_values=True)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body and ctype == "application/x-www-form-urlencoded":
            pairs += parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        return {k.upper(): v for k, v in pairs}

    def handle_op(self, body):
        if urlsplit(self.path).path == "/stats":
            with LOCK:
                return self.answer(200, json.dumps(STATS), "application/json")
        if urlsplit(self.path).path.endswith("/echo"):
            return self.answer(200, body.decode("latin-1"))
        p = self.params(body)
        if p.get("OPERATION", "").upper() == "CREATESESSION":
            sid = "%s_en_%s" % (uuid.uuid4(), NAME)
            with LOCK:
                SESSIONS.add(sid)
                STATS["created"] += 1
            gz = p.get("GZIP") == "1"
            if p.get("FORMAT", "").lower() == "json":
                doc = json.dumps({"session": {"id": sid}, "ok": True})
                return self.answer(200, doc, "application/json", gz)
            return self.answer(200, sid + " " * int(p.get("PAD") or 0), gz=gz)
        sid = p.get("SESSION", "")
        with LOCK:
            STATS["seen"].append(sid)
            held = sid in SESSIONS
            STATS["ok" if held else "unknown"] += 1
        if not held:
            return self.answer(559, "session %s expired or unknown on %s" % (sid, NAME))
        self.answer(200, "%s %s" % (NAME, sid))

    def do_GET(self):
        self.handle_op(b"")

    def do_POST(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
            return self.handle_op(body)
        n = int(self.headers.get("Content-Length") or 0)
        self.handle_op(self.rfile.read(n) if n else b"")

    def log_message(self, *a):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Agent).serve_forever()
