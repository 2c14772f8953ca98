#!/usr/bin/env python3
"""Send exactly N keep-alive `GET <path>` requests over C connections and check every answer.

Used by benches/ab.sh, where an exact request count matters more than speed: instruction
counts (callgrind) and syscall counts (strace) are divided by it.

  load.py HOST PORT --path /1k.bin --requests 20000 --conns 32 [--head browser] [--cookie srv=...]

--head host (default) sends `Host` alone; --head browser sends the head a browser sends for
a page (10 fields, about 560 bytes: `User-Agent`, `Accept`, `Accept-Language`,
`Accept-Encoding`, `Referer`, `Cookie` with three cookies, `Cache-Control`, `Sec-Fetch-Mode`,
`Connection`); --cookie adds one more cookie at the end of its `Cookie` field (the affinity
cookie of benches/ab.sh's `affinity` head).

Each connection sends its next request when the previous answer (head + Content-Length
body) is complete. Prints `done <requests> <failed> <seconds>`; exit status 1 if any
request failed (not answered 200, or the connection closed).
"""

import argparse
import selectors
import socket
import sys
import time


BROWSER_COOKIES = (
    "_ga=GA1.1.1834627105.1733580000; "
    "sessionid=8f14e45fceea167a5a36dedd4bea2543b1d7c3e9; "
    "theme=dark"
)


def request(args):
    if args.head == "host":
        return f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n\r\n"
    cookies = BROWSER_COOKIES + (f"; {args.cookie}" if args.cookie else "")
    fields = [
        ("Host", args.host),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,"
         "image/avif,image/webp,image/apng,*/*;q=0.8"),
        ("Accept-Language", "en-US,en;q=0.9,fr;q=0.8"),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ("Referer", f"http://{args.host}/index.html"),
        ("Cookie", cookies),
        ("Cache-Control", "max-age=0"),
        ("Sec-Fetch-Mode", "navigate"),
        ("Connection", "keep-alive"),
    ]
    head = "".join(f"{k}: {v}\r\n" for k, v in fields)
    return f"GET {args.path} HTTP/1.1\r\n{head}\r\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--path", default="/1k.bin")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--head", choices=["host", "browser"], default="host")
    ap.add_argument("--cookie", default="")
    args = ap.parse_args()

    req = request(args).encode()
    sel = selectors.DefaultSelector()
    left = args.requests
    done = failed = 0
    state = {}

    def send(s):
        nonlocal left
        if left == 0:
            sel.unregister(s)
            s.close()
            return
        left -= 1
        s.sendall(req)
        state[s] = b""

    for _ in range(min(args.conns, args.requests)):
        s = socket.create_connection((args.host, args.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(s, selectors.EVENT_READ)
        send(s)

    t0 = time.monotonic()
    while sel.get_map():
        for key, _ in sel.select(timeout=10):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                failed += 1
                sel.unregister(s)
                s.close()
                continue
            buf = state[s] + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                state[s] = buf
                continue
            head = buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if len(buf) < end + 4 + length:
                state[s] = buf
                continue
            if head[0].split()[1] == "200":
                done += 1
            else:
                failed += 1
            send(s)
    print(f"done {done} {failed} {time.monotonic() - t0:.2f}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
