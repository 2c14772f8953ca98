#!/usr/bin/env bash
# Per-request costs of tether that do not move with the machine's load: user-space
# instructions (valgrind callgrind) and system calls (strace -c), for A/B comparisons of
# small changes. compare.sh's CPU µs per request moves by ±15 % between runs on a shared VM;
# these counts move by well under 1 %.
#
#   bash benches/ab.sh                                  # proxied and static, both counts
#   SCENARIOS=static TOOLS=strace bash benches/ab.sh
#   TETHER=/tmp/old/tether OUT_DIR=/tmp/ab-old bash benches/ab.sh   # another build
#
# Layout: a backend nginx (worker_processes 1) serves /1k.bin from a temp dir; tether
# proxies to it on one port and serves the same dir on another, as in compare.sh.
# benches/support/load.py sends exactly $REQUESTS keep-alive GET /1k.bin over $CONNS
# connections (after $WARM requests that are not counted).
#   callgrind  user-space instructions of the whole process while the counted requests run
#              (zeroed after the warm-up, dumped after the load), divided by the requests;
#              the top functions go to $OUT_DIR/callgrind-<scenario>.txt (inclusive) and
#              callgrind-self-<scenario>.txt
#   strace     `strace -c -f` attached for the counted requests: calls per request, per
#              system call
# Prints one Markdown table per tool.
set -euo pipefail

REQUESTS=${REQUESTS:-20000}
WARM=${WARM:-2000}
CONNS=${CONNS:-32}
SCENARIOS=${SCENARIOS:-proxied static}
TOOLS=${TOOLS:-callgrind strace}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=ab
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out ab

export PATH="$PATH:/usr/sbin:/sbin"
for t in nginx python3 curl; do command -v $t >/dev/null || die "needs $t (see compare.sh)"; done
case " $TOOLS " in *" callgrind "*) command -v valgrind >/dev/null || die "needs valgrind" ;; esac
case " $TOOLS " in *" strace "*) command -v strace >/dev/null || die "needs strace" ;; esac

[ -n "${TETHER:-}" ] || PROFILE=profiling build_tether
[ -x "$TETHER" ] || die "no $TETHER"

bench_tmp

port_block 3
P_BACKEND=$BASE; P_PROXY=$((BASE + 1)); P_STATIC=$((BASE + 2))

WWW=$TMP/www
mkdir -p "$WWW" "$TMP/backend"
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
EOF

wait_http "http://127.0.0.1:$P_BACKEND/1k.bin" 300 || die "backend did not start"

port_of() { [ "$1" = static ] && echo "$P_STATIC" || echo "$P_PROXY"; }
load() {  # scenario requests
  python3 "$repo/benches/support/load.py" 127.0.0.1 "$(port_of "$1")" \
    --requests "$2" --conns "$CONNS" || die "load against $1 failed"
}
start_tether() {  # log file, command prefix...
  local logf=$1; shift
  # --no-supervise: one process, so TPID is the one that serves (not the master).
  "$@" "$TETHER" --no-supervise "$TMP/tether.toml" > "$logf" 2>&1 &
  TPID=$!
  PIDS+=("$TPID")
  wait_http "http://127.0.0.1:$P_PROXY/1k.bin" 300 || die "tether did not start: $(tail -5 "$logf")"
  wait_http "http://127.0.0.1:$P_STATIC/1k.bin" 300 || die "tether static did not start"
}
stop_tether() {  # tether has no clean stop: the counts are taken before this
  kill -9 "$TPID" 2>/dev/null || true
  wait "$TPID" 2>/dev/null || true
}

declare -A IR SYS
for sc in $SCENARIOS; do
  case " $TOOLS " in *" callgrind "*)
    log "callgrind, $sc: $WARM + $REQUESTS requests"
    out=$OUT_DIR/callgrind-$sc.out
    rm -f "$out"
    start_tether "$OUT_DIR/tether-callgrind-$sc.log" valgrind --tool=callgrind \
      --callgrind-out-file="$out" --dump-instr=no
    load "$sc" "$WARM" > /dev/null
    # Zero the counts after the warm-up.
    callgrind_control -z "$TPID" > /dev/null 2>&1 || die "callgrind_control -z"
    load "$sc" "$REQUESTS" > /dev/null
    rm -f "$out".*
    callgrind_control -d "$TPID" > /dev/null 2>&1 || die "callgrind_control -d"
    stop_tether
    dump=$(ls -t "$out".* 2>/dev/null | head -1)
    [ -n "$dump" ] || die "no callgrind dump"
    total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(/,/, "", $1); t = $1 } END { print t + 0 }')
    IR[$sc]=$(awk -v t="$total" -v n="$REQUESTS" 'BEGIN { printf "%.0f", t / n }')
    callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n 1,80p > "$OUT_DIR/callgrind-$sc.txt" || true
    callgrind_annotate "$dump" 2>/dev/null | sed -n 1,60p > "$OUT_DIR/callgrind-self-$sc.txt" || true
    log "callgrind $sc: ${IR[$sc]} instructions per request"
  ;; esac
  case " $TOOLS " in *" strace "*)
    log "strace, $sc: $WARM + $REQUESTS requests"
    start_tether "$OUT_DIR/tether-strace-$sc.log"
    load "$sc" "$WARM" > /dev/null
    strace -c -f -o "$OUT_DIR/strace-$sc.txt" -p "$TPID" 2> /dev/null &
    spid=$!
    PIDS+=("$spid")
    sleep 1
    load "$sc" "$REQUESTS" > /dev/null
    kill -INT "$spid"; wait "$spid" 2>/dev/null || true
    stop_tether
    SYS[$sc]=$(awk -v n="$REQUESTS" '
      $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
        e = (NF == 6) ? $5 : 0; t += $4
        s = s sprintf("%s %.2f%s, ", $NF, $4 / n, e > 0 ? sprintf(" (%.2f failed)", e / n) : "") }
      END { sub(/, $/, "", s); printf "%.2f: %s", t / n, s }' "$OUT_DIR/strace-$sc.txt")
    log "strace $sc: ${SYS[$sc]}"
  ;; esac
done

echo "tether: $("$TETHER" --version 2>&1 | head -1); $REQUESTS requests over $CONNS keep-alive connections, after $WARM"
echo
echo "| scenario | user-space instructions / request (callgrind) | syscalls / request (strace) |"
echo "|---|---|---|"
for sc in $SCENARIOS; do
  echo "| $sc | ${IR[$sc]:-—} | ${SYS[$sc]:-—} |"
done
