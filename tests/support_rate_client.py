"""Clients for tether's rate-limit tests (tests/rate_limits.rs). Prints one JSON object.

usage:
  support_rate_client.py seq PORT PATH N [NAME=VALUE ...]
      N requests one after the other on one keep-alive HTTP/1.1 connection:
      {"status": [...], "retry_after": [...], "ms": [ms from the start to each answer]}
  support_rate_client.py h2 PORT PATH N [NAME=VALUE ...]
      N streams at once on one h2c connection (python `h2`): the same fields, per stream.
  support_rate_client.py pace RATE SECONDS PATH PORT [PORT ...]
      RATE requests a second in all, spread evenly over the ports (one keep-alive
      connection each), for SECONDS: {"ok": n200, "limited": n429, "other": n}
Bounded: every socket gives up after 10 s.
"""
import http.client
import json
import socket
import sys
import threading
import time


def extra_headers(args):
    return dict(a.split("=", 1) for a in args)


def seq(port, path, n, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = {"status": [], "retry_after": [], "ms": []}
    start = time.monotonic()
    for _ in range(n):
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        out["status"].append(r.status)
        out["retry_after"].append(r.getheader("Retry-After"))
        out["ms"].append(round((time.monotonic() - start) * 1000))
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    return out


def h2(port, path, n, headers):
    import h2.config
    import h2.connection
    import h2.events

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    ids = [1 + 2 * i for i in range(n)]
    start = time.monotonic()
    for sid in ids:
        hs = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % port),
              (":path", path)] + [(k.lower(), v) for k, v in headers.items()]
        conn.send_headers(sid, hs, end_stream=True)
    sock.sendall(conn.data_to_send())
    status, retry, ms = {}, {}, {}
    while len(ms) < n:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                for k, v in ev.headers:
                    k, v = k.decode(), v.decode()
                    if k == ":status":
                        status[ev.stream_id] = int(v)
                    elif k == "retry-after":
                        retry[ev.stream_id] = v
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ms[ev.stream_id] = round((time.monotonic() - start) * 1000)
        sock.sendall(conn.data_to_send())
    return {"status": [status.get(i) for i in ids], "retry_after": [retry.get(i) for i in ids],
            "ms": [ms.get(i) for i in ids]}


def pace(rate, seconds, path, ports):
    counts = {"ok": 0, "limited": 0, "other": 0}
    lock = threading.Lock()
    per_port = rate / len(ports)
    start = time.monotonic() + 0.05

    def run(i, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        k = 0
        # Offset the ports' schedules so the requests interleave evenly.
        first = start + i / rate
        while True:
            at = first + k / per_port
            if at >= start + seconds:
                break
            now = time.monotonic()
            if at > now:
                time.sleep(at - now)
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                key = "ok" if r.status == 200 else "limited" if r.status == 429 else "other"
            except Exception:
                key = "other"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            with lock:
                counts[key] += 1
            k += 1

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def main():
    mode = sys.argv[1]
    if mode == "seq":
        out = seq(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), extra_headers(sys.argv[5:]))
    elif mode == "h2":
        out = h2(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), extra_headers(sys.argv[5:]))
    else:
        out = pace(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4],
                   [int(p) for p in sys.argv[5:]])
    print(json.dumps(out))


main()
