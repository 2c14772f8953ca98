#!/usr/bin/env bash
# The time from a DNS change to the first request reaching the new backend (issue 23).
#
#   bash benches/dns_change.sh                          # target/release/tether, 10 rounds
#   TETHER=target/debug/tether ROUNDS=20 bash benches/dns_change.sh
#   RESOLVE_MIN_MS=200 bash benches/dns_change.sh       # re-resolve more often
#
# A real dnsmasq on a free loopback port answers `app.bench` from a hosts directory it
# re-reads (--hostsdir, local TTL 0); tether follows `{ dns = "app.bench", port = P }` with
# resolve_min_ms = RESOLVE_MIN_MS (1000 by default, the config default) and a short drain
# (drain_timeout_ms = 300). Two stateful apps (tests/support_app.py) answer their name on
# 127.0.0.2:P and 127.0.0.3:P. Each round: app.bench names only b2; once the previous b3 is
# dropped (every request answered by b2), the hosts file is replaced by one naming both,
# and a client sends a new user's GET /whoami every 5 ms until b3 answers. The time from
# the rename of the hosts file to that answer is the round's figure; the median, min and
# max of ROUNDS are printed. With a TTL of 0 the expected median is about half of
# resolve_min_ms (the change lands at a random point of the re-resolve interval) plus the
# client's 5 ms polling. Everything started is killed on exit.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-10}
RESOLVE_MIN_MS=${RESOLVE_MIN_MS:-1000}
BENCH=dns_change
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || die "dnsmasq is missing (bash scripts/setup.sh)"
[ -n "${TETHER:-}" ] || build_tether
bench_tmp
free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
DNS_PORT=$(free)
APP_PORT=$(free)
PORT=$(free)
mkdir -p "$TMP/hosts.d"
echo "127.0.0.2 app.bench" > "$TMP/hosts.d/hosts"
user=()
[ "$(id -u)" -eq 0 ] && user=(--user=root)
"$DNSMASQ" --no-daemon --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --pid-file= "${user[@]}" --hostsdir="$TMP/hosts.d" \
  > "$TMP/dnsmasq.log" 2>&1 &
PIDS+=("$!")
for h in 2 3; do
  python3 "$repo/tests/support_app.py" "$APP_PORT" "b$h" "127.0.0.$h" > /dev/null 2>&1 &
  PIDS+=("$!")
done
cat > "$TMP/tether.toml" <<TOML
[[upstream]]
name = "app"
servers = [{ dns = "app.bench", port = $APP_PORT }]
resolver = ["127.0.0.1:$DNS_PORT"]
resolve_min_ms = $RESOLVE_MIN_MS
drain_timeout_ms = 300

[[server]]
listen = ["127.0.0.1:$PORT"]

[[server.route]]
path = "/"
proxy = "app"
TOML
sleep 0.5   # dnsmasq and the apps bind (the rounds below wait on answers, not on time)
RUST_LOG=info "$TETHER" --no-supervise "$TMP/tether.toml" > "$TMP/tether.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$PORT/whoami" 100 || die "tether did not answer: $(tail -5 "$TMP/tether.log")"
log "tether $($TETHER --version | head -1), resolve_min_ms=$RESOLVE_MIN_MS, $ROUNDS rounds"
python3 - "$PORT" "$TMP/hosts.d" "$ROUNDS" <<'PY'
import http.client, os, statistics, sys, time
port, hostsdir, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def who():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/whoami")
    body = c.getresponse().read().decode()
    c.close()
    return body

def set_hosts(text):
    tmp = os.path.join(hostsdir, ".hosts.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(hostsdir, "hosts"))

times = []
for r in range(rounds):
    set_hosts("127.0.0.2 app.bench\n")
    deadline = time.monotonic() + 30
    while not all(who() == "b2" for _ in range(6)):   # the previous b3 is gone
        if time.monotonic() > deadline:
            sys.exit("b3 was never dropped")
        time.sleep(0.05)
    time.sleep(0.05 + (r * 0.137) % 1.0)   # change at varied points of the re-resolve cycle
    t0 = time.monotonic()
    set_hosts("127.0.0.2 app.bench\n127.0.0.3 app.bench\n")
    while who() != "b3":
        if time.monotonic() - t0 > 30:
            sys.exit("b3 never got a request")
        time.sleep(0.005)
    ms = (time.monotonic() - t0) * 1000
    times.append(ms)
    print(f"round {r + 1}: {ms:.0f} ms", file=sys.stderr)
print(f"dns change -> first request on the new backend: median {statistics.median(times):.0f} ms, "
      f"min {min(times):.0f} ms, max {max(times):.0f} ms ({rounds} rounds)")
PY
