#!/usr/bin/env bash
# Learned sessions: tether with the Redis store vs tether with the memory store, same
# backend, same load, in one run (docs/benchmarks.md, "Affinity").
#
#   bash benches/affinity_compare.sh                     # 5 rounds of 10 s per store
#   ROUNDS=3 DURATION=5 SESSIONS=100 bash benches/affinity_compare.sh
#
# What it does (loopback only, free ports in 61000-64999, everything it starts is killed
# on exit):
#   backend  nginx, worker_processes 1, on two ports (servers b1 and b2 of the pool):
#            GET /login sets `SID=<random>`; anything else serves /1k.bin (1 KiB), with
#            `X-Port` naming the port that answered
#   redis    redis-server (no persistence)
#   tether   two instances, workers = 1, `balance = "learn"`, `session_cookie = "SID"`:
#            one with store = "memory", one with store = "redis://..."
#   sessions $SESSIONS logins through each instance (curl), so each has learned them
#            (the Redis one also wrote them to Redis); a sample is checked to be routed to
#            the server that issued it
#   load     wrk -t1 -c$CONNS, each request carrying one of the learned cookies in turn
#            (a Lua script): every request is a learned-session hit (store get + touch; with
#            Redis a touch is written behind: a SET only once Redis's copy lags a tenth of
#            the TTL; benches/store_compare.sh adds Sentinel and Cluster)
# tether on CPU $PROXY_CPU; nginx, redis-server and wrk on CPU $LOAD_CPU. The instances
# take turns within each round; medians over the rounds. Report (Markdown) on stdout and in
# $OUT_DIR/report.md.
#
# KEEP_AWAKE=1 (default) runs a `nice -n 19` busy loop on CPU $PROXY_CPU during the run. On
# the 2-vCPU VM of docs/benchmarks.md an instance that leaves its vCPU idle between events
# pays the vCPU's wake-up latency on every event: the memory-store instance (nothing else
# to run) ran at half the req/s of the Redis-store one (whose writer thread keeps the vCPU
# busy) with less CPU per request. The busy loop takes the idle state out of the
# comparison; KEEP_AWAKE=0 shows the effect.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
SESSIONS=${SESSIONS:-1000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
KEEP_AWAKE=${KEEP_AWAKE:-1}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$repo/target/affinity-compare}
mkdir -p "$OUT_DIR"
BENCH=affinity-compare
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"

export PATH="$PATH:/usr/sbin:/sbin"
for tool in nginx redis-server redis-cli wrk curl taskset ss; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install nginx redis-server wrk curl util-linux iproute2)"
done
build_tether

bench_tmp

port_block 5
P_B1=$BASE; P_B2=$((BASE + 1)); P_REDIS=$((BASE + 2))
declare -A PORT=([memory]=$((BASE + 3)) [redis]=$((BASE + 4)))

mkdir -p "$TMP/www" "$TMP/nginx"
head -c 1024 /dev/zero | tr '\0' 'x' > "$TMP/www/1k.bin"
chmod -R a+rX "$TMP/www"
USER_LINE=""; [ "$(id -u)" -eq 0 ] && USER_LINE="user root;"
cat > "$TMP/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$P_B1 backlog=4096;
    listen 127.0.0.1:$P_B2 backlog=4096;
    root $TMP/www;
    add_header X-Port \$server_port always;
    location = /login {
      add_header Set-Cookie "SID=\$request_id; Path=/" always;
      add_header X-Port \$server_port always;
      return 200 "ok\n";
    }
    location / { try_files /1k.bin =404; }
  }
}
EOF
for store in memory redis; do
  url="memory"; [ "$store" = redis ] && url="redis://127.0.0.1:$P_REDIS/0"
  cat > "$TMP/tether-$store.toml" <<EOF
workers = 1
access_log = "off"
store = "$url"

[[upstream]]
name = "app"
servers = [{ id = "b1", addr = "127.0.0.1:$P_B1" }, { id = "b2", addr = "127.0.0.1:$P_B2" }]
balance = "learn"
session_cookie = "SID"
learn_ttl_s = 3600

[[server]]
listen = ["127.0.0.1:${PORT[$store]}"]
idle_timeout_ms = 300000

[[server.route]]
path = "/"
proxy = "app"
EOF
done

taskset -c "$LOAD_CPU" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)
taskset -c "$LOAD_CPU" redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no \
  > "$OUT_DIR/redis.log" 2>&1 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
for _ in $(seq 100); do redis-cli -p "$P_REDIS" ping > /dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$P_REDIS" ping > /dev/null || die "redis-server does not answer"
declare -A PID
for store in memory redis; do
  # --no-supervise: one process, so the PID measured is the one that serves (not the master).
  RUST_LOG=${RUST_LOG:-warn} taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether-$store.toml" \
    > "$OUT_DIR/tether-$store.log" 2>&1 &
  PID[$store]=$!; PIDS+=("${PID[$store]}")
done
wait_http "http://127.0.0.1:$P_B1/1k.bin" || die "nginx did not start: $(cat "$TMP/nginx/error.log")"
for store in memory redis; do
  wait_http "http://127.0.0.1:${PORT[$store]}/1k.bin" || die "tether ($store) does not answer"
done

# Sessions: log in through each instance, keep "cookie port" pairs, check a sample.
for store in memory redis; do
  curl -s -i "http://127.0.0.1:${PORT[$store]}/login?[1-$SESSIONS]" |
    awk -F'[:=;]' 'tolower($1) ~ /^set-cookie/ { sid = $3 } tolower($1) ~ /^x-port/ { gsub(/[ \r]/, "", $2); print sid, $2 }' \
    > "$TMP/sessions-$store.txt"
  n=$(wc -l < "$TMP/sessions-$store.txt")
  [ "$n" -eq "$SESSIONS" ] || die "$store: $n sessions learned of $SESSIONS"
  bad=0
  while read -r sid port; do
    got=$(curl -s -o /dev/null -w '%header{x-port}' -H "Cookie: SID=$sid" "http://127.0.0.1:${PORT[$store]}/page")
    [ "$got" = "$port" ] || bad=$((bad + 1))
  done < <(head -50 "$TMP/sessions-$store.txt")
  [ "$bad" -eq 0 ] || die "$store: $bad of 50 learned sessions went to the wrong server"
  {
    echo "local cookies = {"
    awk '{ printf "  \"SID=%s\",\n", $1 }' "$TMP/sessions-$store.txt"
    echo "}"
    echo 'local i = 0'
    echo 'request = function()'
    echo '  i = i % #cookies + 1'
    echo '  return wrk.format("GET", "/page", { ["Cookie"] = cookies[i] })'
    echo 'end'
  } > "$TMP/wrk-$store.lua"
done
keys=$(redis-cli -p "$P_REDIS" dbsize)
[ "$keys" -ge "$SESSIONS" ] || die "redis holds $keys keys, expected $SESSIONS"
log "$SESSIONS sessions learned per instance (redis holds $keys keys); a sample of 50 each routed home"

CLK_TCK=$(getconf CLK_TCK)
to_us() {
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : -1
    if (f < 0) print "nan"; else printf "%.1f", n * f }'
}
RES=$OUT_DIR/results.txt
echo "# store round req_s p99_us tether_cpu_us redis_cpu_us requests non2xx socket_errors" > "$RES"
run() {  # store round
  local s=$1 r=$2 out t0 t1 r0 r1 reqs rps p99 non2xx sockerr
  out=$OUT_DIR/wrk-$s-$r.txt
  t0=$(cpu_ticks "${PID[$s]}"); r0=$(cpu_ticks "$REDIS_PID")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency \
    -s "$TMP/wrk-$s.lua" "http://127.0.0.1:${PORT[$s]}/" > "$out" 2>&1 || true
  t1=$(cpu_ticks "${PID[$s]}"); r1=$(cpu_ticks "$REDIS_PID")
  reqs=$(awk '/requests in/ {print $1; exit}' "$out"); reqs=${reqs:-0}
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out"); rps=${rps:-0}
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out"); non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out"); sockerr=${sockerr:-0}
  per() { awk -v d="$1" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print "nan" }'; }
  echo "$s $r $rps $p99 $(per $((t1 - t0))) $(per $((r1 - r0))) $reqs $non2xx $sockerr" >> "$RES"
  log "$s round $r: $rps req/s, p99 $p99 us, tether $(per $((t1 - t0))) us CPU/req, redis $(per $((r1 - r0))) us CPU/req, non-2xx $non2xx, socket errors $sockerr"
  kill -0 "${PID[$s]}" 2>/dev/null || die "tether ($s) died; see $OUT_DIR/tether-$s.log"
}

if [ "$KEEP_AWAKE" = 1 ]; then
  taskset -c "$PROXY_CPU" nice -n 19 sh -c 'while :; do :; done' &
  PIDS+=($!)
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "warm-up ${WARMUP}s each"
for s in memory redis; do
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$TMP/wrk-$s.lua" "http://127.0.0.1:${PORT[$s]}/" > /dev/null 2>&1 || true
done
for r in $(seq "$ROUNDS"); do
  # Alternate which store goes first, so drifting noise does not favour one.
  if [ $((r % 2)) = 1 ]; then order="memory redis"; else order="redis memory"; fi
  for s in $order; do run "$s" "$r"; done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { awk -v s="$1" -v c="$2" '$1 == s && $c != "nan" { print $c }' "$RES" | median; }
rng() { awk -v s="$1" -v c="$2" '$1 == s && $c != "nan" { print $c }' "$RES" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }
sumc() { awk -v s="$1" -v c="$2" '$1 == s { t += $c } END { print t + 0 }' "$RES"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.2f", a / b }'; }
# Per-round ratios (redis / memory, same round), then their median.
round_ratios() {
  awk -v c="$1" '$1 == "memory" { m[$2] = $c } $1 == "redis" { r[$2] = $c }
    END { for (k in m) if ((k in r) && m[k] > 0) printf "%.3f\n", r[k] / m[k] }' "$RES" | median
}
{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'); $("$TETHER" --version 2>&1 | head -1); $(redis-server --version | awk '{print $1, $2, $3}'); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  echo "Machine: nproc $(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r); load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "Settings: ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS SESSIONS=$SESSIONS KEEP_AWAKE=$KEEP_AWAKE; tether on CPU $PROXY_CPU; nginx, redis-server, wrk on CPU $LOAD_CPU"
  echo
  echo "| store | req/s | req/s range | p99 | tether CPU µs/request | redis-server CPU µs/request | non-2xx / socket errors |"
  echo "|---|---|---|---|---|---|---|"
  for s in memory redis; do
    echo "| $s | $(med "$s" 3) | $(rng "$s" 3) | $(med "$s" 4) µs | $(med "$s" 5) | $(med "$s" 6) | $(sumc "$s" 8) / $(sumc "$s" 9) |"
  done
  echo
  rr=$(ratio "$(med redis 3)" "$(med memory 3)")
  echo "redis / memory req/s: $rr (ratio of medians), $(round_ratios 3) (median of per-round ratios); goal ≥ 0.9: $(awk -v v="$rr" 'BEGIN { print (v >= 0.9) ? "pass" : "FAIL" }')"
  echo "redis / memory tether CPU per request: $(ratio "$(med redis 5)" "$(med memory 5)")"
  echo "tether logs: $(cat "$OUT_DIR"/tether-*.log | grep -cE ' (WARN|ERROR) ' || true) WARN/ERROR lines; raw outputs in $OUT_DIR"
} | tee "$OUT_DIR/report.md"
