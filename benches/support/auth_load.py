"""Load for benches/auth_p99.sh: clients at a fixed rate measuring latency, and optionally
attackers sending wrong passwords as fast as they are answered.

usage: python3 auth_load.py PORT SECONDS RATE CLIENTS ATTACKERS BAD_AUTH

- CLIENTS keep-alive connections share RATE requests/s of `GET /public/1k.bin` (no
  password: the rest of the site) — the "other clients".
  Each request is due at a fixed time; its latency runs from when it was due (so a stall
  counts for every request it delays: no coordinated omission).
- ATTACKERS keep-alive connections each send `GET /private/1k.bin` with a wrong password,
  the next one as soon as the 401 arrives.
Prints one JSON line: the clients' p50/p99/p999/max in ms, their count and errors, and the
attackers' answered wrong passwords.
"""
import base64
import http.client
import json
import sys
import threading
import time

port, seconds, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
clients, attackers = int(sys.argv[4]), int(sys.argv[5])
bad = "Basic " + base64.b64encode(sys.argv[6].encode()).decode()

lat, errors, wrong = [], [0], [0]
lock = threading.Lock()
start = time.monotonic() + 0.5
end = start + seconds


def client(i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    interval = clients / rate
    due = start + i * interval / clients
    mine = []
    while due < end:
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        try:
            conn.request("GET", "/public/1k.bin")
            r = conn.getresponse()
            r.read()
            ok = r.status == 200
        except Exception:
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        done = time.monotonic()
        if ok:
            mine.append(done - due)
        else:
            with lock:
                errors[0] += 1
        due += interval
    with lock:
        lat.extend(mine)


def attacker():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.monotonic() < start:
        time.sleep(0.01)
    while time.monotonic() < end:
        try:
            conn.request("GET", "/private/1k.bin", headers={"Authorization": bad})
            r = conn.getresponse()
            r.read()
            if r.status == 401:
                with lock:
                    wrong[0] += 1
        except Exception:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
threads += [threading.Thread(target=attacker) for _ in range(attackers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()


def pct(p):
    return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None


print(json.dumps({
    "requests": len(lat), "errors": errors[0], "p50_ms": pct(0.50), "p99_ms": pct(0.99),
    "p999_ms": pct(0.999), "max_ms": round(1000 * lat[-1], 3) if lat else None,
    "wrong_passwords_answered": wrong[0],
}))
