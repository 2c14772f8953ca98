#!/usr/bin/env python3
"""Open N keep-alive connections to an HTTP server, send one small GET on each, read the
whole response, then leave every connection open and idle.

With --no-read, each connection sends its GET and never reads the answer: with a response
larger than the socket buffers (a 1 MiB file), the server holds what it cannot send, and
the connection is held from the moment its request is out. --rcvbuf sets the clients'
SO_RCVBUF (before connecting), which bounds what the kernel buffers on their side.

Used by benches/compare.sh to measure a proxy's memory per idle keep-alive connection.
At most --window requests are in flight at a time, so the proxy never sees a burst of N
concurrent upstream requests (its heap high-water mark would otherwise inflate the RSS).

Output (stdout, one line each, flushed):
  ready <open> <failed>      all connections were tried; <open> are idle and held
  closed <still_open>        after SIGTERM/SIGINT or --hold seconds: how many were still
                             open (not closed by the server) when we let go

Exit status: 0 if all N connections were opened and answered 200, else 1.
"""

import argparse
import errno
import resource
import selectors
import signal
import socket
import sys
import time


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Conn:
    __slots__ = ("sock", "out", "buf", "need")

    def __init__(self, sock, request):
        self.sock = sock
        self.out = request
        self.buf = b""
        self.need = None  # total bytes of head + body, once the head is parsed


def parse_head(buf):
    """(status, total length) once the head is complete, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        # Not expected from a static 1 KiB file: treat as a failure.
        return (status if status != 200 else -1, end + 4)
    return (status, end + 4 + length)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--path", default="/")
    ap.add_argument("--hold", type=float, default=120.0, help="seconds to hold, at most")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to open all, at most")
    ap.add_argument("--no-read", action="store_true",
                    help="send the request and never read the answer")
    ap.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF of each client socket")
    args = ap.parse_args()

    limit = raise_nofile(65536)
    if limit < args.count + 64:
        print(f"idle_conns: RLIMIT_NOFILE {limit} is too low for {args.count} connections",
              file=sys.stderr)
        return 1

    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               f"User-Agent: tether-bench-idle\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    idle = []
    failed = 0
    started = 0
    inflight = 0
    deadline = time.monotonic() + args.timeout

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if args.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        err = s.connect_ex((args.host, args.port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return False
        c = Conn(s, request)
        sel.register(s, selectors.EVENT_WRITE, c)
        return True

    while (started < args.count or inflight) and time.monotonic() < deadline:
        while inflight < args.window and started < args.count:
            started += 1
            if start_one():
                inflight += 1
            else:
                failed += 1
        for key, ev in sel.select(timeout=1.0):
            c = key.data
            done = ok = False
            try:
                if ev & selectors.EVENT_WRITE and c.out:
                    n = c.sock.send(c.out)
                    c.out = c.out[n:]
                    if c.out:
                        continue
                    if not args.no_read:
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                        continue
                    # Sent, and never read: held from now on.
                    done = ok = True
                else:
                    data = c.sock.recv(65536)
                    if not data:
                        done = True
                    else:
                        c.buf += data
                        if c.need is None:
                            parsed = parse_head(c.buf)
                            if parsed is not None:
                                status, total = parsed
                                if status != 200:
                                    done = True
                                else:
                                    c.need = total
                        if c.need is not None and len(c.buf) >= c.need:
                            done = ok = len(c.buf) == c.need
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                done = True
            if done:
                sel.unregister(c.sock)
                inflight -= 1
                if ok:
                    c.buf = b""
                    idle.append(c.sock)
                else:
                    failed += 1
                    c.sock.close()
    # Anything still in flight at the deadline counts as failed.
    for key in list(sel.get_map().values()):
        sel.unregister(key.fileobj)
        key.fileobj.close()
        failed += 1
    failed += args.count - started

    print(f"ready {len(idle)} {failed}", flush=True)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    end = time.monotonic() + args.hold
    while not stop and time.monotonic() < end:
        time.sleep(0.1)

    # A connection the server closed is readable with EOF (or reset).
    still = 0
    for s in idle:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data:
                still += 1  # unexpected bytes, but still open
        except BlockingIOError:
            still += 1
        except OSError:
            pass
    for s in idle:
        s.close()
    print(f"closed {still}", flush=True)
    return 0 if failed == 0 and len(idle) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
