#!/usr/bin/env bash
# The affinity store on one Redis, on Sentinel and on Cluster vs the in-memory store:
# requests per second and CPU per request through tether, same backend, same load, one run
# (issue 23's benchmark; docs/benchmarks.md, "The affinity store on Redis, Sentinel and
# Cluster").
#
#   bash benches/store_compare.sh                         # 5 rounds of 10 s per store
#   ROUNDS=3 DURATION=5 bash benches/store_compare.sh
#   STORES="memory cluster" bash benches/store_compare.sh
#   TETHER_BIN=/tmp/tether-old bash benches/store_compare.sh   # that binary, no build
#
# What it does (loopback only, free ports in 61000-64999, everything it starts is killed
# on exit):
#   backend   nginx, worker_processes 1, on two ports (servers b1 and b2 of the pool):
#             GET /login sets `SID=<random>`; anything else serves /1k.bin (1 KiB), with
#             `X-Port` naming the port that answered
#   stores    memory: nothing to start
#             redis: one redis-server (no persistence)
#             sentinel: a master, its replica and three sentinels (redis-server --sentinel,
#               down-after-milliseconds 1000); tether gets
#               store = { sentinels = [three], master = "bench" }
#             cluster: three masters (--cluster-enabled yes) joined by
#               `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`;
#               tether gets store = { cluster = [three] }
#   tether    one instance per store, workers = 1, --no-supervise, `balance = "learn"`,
#             `session_cookie = "SID"`, `learn_ttl_s = 3600`. `learn` is the policy where
#             the store is on every request's path: each request with a learned cookie is a
#             store get + touch, and each new session a put (with Redis: SET + PUBLISH).
#             (`cookie` carries the server sealed in the cookie and uses the store only to
#             re-pin after a failover, so it would measure nothing here.)
#   sessions  $SESSIONS logins through each instance (curl), so each has learned them (the
#             Redis ones also wrote them to Redis: counted there); a sample of 50 is checked
#             to be routed to the server that issued the cookie
#   load      wrk -t1 -c$CONNS with a Lua script: each request carries the next of the
#             $SESSIONS learned cookies in turn (a store hit: get + touch), and one request
#             in $LOGIN_EVERY is a login without a cookie (a new user: the backend's
#             Set-Cookie is learned, a put), so pins are both read and written
# tether on CPU $PROXY_CPU (all its threads: the worker and the store's helper threads);
# nginx, every redis-server and wrk on CPU $LOAD_CPU. The instances take turns within
# each round (the order rotates); medians over the rounds. CPU per request is utime+stime
# over the run divided by wrk's request count: tether's process, and the sum of the store's
# redis-server processes (for sentinel: master, replica and sentinels). Report (Markdown) on
# stdout and in $OUT_DIR/report.md.
#
# KEEP_AWAKE=1 (default) runs a `nice -n 19` busy loop on CPU $PROXY_CPU, as
# benches/affinity_compare.sh does (an idle vCPU's wake-up latency otherwise favours the
# instance with more threads; see docs/benchmarks.md).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
SESSIONS=${SESSIONS:-1000}
LOGIN_EVERY=${LOGIN_EVERY:-100}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
KEEP_AWAKE=${KEEP_AWAKE:-1}
STORES=${STORES:-memory redis sentinel cluster}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=store-compare
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out store-compare

export PATH="$PATH:/usr/sbin:/sbin"
for tool in nginx redis-server redis-cli wrk curl taskset ss; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install nginx redis-server wrk curl util-linux iproute2)"
done
read -r -a STORE_LIST <<< "$STORES"
for s in "${STORE_LIST[@]}"; do
  case $s in memory | redis | sentinel | cluster) ;; *) die "unknown store $s in STORES (memory redis sentinel cluster)" ;; esac
done
if [ -n "${TETHER_BIN:-}" ]; then
  TETHER=$TETHER_BIN   # a binary built elsewhere (say, of another commit, to compare)
  [ -x "$TETHER" ] || die "TETHER_BIN=$TETHER is not an executable"
else
  build_tether
fi
bench_tmp

# Ports: b1 b2 | redis | sentinel master, replica, 3 sentinels | 3 cluster nodes | 4 tethers
# | the cluster nodes' bus ports (given with --cluster-port: the default, port + 10000, is
# past 65535 for these ports)
port_block 18
P_B1=$BASE; P_B2=$((BASE + 1)); P_REDIS=$((BASE + 2))
P_MASTER=$((BASE + 3)); P_REPLICA=$((BASE + 4))
P_SENT=($((BASE + 5)) $((BASE + 6)) $((BASE + 7)))
P_CLUSTER=($((BASE + 8)) $((BASE + 9)) $((BASE + 10)))
declare -A PORT=([memory]=$((BASE + 11)) [redis]=$((BASE + 12)) [sentinel]=$((BASE + 13)) [cluster]=$((BASE + 14)))
P_BUS=($((BASE + 15)) $((BASE + 16)) $((BASE + 17)))
MASTER_NAME=bench

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

store_setting() {
  case $1 in
    memory) echo 'store = "memory"' ;;
    redis) echo "store = \"redis://127.0.0.1:$P_REDIS/0\"" ;;
    sentinel) echo "store = { sentinels = [\"127.0.0.1:${P_SENT[0]}\", \"127.0.0.1:${P_SENT[1]}\", \"127.0.0.1:${P_SENT[2]}\"], master = \"$MASTER_NAME\" }" ;;
    cluster) echo "store = { cluster = [\"127.0.0.1:${P_CLUSTER[0]}\", \"127.0.0.1:${P_CLUSTER[1]}\", \"127.0.0.1:${P_CLUSTER[2]}\"] }" ;;
  esac
}
for s in "${STORE_LIST[@]}"; do
  cat > "$TMP/tether-$s.toml" <<EOF
workers = 1
access_log = "off"
$(store_setting "$s")

[[upstream]]
name = "app"
servers = [{ id = "b1", addr = "127.0.0.1:$P_B1" }, { id = "b2", addr = "127.0.0.1:$P_B2" }]
balance = "learn"
session_cookie = "SID"
learn_ttl_s = 3600

[[server]]
listen = ["127.0.0.1:${PORT[$s]}"]
idle_timeout_ms = 300000

[[server.route]]
path = "/"
proxy = "app"
EOF
done

# --- the Redis processes (all on LOAD_CPU) ---
declare -A REDIS_PIDS=()   # store -> space-separated pids
redis_up() {  # port: wait until it answers PING
  for _ in $(seq 100); do redis-cli -p "$1" ping > /dev/null 2>&1 && return 0; sleep 0.1; done
  die "redis-server on port $1 does not answer (logs in $OUT_DIR)"
}
start_redis() {  # name port [args...]: a redis-server, no persistence, on LOAD_CPU
  local name=$1 port=$2; shift 2
  mkdir -p "$TMP/$name"
  (cd "$TMP/$name" && exec taskset -c "$LOAD_CPU" redis-server --port "$port" --bind 127.0.0.1 \
    --save '' --appendonly no --dir "$TMP/$name" "$@") > "$OUT_DIR/redis-$name.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
}
has() { [[ " ${STORE_LIST[*]} " == *" $1 "* ]]; }
if has redis; then
  start_redis single "$P_REDIS"; REDIS_PIDS[redis]=$LAST_PID
  redis_up "$P_REDIS"
fi
if has sentinel; then
  start_redis master "$P_MASTER"; pids=$LAST_PID
  redis_up "$P_MASTER"
  start_redis replica "$P_REPLICA" --replicaof 127.0.0.1 "$P_MASTER"; pids="$pids $LAST_PID"
  redis_up "$P_REPLICA"
  for i in 0 1 2; do
    conf=$TMP/sentinel-$i.conf
    printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %s 2\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 10000\n' \
      "${P_SENT[$i]}" "$TMP" "$MASTER_NAME" "$P_MASTER" "$MASTER_NAME" "$MASTER_NAME" > "$conf"
    taskset -c "$LOAD_CPU" redis-server "$conf" --sentinel > "$OUT_DIR/sentinel-$i.log" 2>&1 &
    PIDS+=($!); pids="$pids $!"
  done
  REDIS_PIDS[sentinel]=$pids
  for i in 0 1 2; do redis_up "${P_SENT[$i]}"; done
  ok=0
  for _ in $(seq 200); do
    ok=1
    for i in 0 1 2; do
      info=$(redis-cli -p "${P_SENT[$i]}" sentinel master "$MASTER_NAME" 2>/dev/null | tr '\n' ' ')
      [[ $info == *"num-slaves 1 "* && $info == *"num-other-sentinels 2 "* ]] || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.1
  done
  [ $ok = 1 ] || die "the sentinels did not find the replica and each other in 20 s"
  synced() { [ "$(redis-cli -p "$P_REPLICA" info replication | tr -d '\r' | awk -F: '$1 == "master_link_status" {print $2}')" = up ]; }
  for _ in $(seq 200); do synced && break; sleep 0.1; done
  synced || die "the replica is not in sync after 20 s"
fi
if has cluster; then
  pids=""
  for i in 0 1 2; do
    start_redis "node$i" "${P_CLUSTER[$i]}" --cluster-enabled yes \
      --cluster-config-file "$TMP/node$i/nodes.conf" --cluster-node-timeout 5000 --cluster-port "${P_BUS[$i]}"
    pids="$pids $LAST_PID"
  done
  REDIS_PIDS[cluster]=${pids# }
  for i in 0 1 2; do redis_up "${P_CLUSTER[$i]}"; done
  redis-cli --cluster create "127.0.0.1:${P_CLUSTER[0]}" "127.0.0.1:${P_CLUSTER[1]}" "127.0.0.1:${P_CLUSTER[2]}" \
    --cluster-replicas 0 --cluster-yes > "$OUT_DIR/cluster-create.log" 2>&1 ||
    die "redis-cli --cluster create failed: $(tail -5 "$OUT_DIR/cluster-create.log")"
  ok=0
  for _ in $(seq 200); do
    ok=1
    for i in 0 1 2; do
      redis-cli -p "${P_CLUSTER[$i]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.1
  done
  [ $ok = 1 ] || die "the cluster is not ok after 20 s"
fi

taskset -c "$LOAD_CPU" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)
declare -A PID
for s in "${STORE_LIST[@]}"; do
  # --no-supervise: one process, so the PID measured is the one that serves.
  RUST_LOG=${RUST_LOG:-warn} taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether-$s.toml" \
    > "$OUT_DIR/tether-$s.log" 2>&1 &
  PID[$s]=$!; PIDS+=("${PID[$s]}")
done
wait_http "http://127.0.0.1:$P_B1/1k.bin" || die "nginx did not start: $(cat "$TMP/nginx/error.log")"
for s in "${STORE_LIST[@]}"; do
  wait_http "http://127.0.0.1:${PORT[$s]}/1k.bin" || die "tether ($s) does not answer; see $OUT_DIR/tether-$s.log"
done

redis_keys() {  # store: keys held by its Redis (the master's, or the cluster's sum)
  case $1 in
    redis) redis-cli -p "$P_REDIS" dbsize ;;
    sentinel) redis-cli -p "$P_MASTER" dbsize ;;
    cluster) local t=0 i; for i in 0 1 2; do t=$((t + $(redis-cli -p "${P_CLUSTER[$i]}" dbsize))); done; echo $t ;;
    *) echo - ;;
  esac
}

# Sessions: log in through each instance, keep "cookie port" pairs, check a sample.
for s in "${STORE_LIST[@]}"; do
  curl -s -i "http://127.0.0.1:${PORT[$s]}/login?[1-$SESSIONS]" |
    awk -F'[:=;]' 'tolower($1) ~ /^set-cookie/ { sid = $3 } tolower($1) ~ /^x-port/ { gsub(/[ \r]/, "", $2); print sid, $2 }' \
    > "$TMP/sessions-$s.txt"
  n=$(wc -l < "$TMP/sessions-$s.txt")
  [ "$n" -eq "$SESSIONS" ] || die "$s: $n sessions learned of $SESSIONS"
  bad=0
  while read -r sid port; do
    got=$(curl -s -o /dev/null -w '%header{x-port}' -H "Cookie: SID=$sid" "http://127.0.0.1:${PORT[$s]}/page")
    [ "$got" = "$port" ] || bad=$((bad + 1))
  done < <(head -50 "$TMP/sessions-$s.txt")
  [ "$bad" -eq 0 ] || die "$s: $bad of 50 learned sessions went to the wrong server"
  if [ "$s" != memory ]; then
    keys=0
    for _ in $(seq 50); do keys=$(redis_keys "$s"); [ "$keys" -ge "$SESSIONS" ] && break; sleep 0.1; done
    [ "$keys" -ge "$SESSIONS" ] || die "$s: redis holds $keys keys, expected $SESSIONS"
  fi
  {
    echo "local cookies = {"
    awk '{ printf "  \"SID=%s\",\n", $1 }' "$TMP/sessions-$s.txt"
    echo "}"
    echo "local login_every = $LOGIN_EVERY"
    echo 'local i, n = 0, 0'
    echo 'request = function()'
    echo '  n = n + 1'
    echo '  if login_every > 0 and n % login_every == 0 then return wrk.format("GET", "/login") end'
    echo '  i = i % #cookies + 1'
    echo '  return wrk.format("GET", "/page", { ["Cookie"] = cookies[i] })'
    echo 'end'
  } > "$TMP/wrk-$s.lua"
  log "$s: $SESSIONS sessions learned (redis keys: $(redis_keys "$s")); a sample of 50 routed home"
done

CLK_TCK=$(getconf CLK_TCK)
to_us() {
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : -1
    if (f < 0) print "nan"; else printf "%.1f", n * f }'
}
redis_ticks() {  # store: CPU ticks of its redis-server processes
  local t=0 p
  for p in ${REDIS_PIDS[$1]:-}; do t=$((t + $(cpu_ticks "$p"))); done
  echo $t
}
RES=$OUT_DIR/results.txt
echo "# store round req_s p99_us tether_cpu_us redis_cpu_us requests non2xx socket_errors" > "$RES"
run() {  # store round
  local s=$1 r=$2 out t0 t1 r0 r1 reqs rps p99 non2xx sockerr
  out=$OUT_DIR/wrk-$s-$r.txt
  t0=$(cpu_ticks "${PID[$s]}"); r0=$(redis_ticks "$s")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency \
    -s "$TMP/wrk-$s.lua" "http://127.0.0.1:${PORT[$s]}/" > "$out" 2>&1 || true
  t1=$(cpu_ticks "${PID[$s]}"); r1=$(redis_ticks "$s")
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
for s in "${STORE_LIST[@]}"; do
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$TMP/wrk-$s.lua" "http://127.0.0.1:${PORT[$s]}/" > /dev/null 2>&1 || true
done
n_stores=${#STORE_LIST[@]}
for r in $(seq "$ROUNDS"); do
  # Rotate which store goes first, so drifting noise does not favour one.
  for ((k = 0; k < n_stores; k++)); do
    run "${STORE_LIST[$(((k + r - 1) % n_stores))]}" "$r"
  done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { awk -v s="$1" -v c="$2" '$1 == s && $c != "nan" { print $c }' "$RES" | median; }
rng() { awk -v s="$1" -v c="$2" '$1 == s && $c != "nan" { print $c }' "$RES" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }
sumc() { awk -v s="$1" -v c="$2" '$1 == s { t += $c } END { print t + 0 }' "$RES"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.2f", a / b }'; }
round_ratios() {  # store column: median of the per-round ratios store / memory
  awk -v s="$1" -v c="$2" '$1 == "memory" { m[$2] = $c } $1 == s { r[$2] = $c }
    END { for (k in m) if ((k in r) && m[k] > 0) printf "%.3f\n", r[k] / m[k] }' "$RES" | median
}
{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'); $("$TETHER" --version 2>&1 | head -1); $(redis-server --version | awk '{print $1, $2, $3}'); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  echo "Machine: nproc $(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r); load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "Settings: ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS SESSIONS=$SESSIONS LOGIN_EVERY=$LOGIN_EVERY KEEP_AWAKE=$KEEP_AWAKE; tether on CPU $PROXY_CPU; nginx, redis-server(s), wrk on CPU $LOAD_CPU"
  echo
  echo "| store | req/s | req/s range | p99 | tether CPU µs/request | redis CPU µs/request | keys in Redis at the end | non-2xx / socket errors |"
  echo "|---|---|---|---|---|---|---|---|"
  for s in "${STORE_LIST[@]}"; do
    echo "| $s | $(med "$s" 3) | $(rng "$s" 3) | $(med "$s" 4) µs | $(med "$s" 5) | $(med "$s" 6) | $(redis_keys "$s") | $(sumc "$s" 8) / $(sumc "$s" 9) |"
  done
  if has memory; then
    echo
    echo "| store | req/s vs memory (ratio of medians) | median of per-round ratios | goal ≥ 0.9 | tether CPU/request vs memory |"
    echo "|---|---|---|---|---|"
    for s in "${STORE_LIST[@]}"; do
      [ "$s" = memory ] && continue
      rr=$(ratio "$(med "$s" 3)" "$(med memory 3)")
      echo "| $s | $rr | $(round_ratios "$s" 3) | $(awk -v v="$rr" 'BEGIN { print (v >= 0.9) ? "pass" : "**FAIL**" }') | $(ratio "$(med "$s" 5)" "$(med memory 5)") |"
    done
  fi
  echo
  echo "tether logs: $(cat "$OUT_DIR"/tether-*.log | grep -cE ' (WARN|ERROR) ' || true) WARN/ERROR lines; raw outputs in $OUT_DIR"
} | tee "$OUT_DIR/report.md"
