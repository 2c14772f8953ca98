"""visit_counter: a demo backend for tether's shared-sessions scenario (docs/affinity.md,
"Demo: shared sessions"). It keeps each user's visit count in Redis, not in its own memory,
so any instance can carry on a session another one started.

GET /        -> {"message": "Hello from <name>!", "visits": N, "session_id": "<id>"}
                A request without a known `visit_sid` cookie starts a session (visits = 1)
                and sets `visit_sid=<32 hex digits>; Path=/; HttpOnly; SameSite=Lax`.
                Each later request counts one more visit and renews the session's expiry
                (`--ttl` seconds, 1800 by default). A session id Redis does not know (expired,
                or made up by the client) is never adopted: a new session is started.
GET /health  -> 200 "ok" when Redis answers PING, else 503 (for tether's health checks)
Redis down   -> 503 {"error": "session store unavailable"}; the next request reconnects.

usage: python3 app.py --port 5001 --name alpha [--redis 127.0.0.1:6379] [--ttl 1800]

Python standard library only: http.server, and a minimal RESP client (below) over a socket.
"""
import argparse
import http.cookies
import http.server
import json
import re
import secrets
import socket
import threading

COOKIE = "visit_sid"
SID = re.compile(r"^[0-9a-f]{32}$")
# Count a visit of an existing session and renew its expiry, in one round trip; 0 when the
# session does not exist (INCR alone would create it, adopting any id a client sends).
VISIT = (
    "if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 1 then "
    "return redis.call('INCR', KEYS[1]) else return 0 end"
)


class RedisDown(Exception):
    pass


class Redis:
    """One connection to Redis, shared by the handler threads under a lock. Commands are
    lists of strings; `call` sends several at once (a pipeline) and returns their replies."""

    def __init__(self, host, port, timeout=2.0):
        self.addr = (host, port)
        self.timeout = timeout
        self.lock = threading.Lock()
        self.sock = None
        self.rfile = None

    def call(self, *commands):
        payload = b"".join(encode(c) for c in commands)
        with self.lock:
            # A connection kept from before a Redis restart fails at once (EOF or reset)
            # without the command having run: reconnect and send it once more.
            for attempt in (0, 1):
                fresh = self.sock is None
                try:
                    if fresh:
                        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
                        self.rfile = self.sock.makefile("rb")
                    self.sock.sendall(payload)
                    replies = [self.read() for _ in commands]
                    break
                except (OSError, ValueError) as e:
                    self.close()
                    if fresh or attempt == 1:
                        raise RedisDown(str(e)) from e
        for r in replies:
            if isinstance(r, RuntimeError):
                raise RedisDown(f"redis answered an error: {r}")
        return replies

    def close(self):
        for f in (self.rfile, self.sock):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        self.sock = self.rfile = None

    def read(self):
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("connection closed by redis")
            return data[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply from redis: {line[:40]!r}")


def encode(command):
    out = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json", headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def session_cookie(self):
        try:
            jar = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return None
        sid = jar[COOKIE].value if COOKIE in jar else None
        return sid if sid and SID.match(sid) else None

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/health":
            try:
                ok = self.server.redis.call(["PING"]) == ["PONG"]
            except RedisDown:
                ok = False
            self.send(200 if ok else 503, "ok" if ok else "redis down", "text/plain")
        elif path == "/":
            self.visit()
        else:
            self.send(404, json.dumps({"error": "not found"}))

    def visit(self):
        redis, ttl = self.server.redis, self.server.ttl
        sid = self.session_cookie()
        headers = []
        try:
            visits = 0
            if sid:
                (visits,) = redis.call(["EVAL", VISIT, 1, f"visits:{sid}", ttl])
            if not isinstance(visits, int) or visits <= 0:
                sid = secrets.token_hex(16)
                (reply,) = redis.call(["SET", f"visits:{sid}", 1, "EX", ttl, "NX"])
                if reply != "OK":
                    raise RedisDown(f"SET refused: {reply}")
                visits = 1
                headers.append(("Set-Cookie", f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"))
        except RedisDown:
            self.send(503, json.dumps({"error": "session store unavailable"}))
            return
        body = {"message": f"Hello from {self.server.name}!", "visits": visits, "session_id": sid}
        self.send(200, json.dumps(body), headers=headers)


def main():
    p = argparse.ArgumentParser(description="visit counter backend (sessions in Redis)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--redis", default="127.0.0.1:6379", help="host:port")
    p.add_argument("--ttl", type=int, default=1800, help="session life in seconds")
    a = p.parse_args()
    host, _, port = a.redis.rpartition(":")
    srv = http.server.ThreadingHTTPServer((a.bind, a.port), Handler)
    srv.daemon_threads = True
    srv.name = a.name
    srv.ttl = a.ttl
    srv.redis = Redis(host or "127.0.0.1", int(port))
    srv.serve_forever()


if __name__ == "__main__":
    main()
