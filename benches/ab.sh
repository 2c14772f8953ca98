#!/usr/bin/env bash
# Per-request costs that do not move with the machine's load: user-space instructions
# (valgrind callgrind) and system calls (strace -c), of tether and, in the same run, of
# nginx and HAProxy proxying to the same backend: for A/B comparisons of small changes, and
# the ratios against the other proxies. compare.sh's CPU µs per request moves by ±15 %
# between runs on a shared VM; these counts move by about 1 %.
#
#   bash benches/ab.sh                                  # everything (~15 min)
#   HEADS=browser PROXIES=tether SCENARIOS=proxied TOOLS=callgrind bash benches/ab.sh
#   SCENARIOS=static TOOLS=strace bash benches/ab.sh
#   TETHER=/tmp/old/tether OUT_DIR=/tmp/ab-old bash benches/ab.sh   # another build
#
# Layout: a backend nginx (worker_processes 1) serves /1k.bin from a temp dir. tether
# proxies to it on one port (a plain `upstream =` listener), through a pool with
# sealed-cookie affinity on another, and serves the same dir on a third. nginx
# (master_process off, upstream keepalive 32) and HAProxy (nbthread 1, http-reuse always)
# proxy to the same backend, one process each, as in compare.sh. benches/support/load.py
# sends exactly $REQUESTS keep-alive GET /1k.bin over $CONNS connections (after $WARM
# requests that are not counted), with one of three heads ($HEADS):
#   host      `Host` alone
#   browser   a browser's head: 10 fields, 565 bytes, `Cookie` with three cookies
#   affinity  the browser head with tether's sealed affinity cookie added to `Cookie`
#             (tether opens it and pins the request; nginx and HAProxy forward it as is)
# Scenarios: proxied (every proxy in $PROXIES with every head in $HEADS), rules (the same
# with three request-header rules and a rate limit in force, issue 19's benchmark as counts:
# tether `request_headers.set` X-A = "{client_ip}", X-B = "static text", X-C = "{host}" and
# a [[limit]] of 1000000r/s burst 100000 nodelay keyed by client_ip; nginx
# `proxy_set_header` x3 and `limit_req`; HAProxy `http-request set-header` x3 and a
# stick-table `sc_http_req_rate` check; never rejecting), and static (tether serving the
# file, `Host` head).
#   callgrind  user-space instructions of the whole process while the counted requests run
#              (zeroed after the warm-up, dumped after the load), divided by the requests;
#              the dumps are $OUT_DIR/callgrind-<scenario>-<proxy>-<head>.out; tether's top
#              functions go to callgrind-<scenario>-<head>.txt (inclusive) and
#              callgrind-self-<scenario>-<head>.txt
#   strace     `strace -c -f` attached for the counted requests: calls per request, per
#              system call
# Prints one Markdown table per tool with tether / nginx and tether / HAProxy.
set -euo pipefail

REQUESTS=${REQUESTS:-20000}
WARM=${WARM:-2000}
CONNS=${CONNS:-32}
SCENARIOS=${SCENARIOS:-proxied static}   # also: rules
TOOLS=${TOOLS:-callgrind strace}
HEADS=${HEADS:-host browser affinity}
PROXIES=${PROXIES:-tether nginx haproxy}
# The affinity pool's sealing key (a benchmark key; nothing else uses it).
AFF_KEY=3b1f0c9d2e4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=ab
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out ab

export PATH="$PATH:/usr/sbin:/sbin"
for t in nginx python3 curl; do command -v $t >/dev/null || die "needs $t (see compare.sh)"; done
case " $PROXIES " in *" haproxy "*) command -v haproxy >/dev/null || die "needs haproxy (see compare.sh)" ;; esac
case " $TOOLS " in *" callgrind "*) command -v valgrind >/dev/null || die "needs valgrind" ;; esac
case " $TOOLS " in *" strace "*) command -v strace >/dev/null || die "needs strace" ;; esac

[ -n "${TETHER:-}" ] || PROFILE=profiling build_tether
[ -x "$TETHER" ] || die "no $TETHER"

bench_tmp

port_block 9
P_BACKEND=$BASE; P_PROXY=$((BASE + 1)); P_STATIC=$((BASE + 2)); P_AFF=$((BASE + 3))
P_NGINX=$((BASE + 4)); P_HAPROXY=$((BASE + 5))
P_RULES=$((BASE + 6)); P_NGINX_RULES=$((BASE + 7)); P_HAPROXY_RULES=$((BASE + 8))

WWW=$TMP/www
mkdir -p "$WWW" "$TMP/backend" "$TMP/nginx" "$TMP/haproxy"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WWW/1k.bin"
chmod -R a+rX "$WWW"
USER_LINE=""
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"
cat > "$TMP/backend/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
daemon off;
pid $TMP/backend/nginx.pid;
error_log $TMP/backend/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/backend/body;
  proxy_temp_path $TMP/backend/proxy;
  fastcgi_temp_path $TMP/backend/fastcgi;
  uwsgi_temp_path $TMP/backend/uwsgi;
  scgi_temp_path $TMP/backend/scgi;
  server { listen 127.0.0.1:$P_BACKEND; root $WWW; }
}
EOF
nginx -c "$TMP/backend/nginx.conf" > "$TMP/backend/out.log" 2>&1 &
PIDS+=($!)

cat > "$TMP/tether.toml" <<EOF
workers = 1
access_log = "off"

[[listener]]
listen = "127.0.0.1:$P_PROXY"
protocol = "http"
upstream = "127.0.0.1:$P_BACKEND"
idle_timeout_ms = 300000

[[listener]]
listen = "127.0.0.1:$P_STATIC"
protocol = "http"
root = "$WWW"
idle_timeout_ms = 300000

[[upstream]]
name = "app"
servers = [{ id = "b", addr = "127.0.0.1:$P_BACKEND" }]
balance = "cookie"
cookie_name = "srv"
keys = ["$AFF_KEY"]

[[server]]
listen = ["127.0.0.1:$P_AFF"]

[[server.route]]
path = "/"
proxy = "app"

[[upstream]]
name = "plain"
servers = ["127.0.0.1:$P_BACKEND"]

EOF
rules_server_toml "$P_RULES" plain >> "$TMP/tether.toml"

# nginx as a proxy: one process (master_process off), so the pid valgrind runs is the one
# that serves; the upstream settings of compare.sh.
cat > "$TMP/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
master_process off;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  upstream backend {
    server 127.0.0.1:$P_BACKEND;
    keepalive 32;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  limit_req_zone \$binary_remote_addr zone=rl:10m rate=1000000r/s;
  server {
    listen 127.0.0.1:$P_NGINX_RULES;
    location / {
      limit_req zone=rl burst=100000 nodelay;
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-A \$remote_addr;
      proxy_set_header X-B "static text";
      proxy_set_header X-C \$host;
    }
  }
}
EOF

cat > "$TMP/haproxy/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
  no strict-limits
defaults
  mode http
  maxconn 4096
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
frontend fe_rules
  bind 127.0.0.1:$P_HAPROXY_RULES
  stick-table type ip size 100k expire 10s store http_req_rate(1s)
  http-request track-sc0 src
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000 }
  http-request set-header X-A %[src]
  http-request set-header X-B "static text"
  http-request set-header X-C %[req.hdr(host)]
  default_backend be
EOF

wait_http "http://127.0.0.1:$P_BACKEND/1k.bin" 300 || die "backend did not start"

# The port a proxy answers a head on: tether's affinity head goes to its affinity listener;
# the rules scenario ($SC) to each proxy's rules listener.
SC=proxied
port_of() {  # proxy head
  if [ "$SC" = rules ]; then
    case "$1" in
      nginx) echo "$P_NGINX_RULES" ;;
      haproxy) echo "$P_HAPROXY_RULES" ;;
      *) echo "$P_RULES" ;;
    esac
    return
  fi
  case "$1" in
    static) echo "$P_STATIC" ;;
    nginx) echo "$P_NGINX" ;;
    haproxy) echo "$P_HAPROXY" ;;
    *) if [ "$2" = affinity ]; then echo "$P_AFF"; else echo "$P_PROXY"; fi ;;
  esac
}
AFF_COOKIE=""
load() {  # proxy head requests
  local head=browser cookie=()
  [ "$2" = host ] && head=host
  [ "$2" = affinity ] && cookie=(--cookie "$AFF_COOKIE")
  python3 "$repo/benches/support/load.py" 127.0.0.1 "$(port_of "$1" "$2")" \
    --requests "$3" --conns "$CONNS" --head "$head" "${cookie[@]}" || die "load against $1 ($2) failed"
}
start_proxy() {  # proxy log-file command-prefix...: starts it; SPID is the serving process
  local p=$1 logf=$2 port ports
  shift 2
  case "$p" in
    # --no-supervise: one process, so SPID is the one that serves (not the master).
    tether|static) "$@" "$TETHER" --no-supervise "$TMP/tether.toml" > "$logf" 2>&1 & ;;
    nginx) "$@" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" > "$logf" 2>&1 & ;;
    haproxy) "$@" haproxy -f "$TMP/haproxy/haproxy.cfg" -db > "$logf" 2>&1 & ;;
  esac
  SPID=$!
  PIDS+=("$SPID")
  ports=$(port_of "$p" host)
  case "$p" in tether|static) ports="$P_PROXY $P_STATIC $P_AFF $P_RULES" ;; esac
  for port in $ports; do
    wait_http "http://127.0.0.1:$port/1k.bin" 600 || die "$p did not start: $(tail -5 "$logf")"
  done
  if [ "$p" = tether ] && [ -z "$AFF_COOKIE" ]; then
    # The sealed cookie tether sets on a first visit; later runs open it too (same key).
    AFF_COOKIE=$(curl -s -o /dev/null -D - "http://127.0.0.1:$P_AFF/1k.bin" |
      tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(srv=[^;]*\).*/\1/p' | head -1)
    [ -n "$AFF_COOKIE" ] || die "tether set no affinity cookie"
  fi
}
stop_proxy() {  # no clean stop needed: the counts are taken before this
  kill -9 "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
}

# What runs: "scenario proxy head" triples.
RUNS=()
for sc in $SCENARIOS; do
  if [ "$sc" = static ]; then RUNS+=("static static host"); continue; fi
  for p in $PROXIES; do
    for h in $HEADS; do
      # (The rules scenario has no affinity pool: its heads are host and browser.)
      if [ "$sc" = rules ] && [ "$h" = affinity ]; then continue; fi
      RUNS+=("$sc $p $h")
    done
  done
done
# The affinity cookie comes from tether: get it first (tether runs first, below).
if [[ " $HEADS " == *" affinity "* ]] && [[ " $PROXIES " != *" tether "* ]]; then
  start_proxy tether "$OUT_DIR/tether-cookie.log"
  stop_proxy
fi

declare -A IR SYS
for tool in $TOOLS; do
  for p in tether static nginx haproxy; do
    mine=()
    for r in "${RUNS[@]}"; do
      read -r _ pr _ <<< "$r"
      if [ "$pr" = "$p" ]; then mine+=("$r"); fi
    done
    [ ${#mine[@]} -gt 0 ] || continue
    if [ "$tool" = callgrind ]; then
      out=$OUT_DIR/callgrind-$p.out
      rm -f "$out" "$out".*
      start_proxy "$p" "$OUT_DIR/$p-callgrind.log" valgrind --tool=callgrind \
        --callgrind-out-file="$out" --dump-instr=no
    else
      start_proxy "$p" "$OUT_DIR/$p-strace.log"
    fi
    for r in "${mine[@]}"; do
      read -r sc pr h <<< "$r"
      SC=$sc
      key="$sc $pr $h"
      log "$tool, $key: $WARM + $REQUESTS requests"
      load "$pr" "$h" "$WARM" > /dev/null
      if [ "$tool" = callgrind ]; then
        # Zero the counts after the warm-up, dump them after the load.
        callgrind_control -z "$SPID" > /dev/null 2>&1 || die "callgrind_control -z"
        load "$pr" "$h" "$REQUESTS" > /dev/null
        rm -f "$out".*
        callgrind_control -d "$SPID" > /dev/null 2>&1 || die "callgrind_control -d"
        dump=$(ls -t "$out".* 2>/dev/null | head -1)
        [ -n "$dump" ] || die "no callgrind dump"
        mv "$dump" "$OUT_DIR/callgrind-$sc-$pr-$h.out"
        dump=$OUT_DIR/callgrind-$sc-$pr-$h.out
        total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(/,/, "", $1); t = $1 } END { print t + 0 }')
        IR[$key]=$(awk -v t="$total" -v n="$REQUESTS" 'BEGIN { printf "%.0f", t / n }')
        if [ "$pr" = tether ] || [ "$pr" = static ]; then
          callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n 1,100p > "$OUT_DIR/callgrind-$sc-$h.txt" || true
          callgrind_annotate --threshold=100 "$dump" 2>/dev/null | sed -n 1,120p > "$OUT_DIR/callgrind-self-$sc-$h.txt" || true
        fi
        log "callgrind $key: ${IR[$key]} instructions per request"
      else
        strace -c -f -o "$OUT_DIR/strace-$sc-$pr-$h.txt" -p "$SPID" 2> /dev/null &
        spid=$!
        PIDS+=("$spid")
        sleep 1   # strace attaches (nothing to wait on); the counted load starts after it
        load "$pr" "$h" "$REQUESTS" > /dev/null
        kill -INT "$spid"; wait "$spid" 2>/dev/null || true
        SYS[$key]=$(awk -v n="$REQUESTS" '
          $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
            e = (NF == 6) ? $5 : 0; t += $4
            s = s sprintf("%s %.2f%s, ", $NF, $4 / n, e > 0 ? sprintf(" (%.2f failed)", e / n) : "") }
          END { sub(/, $/, "", s); printf "%.2f: %s", t / n, s }' "$OUT_DIR/strace-$sc-$pr-$h.txt")
        log "strace $key: ${SYS[$key]}"
      fi
    done
    stop_proxy
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "—"; else printf "%.2f", a / b }'; }
value() {  # tool key: the count, empty if not measured
  if [ "$1" = callgrind ]; then echo "${IR[$2]:-}"; else local v=${SYS[$2]:-}; echo "${v%%:*}"; fi
}
echo "tether: $("$TETHER" --version 2>&1 | head -1); nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'); HAProxy $(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')"
echo "$REQUESTS requests over $CONNS keep-alive connections, after $WARM"
for tool in $TOOLS; do
  echo
  if [ "$tool" = callgrind ]; then
    echo "User-space instructions per request (callgrind):"
  else
    echo "System calls per request (strace -c):"
  fi
  echo
  echo "| scenario | head | tether | nginx | HAProxy | tether / nginx | tether / HAProxy |"
  echo "|---|---|---|---|---|---|---|"
  for sc in $SCENARIOS; do
    if [ "$sc" = static ]; then
      v=$(value "$tool" "static static host")
      echo "| static | host | ${v:-—} | — | — | — | — |"
      continue
    fi
    for h in $HEADS; do
      if [ "$sc" = rules ] && [ "$h" = affinity ]; then continue; fi
      t=$(value "$tool" "$sc tether $h")
      n=$(value "$tool" "$sc nginx $h")
      a=$(value "$tool" "$sc haproxy $h")
      echo "| $sc | $h | ${t:-—} | ${n:-—} | ${a:-—} | $(ratio "$t" "$n") | $(ratio "$t" "$a") |"
    done
  done
  if [ "$tool" = strace ]; then
    echo
    for k in "${!SYS[@]}"; do echo "- $k: ${SYS[$k]}"; done | sort
  fi
done
