#!/usr/bin/env bash
# TLS bulk through tether without kTLS, against tether's own plaintext bulk (issue 22 item 4):
# MB/s and CPU s/GiB, and where tether's time goes during a TLS download.
#
#   bash benches/tls_bulk.sh                # ROUNDS=3 downloads of 256 MiB per variant
#   ROUNDS=5 SIZE_MIB=512 bash benches/tls_bulk.sh
#   PROFILE_TLS=0 bash benches/tls_bulk.sh  # figures only, no perf/strace
#
# What it does (loopback only, ports picked in 61000-64999, everything it starts is killed
# on exit, the temp dir with the certificate and the file is removed):
#   backend  nginx, plain HTTP, worker_processes 1, pinned to CPU $LOAD_CPU, serving
#            /bulk.bin ($SIZE_MIB MiB) from the page cache
#   tether   workers = 1, --no-supervise (one process: its /proc/PID/stat is the worker's),
#            pinned to CPU $PROXY_CPU, two listeners proxying to the backend: plain HTTP, and
#            TLS with an ECDSA P-256 certificate made with openssl at the start
#   client   curl -o /dev/null, pinned to CPU $LOAD_CPU (shared with the backend)
# Variants, taking turns within each round (the first one alternates):
#   plain      http:// through tether (tether splices: the bytes stay in the kernel)
#   aes128     https://, TLS 1.3 only, curl --tls13-ciphers TLS_AES_128_GCM_SHA256
#   aes256     the same with TLS_AES_256_GCM_SHA384 (what clients pick by default)
#   chacha20   the same with TLS_CHACHA20_POLY1305_SHA256
# Measured per download: MB/s (curl's speed_download), tether's CPU s/GiB (utime+stime from
# /proc), how busy tether was (its CPU time / wall time), curl's and the backend's CPU s/GiB.
# Then, unless PROFILE_TLS=0, during AES-128-GCM downloads:
#   perf     `perf record -g` of tether for $PERF_SECONDS s: self time by object and symbol,
#            grouped (AES-GCM, memcpy, kernel copies, rest of the kernel, ...), and the
#            inclusive time of each system call
#   strace   `strace -e read,write,writev,sendmsg,recvfrom,splice -s0` of tether for
#            $STRACE_SECONDS s: calls per system call and the sizes each returned
# The report (Markdown) goes to stdout and $OUT_DIR/report.md, raw outputs to $OUT_DIR.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-256}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PROFILE_TLS=${PROFILE_TLS:-1}
PERF_SECONDS=${PERF_SECONDS:-6}
STRACE_SECONDS=${STRACE_SECONDS:-3}
VARIANTS=${VARIANTS:-plain aes128 aes256 chacha20}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH=tls_bulk
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out tls-bulk

# ---------------------------------------------------------------- tools
prof=""
[ "$PROFILE_TLS" = 1 ] && prof="perf:linux-perf strace:strace"
# shellcheck disable=SC2086  # $prof: more pairs or none
install_missing nginx:nginx openssl:openssl curl:curl ss:iproute2 taskset:util-linux $prof
NGINX=$(command -v nginx)
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

build_tether

bench_tmp

port_block 3
P_BACKEND=$BASE; P_PLAIN=$((BASE + 1)); P_TLS=$((BASE + 2))

# ---------------------------------------------------------------- certificate and file
CERTS=$TMP/certs
mkdir -p "$CERTS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$CERTS/ec.key" -out "$CERTS/ec.pem" 2>/dev/null
WWW=$TMP/www
mkdir -p "$WWW"
# random bytes, not zeros: nothing on the path compresses, but a file of zeros would make
# any future check of the content meaningless
head -c $((SIZE_MIB * 1048576)) /dev/urandom > "$WWW/bulk.bin"
cat "$WWW/bulk.bin" > /dev/null
chmod -R a+rX "$TMP"
SIZE=$(stat -c %s "$WWW/bulk.bin")

mkdir -p "$TMP/backend" "$TMP/tether"
{
  nginx_main "$TMP/backend"
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

cat > "$TMP/tether/tether.toml" <<EOF
workers = 1
access_log = "off"

[[listener]]
listen = "127.0.0.1:$P_PLAIN"
protocol = "http"
upstream = "127.0.0.1:$P_BACKEND"
idle_timeout_ms = 300000

[[listener]]
listen = "127.0.0.1:$P_TLS"
protocol = "http"
upstream = "127.0.0.1:$P_BACKEND"
idle_timeout_ms = 300000
tls = { certificates = [{ cert = "$CERTS/ec.pem", key = "$CERTS/ec.key" }] }
EOF
"$TETHER" check "$TMP/tether/tether.toml" > "$OUT_DIR/tether-check.txt" 2>&1 ||
  die "tether check: $(cat "$OUT_DIR/tether-check.txt")"

# ---------------------------------------------------------------- processes
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
UPTIME_START=$(uptime)
log "ports: backend $P_BACKEND, tether plain $P_PLAIN, TLS $P_TLS; $UPTIME_START"
taskset -c "$LOAD_CPU" "$NGINX" -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" &
BACKEND_MASTER=$!; PIDS+=("$BACKEND_MASTER")
RUST_LOG=${RUST_LOG:-warn} taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether/tether.toml" > "$OUT_DIR/tether.log" 2>&1 &
TETHER_PID=$!; PIDS+=("$TETHER_PID")
wait_http "http://127.0.0.1:$P_BACKEND/bulk.bin" 50 ||
  die "backend nginx did not start: $(cat "$TMP/backend/error.log")"
BACKEND_PID=$(nginx_worker "$BACKEND_MASTER") || die "no backend worker"
wait_http "http://127.0.0.1:$P_PLAIN/bulk.bin" 100 || die "tether plain does not answer (log in $OUT_DIR)"
wait_http "https://127.0.0.1:$P_TLS/bulk.bin" 100 || die "tether TLS does not answer (log in $OUT_DIR)"

alive_check() {
  kill -0 "$TETHER_PID" 2>/dev/null && return 0
  log "tether died; last log lines:"; tail -20 "$OUT_DIR/tether.log" >&2
  die "tether is gone"
}

CLK_TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }
# curl's arguments per variant
args() {
  case $1 in
    plain) echo "http://127.0.0.1:$P_PLAIN/bulk.bin" ;;
    aes128) echo "--tlsv1.3 --tls13-ciphers TLS_AES_128_GCM_SHA256 https://127.0.0.1:$P_TLS/bulk.bin" ;;
    aes256) echo "--tlsv1.3 --tls13-ciphers TLS_AES_256_GCM_SHA384 https://127.0.0.1:$P_TLS/bulk.bin" ;;
    chacha20) echo "--tlsv1.3 --tls13-ciphers TLS_CHACHA20_POLY1305_SHA256 https://127.0.0.1:$P_TLS/bulk.bin" ;;
    *) die "unknown variant $1" ;;
  esac
}
# the suite each TLS variant really negotiated, from curl -v
for v in $VARIANTS; do
  [ "$v" = plain ] && continue
  # shellcheck disable=SC2046  # args: several words
  neg=$(curl -sk -v -o /dev/null --max-time 20 -r 0-1023 $(args "$v") 2>&1 | awk '/SSL connection using/ { print $(NF - 2), $NF; exit }')
  echo "$v $neg" >> "$OUT_DIR/negotiated.txt"
  log "$v negotiates: $neg"
done

RES=$OUT_DIR/results.txt
echo "# variant round MB_s tether_cpu_s_per_GiB tether_busy curl_cpu_s_per_GiB backend_cpu_s_per_GiB size http" > "$RES"
run_one() {  # variant round
  local v=$1 r=$2 t0 t1 b0 b1 w0 w1 res speed size code ct gib
  t0=$(cpu_ticks "$TETHER_PID"); b0=$(cpu_ticks "$BACKEND_PID"); w0=$(now)
  # shellcheck disable=SC2046
  res=$( { TIMEFORMAT='%U %S'; time taskset -c "$LOAD_CPU" curl -sk -o /dev/null --max-time 300 \
    -w '%{speed_download} %{size_download} %{http_code}\n' $(args "$v"); } 2>&1 || true)
  w1=$(now); t1=$(cpu_ticks "$TETHER_PID"); b1=$(cpu_ticks "$BACKEND_PID")
  read -r speed size code <<< "$(head -1 <<< "$res")"
  ct=$(tail -1 <<< "$res" | awk '{ print $1 + $2 }')
  gib=$(awk -v z="${size:-0}" 'BEGIN { print z / 1073741824 }')
  awk -v v="$v" -v r="$r" -v s="${speed:-0}" -v z="${size:-0}" -v want="$SIZE" -v c="${code:-000}" \
      -v t=$((t1 - t0)) -v b=$((b1 - b0)) -v hz="$CLK_TCK" -v w0="$w0" -v w1="$w1" -v ct="$ct" -v g="$gib" 'BEGIN {
    ok = (z == want && c == 200)
    if (!ok) { printf "%s %s nan nan nan nan nan %s %s\n", v, r, z, c; exit }
    printf "%s %s %.0f %.3f %.2f %.3f %.3f %s %s\n", v, r, s / 1e6, t / hz / g, t / hz / (w1 - w0), ct / g, b / hz / g, z, c }' >> "$RES"
  log "$(tail -1 "$RES" | awk '{ printf "%s round %s: %s MB/s, tether %s CPU s/GiB (%s busy), curl %s, backend %s s/GiB", $1, $2, $3, $4, $5, $6, $7 }')"
  alive_check
}

# warm-up: one download of each variant
for v in $VARIANTS; do
  # shellcheck disable=SC2046
  taskset -c "$LOAD_CPU" curl -sk -o /dev/null --max-time 300 $(args "$v") || true
done
alive_check

for r in $(seq "$ROUNDS"); do
  log "round $r of $ROUNDS (load average $(cut -d' ' -f1 /proc/loadavg))"
  order=$VARIANTS
  [ $((r % 2)) = 0 ] && order=$(tr ' ' '\n' <<< "$VARIANTS" | tac | tr '\n' ' ')
  for v in $order; do run_one "$v" "$r"; done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- profile
# downloads of the aes128 variant, back to back, while perf or strace watches tether
loop_load() {  # seconds
  local end=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$end" ]; do
    # shellcheck disable=SC2046
    taskset -c "$LOAD_CPU" curl -sk -o /dev/null --max-time 300 $(args aes128) || true
  done
}
if [ "$PROFILE_TLS" = 1 ]; then
  log "perf: recording tether for ${PERF_SECONDS}s under AES-128-GCM downloads"
  loop_load $((PERF_SECONDS + 4)) &
  lpid=$!; PIDS+=("$lpid")
  sleep 1
  perf record -q -F 999 -g -p "$TETHER_PID" -o "$OUT_DIR/perf.data" -- sleep "$PERF_SECONDS" > /dev/null 2>&1 ||
    log "perf record failed"
  wait "$lpid" || true
  if [ -s "$OUT_DIR/perf.data" ]; then
    perf report -i "$OUT_DIR/perf.data" --no-children --stdio -g none --sort dso,sym --percent-limit 0 \
      > "$OUT_DIR/perf-self.txt" 2>/dev/null || true
    perf report -i "$OUT_DIR/perf.data" --no-children --stdio -g none --sort dso --percent-limit 0 \
      > "$OUT_DIR/perf-dso.txt" 2>/dev/null || true
    perf report -i "$OUT_DIR/perf.data" --children --stdio -g none --sort sym --percent-limit 0.5 \
      > "$OUT_DIR/perf-children.txt" 2>/dev/null || true
  fi

  log "strace: ${STRACE_SECONDS}s of tether's reads and writes under AES-128-GCM downloads"
  loop_load $((STRACE_SECONDS + 4)) &
  lpid=$!; PIDS+=("$lpid")
  sleep 1
  timeout -s INT "$STRACE_SECONDS" strace -f -qq -e trace=read,write,writev,sendmsg,recvfrom,splice -s0 \
    -o "$OUT_DIR/strace.txt" -p "$TETHER_PID" 2>/dev/null || true
  wait "$lpid" || true
fi
alive_check

# ---------------------------------------------------------------- report
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { awk -v v="$1" -v c="$2" '$1 == v && $c != "nan" { print $c }' "$RES" | median; }
rng() {
  awk -v v="$1" -v c="$2" '$1 == v && $c != "nan" { print $c }' "$RES" | sort -g |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s–%s", lo, hi; else print "nan" }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "nan"; else printf "%.2f", a / b }'; }
first_line() { { "$@" 2>&1 || true; } | head -1 || true; }
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

# perf: self-time shares of groups of symbols (percent of tether's samples)
perf_groups() {
  awk '/^ +[0-9.]+%/ {
    pct = $1; sub(/%/, "", pct); dso = $2; sym = ""
    for (i = 4; i <= NF; i++) sym = sym (i > 4 ? " " : "") $i
    g = "other user space (tether, rustls, std)"
    if (dso ~ /kernel/) {
      if (sym ~ /copy_(to|from)_iter|copy_user|rep_movs|memcpy_orig|copy_page/) g = "kernel: copies to/from user space"
      else g = "kernel: the rest (TCP, loopback softirq, syscall entry, scheduler)"
    } else if (sym ~ /aes|gcm|ghash|gfmul|clmul|GFp_|gcm_/ ) g = "AES-GCM (aws-lc: AES-CTR + GHASH)"
    else if (sym ~ /chacha|poly1305/) g = "ChaCha20-Poly1305"
    else if (sym ~ /memmove|memcpy|memset/) g = "libc memcpy/memmove/memset"
    else if (sym ~ /malloc|free|realloc|_int_|calloc|tcache/) g = "libc malloc/free"
    else if (dso ~ /libc/) g = "libc other"
    share[g] += pct
  } END { for (g in share) printf "%.1f\t%s\n", share[g], g }' "$1" | sort -t$'\t' -k1,1gr
}

{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'); $(first_line "$TETHER" --version); nginx $(first_line "$NGINX" -v | sed 's/.*: nginx.//') (backend); $(first_line curl -V | awk '{print $1, $2, $5}')"
  echo "Machine: nproc $(nproc), $cpu_model, kernel $(uname -r); kTLS ULPs available: \`$(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null || echo '?')\`"
  echo "Load average (1/5/15 min): $LOAD_START at the start, $LOAD_END after the downloads; \`uptime\` at the start: $UPTIME_START"
  echo "Settings: ROUNDS=$ROUNDS, one $SIZE_MIB MiB download per variant and round; tether on CPU $PROXY_CPU, backend nginx + curl on CPU $LOAD_CPU"
  echo
  echo "Negotiated (curl -v):"
  echo
  sed 's/^/    /' "$OUT_DIR/negotiated.txt" 2>/dev/null || true
  echo
  echo "| variant | MB/s | range | tether CPU s/GiB | range | tether busy | curl CPU s/GiB | backend CPU s/GiB | MB/s / plain | tether CPU / plain |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for v in $VARIANTS; do
    echo "| $v | $(med "$v" 3) | $(rng "$v" 3) | $(med "$v" 4) | $(rng "$v" 4) | $(med "$v" 5) | $(med "$v" 6) | $(med "$v" 7) | $(ratio "$(med "$v" 3)" "$(med plain 3)") | $(ratio "$(med "$v" 4)" "$(med plain 4)") |"
  done
  echo
  echo "tether busy = its CPU time / the download's wall time (1.00: its core is the limit)."
  if [ "$PROFILE_TLS" = 1 ] && [ -s "$OUT_DIR/perf-self.txt" ]; then
    echo
    echo "perf, tether during AES-128-GCM downloads (self time, % of its samples), grouped:"
    echo
    echo '```'
    perf_groups "$OUT_DIR/perf-self.txt"
    echo '```'
    echo
    echo "By object, then the top symbols:"
    echo
    echo '```'
    grep -E '^ +[0-9]' "$OUT_DIR/perf-dso.txt" | head -6
    grep -E '^ +[0-9]' "$OUT_DIR/perf-self.txt" | head -25
    echo '```'
    echo
    echo "Inclusive time (children) of the system calls and of rustls' entry points:"
    echo
    echo '```'
    grep -E '^ +[0-9]' "$OUT_DIR/perf-children.txt" |
      grep -E '\] (do_syscall_64|ksys_read|do_writev|__x64_sys_[a-z_]+|skb_copy_datagram_iter|_copy_(to|from)_iter|handle_softirqs|tcp_write_xmit|__check_object_size)$|write_tls|write_vectored|send_some_plaintext|encrypt_outgoing|seal_in_place|read_plain|write_plain|Io::pump' |
      head -30
    echo '```'
  fi
  if [ "$PROFILE_TLS" = 1 ] && [ -s "$OUT_DIR/strace.txt" ]; then
    echo
    echo "strace, ${STRACE_SECONDS}s of tether's reads and writes (sizes returned; strace slows the process, so the calls per second are not the unobserved rate):"
    echo
    echo "| call | calls | bytes | mean bytes/call | sizes seen (top 5: size × calls) | EAGAIN | buffers per writev |"
    echo "|---|---|---|---|---|---|---|"
    awk '{
      line = $0; sub(/^[0-9]+ +/, "", line)
      if (line !~ /^(read|write|writev|sendmsg|recvfrom|splice)\(/) next
      call = line; sub(/\(.*/, "", call)
      ret = line; sub(/.*= /, "", ret)
      if (ret ~ /^-1/) { eagain[call]++; seen[call] = 1; next }
      n = ret + 0
      calls[call]++; bytes[call] += n; size[call, n]++; seen[call] = 1
      if (call == "writev") { v = line; sub(/\)[ \t]*= .*/, "", v); sub(/.*, /, "", v); iovs[call] += v }
    } END {
      for (c in seen) {
        top = ""
        for (k in size) { split(k, kk, SUBSEP); if (kk[1] == c) print c, kk[2], size[k] > "/dev/stderr" }
        printf "%s %d %d %d %s\n", c, calls[c], bytes[c], eagain[c], (c in iovs && calls[c]) ? sprintf("%.2f", iovs[c] / calls[c]) : "-"
      }
    }' "$OUT_DIR/strace.txt" > "$OUT_DIR/strace-calls.txt" 2> "$OUT_DIR/strace-sizes.txt"
    sort "$OUT_DIR/strace-calls.txt" |
      while read -r c n b e iv; do
        top=$(awk -v c="$c" '$1 == c { print $3, $2 }' "$OUT_DIR/strace-sizes.txt" | sort -k1,1nr | head -5 |
          awk '{ printf "%s%s × %s", (NR > 1 ? ", " : ""), $2, $1 }')
        mean=$(awk -v b="$b" -v n="$n" 'BEGIN { if (n > 0) printf "%.0f", b / n; else print "-" }')
        echo "| $c | $n | $b | $mean | $top | $e | $iv |"
      done
  fi
  warns=$(grep -cE ' (WARN|ERROR) ' "$OUT_DIR/tether.log" || true)
  echo
  echo "tether log: $warns WARN/ERROR lines (RUST_LOG=${RUST_LOG:-warn}); raw outputs in $OUT_DIR"
} | tee "$OUT_DIR/report.md"
