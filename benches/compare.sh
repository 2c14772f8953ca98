#!/usr/bin/env bash
# tether vs nginx vs HAProxy, one worker each, in front of the same backend, in one run.
#
#   bash benches/compare.sh                 # R=3 rounds of 10 s per proxy and scenario
#   ROUNDS=5 DURATION=20 bash benches/compare.sh
#   PERF=1 bash benches/compare.sh          # also profile tether under the proxied load
#   WORKERS=2 bash benches/compare.sh       # tether workers = 2, nginx worker_processes 2
#                                           # (listen reuseport), HAProxy nbthread 2
#   SCENARIOS="proxied rate" bash benches/compare.sh   # only some scenarios
#   RATE=20000 bash benches/compare.sh      # the offered rate of the `rate` scenario
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
#   rate     h2load --h1 -c$CONNS --rps=RATE/$CONNS for $DURATION s through each proxy (and
#            straight to the backend): the same offered rate for all, below saturation
#            (RATE=auto: half the lowest proxy's median req/s in the proxied scenario of this
#            run, rounded down to 1000). p50, p99, p99.9 and max of the per-request times in
#            h2load's --log-file (microseconds from sending the request to the end of the
#            answer), achieved req/s, and the proxy's CPU per request at that rate
# WORKERS=N (default 1): tether `workers = N` (N event-loop threads, SO_REUSEPORT), nginx
# `worker_processes N` with `listen ... reuseport`, HAProxy `nbthread N`; the proxies are then
# pinned to CPUs 0-(N-1) unless PROXY_CPU says otherwise (the backend and the load stay on
# LOAD_CPU), and a proxy's CPU is the sum over its processes (nginx: every worker).
# Medians over the rounds. The report (Markdown) goes to stdout and $OUT_DIR/report.md,
# raw wrk/curl outputs and per-round figures to $OUT_DIR.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}       # seconds per wrk run
WARMUP=${WARMUP:-2}            # seconds of wrk per proxy before the rounds
CONNS=${CONNS:-32}             # wrk connections (nginx upstream keepalive is 32 too)
IDLE_CONNS=${IDLE_CONNS:-10000}
LOAD_CPU=${LOAD_CPU:-1}
PERF=${PERF:-0}                # 1: perf record tether under the proxied load at the end
PERF_SECONDS=${PERF_SECONDS:-8}
WORKERS=${WORKERS:-1}          # tether workers, nginx worker_processes, HAProxy nbthread
[ "$WORKERS" -ge 1 ] 2>/dev/null || { echo "WORKERS must be a number >= 1" >&2; exit 2; }
if [ "$WORKERS" -gt 1 ]; then PROXY_CPU=${PROXY_CPU:-0-$((WORKERS - 1))}; fi
PROXY_CPU=${PROXY_CPU:-0}
SCENARIOS=${SCENARIOS:-idle proxied static bulk rate}
RATE=${RATE:-auto}             # offered req/s of the rate scenario (all clients together)
want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

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
  ss:iproute2 taskset:util-linux h2load:nghttp2-client $perf
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
# with several workers, each nginx worker gets its own listening socket, as tether's threads do
REUSEPORT=""
[ "$WORKERS" -gt 1 ] && REUSEPORT=" reuseport"
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
  nginx_main "$TMP/nginx" "$NOFILE" $((IDLE_CONNS + 1024)) "$WORKERS"
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
    listen 127.0.0.1:$P_NGINX backlog=4096$REUSEPORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:$P_NGINX_STATIC backlog=4096$REUSEPORT;
    root $WWW;
  }
}
EOF
} > "$TMP/nginx/nginx.conf"

cat > "$TMP/haproxy/haproxy.cfg" <<EOF
global
  nbthread $WORKERS
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
workers = $WORKERS
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
NGINX_PID=$(nginx_workers "$NGINX_MASTER" "$WORKERS") || die "not $WORKERS nginx workers"

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
    # shellcheck disable=SC2086  # nginx: one pid per worker
    kill -0 ${PID[$p]} 2>/dev/null && continue
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
  # shellcheck disable=SC2086  # nginx: one pid per worker
  t0=$(cpu_ticks ${PID[$p]})
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency "$url" > "$out" 2>&1 || true
  # shellcheck disable=SC2086
  t1=$(cpu_ticks ${PID[$p]})
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
want idle || log "skipping idle (SCENARIOS=$SCENARIOS)"
for p in tether nginx haproxy; do
  want idle || break
  pid=${PID[$p]}
  # one request through the path first, so code and the upstream pool are warm
  curl -s -o /dev/null "${URL[$p]}/1k.bin"
  sleep 0.5
  # shellcheck disable=SC2086  # nginx: one pid per worker
  before=$(rss_kib $pid)
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
  # shellcheck disable=SC2086
  after=$(rss_kib $pid)
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
  want proxied || break
  for p in tether nginx haproxy direct; do
    wrk_run proxied "$p" "$r" "${URL[$p]}/1k.bin"
  done
done
for r in $(seq "$ROUNDS"); do
  want static || break
  for p in tether nginx; do
    wrk_run static "$p" "$r" "${SURL[$p]}/1k.bin"
  done
done

# ---------------------------------------------------------------- bulk
BULK=$OUT_DIR/bulk.txt
echo "# proxy round MB_s cpu_s_per_GiB size http_code" > "$BULK"
for r in $(seq "$ROUNDS"); do
  want bulk || break
  for p in tether nginx haproxy direct; do
    # shellcheck disable=SC2086  # nginx: one pid per worker
    t0=$(cpu_ticks ${PID[$p]})
    res=$(taskset -c "$LOAD_CPU" curl -s -o /dev/null --max-time 120 \
      -w '%{speed_download} %{size_download} %{http_code}' "${URL[$p]}/1g.bin" || true)
    # shellcheck disable=SC2086
    t1=$(cpu_ticks ${PID[$p]})
    read -r speed size code <<< "$res"
    mbs=$(awk -v s="${speed:-0}" -v z="${size:-0}" -v want="$BULK_SIZE" 'BEGIN { if (z == want) printf "%.0f", s / 1e6; else print "nan" }')
    cpug=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v z="${size:-0}" 'BEGIN { if (z > 0) printf "%.3f", d / hz / (z / 1073741824); else print "nan" }')
    echo "$p $r $mbs $cpug ${size:-0} ${code:-000}" >> "$BULK"
    log "bulk $p round $r: $mbs MB/s, $cpug CPU s/GiB ($size bytes, HTTP $code)"
    alive_check
  done
done

# ---------------------------------------------------------------- rate
# The same offered rate through every proxy, below saturation: h2load --rps is per client,
# so RATE is split over the $CONNS clients. Each request's time (sent -> answer complete, in
# µs) comes from h2load's --log-file; h2load sends the next request of a client only after
# the answer to the previous one (HTTP/1.1, one in flight), so a stall delays the requests
# behind it without counting their waiting time (no coordinated-omission correction): at
# half of saturation, the queue is short and this matters little.
RATES=$OUT_DIR/rate.txt
echo "# proxy round offered achieved_req_s p50_us p99_us p999_us max_us cpu_us_per_req requests failed" > "$RATES"
rate_run() {  # proxy round
  local p=$1 r=$2 out=$OUT_DIR/h2load-$1-$2.txt lf=$OUT_DIR/h2load-$1-$2.log t0 t1 n got failed pct cpu
  rm -f "$lf"
  # shellcheck disable=SC2086  # nginx: one pid per worker
  t0=$(cpu_ticks ${PID[$p]})
  taskset -c "$LOAD_CPU" timeout $((DURATION + 20)) h2load --h1 -c"$CONNS" --rps="$PER_CLIENT" \
    -D "$DURATION" --log-file="$lf" "${URL[$p]}/1k.bin" > "$out" 2>&1 || true
  # shellcheck disable=SC2086
  t1=$(cpu_ticks ${PID[$p]})
  n=0; [ -s "$lf" ] && n=$(wc -l < "$lf")
  got=$(awk '/^finished in/ { gsub(/,/, ""); print $4; exit }' "$out"); got=${got:-nan}
  # failed: answers other than 200 in the log, plus what h2load counts failed/errored/timed out
  failed=$(awk -F'\t' '$2 != 200 { b++ } END { print b + 0 }' "$lf" 2>/dev/null || echo 0)
  failed=$((failed + $(awk '/^requests:/ { gsub(/,/, ""); print $10 + $12 + $14; exit }' "$out" || echo 0)))
  # nearest-rank percentiles of the per-request times
  pct=$(cut -f3 "$lf" 2>/dev/null | sort -n | awk '{ a[NR] = $1 }
    function q(f,   i) { i = int(f * NR); if (i < f * NR) i++; if (i < 1) i = 1; return a[i] }
    END { if (NR == 0) print "nan nan nan nan"; else print q(0.5), q(0.99), q(0.999), a[NR] }')
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print "nan" }')
  echo "$p $r $OFFERED $got $pct $cpu $n $failed" >> "$RATES"
  read -r p50 p99 p999 pmax <<< "$pct"
  log "rate $p round $r: $got req/s of $OFFERED offered, p50 $p50 µs, p99 $p99 µs, p99.9 $p999 µs, max $pmax µs, $cpu µs CPU/req, $failed failed"
  alive_check
}
RATE_FROM="RATE=$RATE"
if want rate; then
  if [ "$RATE" = auto ]; then
    low=$(for p in tether nginx haproxy; do
      awk -v p="$p" '$1 == "proxied" && $2 == p && $4 != "nan" { print $4 }' "$RES" | sort -g |
        awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
    done | sort -g | head -1)
    if [ -n "$low" ]; then
      RATE=$(awk -v l="$low" 'BEGIN { r = int(l / 2 / 1000) * 1000; if (r < 1000) r = 1000; print r }')
      RATE_FROM="RATE=auto: half the lowest proxy's median req/s in this run's proxied scenario ($(printf '%.0f' "$low"))"
    else
      RATE=20000
      RATE_FROM="RATE=auto without a proxied scenario in this run: 20000"
    fi
  fi
  [ "$RATE" -ge 1 ] 2>/dev/null || die "RATE must be a number of requests per second or auto, not $RATE"
  PER_CLIENT=$(((RATE + CONNS - 1) / CONNS))
  OFFERED=$((PER_CLIENT * CONNS))
  log "rate: $OFFERED req/s offered ($CONNS clients × $PER_CLIENT req/s; $RATE_FROM)"
  for r in $(seq "$ROUNDS"); do
    for p in tether nginx haproxy direct; do rate_run "$p" "$r"; done
  done
fi

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

declare -A RPS P99 CPU ERR SRPS SP99 SCPU SERR BMB BCPU RG R50 R99 R999 RMAX RCPU RFAIL
rmed() { awk -v p="$1" -v c="$2" '$1 == p && $c != "nan" { print $c }' "$RATES" | median; }
rrng() {
  awk -v p="$1" -v c="$2" '$1 == p && $c != "nan" { print $c }' "$RATES" | sort -g |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s–%s", lo, hi; else print "nan" }'
}
for p in tether nginx haproxy direct; do
  RG[$p]=$(rmed "$p" 4); R50[$p]=$(rmed "$p" 5); R99[$p]=$(rmed "$p" 6); R999[$p]=$(rmed "$p" 7)
  RMAX[$p]=$(rmed "$p" 8); RCPU[$p]=$(rmed "$p" 9)
  RFAIL[$p]=$(awk -v p="$p" '$1 == p { t += $11 } END { print t + 0 }' "$RATES")
done
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
h2ver=$(first_line h2load --version | awk '{print $NF}')
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'); $tver; nginx $nver; HAProxy $hver; wrk $wver; h2load $h2ver"
  echo "Machine: nproc $(nproc), $cpu_model, kernel $(uname -r)"
  echo "Load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "Settings: ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS IDLE_CONNS=$IDLE_CONNS WORKERS=$WORKERS (tether workers, nginx worker_processes, HAProxy nbthread); proxies on CPU $PROXY_CPU, backend + wrk/curl/h2load on CPU $LOAD_CPU; scenarios: $SCENARIOS"
  if want proxied; then
  echo
  echo "Proxied 1 KiB, keep-alive (wrk -t1 -c$CONNS, medians of $ROUNDS × ${DURATION}s; CPU = proxy process utime+stime / requests):"
  echo
  echo "| | req/s | p99 | CPU µs/request | req/s range | CPU µs range | non-2xx / socket errors |"
  echo "|---|---|---|---|---|---|---|"
  for p in tether nginx haproxy direct; do
    name=$p; [ "$p" = direct ] && name="backend direct (its own CPU)"
    echo "| $name | $(fmt0 "${RPS[$p]}") | $(fmt0 "${P99[$p]}") µs | $(fmt1 "${CPU[$p]}") | $(rng proxied "$p" 4 %.0f) | $(rng proxied "$p" 6 %.1f) | ${ERR[$p]} |"
  done
  fi
  if want static; then
  echo
  echo "Static 1 KiB file (same wrk settings):"
  echo
  echo "| | req/s | p99 | CPU µs/request | req/s range | CPU µs range | non-2xx / socket errors |"
  echo "|---|---|---|---|---|---|---|"
  for p in tether nginx; do
    echo "| $p | $(fmt0 "${SRPS[$p]}") | $(fmt0 "${SP99[$p]}") µs | $(fmt1 "${SCPU[$p]}") | $(rng static "$p" 4 %.0f) | $(rng static "$p" 6 %.1f) | ${SERR[$p]} |"
  done
  echo "| haproxy | n/a (cannot serve files) | | | | | |"
  fi
  if want bulk; then
  echo
  echo "Bulk: one 1 GiB download with curl (medians of $ROUNDS; CPU = the serving process's CPU seconds per GiB):"
  echo
  echo "| | MB/s | range | CPU s/GiB |"
  echo "|---|---|---|---|"
  for p in tether nginx haproxy direct; do
    name=$p; [ "$p" = direct ] && name="backend direct"
    echo "| $name | $(fmt0 "${BMB[$p]}") | $(brng "$p" 3) | ${BCPU[$p]} |"
  done
  fi
  if want idle; then
  echo
  echo "Idle keep-alive connections ($IDLE_CONNS, one GET /1k.bin each, then idle; VmRSS of the proxy process):"
  echo
  echo "| | RSS before | RSS with them | held by the proxy (ss) | failed | KiB per connection |"
  echo "|---|---|---|---|---|---|"
  for p in tether nginx haproxy; do
    echo "| $p | $(idle_f "$p" 2) KiB | $(idle_f "$p" 3) KiB | $(idle_f "$p" 4) | $(idle_f "$p" 6) | $(idle_f "$p" 7) |"
  done
  fi
  if want rate; then
  echo
  echo "Fixed offered rate: $OFFERED req/s of GET /1k.bin for every proxy (h2load --h1 -c$CONNS --rps=$PER_CLIENT, ${DURATION}s; $RATE_FROM); per-request times from h2load's log, medians of $ROUNDS:"
  echo
  echo "| | achieved req/s | p50 | p99 | p99.9 | max | CPU µs/request at this rate | p99.9 range | failed |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for p in tether nginx haproxy direct; do
    name=$p; [ "$p" = direct ] && name="backend direct (its own CPU)"
    echo "| $name | $(fmt0 "${RG[$p]}") | $(fmt0 "${R50[$p]}") µs | $(fmt0 "${R99[$p]}") µs | $(fmt0 "${R999[$p]}") µs | $(fmt0 "${RMAX[$p]}") µs | $(fmt1 "${RCPU[$p]}") | $(rrng "$p" 7) µs | ${RFAIL[$p]} |"
  done
  short=""
  for p in tether nginx haproxy direct; do
    awk -v g="${RG[$p]}" -v o="$OFFERED" 'BEGIN { exit !(g == "nan" || g < 0.97 * o) }' && short="$short $p"
  done
  if [ -n "$short" ]; then
    echo
    echo "**Not below saturation for:$short** (median achieved < 97 % of the offered rate): their tails are queueing, not comparable; lower RATE."
  fi
  fi
  echo
  echo "Figures (issue 22 item 2; no targets; WORKERS=$WORKERS):"
  echo
  echo "| measure | tether / nginx | tether / haproxy |"
  echo "|---|---|---|"
  if want proxied; then
    echo "| CPU per proxied request, wrk (saturating) | $(ratio "${CPU[tether]}" "${CPU[nginx]}") | $(ratio "${CPU[tether]}" "${CPU[haproxy]}") |"
  fi
  if want rate; then
    echo "| CPU per proxied request at $OFFERED req/s | $(ratio "${RCPU[tether]}" "${RCPU[nginx]}") | $(ratio "${RCPU[tether]}" "${RCPU[haproxy]}") |"
    echo "| p99 at $OFFERED req/s | $(ratio "${R99[tether]}" "${R99[nginx]}") | $(ratio "${R99[tether]}" "${R99[haproxy]}") |"
    echo "| p99.9 at $OFFERED req/s | $(ratio "${R999[tether]}" "${R999[nginx]}") | $(ratio "${R999[tether]}" "${R999[haproxy]}") |"
  fi
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
  want proxied && echo "| CPU per proxied request | $r_cpu | $(ratio "${CPU[tether]}" "${CPU[haproxy]}") | ≤ 0.8 × nginx | $(pass "$r_cpu" "<=" 0.8) |"
  want static && echo "| CPU per static request | $r_scpu | n/a | ≤ 0.9 × nginx | $(pass "$r_scpu" "<=" 0.9) |"
  want proxied && echo "| proxied p99 | $r_p99 | $(ratio "${P99[tether]}" "${P99[haproxy]}") | ≤ 1 × nginx | $(pass "$r_p99" "<=" 1) |"
  want proxied && echo "| proxied req/s (no target) | $(ratio "${RPS[tether]}" "${RPS[nginx]}") | $(ratio "${RPS[tether]}" "${RPS[haproxy]}") | — | — |"
  want bulk && echo "| bulk MB/s | $r_bulk | $(ratio "${BMB[tether]}" "${BMB[haproxy]}") | ≥ 2 × nginx | $(pass "$r_bulk" ">=" 2) |"
  want bulk && echo "| bulk MB/s vs backend direct | tether / direct = $r_bulkd | | ≥ 0.9 × direct (issue 11) | $(pass "$r_bulkd" ">=" 0.9) |"
  want idle && echo "| RSS per idle connection | $(ratio "$idle_t" "$(idle_f nginx 7)") | $(ratio "$idle_t" "$(idle_f haproxy 7)") | ≤ 0.5 KiB (tether: $idle_t KiB) | $(pass "$idle_t" "<=" 0.5) |"
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
