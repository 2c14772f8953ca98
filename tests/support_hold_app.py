"""A named test upstream that holds requests open on demand, for tether's least_connections
test: the test parks a request on one server and checks where the next requests go.

GET /whoami    -> "<name>"
GET /hold      -> waits until GET /release (at most 30 s), then answers "<name>"
GET /release   -> lets every waiting /hold answer; "released <n>"
GET /inflight  -> the number of /hold requests waiting now (ask it directly, not through
                  tether, to learn which server holds one)
usage: python3 support_hold_app.py PORT NAME
"""
import http.server
import sys
import threading
import urllib.parse


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, body):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        srv = self.server
        path = urllib.parse.urlparse(self.path).path
        if path == "/whoami":
            self.send(srv.name)
        elif path == "/hold":
            with srv.cond:
                srv.inflight += 1
                generation = srv.generation
                srv.cond.wait_for(lambda: srv.generation != generation, timeout=30)
                srv.inflight -= 1
            self.send(srv.name)
        elif path == "/release":
            with srv.cond:
                n = srv.inflight
                srv.generation += 1
                srv.cond.notify_all()
            self.send(f"released {n}")
        elif path == "/inflight":
            with srv.cond:
                n = srv.inflight
            self.send(str(n))
        else:
            self.send_error(404)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), App)
srv.daemon_threads = True
srv.name = sys.argv[2]
srv.cond = threading.Condition()
srv.inflight = 0
srv.generation = 0
srv.serve_forever()
