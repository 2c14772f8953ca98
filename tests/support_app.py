"""A stateful test application for tether's affinity tests: it keeps sessions in memory, so
a request that reaches the wrong instance loses its session (as a real stateful backend).

GET /whoami          -> "<name>"
GET /login           -> Set-Cookie: SID=<name>-<n>; Path=/   body "<name>"
GET /login-header    -> X-Session-Id: <name>-<n>             body "<name>"
GET /session         -> 200 "<name> <sid>" when the SID cookie (or X-Session-Id header, or
                        ?sid=) names a session of this instance, else 401 "<name> no session"
GET /echo            -> the request's Cookie header, X-Session-Id header and target
GET /health          -> 200 "ok", or 503 after GET /admin/down (GET /admin/up: 200 again)
usage: python3 support_app.py PORT NAME [HOST]   (HOST: the address to bind, 127.0.0.1 by default)
"""
import http.cookies
import http.server
import sys
import urllib.parse


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def sid(self):
        jar = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        if "SID" in jar:
            return jar["SID"].value
        if self.headers.get("X-Session-Id"):
            return self.headers["X-Session-Id"]
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        return q.get("sid", [None])[0]

    def new_session(self):
        self.server.n += 1
        sid = f"{self.server.name}-{self.server.n}"
        self.server.sessions.add(sid)
        return sid

    def do_GET(self):
        name = self.server.name
        path = urllib.parse.urlparse(self.path).path
        if path == "/whoami":
            self.send(200, name)
        elif path == "/login":
            self.send(200, name, [("Set-Cookie", f"SID={self.new_session()}; Path=/")])
        elif path == "/login-header":
            self.send(200, name, [("X-Session-Id", self.new_session())])
        elif path == "/session":
            sid = self.sid()
            if sid in self.server.sessions:
                self.send(200, f"{name} {sid}")
            else:
                self.send(401, f"{name} no session")
        elif path == "/echo":
            self.send(200, "cookie=%s\nheader=%s\ntarget=%s\n" % (
                self.headers.get("Cookie", ""), self.headers.get("X-Session-Id", ""), self.path))
        elif path == "/health":
            self.send(503 if self.server.down else 200, "down" if self.server.down else "ok")
        elif path == "/admin/down":
            self.server.down = True
            self.send(200, "down")
        elif path == "/admin/up":
            self.server.down = False
            self.send(200, "up")
        else:
            self.send(404, "not found")


host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
srv = http.server.ThreadingHTTPServer((host, int(sys.argv[1])), App)
srv.name = sys.argv[2]
srv.n = 0
srv.sessions = set()
srv.down = False
srv.serve_forever()
