#!/usr/bin/env bash
# tether vs nginx vs HAProxy, one worker each, in front of the same backend, in one run.
#
#   bash benches/compare.sh                 # R=3 rounds of 10 s per proxy and scenario
#   ROUNDS=5 DURATION=20 bash benches/compare.sh
#   PERF=1 bash benches/compare.sh          # also profile tether under the proxied load
#
# What it does (loopback only, ports picked in 61000-64999, everything it starts is
# killed on exit, the temp dir with the 1 GiB file is removed):
#   backend  nginx, worker_processes 1, pinned to CPU $LOAD_CPU, serving /1k.bin (1 KiB)
#            and /1g.bin (1 GiB) from a temp dir
#   proxies  tether (one event-loop thread), nginx (worker_processes 1, upstream keepalive,
#            HTTP/1.1 upstream), HAProxy (nbthread 1, http-reuse always), each pinned to
#            CPU $PROXY_CPU; tether and nginx also serve the same dir as static files
#   load     wrk -t1 -c$CONNS pinned to CPU $LOAD_CPU (it shares that core with the backend)
# Scenarios, the proxies taking turns within each round (tether, nginx, haproxy, ...):
#   idle     $IDLE_CONNS keep-alive connections, one GET /1k.bin each, then idle:
#            (VmRSS with them - VmRSS before) / connections. Runs first, on fresh processes.
#   proxied  wrk GET /1k.bin through each proxy (and straight to the backend, as a
#            reference): req/s, p99, and CPU time per request of the proxy process
#            (utime+stime from /proc/PID/stat before and after the wrk run / requests)
#   static   wrk GET /1k.bin served from disk by tether and nginx (HAProxy cannot)
#   bulk     curl of /1g.bin through each proxy and straight from the backend: MB/s
# Medians over the rounds. The report (Markdown) goes to stdout and $OUT_DIR/report.md,
# raw wrk/curl outputs and per-round figures to $OUT_DIR.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}       # seconds per wrk run
WARMUP=${WARMUP:-2}            # seconds of wrk per proxy before the rounds
CONNS=${CONNS:-32}             # wrk connections (nginx upstream keepalive is 32 too)
IDLE_CONNS=${IDLE_CONNS:-10000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PERF=${PERF:-0}                # 1: perf record tether under the proxied load at the end
PERF_SECONDS=${PERF_SECONDS:-8}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH=compare
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out compare

# ---------------------------------------------------------------- tools
perf=""
[ "$PERF" = 1 ] && perf=perf:linux-perf
# shellcheck disable=SC2086  # $perf: one more pair or none
install_missing nginx:nginx-light haproxy:haproxy wrk:wrk python3:python3 curl:curl \
  ss:iproute2 taskset:util-linux $perf
NGINX=$(command -v nginx)
HAPROXY=$(command -v haproxy)
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

build_tether

bench_tmp

# ---------------------------------------------------------------- ports
port_block 8
P_BACKEND=$BASE
P_TETHER=$((BASE + 1)); P_TETHER_STATIC=$((BASE + 2))
P_NGINX=$((BASE + 3)); P_NGINX_STATIC=$((BASE + 4))
P_HAPROXY=$((BASE + 5))

# ---------------------------------------------------------------- files
bench_www


# File descriptors: the proxies need one per idle connection (plus a few upstream).
# HAProxy asks for 2 per maxconn and refuses to start above the hard limit unless told
# `no strict-limits`; it only needs about IDLE_CONNS here.
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=65536
[ "$NOFILE" -gt 65536 ] && NOFILE=65536
[ "$NOFILE" -ge $((IDLE_CONNS + 200)) ] || die "open-files hard limit $NOFILE is too low for IDLE_CONNS=$IDLE_CONNS"
MAXCONN=$((IDLE_CONNS + 100))


mkdir -p "$TMP/backend" "$TMP/nginx" "$TMP/haproxy" "$TMP/tether"
{
  nginx_main "$TMP/backend" "$NOFILE" $((IDLE_CONNS + 1024))
  echo "http {"
  nginx_http_common "$TMP/backend"
  cat <<EOF
  server {
    listen 127.0.0.1:$P_BACKEND backlog=4096;
    root $WWW;
  }
}
EOF
} > "$TMP/backend/nginx.conf"

{
  nginx_main "$TMP/nginx" "$NOFILE" $((IDLE_CONNS + 1024))
  echo "http {"
  nginx_http_common "$TMP/nginx"
  cat <<EOF
  upstream backend {
    server 127.0.0.1:$P_BACKEND;
    keepalive 32;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$P_NGINX backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:$P_NGINX_STATIC backlog=4096;
    root $WWW;
  }
}
EOF
} > "$TMP/nginx/nginx.conf"

cat > "$TMP/haproxy/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $MAXCONN
  no strict-limits
defaults
  mode http
  maxconn $MAXCONN
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  http-reuse always
frontend fe
  bind 127.0.0.1:$P_HAPROXY
  default_backend be
backend be
  server b1 127.0.0.1:$P_BACKEND
EOF

cat > "$TMP/tether/tether.toml" <<EOF
workers = 1
access_log = "off"

[[listener]]
listen = "127.0.0.1:$P_TETHER"
protocol = "http"
upstream = "127.0.0.1:$P_BACKEND"
idle_timeout_ms = 300000

[[listener]]
listen = "127.0.0.1:$P_TETHER_STATIC"
protocol = "http"
root = "$WWW"
idle_timeout_ms = 300000
EOF

# ---------------------------------------------------------------- processes

ulimit -n "$NOFILE" 2>/dev/null || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  log "warning: load average $LOAD_START before the run: other work on this machine will add noise"
fi
log "ports: backend $P_BACKEND, tether $P_TETHER/$P_TETHER_STATIC, nginx $P_NGINX/$P_NGINX_STATIC, haproxy $P_HAPROXY; nofile $(ulimit -n)"

taskset -c "$LOAD_CPU" "$NGINX" -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" &
BACKEND_MASTER=$!; PIDS+=("$BACKEND_MASTER")
taskset -c "$PROXY_CPU" "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
NGINX_MASTER=$!; PIDS+=("$NGINX_MASTER")
taskset -c "$PROXY_CPU" "$HAPROXY" -f "$TMP/haproxy/haproxy.cfg" -db > "$OUT_DIR/haproxy.log" 2>&1 &
HAPROXY_PID=$!; PIDS+=("$HAPROXY_PID")
# --no-supervise: one process, so the PID measured is the one that serves (not the master).
RUST_LOG=${RUST_LOG:-warn} taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether/tether.toml" > "$OUT_DIR/tether.log" 2>&1 &
TETHER_PID=$!; PIDS+=("$TETHER_PID")

wait_http "http://127.0.0.1:$P_BACKEND/1k.bin" || die "backend nginx did not start: $(cat "$TMP/backend/error.log")"
BACKEND_PID=$(nginx_worker "$BACKEND_MASTER") || die "no backend worker"
NGINX_PID=$(nginx_worker "$NGINX_MASTER") || die "no nginx worker"

declare -A PID URL SURL PORT
PID=([tether]=$TETHER_PID [nginx]=$NGINX_PID [haproxy]=$HAPROXY_PID [direct]=$BACKEND_PID)
PORT=([tether]=$P_TETHER [nginx]=$P_NGINX [haproxy]=$P_HAPROXY [direct]=$P_BACKEND)
URL=([tether]=http://127.0.0.1:$P_TETHER [nginx]=http://127.0.0.1:$P_NGINX
     [haproxy]=http://127.0.0.1:$P_HAPROXY [direct]=http://127.0.0.1:$P_BACKEND)
SURL=([tether]=http://127.0.0.1:$P_TETHER_STATIC [nginx]=http://127.0.0.1:$P_NGINX_STATIC)

for p in tether nginx haproxy direct; do
  wait_http "${URL[$p]}/1k.bin" || die "$p does not answer on ${URL[$p]}/1k.bin (logs in $OUT_DIR)"
  size=$(curl -s -o /dev/null -w '%{size_download}' "${URL[$p]}/1k.bin")
  [ "$size" = 1024 ] || die "$p: /1k.bin is $size bytes"
done
for p in tether nginx; do
  wait_http "${SURL[$p]}/1k.bin" || die "$p static does not answer"
done

CLK_TCK=$(getconf CLK_TCK)
alive_check() {
  local p
  for p in tether nginx haproxy direct; do
    kill -0 "${PID[$p]}" 2>/dev/null && continue
    [ "$p" = tether ] && { log "tether died; last log lines:"; tail -20 "$OUT_DIR/tether.log" >&2; }
    die "$p (pid ${PID[$p]}) is gone"
  done
}

RES=$OUT_DIR/results.txt
: > "$RES"
echo "# scenario proxy round req_s p99_us cpu_us_per_req requests non2xx socket_errors" >> "$RES"

to_us() {  # wrk latency (12.3us, 4.56ms, 1.2s, 1.0m) -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : -1
    if (f < 0) print "nan"; else printf "%.1f", n * f }'
}

# wrk_run scenario proxy round url
wrk_run() {
  local sc=$1 p=$2 r=$3 url=$4 out t0 t1 reqs rps p99 non2xx sockerr cpu
  out=$OUT_DIR/wrk-$sc-$p-$r.txt
  t0=$(cpu_ticks "${PID[$p]}")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency "$url" > "$out" 2>&1 || true
  t1=$(cpu_ticks "${PID[$p]}")
  reqs=$(awk '/requests in/ {print $1; exit}' "$out"); reqs=${reqs:-0}
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out"); rps=${rps:-0}
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out"); non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out"); sockerr=${sockerr:-0}
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print "nan" }')
  echo "$sc $p $r $rps $p99 $cpu $reqs $non2xx $sockerr" >> "$RES"
  log "$sc $p round $r: $rps req/s, p99 ${p99} us, ${cpu} us CPU/req, non-2xx $non2xx, socket errors $sockerr"
  alive_check
}

# ---------------------------------------------------------------- idle connections
IDLE=$OUT_DIR/idle.txt
echo "# proxy rss_before_kib rss_after_kib held_server_side opened failed kib_per_conn" > "$IDLE"
for p in tether nginx haproxy; do
  pid=${PID[$p]}
  # one request through the path first, so code and the upstream pool are warm
  curl -s -o /dev/null "${URL[$p]}/1k.bin"
  sleep 0.5
  before=$(rss_kib "$pid")
  f=$OUT_DIR/idle-$p.txt
  taskset -c "$LOAD_CPU" python3 "$repo/benches/support/idle_conns.py" 127.0.0.1 "${PORT[$p]}" \
    --count "$IDLE_CONNS" --path /1k.bin --hold 120 --timeout 90 > "$f" 2>&1 &
  ipid=$!; PIDS+=("$ipid")
  for _ in $(seq 1000); do
    grep -q '^ready' "$f" && break
    kill -0 "$ipid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^ready' "$f" || die "idle_conns against $p: $(cat "$f")"
  sleep 1
  after=$(rss_kib "$pid")
  held=$(ss -Htn state established "( sport = :${PORT[$p]} )" | wc -l)
  read -r _ opened failed < <(grep '^ready' "$f")
  kill "$ipid" 2>/dev/null || true
  wait "$ipid" 2>/dev/null || true
  per=$(awk -v a="$after" -v b="$before" -v n="$opened" 'BEGIN { if (n > 0) printf "%.3f", (a - b) / n; else print "nan" }')
  echo "$p $before $after $held $opened $failed $per" >> "$IDLE"
  log "idle $p: RSS $before -> $after KiB, $opened open ($held held by the server), $failed failed: $per KiB/conn"
  # let the proxy close them before the next one
  for _ in $(seq 100); do
    [ "$(ss -Htn state established "( sport = :${PORT[$p]} )" | wc -l)" -lt 10 ] && break
    sleep 0.1
  done
  alive_check
done

# ---------------------------------------------------------------- wrk scenarios
log "warm-up: ${WARMUP}s of wrk per proxy"
for p in tether nginx haproxy direct; do
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${URL[$p]}/1k.bin" > /dev/null 2>&1 || true
done
for p in tether nginx; do
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${SURL[$p]}/1k.bin" > /dev/null 2>&1 || true
done
alive_check

for r in $(seq "$ROUNDS"); do
  for p in tether nginx haproxy direct; do
    wrk_run proxied "$p" "$r" "${URL[$p]}/1k.bin"
  done
done
for r in $(seq "$ROUNDS"); do
  for p in tether nginx; do
    wrk_run static "$p" "$r" "${SURL[$p]}/1k.bin"
  done
done

# ---------------------------------------------------------------- bulk
BULK=$OUT_DIR/bulk.txt
echo "# proxy round MB_s cpu_s_per_GiB size http_code" > "$BULK"
for r in $(seq "$ROUNDS"); do
  for p in tether nginx haproxy direct; do
    t0=$(cpu_ticks "${PID[$p]}")
    res=$(taskset -c "$LOAD_CPU" curl -s -o /dev/null --max-time 120 \
      -w '%{speed_download} %{size_download} %{http_code}' "${URL[$p]}/1g.bin" || true)
    t1=$(cpu_ticks "${PID[$p]}")
    read -r speed size code <<< "$res"
    mbs=$(awk -v s="${speed:-0}" -v z="${size:-0}" -v want="$BULK_SIZE" 'BEGIN { if (z == want) printf "%.0f", s / 1e6; else print "nan" }')
    cpug=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v z="${size:-0}" 'BEGIN { if (z > 0) printf "%.3f", d / hz / (z / 1073741824); else print "nan" }')
    echo "$p $r $mbs $cpug ${size:-0} ${code:-000}" >> "$BULK"
    log "bulk $p round $r: $mbs MB/s, $cpug CPU s/GiB ($size bytes, HTTP $code)"
    alive_check
  done
done

# ---------------------------------------------------------------- optional profile
if [ "$PERF" = 1 ]; then
  log "perf: recording tether for ${PERF_SECONDS}s under the proxied load"
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$((PERF_SECONDS + 2))s" "${URL[tether]}/1k.bin" > "$OUT_DIR/wrk-perf.txt" 2>&1 &
  wpid=$!; PIDS+=("$wpid")
  sleep 1
  perf record -q -F 499 --call-graph dwarf,8192 -p "$TETHER_PID" -o "$OUT_DIR/perf.data" -- sleep "$PERF_SECONDS" > /dev/null 2>&1 || log "perf record failed"
  wait "$wpid" || true
  perf report -i "$OUT_DIR/perf.data" --no-children --stdio --percent-limit 0.8 -g none \
    > "$OUT_DIR/perf-self.txt" 2>/dev/null || true
  perf report -i "$OUT_DIR/perf.data" --children --stdio --percent-limit 3 -g none \
    > "$OUT_DIR/perf-children.txt" 2>/dev/null || true
fi

# ---------------------------------------------------------------- report
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p && $c != "nan" { print $c }' "$RES" | median; }
rng() {  # scenario proxy column printf-format
  awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p && $c != "nan" { print $c }' "$RES" | sort -g |
    awk -v f="$4" 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf f "–" f, lo, hi; else print "nan" }'
}
sumc() { awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p { t += $c } END { print t + 0 }' "$RES"; }
bmed() { awk -v p="$1" -v c="$2" '$1 == p && $c != "nan" { print $c }' "$BULK" | median; }
brng() {
  awk -v p="$1" -v c="$2" '$1 == p && $c != "nan" { print $c }' "$BULK" | sort -g |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s–%s", lo, hi; else print "nan" }'
}
idle_f() { awk -v p="$1" -v c="$2" '$1 == p { print $c }' "$IDLE"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "nan"; else printf "%.2f", a / b }'; }
fmt0() { awk -v v="$1" 'BEGIN { if (v == "nan") print v; else printf "%.0f", v }'; }
fmt1() { awk -v v="$1" 'BEGIN { if (v == "nan") print v; else printf "%.1f", v }'; }
pass() {  # value op limit
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { if (v == "nan") { print "?"; exit }
    ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "pass" : "**FAIL**" }'
}

declare -A RPS P99 CPU ERR SRPS SP99 SCPU SERR BMB BCPU
for p in tether nginx haproxy direct; do
  RPS[$p]=$(med proxied "$p" 4); P99[$p]=$(med proxied "$p" 5); CPU[$p]=$(med proxied "$p" 6)
  ERR[$p]="$(sumc proxied "$p" 8) / $(sumc proxied "$p" 9)"
  BMB[$p]=$(bmed "$p" 3); BCPU[$p]=$(bmed "$p" 4)
done
for p in tether nginx; do
  SRPS[$p]=$(med static "$p" 4); SP99[$p]=$(med static "$p" 5); SCPU[$p]=$(med static "$p" 6)
  SERR[$p]="$(sumc static "$p" 8) / $(sumc static "$p" 9)"
done

first_line() { { "$@" 2>&1 || true; } | head -1 || true; }
tver=$(first_line "$TETHER" --version)
nver=$(first_line "$NGINX" -v | sed 's/.*: nginx.//')
hver=$(first_line "$HAPROXY" -v | awk '{print $3}')
wver=$(first_line wrk -v | awk '{print $2}')
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'); $tver; nginx $nver; HAProxy $hver; wrk $wver"
  echo "Machine: nproc $(nproc), $cpu_model, kernel $(uname -r)"
  echo "Load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "Settings: ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS IDLE_CONNS=$IDLE_CONNS; proxies on CPU $PROXY_CPU, backend + wrk/curl on CPU $LOAD_CPU"
  echo
  echo "Proxied 1 KiB, keep-alive (wrk -t1 -c$CONNS, medians of $ROUNDS × ${DURATION}s; CPU = proxy process utime+stime / requests):"
  echo
  echo "| | req/s | p99 | CPU µs/request | req/s range | CPU µs range | non-2xx / socket errors |"
  echo "|---|---|---|---|---|---|---|"
  for p in tether nginx haproxy direct; do
    name=$p; [ "$p" = direct ] && name="backend direct (its own CPU)"
    echo "| $name | $(fmt0 "${RPS[$p]}") | $(fmt0 "${P99[$p]}") µs | $(fmt1 "${CPU[$p]}") | $(rng proxied "$p" 4 %.0f) | $(rng proxied "$p" 6 %.1f) | ${ERR[$p]} |"
  done
  echo
  echo "Static 1 KiB file (same wrk settings):"
  echo
  echo "| | req/s | p99 | CPU µs/request | req/s range | CPU µs range | non-2xx / socket errors |"
  echo "|---|---|---|---|---|---|---|"
  for p in tether nginx; do
    echo "| $p | $(fmt0 "${SRPS[$p]}") | $(fmt0 "${SP99[$p]}") µs | $(fmt1 "${SCPU[$p]}") | $(rng static "$p" 4 %.0f) | $(rng static "$p" 6 %.1f) | ${SERR[$p]} |"
  done
  echo "| haproxy | n/a (cannot serve files) | | | | | |"
  echo
  echo "Bulk: one 1 GiB download with curl (medians of $ROUNDS; CPU = the serving process's CPU seconds per GiB):"
  echo
  echo "| | MB/s | range | CPU s/GiB |"
  echo "|---|---|---|---|"
  for p in tether nginx haproxy direct; do
    name=$p; [ "$p" = direct ] && name="backend direct"
    echo "| $name | $(fmt0 "${BMB[$p]}") | $(brng "$p" 3) | ${BCPU[$p]} |"
  done
  echo
  echo "Idle keep-alive connections ($IDLE_CONNS, one GET /1k.bin each, then idle; VmRSS of the proxy process):"
  echo
  echo "| | RSS before | RSS with them | held by the proxy (ss) | failed | KiB per connection |"
  echo "|---|---|---|---|---|---|"
  for p in tether nginx haproxy; do
    echo "| $p | $(idle_f "$p" 2) KiB | $(idle_f "$p" 3) KiB | $(idle_f "$p" 4) | $(idle_f "$p" 6) | $(idle_f "$p" 7) |"
  done
  echo
  r_cpu=$(ratio "${CPU[tether]}" "${CPU[nginx]}")
  r_scpu=$(ratio "${SCPU[tether]}" "${SCPU[nginx]}")
  r_p99=$(ratio "${P99[tether]}" "${P99[nginx]}")
  r_bulk=$(ratio "${BMB[tether]}" "${BMB[nginx]}")
  r_bulkd=$(ratio "${BMB[tether]}" "${BMB[direct]}")
  idle_t=$(idle_f tether 7)
  echo "Targets:"
  echo
  echo "| measure | tether / nginx | tether / haproxy | target | result |"
  echo "|---|---|---|---|---|"
  echo "| CPU per proxied request | $r_cpu | $(ratio "${CPU[tether]}" "${CPU[haproxy]}") | ≤ 0.8 × nginx | $(pass "$r_cpu" "<=" 0.8) |"
  echo "| CPU per static request | $r_scpu | n/a | ≤ 0.9 × nginx | $(pass "$r_scpu" "<=" 0.9) |"
  echo "| proxied p99 | $r_p99 | $(ratio "${P99[tether]}" "${P99[haproxy]}") | ≤ 1 × nginx | $(pass "$r_p99" "<=" 1) |"
  echo "| proxied req/s (no target) | $(ratio "${RPS[tether]}" "${RPS[nginx]}") | $(ratio "${RPS[tether]}" "${RPS[haproxy]}") | — | — |"
  echo "| bulk MB/s | $r_bulk | $(ratio "${BMB[tether]}" "${BMB[haproxy]}") | ≥ 2 × nginx | $(pass "$r_bulk" ">=" 2) |"
  echo "| bulk MB/s vs backend direct | tether / direct = $r_bulkd | | ≥ 0.9 × direct (issue 11) | $(pass "$r_bulkd" ">=" 0.9) |"
  echo "| RSS per idle connection | $(ratio "$idle_t" "$(idle_f nginx 7)") | $(ratio "$idle_t" "$(idle_f haproxy 7)") | ≤ 0.5 KiB (tether: $idle_t KiB) | $(pass "$idle_t" "<=" 0.5) |"
  echo
  warns=$(grep -cE ' (WARN|ERROR) ' "$OUT_DIR/tether.log" || true)
  echo "tether log: $warns WARN/ERROR lines (RUST_LOG=${RUST_LOG:-warn}); raw outputs in $OUT_DIR"
  if [ "$warns" -gt 0 ]; then
    echo
    echo '```'
    grep -E ' (WARN|ERROR) ' "$OUT_DIR/tether.log" | sed -E 's/^\[[^ ]+ /[/' | sort | uniq -c | sort -rn | head -10
    echo '```'
  fi
  if [ "$PERF" = 1 ] && [ -s "$OUT_DIR/perf-self.txt" ]; then
    echo
    echo "perf (tether, proxied load, self time, top entries):"
    echo
    echo '```'
    grep -E '^ +[0-9]' "$OUT_DIR/perf-self.txt" | head -25
    echo '```'
  fi
} | tee "$OUT_DIR/report.md"
