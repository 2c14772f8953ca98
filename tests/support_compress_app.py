"""A JSON backend for tether's compression tests (tests/compress.rs), HTTP/1.1 keep-alive.

GET /json?n=N        -> N bytes of JSON records, Content-Length
GET /chunked?n=N     -> the same N bytes, chunked (4 KiB chunks)
GET /close?n=N       -> the same N bytes, delimited by closing the connection
GET /encoded         -> gzip'ed JSON with Content-Encoding: gzip (already encoded)
GET /notransform?n=N -> JSON with Cache-Control: no-transform
GET /png?n=N         -> the JSON bytes as image/png (a type not compressed)
GET /etag?n=N        -> JSON with ETag: "v1" and Vary: Origin
any of them with a Range header -> 206 of the first 10 bytes
GET /stream?mb=M&dir=D -> M MiB of JSON records, chunked, 64 KiB a write; after the first
                      half it waits (at most 60 s) for the file D/release, and at the end
                      it writes D/sent (the bytes sent) and D/done before its last chunk
usage: python3 support_compress_app.py --port P   (0: any; prints "listening on <port>")
"""
import gzip
import http.server
import os
import sys
import time
import urllib.parse


def records(n):
    out = bytearray()
    i = 0
    while len(out) < n:
        x = (i * 2654435761) % 4294967296
        out += b'{"id": %d, "name": "user-%08x", "score": %d, "tags": ["a", "b%d"]},\n' % (
            i, x, x % 1000, i % 7)
        i += 1
    return bytes(out[:n])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, body, ctype="application/json", extra=()):
        if self.headers.get("Range"):
            part = body[:10]
            self.send_response(206)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Range", "bytes 0-9/%d" % len(body))
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(part)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        for n, v in extra:
            self.send_header(n, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        n = int(q.get("n", ["100000"])[0])
        body = records(n)
        if url.path == "/json":
            self.answer(body)
        elif url.path == "/notransform":
            self.answer(body, extra=[("Cache-Control", "public, no-transform")])
        elif url.path == "/png":
            self.answer(body, ctype="image/png")
        elif url.path == "/etag":
            self.answer(body, extra=[("ETag", '"v1"'), ("Vary", "Origin")])
        elif url.path == "/encoded":
            # mtime=0: the same bytes on every request (the test compares two fetches).
            self.answer(gzip.compress(body, mtime=0), extra=[("Content-Encoding", "gzip")])
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 4096):
                part = body[i:i + 4096]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/close":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        elif url.path == "/stream":
            self.stream(int(q["mb"][0]), q["dir"][0])
        else:
            self.send_error(404)

    def stream(self, mb, d):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        total, piece, sent, i = mb << 20, 64 << 10, 0, 0
        with open(os.path.join(d, "sent"), "wb") as f:
            while sent < total:
                if sent >= total // 2:
                    deadline = time.monotonic() + 60
                    while not os.path.exists(os.path.join(d, "release")):
                        if time.monotonic() > deadline:
                            self.close_connection = True
                            return
                        time.sleep(0.01)
                # records of this piece: unique per piece (the index goes on).
                part = bytearray()
                while len(part) < piece:
                    x = (i * 2654435761) % 4294967296
                    part += b'{"id": %d, "name": "user-%08x", "v": %d},\n' % (i, x, x % 9973)
                    i += 1
                part = bytes(part[: min(piece, total - sent)])
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                f.write(part)
                sent += len(part)
        # The record of what was sent is complete, and "done" exists, before the last
        # chunk goes out: a client that has read the whole answer finds both.
        open(os.path.join(d, "done"), "w").close()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("listening on %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


main()
