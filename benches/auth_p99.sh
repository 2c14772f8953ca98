#!/usr/bin/env bash
# 20 wrong-password clients at bcrypt cost 10 vs the other clients' p99 (issue 19 item 5),
# end to end with the real binary, and nginx (`auth_basic`, the same htpasswd file) in the
# same run.
#
#   bash benches/auth_p99.sh                   # ROUNDS=3 rounds of DURATION=10 s per case
#   ROUNDS=5 RATE=400 bash benches/auth_p99.sh
#
# tether (release build, workers = 1, --no-supervise, pinned to CPU $PROXY_CPU with its
# hashing threads, which run at nice 10) serves /private/ (a files route under
# basic_auth; an htpasswd file made by Debian's `htpasswd -B -C 10`); nginx
# (worker_processes 1, the same CPU) the same with `auth_basic_user_file` (it checks the
# hash with crypt(3) in its worker). In each round, for each proxy, two cases in turn:
#   quiet   CLIENTS keep-alive clients send RATE requests/s in total to /public/ (no
#           password: the rest of the site; each due at a fixed time, latency counted from
#           when it was due). nginx checks a password on every request (no cache), so
#           clients of /private/ itself would measure bcrypt, not the attack.
#   attack  the same, while another process runs ATTACKERS keep-alive clients sending wrong
#           passwords, each the next as soon as its 401 arrives
# The clients and the attackers are separate Python processes (benches/support/auth_load.py),
# so the attackers' threads do not hold the clients' interpreter lock; both on CPU $LOAD_CPU. Reported: the
# clients' p50/p99/p99.9 per case (medians over the rounds), the ratio attack / quiet, and
# the wrong passwords answered per second. Loopback only; everything is killed on exit.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-400}
CLIENTS=${CLIENTS:-4}
ATTACKERS=${ATTACKERS:-20}
PROXY_CPU=${PROXY_CPU:-0}      # tether (its loop and its hashing threads)
LOAD_CPU=${LOAD_CPU:-1}        # the clients and the attackers
BENCH=auth_p99
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
command -v htpasswd > /dev/null || die "htpasswd is missing (apache2-utils; bash scripts/setup.sh)"
[ -n "${TETHER:-}" ] || build_tether
bench_tmp
bench_out auth-p99

mkdir -p "$TMP/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$TMP/www/1k.bin"
htpasswd -B -C 10 -b -c "$TMP/users.htpasswd" alice 'right horse battery' 2> /dev/null
port_block 2
PORT=$BASE
cat > "$TMP/tether.toml" <<CFG
workers = 1
[[server]]
listen = ["127.0.0.1:$PORT"]
[[server.route]]
path = "/public/"
alias = "$TMP/www/"
[[server.route]]
path = "/private/"
alias = "$TMP/www/"
basic_auth = { realm = "bench", htpasswd = "$TMP/users.htpasswd" }
CFG
RUST_LOG=warn taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether.toml" > "$OUT_DIR/tether.log" 2>&1 &
PIDS+=($!)
TPID=$!
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -u 'alice:right horse battery' "http://127.0.0.1:$PORT/private/1k.bin")" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' -u 'alice:wrong' "http://127.0.0.1:$PORT/private/1k.bin")" = 401 ] ||
  die "a wrong password is not answered 401"
log "tether pid $TPID on $PORT; rate $RATE/s over $CLIENTS clients; $ATTACKERS attackers"


NGINX_PORT=$((PORT + 1))
port_free "$NGINX_PORT" || die "port $NGINX_PORT is taken"
mkdir -p "$TMP/nginx"
{
  nginx_main "$TMP/nginx"
  echo "http {"
  nginx_http_common "$TMP/nginx"
  cat <<NGINX
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /public/ {
      alias $TMP/www/;
    }
    location /private/ {
      alias $TMP/www/;
      auth_basic "bench";
      auth_basic_user_file $TMP/users.htpasswd;
    }
  }
}
NGINX
} > "$TMP/nginx/nginx.conf"
taskset -c "$PROXY_CPU" nginx -c "$TMP/nginx/nginx.conf" > "$OUT_DIR/nginx.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -u 'alice:right horse battery' "http://127.0.0.1:$NGINX_PORT/private/1k.bin")" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' -u 'alice:right horse battery' "http://127.0.0.1:$NGINX_PORT/private/1k.bin")" = 200 ] ||
  die "nginx does not accept the bcrypt entry (crypt(3) without bcrypt?)"
load() { taskset -c "$LOAD_CPU" python3 "$repo/benches/support/auth_load.py" "$@"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
: > "$OUT_DIR/rounds.txt"
for r in $(seq "$ROUNDS"); do
  for proxy in tether nginx; do
    p=$PORT
    [ "$proxy" = nginx ] && p=$NGINX_PORT
    q=$(load "$p" "$DURATION" "$RATE" "$CLIENTS" 0 'alice:wrong')
    echo "$proxy quiet $q" >> "$OUT_DIR/rounds.txt"
    log "round $r $proxy quiet: $q"
    load "$p" "$DURATION" 1 0 "$ATTACKERS" 'alice:wrong' > "$TMP/attack.json" &
    APID=$!
    a=$(load "$p" "$DURATION" "$RATE" "$CLIENTS" 0 'alice:wrong')
    wait "$APID"
    w=$(field "$(cat "$TMP/attack.json")" wrong_passwords_answered)
    echo "$proxy attack $a wrong=$w" >> "$OUT_DIR/rounds.txt"
    log "round $r $proxy attack: $a; wrong passwords answered: $w"
  done
done

python3 - "$OUT_DIR/rounds.txt" "$DURATION" <<'PY'
import json, statistics, sys
rows, wrong = {}, {}
for line in open(sys.argv[1]):
    proxy, kind, rest = line.split(" ", 2)
    rows.setdefault((proxy, kind), []).append(json.loads(rest.split(" wrong=")[0]))
    if " wrong=" in rest:
        wrong.setdefault(proxy, []).append(int(rest.split(" wrong=")[1]))
med = lambda k, f: statistics.median(r[f] for r in rows[k])
print("| proxy | case | requests (median) | errors | p50 ms | p99 ms | p99.9 ms | wrong passwords answered /s |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for proxy in ("tether", "nginx"):
    for kind in ("quiet", "attack"):
        k = (proxy, kind)
        w = f"{statistics.median(wrong[proxy]) / float(sys.argv[2]):.1f}" if kind == "attack" else ""
        print(f"| {proxy} | {kind} | {med(k,'requests'):.0f} | {sum(r['errors'] for r in rows[k])} | "
              f"{med(k,'p50_ms'):.2f} | {med(k,'p99_ms'):.2f} | {med(k,'p999_ms'):.2f} | {w} |")
print()
for proxy in ("tether", "nginx"):
    q, a = (proxy, "quiet"), (proxy, "attack")
    print(f"{proxy}: attack / quiet p99 {med(a,'p99_ms') / med(q,'p99_ms'):.2f}x, "
          f"p99.9 {med(a,'p999_ms') / med(q,'p999_ms'):.2f}x")
PY
