# shellcheck shell=bash disable=SC2034,SC2154  # sets BASE, TMP, PIDS, TETHER, OUT_DIR, WWW, BULK_SIZE for the sourcing script; uses its repo
# Shared by the bench scripts (sourced, after `repo` and `BENCH` are set): log lines,
# the temp dir and the cleanup of every process a script starts, a block of free loopback
# ports, and /proc helpers.

log() { printf '[%s %s] %s\n' "$BENCH" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# OUT_DIR: where the outputs go, absolute ($OUT_DIR if set, else target/$1), made if missing.
bench_out() {
  OUT_DIR=${OUT_DIR:-$repo/target/$1}
  mkdir -p "$OUT_DIR"
  OUT_DIR=$(cd "$OUT_DIR" && pwd)
}

# WWW (under TMP): 1k.bin (1 KiB) and 1g.bin (1 GiB, read once into the page cache);
# BULK_SIZE, the size of 1g.bin.
bench_www() {
  WWW=$TMP/www
  mkdir -p "$WWW"
  head -c 1024 /dev/zero | tr '\0' 'x' > "$WWW/1k.bin"
  log "writing the 1 GiB file"
  if ! fallocate -l 1G "$WWW/1g.bin" 2>/dev/null; then
    head -c 1073741824 /dev/zero > "$WWW/1g.bin"
  fi
  cat "$WWW/1g.bin" > /dev/null   # into the page cache
  chmod -R a+rX "$WWW"
  BULK_SIZE=$(stat -c %s "$WWW/1g.bin")
}

# TMP (a fresh temp dir, removed on exit) and PIDS (killed on exit: TERM, then KILL after 5 s).
bench_tmp() {
  TMP=$(mktemp -d "/tmp/tether-$BENCH.XXXXXX")
  chmod 755 "$TMP"
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$TMP"
  exit $rc
}

# BASE: the first of N consecutive free ports in 61000-64999.
port_free() { [ -z "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; }
port_block() {
  local n=$1 b i ok
  BASE=""
  for _ in $(seq 40); do
    b=$((61000 + RANDOM % 3990))
    ok=1
    for ((i = 0; i < n; i++)); do port_free $((b + i)) || { ok=0; break; }; done
    if [ $ok = 1 ]; then BASE=$b; return 0; fi
  done
  die "no free port range found in 61000-64999"
}

# TETHER: a release build of this checkout (CARGO_TARGET_DIR honoured); PROFILE=profiling
# (what benches/ab.sh asks for) keeps debug info so callgrind can name the functions.
# TETHER_BIN=path: use that binary and build nothing (several runs on one build).
build_tether() {
  local profile=${PROFILE:-release}
  if [ -n "${TETHER_BIN:-}" ]; then
    TETHER=$TETHER_BIN
    [ -x "$TETHER" ] || die "TETHER_BIN=$TETHER is not an executable"
    log "using $TETHER ($("$TETHER" --version 2>&1 | head -1)); not building"
    return 0
  fi
  log "building tether (cargo build --profile $profile)"
  (cd "$repo" && cargo build --profile "$profile" --quiet --bin tether)
  TETHER=${CARGO_TARGET_DIR:-$repo/target}/$profile/tether
  [ -x "$TETHER" ] || die "no $TETHER after the build"
}

children() {  # direct children of $1 (field 4 of /proc/PID/stat is the parent)
  local f
  for f in /proc/[0-9]*/stat; do
    sed 's/.*) //' "$f" 2>/dev/null | awk -v p="$1" -v f="$f" '$2 == p { split(f, a, "/"); print a[3] }'
  done
}
wait_http() {  # url [tries of 0.1 s, 100]: wait until it answers 200 (https: any certificate)
  for _ in $(seq "${2:-100}"); do
    [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
nginx_worker() {  # master pid -> the one worker's pid
  local w=""
  for _ in $(seq 50); do
    w=$(children "$1" | head -1)
    [ -n "$w" ] && { echo "$w"; return 0; }
    sleep 0.1
  done
  return 1
}
nginx_workers() {  # master pid, count -> its workers' pids, space-separated, once all are up
  local w=""
  for _ in $(seq 50); do
    w=$(children "$1" | sort -n | tr '\n' ' ')
    w=${w% }
    [ "$(wc -w <<< "$w")" -ge "$2" ] && { echo "$w"; return 0; }
    sleep 0.1
  done
  return 1
}
# cpu_ticks PID...: utime+stime, summed over the processes given (all threads of each)
cpu_ticks() {
  local p t=0
  for p in "$@"; do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done
  echo "$t"
}
# rss_kib PID...: VmRSS, summed over the processes given
rss_kib() {
  local p t=0
  for p in "$@"; do t=$((t + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status"))); done
  echo "$t"
}

# Install the Debian packages named for the commands missing: `install_missing cmd:pkg ...`
# (a package of `nginx-light` falls back to `nginx` on releases that dropped it).
install_missing() {
  local pair need=() sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export PATH="$PATH:/usr/sbin:/sbin"
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  log "installing ${need[*]}"
  $sudo apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null; then
    need=("${need[@]/nginx-light/nginx}")
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# nginx config, shared part: `nginx_main DIR [NOFILE] [CONNECTIONS] [WORKERS]` (DIR holds the
# pid and the logs; WORKERS: worker_processes, 1 unless given), then `nginx_http_common DIR`
# inside `http {`.
nginx_main() {
  local user=""
  [ "$(id -u)" -eq 0 ] && user="user root;"
  cat <<NGINX
$user
worker_processes ${4:-1};
worker_rlimit_nofile ${2:-65536};
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections ${3:-8192}; }
NGINX
}
nginx_http_common() {
  cat <<NGINX
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
NGINX
}

# The rules benchmarks' tether pieces (issue 19; benches/rules_compare.sh, ab.sh's rules
# scenario): a rate limit that never rejects (1000000r/s, burst 100000, nodelay, keyed by
# client_ip) and a [[server]] on 127.0.0.1:$1 with three request-header rules under it,
# proxying everything to the [[upstream]] named $2 (the caller's).
rules_server_toml() {
  cat <<EOF
[[limit]]
name = "rl"
rate = "1000000r/s"
burst = 100000
nodelay = true
key = ["client_ip"]

[[server]]
listen = ["127.0.0.1:$1"]
idle_timeout_ms = 300000
limits = ["rl"]
request_headers = { set = { "X-A" = "{client_ip}", "X-B" = "static text", "X-C" = "{host}" } }

[[server.route]]
path = "/"
proxy = "$2"
EOF
}
