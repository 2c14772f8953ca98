#!/usr/bin/env python3
"""A stand-in for a Webots simulation server whose load changes, for the broker's tests and
demos (Python 3, stdlib only). It answers GET /load like a simulation server does.

    python3 examples/fake_simulation_server.py --port 2000 --load 12.5      # a fixed load
    python3 examples/fake_simulation_server.py --port 2001 --wave 10:90:20  # 10 → 90 → 10 every 20 s
    python3 examples/fake_simulation_server.py --port 2002 --script 20,97,error,20
    python3 examples/fake_simulation_server.py --port 2003 --script 10,99 --every 5 --loop
    python3 examples/fake_simulation_server.py --port 0       # the kernel picks the port

Prints "listening on PORT" once it accepts connections.

Where the load comes from (first of --script, --wave, --load-file, --load; POST /set?load=
overrides them all):
    --load N              a fixed load in percent
    --wave MIN:MAX:PERIOD a triangle wave: MIN at start, MAX half a period later (seconds)
    --script ITEMS        comma-separated items, each a load or one of the modes below;
                          each GET /load answers the next item and the last one stays
                          (--loop: start again); with --every SECONDS, time moves the script
                          instead of the requests
    --load-file PATH      the file's content, read at each request (`echo 99 > load.txt`)

Modes (--mode, POST /set?mode=M, or a script item):
    numeric (default)  answer the load
    garbage            answer "not a number" (200)
    hang               never answer /load (a poller's timeout sees it)
    error              answer HTTP 500

    GET  /load                     the load, e.g. "12.5" (what the broker polls)
    GET  /monitor                  a small HTML page with the load and the mode
    GET  /stats                    "polls N": how many GET /load were answered or hung
    POST /set?load=N               a fixed load from now on (ends a wave or a script)
    POST /set?mode=M               the mode above
    POST /set?delay_ms=N           answer /load after N ms (a slow server within the timeout)
"""

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MODES = ("numeric", "garbage", "hang", "error")


def number_text(x):
    """12.0 → "12", 12.5 → "12.5"."""
    return str(int(x)) if x == int(x) else repr(round(x, 3))


def parse_wave(text):
    try:
        lo, hi, period = (float(p) for p in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError("--wave wants MIN:MAX:PERIOD_S, e.g. 10:90:20")
    if period <= 0 or hi < lo:
        raise argparse.ArgumentTypeError("--wave: MAX >= MIN and PERIOD_S > 0")
    return (lo, hi, period)


def parse_script(text):
    items = []
    for item in text.split(","):
        item = item.strip()
        if item in MODES:
            items.append(item)
            continue
        try:
            items.append(float(item))
        except ValueError:
            raise argparse.ArgumentTypeError(
                "--script items are loads or one of %s, not %r" % (", ".join(MODES), item)
            )
    if not items:
        raise argparse.ArgumentTypeError("--script needs at least one item")
    return items


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.load = args.load
        self.mode = args.mode
        self.delay_ms = args.delay_ms
        self.load_file = args.load_file
        self.wave = args.wave
        self.script = args.script
        self.loop = args.loop
        self.every = args.every
        self.step = 0  # the next script item, when requests move the script
        self.polls = 0
        self.released = threading.Event()  # set on shutdown: hung requests return

    def source(self):
        if self.script is not None:
            return "script %s%s" % (
                ",".join(i if isinstance(i, str) else number_text(i) for i in self.script),
                " (loop)" if self.loop else "",
            )
        if self.wave is not None:
            return "wave %s:%s:%s" % tuple(number_text(x) for x in self.wave)
        if self.load_file:
            return "file %s" % self.load_file
        return "fixed"

    def next_answer(self):
        """(mode, load text) for one GET /load; moves a request-driven script on."""
        with self.lock:
            self.polls += 1
            if self.script is not None:
                if self.every:
                    i = int((time.monotonic() - self.started) / self.every)
                else:
                    i = self.step
                    self.step += 1
                n = len(self.script)
                item = self.script[i % n] if self.loop else self.script[min(i, n - 1)]
                if isinstance(item, str):
                    return item, ""
                return "numeric", number_text(item)
            mode = self.mode
            if self.wave is not None:
                lo, hi, period = self.wave
                phase = ((time.monotonic() - self.started) / period) % 1.0
                return mode, number_text(round(lo + (hi - lo) * (1 - abs(2 * phase - 1)), 1))
            if self.load_file:
                try:
                    with open(self.load_file, encoding="utf-8") as f:
                        return mode, f.read().strip()
                except OSError as e:
                    return mode, "unreadable load file: %s" % e
            return mode, number_text(self.load)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "FakeSimulationServer/1.1"

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
            mode, text = state.next_answer()
            with state.lock:
                delay = state.delay_ms
            if mode == "hang":
                state.released.wait(600)
                return
            if delay > 0:
                state.released.wait(delay / 1000.0)
            if mode == "error":
                return self.reply(500, "internal error")
            if mode == "garbage":
                return self.reply(200, "not a number")
            return self.reply(200, text)
        if path == "/stats":
            with state.lock:
                return self.reply(200, "polls %d" % state.polls)
        if path == "/monitor":
            with state.lock:
                mode, source = state.mode, state.source()
            page = (
                "<!DOCTYPE html><html><head><title>fake simulation server</title></head>"
                "<body><h1>Fake simulation server</h1><p>load source: %s</p><p>mode: %s</p>"
                "</body></html>" % (source, mode)
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
                state.wave = state.script = state.load_file = None
            if "mode" in query:
                if query["mode"][0] not in MODES:
                    return self.reply(400, "mode must be one of " + ", ".join(MODES))
                state.mode = query["mode"][0]
            if "delay_ms" in query:
                try:
                    state.delay_ms = max(0, int(query["delay_ms"][0]))
                except ValueError:
                    return self.reply(400, "delay_ms must be an integer")
        self.reply(200, "ok")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2000)
    parser.add_argument("--load", type=float, default=0.0)
    parser.add_argument("--wave", type=parse_wave, metavar="MIN:MAX:PERIOD_S")
    parser.add_argument("--script", type=parse_script, metavar="ITEMS")
    parser.add_argument("--every", type=float, metavar="SECONDS", help="time moves --script")
    parser.add_argument("--loop", action="store_true", help="--script starts again at its end")
    parser.add_argument("--load-file")
    parser.add_argument("--mode", choices=MODES, default="numeric")
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args(argv)
    if args.every is not None and args.every <= 0:
        parser.error("--every must be above 0")

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
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
