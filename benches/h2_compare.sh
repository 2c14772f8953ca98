#!/usr/bin/env bash
# tether vs nginx over HTTP/2 (issue 14 item 6), one worker each, same machine, one run.
#
#   bash benches/h2_compare.sh              # ROUNDS=3 rounds of 8 s per proxy and scenario
#   ROUNDS=1 DURATION=5 bash benches/h2_compare.sh
#
# What it does (loopback only, ports picked in 61000-64999, everything it starts is killed
# on exit, the temp dir with the certificate is removed):
#   cert     an ECDSA P-256 self-signed certificate for localhost/127.0.0.1, made with
#            openssl in the temp dir at the start of the run
#   backend  nginx, plain HTTP/1.1, worker_processes 1, pinned to CPU $LOAD_CPU, serving
#            /1k.bin (1 KiB)
#   proxies  tether (workers = 1, --no-supervise: one process, whose CPU is counted) and
#            nginx 1.22 (worker_processes 1; its worker's CPU is counted), pinned to CPU
#            $PROXY_CPU, each with two listeners proxying to the backend over kept-alive
#            HTTP/1.1 (nginx: keepalive 32):
#              tls   TLS (ECDSA), ALPN h2 (tether `http2 = true`, nginx `listen ... ssl http2`)
#              h2c   plain, HTTP/2 with prior knowledge (tether `http2 = true`, nginx
#                    `listen ... http2` on a plain port)
#   load     h2load (Debian nghttp2-client) pinned to CPU $LOAD_CPU (shared with the backend)
# Scenarios, tether and nginx taking turns within each round, each for $DURATION s:
#   c1m100   1 connection x 100 concurrent streams, GET /1k.bin
#   c32m10   32 connections x 10 concurrent streams, GET /1k.bin
# over tls and h2c. Figures: req/s (2xx responses / wall time) and CPU µs per request of
# the serving process (utime+stime from /proc/PID/stat over the run / responses). Medians
# over the rounds; the report (Markdown) goes to stdout and $OUT_DIR/report.md, h2load's
# outputs to $OUT_DIR.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH=h2_compare
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out h2-compare

# ---------------------------------------------------------------- tools
install_missing nginx:nginx openssl:openssl h2load:nghttp2-client curl:curl ss:iproute2 \
  taskset:util-linux
NGINX=$(command -v nginx)
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

build_tether

bench_tmp

# ---------------------------------------------------------------- ports
port_block 5
P_BACKEND=$BASE
declare -A PORT
PORT=([tether.tls]=$((BASE + 1)) [tether.h2c]=$((BASE + 2)) [nginx.tls]=$((BASE + 3)) [nginx.h2c]=$((BASE + 4)))

# ---------------------------------------------------------------- certificate and file
CERTS=$TMP/certs
mkdir -p "$CERTS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$CERTS/ec.key" -out "$CERTS/ec.pem" 2>/dev/null
WWW=$TMP/www
mkdir -p "$WWW"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WWW/1k.bin"
chmod -R a+rX "$CERTS" "$WWW"

nginx_conf() {  # $1 = dir, $2 = the http block's servers
  nginx_main "$1"
  echo "http {"
  nginx_http_common "$1"
  echo "$2"
  echo "}"
}
mkdir -p "$TMP/backend" "$TMP/nginx" "$TMP/tether"
nginx_conf "$TMP/backend" "  server { listen 127.0.0.1:$P_BACKEND backlog=4096; root $WWW; }" > "$TMP/backend/nginx.conf"
LOCATION="location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
nginx_conf "$TMP/nginx" "
  upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 32; keepalive_requests 1000000; keepalive_timeout 300s; }
  server {
    listen 127.0.0.1:${PORT[nginx.tls]} ssl http2 backlog=4096;
    ssl_certificate $CERTS/ec.pem;
    ssl_certificate_key $CERTS/ec.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    $LOCATION
  }
  server {
    listen 127.0.0.1:${PORT[nginx.h2c]} http2 backlog=4096;
    $LOCATION
  }" > "$TMP/nginx/nginx.conf"

cat > "$TMP/tether/tether.toml" <<EOF
workers = 1
access_log = "off"

[[listener]]
listen = "127.0.0.1:${PORT[tether.tls]}"
protocol = "http"
upstream = "127.0.0.1:$P_BACKEND"
idle_timeout_ms = 300000
http2 = true
tls = { certificates = [{ cert = "$CERTS/ec.pem", key = "$CERTS/ec.key" }] }

[[listener]]
listen = "127.0.0.1:${PORT[tether.h2c]}"
protocol = "http"
upstream = "127.0.0.1:$P_BACKEND"
idle_timeout_ms = 300000
http2 = true
EOF

# ---------------------------------------------------------------- processes
url() {
  case $2 in
    h2c) echo "http://127.0.0.1:${PORT[$1.$2]}" ;;
    tls) echo "https://127.0.0.1:${PORT[$1.$2]}" ;;
  esac
}
wait_h2() {  # proxy listener: wait until it answers 200 over HTTP/2, at most 10 s
  local flag=--http2
  [ "$2" = h2c ] && flag=--http2-prior-knowledge
  for _ in $(seq 100); do
    [ "$(curl -sk $flag -o /dev/null -w '%{http_version} %{http_code}' --max-time 2 "$(url "$1" "$2")/1k.bin" || true)" = "2 200" ] && return 0
    sleep 0.1
  done
  return 1
}

ulimit -n 65536 2>/dev/null || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  log "warning: load average $LOAD_START before the run: other work on this machine will add noise"
fi
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
for p in tether nginx; do
  for l in tls h2c; do
    wait_h2 $p $l || die "$p $l does not answer over HTTP/2 on $(url $p $l)/1k.bin (logs in $OUT_DIR)"
  done
done
NGINX_PID=$(nginx_worker "$NGINX_MASTER") || die "no nginx worker"
declare -A PID
PID=([tether]=$TETHER_PID [nginx]=$NGINX_PID)
log "ports: backend $P_BACKEND, tether ${PORT[tether.tls]}/${PORT[tether.h2c]}, nginx ${PORT[nginx.tls]}/${PORT[nginx.h2c]}"

CLK_TCK=$(getconf CLK_TCK)

RES=$OUT_DIR/results.txt
echo "# listener scenario proxy round req_per_s cpu_us_per_req ok failed" > "$RES"
# run listener scenario proxy round duration
run() {
  local l=$1 s=$2 p=$3 r=$4 d=$5 c m out t0 t1 ok failed secs
  case $s in c1m100) c=1; m=100 ;; c32m10) c=32; m=10 ;; esac
  out=$OUT_DIR/h2load-$l-$s-$p-$r.txt
  t0=$(cpu_ticks "${PID[$p]}")
  timeout $((d + 30)) taskset -c "$LOAD_CPU" h2load -c "$c" -m "$m" -D "$d" "$(url "$p" "$l")/1k.bin" > "$out" 2>&1 || true
  t1=$(cpu_ticks "${PID[$p]}")
  kill -0 "${PID[$p]}" 2>/dev/null || die "$p is gone (see $OUT_DIR)"
  [ "$r" = warm ] && return 0
  ok=$(awk '/^status codes:/ { gsub(",", ""); print $3 }' "$out")
  failed=$(awk '/^requests:/ { gsub(",", ""); for (i = 1; i <= NF; i++) if ($(i+1) == "failed") print $i }' "$out")
  secs=$(awk '/^finished in/ { sub("s,", "", $3); print $3 }' "$out")
  [ -n "$ok" ] && [ -n "$secs" ] || die "no figures in $out: $(tail -5 "$out")"
  awk -v l="$l" -v s="$s" -v p="$p" -v r="$r" -v ok="$ok" -v f="${failed:-?}" -v secs="$secs" \
      -v dt=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {
    printf "%s %s %s %s %.0f %.1f %d %s\n", l, s, p, r, ok / secs, (ok > 0 ? dt / hz * 1e6 / ok : 0), ok, f }' >> "$RES"
}

log "warm-up ($WARMUP s per proxy and listener)"
for l in tls h2c; do for p in tether nginx; do run "$l" c32m10 "$p" warm "$WARMUP"; done; done
for r in $(seq "$ROUNDS"); do
  for l in tls h2c; do
    for s in c1m100 c32m10; do
      for p in tether nginx; do
        log "round $r: $l $s $p"
        run "$l" "$s" "$p" "$r" "$DURATION"
      done
    done
  done
done

# ---------------------------------------------------------------- report
median() { sort -n | awk '{a[NR] = $1} END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
fig() { grep -v '^#' "$RES" | awk -v l="$1" -v s="$2" -v p="$3" -v k="$4" '$1 == l && $2 == s && $3 == p { print $k }' | median; }
{
  echo "## HTTP/2: tether vs nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'), h2load $(h2load --version | awk '{print $2; exit}' | sed 's|.*/||')"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load average at start $LOAD_START;"
  echo "ROUNDS=$ROUNDS DURATION=$DURATION, medians; proxied GET /1k.bin to an nginx backend over kept-alive HTTP/1.1."
  echo
  echo "| listener | connections x streams | tether req/s | nginx req/s | ratio | tether CPU µs/req | nginx CPU µs/req | CPU ratio (nginx/tether) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for l in tls h2c; do
    for s in c1m100 c32m10; do
      tr=$(fig $l $s tether 5); nr=$(fig $l $s nginx 5); tc=$(fig $l $s tether 6); nc=$(fig $l $s nginx 6)
      awk -v l=$l -v s=$s -v tr="$tr" -v nr="$nr" -v tc="$tc" -v nc="$nc" 'BEGIN {
        split(s == "c1m100" ? "1 x 100" : "32 x 10", x, ",");
        printf "| %s | %s | %.0f | %.0f | %.2fx | %.1f | %.1f | %.2fx |\n", l, x[1], tr, nr, (nr > 0 ? tr / nr : 0), tc, nc, (tc > 0 ? nc / tc : 0) }'
    done
  done
  echo
  echo "Failed requests (all rounds): tether $(grep -v '^#' "$RES" | awk '$3 == "tether" { s += $8 } END { print s + 0 }'), nginx $(grep -v '^#' "$RES" | awk '$3 == "nginx" { s += $8 } END { print s + 0 }')."
} | tee "$OUT_DIR/report.md"
