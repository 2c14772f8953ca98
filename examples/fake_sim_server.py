#!/usr/bin/env python3
"""A stand-in for a Webots simulation server, for the broker's tests and demos (stdlib only).

    python3 examples/fake_sim_server.py --port 2000 --load 12.5
    python3 examples/fake_sim_server.py --port 0            # the kernel picks the port

Prints "listening on PORT" once it accepts connections.

    GET  /load                     the load in percent, e.g. "12.5" (what the broker polls)
    GET  /monitor                  a small HTML page with the load and mode
    POST /set?load=N               change the load
    POST /set?mode=M               numeric (default) | garbage (answers "not a number")
                                   | hang (never answers /load) | error (HTTP 500)

With --load-file PATH, /load answers the file's content, read at each request (so a shell
can change it: `echo 99 > load.txt`). --mode sets the starting mode.
"""

import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MODES = ("numeric", "garbage", "hang", "error")


class State:
    def __init__(self, load, mode, load_file):
        self.lock = threading.Lock()
        self.load = load
        self.mode = mode
        self.load_file = load_file
        self.released = threading.Event()  # set on shutdown: hung requests return

    def load_text(self):
        if self.load_file:
            try:
                with open(self.load_file, encoding="utf-8") as f:
                    return f.read().strip()
            except OSError as e:
                return "unreadable load file: %s" % e
        with self.lock:
            return repr(self.load) if self.load != int(self.load) else str(int(self.load))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "FakeSimulationServer/1.0"

    def log_message(self, fmt, *args):  # quiet: tests read stdout for the port only
        pass

    def reply(self, status, body, ctype="text/plain"):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype + "; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        state = self.server.state
        path = urlsplit(self.path).path
        if path == "/load":
            with state.lock:
                mode = state.mode
            if mode == "hang":
                state.released.wait(600)
                return
            if mode == "error":
                return self.reply(500, "internal error")
            if mode == "garbage":
                return self.reply(200, "not a number")
            return self.reply(200, state.load_text())
        if path == "/monitor":
            page = (
                "<!DOCTYPE html><html><head><title>fake simulation server</title></head>"
                "<body><h1>Fake simulation server</h1><p>load: %s%%</p><p>mode: %s</p></body></html>"
                % (state.load_text(), state.mode)
            )
            return self.reply(200, page, "text/html")
        self.reply(404, "not found")

    def do_POST(self):
        state = self.server.state
        url = urlsplit(self.path)
        if url.path != "/set":
            return self.reply(404, "not found")
        query = parse_qs(url.query)
        with state.lock:
            if "load" in query:
                try:
                    state.load = float(query["load"][0])
                except ValueError:
                    return self.reply(400, "load must be a number")
            if "mode" in query:
                if query["mode"][0] not in MODES:
                    return self.reply(400, "mode must be one of " + ", ".join(MODES))
                state.mode = query["mode"][0]
        self.reply(200, "ok")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2000)
    parser.add_argument("--load", type=float, default=0.0)
    parser.add_argument("--load-file")
    parser.add_argument("--mode", choices=MODES, default="numeric")
    args = parser.parse_args()

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.state = State(args.load, args.mode, args.load_file)
    print("listening on %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.state.released.set()
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
