#!/usr/bin/env bash
# tether `encode` (gzip 6) vs nginx `gzip on` (gzip_comp_level 6) on a proxied 100 KiB JSON
# answer, one worker each, same machine, one run.
#
#   bash benches/gzip_compare.sh            # ROUNDS=3 rounds of 8 s per proxy
#   ROUNDS=1 DURATION=5 bash benches/gzip_compare.sh
#
# What it does (loopback only, ports picked in 61000-64999, everything it starts is killed
# on exit, the temp dir is removed):
#   backend  nginx, plain HTTP/1.1, worker_processes 1, pinned to CPU $LOAD_CPU, serving
#            /data.json: 100 KiB of generated JSON records, application/json, uncompressed
#   proxies  tether (workers = 1, --no-supervise; its CPU is counted) with
#            `encode = { gzip = 6, prefer = ["gzip"], types = ["application/json"] }`, and
#            nginx (worker_processes 1; its worker's CPU is counted) with `gzip on;
#            gzip_comp_level 6; gzip_proxied any; gzip_types application/json`, both pinned to
#            CPU $PROXY_CPU, proxying to the backend over kept-alive HTTP/1.1
#   load     h2load --h1 (HTTP/1.1, keep-alive), 4 connections, `accept-encoding: gzip`,
#            pinned to CPU $LOAD_CPU (shared with the backend)
# Figures: req/s, CPU µs per request of the serving process (utime+stime from
# /proc/PID/stat over the run / responses), the compressed size; medians over the rounds,
# and the ratio tether/nginx of CPU per request. The report (Markdown) goes to stdout and
# $OUT_DIR/report.md.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH=gzip_compare
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out gzip-compare

install_missing nginx:nginx h2load:nghttp2-client curl:curl ss:iproute2 taskset:util-linux \
  gzip:gzip
NGINX=$(command -v nginx)
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

build_tether
bench_tmp

port_block 3
P_BACKEND=$BASE
declare -A PORT
PORT=([tether]=$((BASE + 1)) [nginx]=$((BASE + 2)))

WWW=$TMP/www
mkdir -p "$WWW"
python3 - "$WWW/data.json" <<'PY'
import sys
out = bytearray(b"[\n")
i = 0
while len(out) < 100 * 1024 - 64:
    x = (i * 2654435761) % 4294967296
    out += b'{"id": %d, "name": "user-%08x", "score": %d, "tags": ["a", "b%d"]},\n' % (i, x, x % 1000, i % 7)
    i += 1
out = out[:100 * 1024 - 2] + b"\n]"
open(sys.argv[1], "wb").write(out)
PY
chmod -R a+rX "$WWW"
SIZE=$(stat -c %s "$WWW/data.json")

nginx_conf() {  # $1 = dir, $2 = the http block's servers
  nginx_main "$1"
  echo "http {"
  nginx_http_common "$1"
  echo "  types { application/json json; }"
  echo "$2"
  echo "}"
}
mkdir -p "$TMP/backend" "$TMP/nginx" "$TMP/tether"
nginx_conf "$TMP/backend" "  server { listen 127.0.0.1:$P_BACKEND backlog=4096; root $WWW; gzip off; }" > "$TMP/backend/nginx.conf"
nginx_conf "$TMP/nginx" "
  upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 32; keepalive_requests 1000000; keepalive_timeout 300s; }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    gzip on;
    gzip_comp_level 6;
    gzip_proxied any;
    gzip_min_length 1024;
    gzip_types application/json;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }" > "$TMP/nginx/nginx.conf"

cat > "$TMP/tether/tether.toml" <<EOF
workers = 1
access_log = "off"

[[upstream]]
name = "backend"
servers = ["127.0.0.1:$P_BACKEND"]

[[server]]
listen = ["127.0.0.1:${PORT[tether]}"]
idle_timeout_ms = 300000
encode = { gzip = 6, prefer = ["gzip"], types = ["application/json"] }

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

taskset -c "$LOAD_CPU" "$NGINX" -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" &
PIDS+=("$!")
taskset -c "$PROXY_CPU" "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
NGINX_MASTER=$!; PIDS+=("$NGINX_MASTER")
RUST_LOG=${RUST_LOG:-warn} taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether/tether.toml" > "$OUT_DIR/tether.log" 2>&1 &
TETHER_PID=$!; PIDS+=("$TETHER_PID")
wait_http "http://127.0.0.1:$P_BACKEND/data.json" || die "backend does not answer"
for p in tether nginx; do
  wait_http "http://127.0.0.1:${PORT[$p]}/data.json" || die "$p does not answer (logs in $OUT_DIR)"
done
NGINX_PID=$(nginx_worker "$NGINX_MASTER") || die "no nginx worker"
declare -A PID
PID=([tether]=$TETHER_PID [nginx]=$NGINX_PID)

# Both answer gzip that gunzips to the file.
declare -A ZSIZE
for p in tether nginx; do
  curl -sS -H 'Accept-Encoding: gzip' -D "$OUT_DIR/$p-head.txt" -o "$TMP/$p.gz" "http://127.0.0.1:${PORT[$p]}/data.json"
  grep -qi '^content-encoding: gzip' "$OUT_DIR/$p-head.txt" || die "$p did not gzip: $(cat "$OUT_DIR/$p-head.txt")"
  gzip -dc "$TMP/$p.gz" | cmp -s - "$WWW/data.json" || die "$p's gzip does not decode to the file"
  ZSIZE[$p]=$(stat -c %s "$TMP/$p.gz")
done

CLK_TCK=$(getconf CLK_TCK)
RES=$OUT_DIR/results.txt
echo "# proxy round req_per_s cpu_us_per_req ok" > "$RES"
run() {  # proxy round duration
  local p=$1 r=$2 d=$3 out t0 t1 ok secs
  out=$OUT_DIR/h2load-$p-$r.txt
  t0=$(cpu_ticks "${PID[$p]}")
  timeout $((d + 30)) taskset -c "$LOAD_CPU" h2load --h1 -c 4 -D "$d" -H 'accept-encoding: gzip' \
    "http://127.0.0.1:${PORT[$p]}/data.json" > "$out" 2>&1 || true
  t1=$(cpu_ticks "${PID[$p]}")
  kill -0 "${PID[$p]}" 2>/dev/null || die "$p is gone (see $OUT_DIR)"
  [ "$r" = warm ] && return 0
  ok=$(awk '/^status codes:/ { gsub(",", ""); print $3 }' "$out")
  secs=$(awk '/^finished in/ { sub("s,", "", $3); print $3 }' "$out")
  [ -n "$ok" ] && [ -n "$secs" ] || die "no figures in $out: $(tail -5 "$out")"
  awk -v p="$p" -v r="$r" -v ok="$ok" -v secs="$secs" -v dt=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {
    printf "%s %s %.0f %.1f %d\n", p, r, ok / secs, (ok > 0 ? dt / hz * 1e6 / ok : 0), ok }' >> "$RES"
}

log "warm-up ($WARMUP s per proxy)"
for p in tether nginx; do run "$p" warm "$WARMUP"; done
for r in $(seq "$ROUNDS"); do
  for p in tether nginx; do
    log "round $r: $p"
    run "$p" "$r" "$DURATION"
  done
done

median() { sort -n | awk '{a[NR] = $1} END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
fig() { grep -v '^#' "$RES" | awk -v p="$1" -v k="$2" '$1 == p { print $k }' | median; }
tr=$(fig tether 3); nr=$(fig nginx 3); tc=$(fig tether 4); nc=$(fig nginx 4)
{
  echo "## gzip 6 on a proxied 100 KiB JSON answer: tether vs nginx $("$NGINX" -v 2>&1 | sed 's|.*/||')"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load average at start $LOAD_START;"
  echo "ROUNDS=$ROUNDS DURATION=$DURATION, medians; h2load --h1 -c 4, accept-encoding: gzip; the file is $SIZE bytes."
  echo
  echo "| proxy | req/s | CPU µs/req | gzip bytes |"
  echo "|---|---:|---:|---:|"
  echo "| tether (encode gzip = 6) | $tr | $tc | ${ZSIZE[tether]} |"
  echo "| nginx (gzip_comp_level 6) | $nr | $nc | ${ZSIZE[nginx]} |"
  echo
  awk -v tc="$tc" -v nc="$nc" 'BEGIN { printf "CPU per request, tether / nginx: %.2fx\n", (nc > 0 ? tc / nc : 0) }'
} | tee "$OUT_DIR/report.md"
