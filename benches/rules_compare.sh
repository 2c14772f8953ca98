#!/usr/bin/env bash
# Three request-header rules and a rate limit in force: tether vs nginx (`proxy_set_header`
# x3, `limit_req`), and tether's limit shared through Redis (`store = "redis://..."`) vs the
# same limit in memory; CPU per proxied request of a 1 KiB answer, one worker each, one run.
#
#   bash benches/rules_compare.sh            # ROUNDS=3 rounds of 5 s per proxy
#   ROUNDS=1 DURATION=3 bash benches/rules_compare.sh
#
# What it does (loopback only, ports picked in 61000-64999, everything it starts is killed
# on exit, the temp dir is removed):
#   backend  nginx, plain HTTP/1.1, worker_processes 1, pinned to CPU $LOAD_CPU, serving
#            /1k.bin (1 KiB)
#   redis    redis-server on a free loopback port (no persistence), pinned to CPU $LOAD_CPU
#   proxies  all pinned to CPU $PROXY_CPU, proxying to the backend over kept-alive HTTP/1.1:
#            tether-mem   (workers = 1, --no-supervise) with request_headers.set
#                         X-A = "{client_ip}", X-B = "static text", X-C = "{host}" and a
#                         [[limit]] rate = "1000000r/s", burst = 100000, nodelay, key client_ip
#            tether-redis the same, with top-level store = "redis://127.0.0.1:PORT/0"
#            nginx        (worker_processes 1) with proxy_set_header X-A $remote_addr,
#                         X-B "static text", X-C $host, and limit_req_zone $binary_remote_addr
#                         rate=1000000r/s + limit_req burst=100000 nodelay
#   load     wrk -t1 -c$CONNS (HTTP/1.1 keep-alive) pinned to CPU $LOAD_CPU
# Every proxy's answer is checked first (200, the 1 KiB body; the backend logs the three
# headers once to show they arrive); a round with any non-2xx answer is an error (the
# limit must never reject). Figures: req/s, CPU µs per request of the serving process
# (utime+stime from /proc/PID/stat over the run / requests), medians over the rounds; the
# ratios tether-mem/nginx (target <= 1) and tether-redis/tether-mem (target <= 1.15), and
# redis-server's own CPU per request for the record. The report (Markdown) goes to stdout
# and $OUT_DIR/report.md.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH=rules_compare
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out rules-compare

install_missing nginx:nginx-light wrk:wrk redis-server:redis-server redis-cli:redis-tools \
  curl:curl ss:iproute2 taskset:util-linux
NGINX=$(command -v nginx)
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

build_tether
bench_tmp

port_block 5
P_BACKEND=$BASE
P_REDIS=$((BASE + 4))
declare -A PORT
PORT=([tether-mem]=$((BASE + 1)) [tether-redis]=$((BASE + 2)) [nginx]=$((BASE + 3)))
PROXIES=(tether-mem tether-redis nginx)

WWW=$TMP/www
mkdir -p "$WWW"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WWW/1k.bin"
chmod -R a+rX "$WWW"

nginx_conf() {  # $1 = dir, $2 = what goes in the http block
  nginx_main "$1"
  echo "http {"
  nginx_http_common "$1"
  echo "$2"
  echo "}"
}
mkdir -p "$TMP/backend" "$TMP/nginx" "$TMP/tether" "$TMP/redis"
# The backend logs the three headers (first requests only are looked at).
nginx_conf "$TMP/backend" "
  log_format hdrs '\$http_x_a|\$http_x_b|\$http_x_c';
  server { listen 127.0.0.1:$P_BACKEND backlog=4096; root $WWW;
    location = /check { access_log $TMP/backend/hdrs.log hdrs; try_files /1k.bin =404; } }" > "$TMP/backend/nginx.conf"
nginx_conf "$TMP/nginx" "
  limit_req_zone \$binary_remote_addr zone=rl:10m rate=1000000r/s;
  upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 32; keepalive_requests 1000000; keepalive_timeout 300s; }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    location / {
      limit_req zone=rl burst=100000 nodelay;
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header X-A \$remote_addr;
      proxy_set_header X-B \"static text\";
      proxy_set_header X-C \$host;
    }
  }" > "$TMP/nginx/nginx.conf"

tether_conf() {  # $1 = port, $2 = a top-level line (store) or nothing
  cat <<EOF
workers = 1
access_log = "off"
$2

[[upstream]]
name = "backend"
servers = ["127.0.0.1:$P_BACKEND"]

EOF
  rules_server_toml "$1" backend
}
tether_conf "${PORT[tether-mem]}" "" > "$TMP/tether/mem.toml"
tether_conf "${PORT[tether-redis]}" "store = \"redis://127.0.0.1:$P_REDIS/0\"" > "$TMP/tether/redis.toml"

ulimit -n 65536 2>/dev/null || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
"$NGINX" -t -q -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" 2> "$OUT_DIR/nginx-t.txt" ||
  die "nginx -t: $(cat "$OUT_DIR/nginx-t.txt")"
for c in mem redis; do
  "$TETHER" check "$TMP/tether/$c.toml" > "$OUT_DIR/tether-check-$c.txt" 2>&1 ||
    die "tether check ($c): $(cat "$OUT_DIR/tether-check-$c.txt")"
done

taskset -c "$LOAD_CPU" redis-server --port "$P_REDIS" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP/redis" --logfile "$OUT_DIR/redis.log" --daemonize no &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
for _ in $(seq 100); do
  [ "$(redis-cli -p "$P_REDIS" ping 2>/dev/null || true)" = PONG ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$P_REDIS" ping 2>/dev/null || true)" = PONG ] || die "redis-server does not answer"

taskset -c "$LOAD_CPU" "$NGINX" -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" &
PIDS+=("$!")
taskset -c "$PROXY_CPU" "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
NGINX_MASTER=$!; PIDS+=("$NGINX_MASTER")
declare -A PID
for c in mem redis; do
  RUST_LOG=${RUST_LOG:-warn} taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether/$c.toml" \
    > "$OUT_DIR/tether-$c.log" 2>&1 &
  PID[tether-$c]=$!; PIDS+=("$!")
done
wait_http "http://127.0.0.1:$P_BACKEND/1k.bin" || die "backend does not answer"
for p in "${PROXIES[@]}"; do
  wait_http "http://127.0.0.1:${PORT[$p]}/1k.bin" || die "$p does not answer (logs in $OUT_DIR)"
done
PID[nginx]=$(nginx_worker "$NGINX_MASTER") || die "no nginx worker"

# Each proxy answers the file and sends the three headers.
for p in "${PROXIES[@]}"; do
  curl -sS -o "$TMP/$p.body" "http://127.0.0.1:${PORT[$p]}/1k.bin"
  cmp -s "$TMP/$p.body" "$WWW/1k.bin" || die "$p's answer is not the file"
  : > "$TMP/backend/hdrs.log"
  curl -sS -o /dev/null "http://127.0.0.1:${PORT[$p]}/check"
  sleep 0.2
  echo "$p: $(cat "$TMP/backend/hdrs.log")" >> "$OUT_DIR/headers.txt"
  grep -q '^127\.0\.0\.1|static text|127\.0\.0\.1$' "$TMP/backend/hdrs.log" ||
    die "$p did not send X-A/X-B/X-C as expected: $(cat "$TMP/backend/hdrs.log")"
done
# The Redis-backed limit really goes to Redis: the requests above ran the rate script (a
# fast rule leases tokens, one script per up to 256 requests: crates/store/src/lease.rs).
SCRIPTS=$(redis-cli -p "$P_REDIS" info commandstats |
  awk -F'[:,=]' '/^cmdstat_eval(sha)?:/ { n += $3 } END { print n + 0 }')
[ "$SCRIPTS" -gt 0 ] || die "tether-redis ran no rate script in Redis"

CLK_TCK=$(getconf CLK_TCK)
RES=$OUT_DIR/results.txt
echo "# proxy round req_per_s cpu_us_per_req requests redis_cpu_us_per_req" > "$RES"
run() {  # proxy round duration
  local p=$1 r=$2 d=$3 out t0 t1 r0 r1 n secs bad
  out=$OUT_DIR/wrk-$p-$r.txt
  t0=$(cpu_ticks "${PID[$p]}"); r0=$(cpu_ticks "$REDIS_PID")
  timeout $((d + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${d}s" \
    "http://127.0.0.1:${PORT[$p]}/1k.bin" > "$out" 2>&1 || true
  t1=$(cpu_ticks "${PID[$p]}"); r1=$(cpu_ticks "$REDIS_PID")
  kill -0 "${PID[$p]}" 2>/dev/null || die "$p is gone (see $OUT_DIR)"
  [ "$r" = warm ] && return 0
  n=$(awk '/requests in/ { print $1 }' "$out")
  secs=$(awk '/requests in/ { sub("s,", "", $4); print $4 }' "$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  [ -n "$n" ] && [ -n "$secs" ] || die "no figures in $out: $(tail -5 "$out")"
  [ -z "$bad" ] || die "$p answered $bad non-2xx responses in round $r (see $out)"
  awk -v p="$p" -v r="$r" -v n="$n" -v secs="$secs" -v dt=$((t1 - t0)) -v rdt=$((r1 - r0)) -v hz="$CLK_TCK" 'BEGIN {
    printf "%s %s %.0f %.2f %d %.2f\n", p, r, n / secs, (n > 0 ? dt / hz * 1e6 / n : 0), n,
      (n > 0 ? rdt / hz * 1e6 / n : 0) }' >> "$RES"
}

log "warm-up ($WARMUP s per proxy)"
for p in "${PROXIES[@]}"; do run "$p" warm "$WARMUP"; done
for r in $(seq "$ROUNDS"); do
  for p in "${PROXIES[@]}"; do
    log "round $r: $p"
    run "$p" "$r" "$DURATION"
  done
done

median() { sort -n | awk '{a[NR] = $1} END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
fig() { grep -v '^#' "$RES" | awk -v p="$1" -v k="$2" '$1 == p { print $k }' | median; }
declare -A RPS CPU
for p in "${PROXIES[@]}"; do RPS[$p]=$(fig "$p" 3); CPU[$p]=$(fig "$p" 4); done
REDIS_CPU=$(fig tether-redis 6)
{
  echo "## Three header rules and a rate limit: tether vs nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'), Redis vs memory"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load average at start $LOAD_START;"
  echo "ROUNDS=$ROUNDS DURATION=$DURATION, medians; wrk -t1 -c$CONNS on a 1 KiB answer; $(redis-server --version | awk '{print $1, $2, $3}')."
  echo
  echo "| proxy | req/s | CPU µs/req |"
  echo "|---|---:|---:|"
  echo "| tether, 3 rules + limit in memory | ${RPS[tether-mem]} | ${CPU[tether-mem]} |"
  echo "| tether, 3 rules + limit in Redis | ${RPS[tether-redis]} | ${CPU[tether-redis]} (redis-server: $REDIS_CPU) |"
  echo "| nginx, proxy_set_header x3 + limit_req | ${RPS[nginx]} | ${CPU[nginx]} |"
  echo
  awk -v m="${CPU[tether-mem]}" -v r="${CPU[tether-redis]}" -v n="${CPU[nginx]}" 'BEGIN {
    printf "CPU per request, tether (memory) / nginx: %.2fx (target <= 1)\n", (n > 0 ? m / n : 0)
    printf "CPU per request, tether Redis / memory:  %.2fx (target <= 1.15)\n", (m > 0 ? r / m : 0) }'
} | tee "$OUT_DIR/report.md"
