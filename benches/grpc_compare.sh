#!/usr/bin/env bash
# HTTP/2 to upstreams (issue 21): h2load through tether (`protocol = "h2c"`) vs nginx
# `grpc_pass` to the same h2c backend, one worker each, same machine, one run.
#
#   bash benches/grpc_compare.sh             # ROUNDS=3 rounds of 8 s per proxy
#   ROUNDS=1 DURATION=5 bash benches/grpc_compare.sh
#
# What it does (loopback only, ports picked in 61000-64999, everything it starts is killed
# on exit, the temp dir is removed):
#   backend  nghttpd --no-tls (Debian nghttp2-server: nghttp2's own server, one thread,
#            pinned to CPU $LOAD_CPU): h2c with prior knowledge, answering every POST to /x
#            with the 1 KiB file x (the request body is read and dropped). An nginx backend
#            (`listen ... http2`, `return 200`) was tried first: nginx's grpc_pass failed
#            about 1 request in 1,000 against it ("upstream sent frame for unknown stream":
#            nginx answers before it has read the body), which would skew the comparison.
#   proxies  both pinned to CPU $PROXY_CPU, HTTP/2 with prior knowledge on their listener:
#              tether  workers = 1, --no-supervise, pool `protocol = "h2c"`
#              nginx   worker_processes 1, `grpc_pass grpc://backend` (keepalive 64: nginx
#                      sends one request per upstream connection at a time)
#   load     h2load -c$CONNS -m$STREAMS -d <1 KiB file> (POST), pinned to CPU $LOAD_CPU
#            (shared with the backend)
# Every proxy's answer is checked first (curl --http2-prior-knowledge POST: 200, 1 KiB).
# Figures, per round and proxy: req/s (2xx / wall time), CPU µs per request of the
# serving process (utime+stime from /proc/PID/stat over the run / 2xx), and the upstream
# connections the proxy holds to the backend in the middle of the run (ss, established to
# the backend's port, counted from the proxy's side), scaled to per 1,000 concurrent
# streams (CONNS x STREAMS streams are in flight). Medians over the rounds; the ratios
# tether/nginx (req/s: target >= 1; CPU per request: target <= 1; connections per 1,000
# streams: target <= 10). The report (Markdown) goes to stdout and $OUT_DIR/report.md.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
STREAMS=${STREAMS:-10}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH=grpc_compare
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out grpc-compare

install_missing nginx:nginx-light h2load:nghttp2-client nghttpd:nghttp2-server curl:curl \
  ss:iproute2 taskset:util-linux
NGINX=$(command -v nginx)
"$NGINX" -V 2>&1 | grep -q -- '--without-http_grpc_module' && die "this nginx has no grpc module"
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

build_tether
bench_tmp

port_block 3
P_BACKEND=$BASE
declare -A PORT
PORT=([tether]=$((BASE + 1)) [nginx]=$((BASE + 2)))
PROXIES=(tether nginx)
log "ports: backend $P_BACKEND, tether ${PORT[tether]}, nginx ${PORT[nginx]}"

KIB=$(head -c 1024 /dev/zero | tr '\0' 'x')
mkdir -p "$TMP/www"
printf '%s' "$KIB" > "$TMP/www/x"
head -c 1024 /dev/zero | tr '\0' 'y' > "$TMP/post.bin"

nginx_conf() {  # $1 = dir, $2 = what goes in the http block
  nginx_main "$1"
  echo "http {"
  nginx_http_common "$1"
  echo "  http2_max_concurrent_streams 1000;"
  echo "$2"
  echo "}"
}
mkdir -p "$TMP/nginx" "$TMP/tether"
nginx_conf "$TMP/nginx" "
  upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 64; keepalive_requests 1000000; keepalive_timeout 300s; }
  server {
    listen 127.0.0.1:${PORT[nginx]} http2 backlog=4096;
    client_max_body_size 1m;
    location / { grpc_pass grpc://backend; }
  }" > "$TMP/nginx/nginx.conf"
cat > "$TMP/tether/tether.toml" <<EOF
workers = 1
access_log = "off"

[[upstream]]
name = "backend"
servers = ["127.0.0.1:$P_BACKEND"]
protocol = "h2c"

[[server]]
listen = ["127.0.0.1:${PORT[tether]}"]
http2 = true
idle_timeout_ms = 300000

[[server.route]]
path = "/"
proxy = "backend"
EOF

ulimit -n 65536 2>/dev/null || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
"$NGINX" -t -q -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" 2> "$OUT_DIR/nginx-t.txt" ||
  die "nginx -t: $(cat "$OUT_DIR/nginx-t.txt")"
"$TETHER" check "$TMP/tether/tether.toml" > "$OUT_DIR/tether-check.txt" 2>&1 ||
  die "tether check: $(cat "$OUT_DIR/tether-check.txt")"

taskset -c "$LOAD_CPU" nghttpd --no-tls -d "$TMP/www" -a 127.0.0.1 "$P_BACKEND" > "$OUT_DIR/nghttpd.log" 2>&1 &
PIDS+=("$!")
taskset -c "$PROXY_CPU" "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
NGINX_MASTER=$!; PIDS+=("$NGINX_MASTER")
declare -A PID
RUST_LOG=${RUST_LOG:-warn} taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether/tether.toml" \
  > "$OUT_DIR/tether.log" 2>&1 &
PID[tether]=$!; PIDS+=("$!")

post() {  # port -> "status size"
  curl -sS --http2-prior-knowledge --max-time 5 -o "$TMP/answer" -w '%{http_code} %{size_download}' \
    --data-binary "@$TMP/post.bin" "http://127.0.0.1:$1/x" 2>/dev/null || true
}
ready() {  # port: wait until a POST gets the 1 KiB answer
  for _ in $(seq 100); do
    [ "$(post "$1")" = "200 1024" ] && return 0
    sleep 0.1
  done
  return 1
}
ready "$P_BACKEND" || die "the backend does not answer: $(post "$P_BACKEND")"
for p in "${PROXIES[@]}"; do
  ready "${PORT[$p]}" || die "$p does not answer: $(post "${PORT[$p]}") (logs in $OUT_DIR)"
  [ "$(cat "$TMP/answer")" = "$KIB" ] || die "$p's answer is not the backend's 1 KiB"
done
PID[nginx]=$(nginx_worker "$NGINX_MASTER") || die "no nginx worker"

# Connections from proxy $1 to the backend, established now (counted on the proxy's side:
# sockets of its process whose peer is the backend's port).
upstream_conns() {
  ss -Htnp state established "( dport = :$P_BACKEND )" 2>/dev/null | grep -c "pid=${PID[$1]}," || true
}

CLK_TCK=$(getconf CLK_TCK)
RES=$OUT_DIR/results.txt
echo "# proxy round req_per_s cpu_us_per_req ok failed upstream_conns" > "$RES"
run() {  # proxy round duration
  local p=$1 r=$2 d=$3 out t0 t1 ok failed secs conns=0 loader
  out=$OUT_DIR/h2load-$p-$r.txt
  t0=$(cpu_ticks "${PID[$p]}")
  timeout $((d + 30)) taskset -c "$LOAD_CPU" h2load -c "$CONNS" -m "$STREAMS" -D "$d" \
    -d "$TMP/post.bin" "http://127.0.0.1:${PORT[$p]}/x" > "$out" 2>&1 &
  loader=$!
  # Mid-run: the proxy's upstream connections while every stream is in flight.
  sleep "$(awk -v d="$d" 'BEGIN { print d / 2 }')"
  conns=$(upstream_conns "$p")
  wait "$loader" || true
  t1=$(cpu_ticks "${PID[$p]}")
  kill -0 "${PID[$p]}" 2>/dev/null || die "$p is gone (see $OUT_DIR)"
  [ "$r" = warm ] && return 0
  ok=$(awk '/^status codes:/ { gsub(",", ""); print $3 }' "$out")
  failed=$(awk '/^requests:/ { gsub(",", ""); for (i = 1; i <= NF; i++) if ($(i+1) == "failed") print $i }' "$out")
  secs=$(awk '/^finished in/ { sub("s,", "", $3); print $3 }' "$out")
  [ -n "$ok" ] && [ -n "$secs" ] || die "no figures in $out: $(tail -5 "$out")"
  awk -v p="$p" -v r="$r" -v ok="$ok" -v f="${failed:-?}" -v secs="$secs" -v c="$conns" \
      -v dt=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {
    printf "%s %s %.0f %.2f %d %s %d\n", p, r, ok / secs, (ok > 0 ? dt / hz * 1e6 / ok : 0), ok, f, c }' >> "$RES"
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
declare -A RPS CPU CONN
for p in "${PROXIES[@]}"; do RPS[$p]=$(fig "$p" 3); CPU[$p]=$(fig "$p" 4); CONN[$p]=$(fig "$p" 7); done
INFLIGHT=$((CONNS * STREAMS))
{
  echo "## HTTP/2 to an h2c upstream: tether vs nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') grpc_pass, h2load $(h2load --version | awk '{print $2; exit}' | sed 's|.*/||')"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load average at start $LOAD_START;"
  echo "ROUNDS=$ROUNDS DURATION=$DURATION, medians; h2load -c$CONNS -m$STREAMS POST of 1 KiB answered with 1 KiB by nghttpd $(nghttpd --version | awk '{print $2; exit}' | sed 's|.*/||') (h2c)."
  echo
  echo "| proxy | req/s | CPU µs/req | upstream connections | per 1,000 concurrent streams |"
  echo "|---|---:|---:|---:|---:|"
  for p in "${PROXIES[@]}"; do
    awk -v p="$p" -v r="${RPS[$p]}" -v c="${CPU[$p]}" -v n="${CONN[$p]}" -v s="$INFLIGHT" 'BEGIN {
      printf "| %s | %.0f | %.2f | %d | %.0f |\n", (p == "nginx" ? "nginx grpc_pass" : "tether h2c"), r, c, n, n * 1000 / s }'
  done
  echo
  awk -v tr="${RPS[tether]}" -v nr="${RPS[nginx]}" -v tc="${CPU[tether]}" -v nc="${CPU[nginx]}" \
      -v tn="${CONN[tether]}" -v s="$INFLIGHT" 'BEGIN {
    printf "req/s, tether / nginx: %.2fx (target >= 1)\n", (nr > 0 ? tr / nr : 0)
    printf "CPU per request, tether / nginx: %.2fx (target <= 1)\n", (nc > 0 ? tc / nc : 0)
    printf "tether upstream connections per 1,000 concurrent streams: %.0f (target <= 10)\n", tn * 1000 / s }'
  echo
  echo "Failed requests (all rounds): tether $(grep -v '^#' "$RES" | awk '$1 == "tether" { s += $6 } END { print s + 0 }'), nginx $(grep -v '^#' "$RES" | awk '$1 == "nginx" { s += $6 } END { print s + 0 }')."
} | tee "$OUT_DIR/report.md"
