#!/usr/bin/env bash
# tether vs nginx over TLS (issue 10 item 7), one worker each, same machine, one run.
#
#   bash benches/tls_compare.sh             # ROUNDS=3 rounds of 8 s per proxy and scenario
#   ROUNDS=5 DURATION=10 bash benches/tls_compare.sh
#   PERF=1 bash benches/tls_compare.sh      # also profile tether (RSA handshakes, keep-alive, bulk)
#
# What it does (loopback only, ports picked in 61000-64999, everything it starts is killed
# on exit, the temp dir with the certificates and the 1 GiB file is removed):
#   certs    an ECDSA P-256 and an RSA 2048 self-signed certificate for localhost/127.0.0.1,
#            made with openssl in the temp dir at the start of the run
#   backend  nginx, plain HTTP, worker_processes 1, pinned to CPU $LOAD_CPU, serving /1k.bin
#            (1 KiB) and /1g.bin (1 GiB) from the temp dir
#   proxies  tether (workers = 1) and nginx (worker_processes 1, OpenSSL), pinned to CPU
#            $PROXY_CPU, each with four listeners:
#              ec     TLS, ECDSA cert, static files from the temp dir (handshakes, static bulk)
#              rsa    TLS, RSA cert, static files (handshakes)
#              proxy  TLS, ECDSA cert, proxying to the backend over kept-alive HTTP/1.1
#              plain  plain HTTP, proxying to the backend (tether's plaintext bulk reference)
#            Defaults otherwise: TLS 1.2-1.3, session tickets and a session cache on both
#            (nginx: ssl_session_cache shared:SSL:10m, tickets on); nginx also has
#            `ssl_conf_command Options KTLS` (it has no effect on a kernel without the `tls`
#            ULP; the run checks and says so)
#            tether runs with --no-supervise: one process, whose CPU is the worker's (under
#            the master, /proc/<master>/stat would not count the worker); for nginx the
#            CPU is its one worker's
#   load     pinned to CPU $LOAD_CPU (shared with the backend)
# Scenarios, tether and nginx taking turns within each round:
#   full     full handshakes: $HS_CLIENTS parallel `openssl s_time -new -www /1k.bin` for
#            $DURATION s against the ec and the rsa listener (each connection: a full
#            handshake, GET /1k.bin over HTTP/1.0, close). Handshakes/s = connections summed
#            over the clients / wall time; CPU µs per handshake = proxy utime+stime / connections
#   resumed  the same with `s_time -reuse` (the ec listener): every connection after each
#            client's first resumes its session (counted from s_time's `r` marks)
#   keepalive wrk -t1 -c$CONNS over https to the proxy listener, GET /1k.bin proxied to the
#            backend: req/s, p99, CPU µs per request of the proxy
#   bulk     curl of /1g.bin: over TLS proxied, over TLS from disk (static), and plain
#            proxied: MB/s and the proxy's CPU s/GiB
# Medians over the rounds. The report (Markdown) goes to stdout and $OUT_DIR/report.md, raw
# outputs and per-round figures to $OUT_DIR.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}        # seconds per s_time / wrk run
WARMUP=${WARMUP:-2}            # seconds of load per proxy before the rounds
CONNS=${CONNS:-32}             # wrk connections (nginx upstream keepalive is 32 too)
HS_CLIENTS=${HS_CLIENTS:-4}    # parallel s_time processes
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PERF=${PERF:-0}                # 1: perf record tether at the end
PERF_SECONDS=${PERF_SECONDS:-6}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BENCH=tls_compare
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
bench_out tls-compare

# ---------------------------------------------------------------- tools
perf=""
[ "$PERF" = 1 ] && perf=perf:linux-perf
# shellcheck disable=SC2086  # $perf: one more pair or none
install_missing nginx:nginx openssl:openssl wrk:wrk curl:curl ss:iproute2 taskset:util-linux \
  strace:strace $perf
NGINX=$(command -v nginx)
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; pinning will overlap"

build_tether

bench_tmp

# ---------------------------------------------------------------- ports
port_block 9
P_BACKEND=$BASE
declare -A PORT
PORT=([tether.ec]=$((BASE + 1)) [tether.rsa]=$((BASE + 2)) [tether.proxy]=$((BASE + 3)) [tether.plain]=$((BASE + 4))
      [nginx.ec]=$((BASE + 5)) [nginx.rsa]=$((BASE + 6)) [nginx.proxy]=$((BASE + 7)) [nginx.plain]=$((BASE + 8)))

# ---------------------------------------------------------------- certificates and files
CERTS=$TMP/certs
mkdir -p "$CERTS"
log "making an ECDSA P-256 and an RSA 2048 certificate"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$CERTS/ec.key" -out "$CERTS/ec.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$CERTS/rsa.key" -out "$CERTS/rsa.pem" 2>/dev/null
chmod -R a+rX "$CERTS"

bench_www

nginx_tls() {  # $1 = ec|rsa
  cat <<EOF
    ssl_certificate $CERTS/$1.pem;
    ssl_certificate_key $CERTS/$1.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1h;
    ssl_session_tickets on;
    ssl_conf_command Options KTLS;
EOF
}
nginx_proxy_location() {
  cat <<EOF
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
EOF
}

mkdir -p "$TMP/backend" "$TMP/nginx" "$TMP/tether"
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

{
  nginx_main "$TMP/nginx"
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
    listen 127.0.0.1:${PORT[nginx.ec]} ssl backlog=4096;
$(nginx_tls ec)
    root $WWW;
  }
  server {
    listen 127.0.0.1:${PORT[nginx.rsa]} ssl backlog=4096;
$(nginx_tls rsa)
    root $WWW;
  }
  server {
    listen 127.0.0.1:${PORT[nginx.proxy]} ssl backlog=4096;
$(nginx_tls ec)
$(nginx_proxy_location)
  }
  server {
    listen 127.0.0.1:${PORT[nginx.plain]} backlog=4096;
$(nginx_proxy_location)
  }
}
EOF
} > "$TMP/nginx/nginx.conf"

tls_line() { echo "tls = { certificates = [{ cert = \"$CERTS/$1.pem\", key = \"$CERTS/$1.key\" }] }"; }
cat > "$TMP/tether/tether.toml" <<EOF
workers = 1
access_log = "off"

[[listener]]
listen = "127.0.0.1:${PORT[tether.ec]}"
protocol = "http"
root = "$WWW"
idle_timeout_ms = 300000
$(tls_line ec)

[[listener]]
listen = "127.0.0.1:${PORT[tether.rsa]}"
protocol = "http"
root = "$WWW"
idle_timeout_ms = 300000
$(tls_line rsa)

[[listener]]
listen = "127.0.0.1:${PORT[tether.proxy]}"
protocol = "http"
upstream = "127.0.0.1:$P_BACKEND"
idle_timeout_ms = 300000
$(tls_line ec)

[[listener]]
listen = "127.0.0.1:${PORT[tether.plain]}"
protocol = "http"
upstream = "127.0.0.1:$P_BACKEND"
idle_timeout_ms = 300000
EOF

# ---------------------------------------------------------------- processes

ulimit -n 65536 2>/dev/null || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  log "warning: load average $LOAD_START before the run: other work on this machine will add noise"
fi
log "ports: backend $P_BACKEND, tether ${PORT[tether.ec]}-${PORT[tether.plain]}, nginx ${PORT[nginx.ec]}-${PORT[nginx.plain]}"

"$NGINX" -t -q -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" 2> "$OUT_DIR/nginx-t.txt" ||
  die "nginx -t: $(cat "$OUT_DIR/nginx-t.txt")"
"$TETHER" check "$TMP/tether/tether.toml" > "$OUT_DIR/tether-check.txt" 2>&1 ||
  die "tether check: $(cat "$OUT_DIR/tether-check.txt")"

taskset -c "$LOAD_CPU" "$NGINX" -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" &
BACKEND_MASTER=$!; PIDS+=("$BACKEND_MASTER")
taskset -c "$PROXY_CPU" "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
NGINX_MASTER=$!; PIDS+=("$NGINX_MASTER")
RUST_LOG=${RUST_LOG:-warn} taskset -c "$PROXY_CPU" "$TETHER" --no-supervise "$TMP/tether/tether.toml" > "$OUT_DIR/tether.log" 2>&1 &
TETHER_PID=$!; PIDS+=("$TETHER_PID")

wait_http "http://127.0.0.1:$P_BACKEND/1k.bin" || die "backend nginx did not start: $(cat "$TMP/backend/error.log")"
NGINX_PID=$(nginx_worker "$NGINX_MASTER") || die "no nginx worker"
declare -A PID
PID=([tether]=$TETHER_PID [nginx]=$NGINX_PID)

url() {  # proxy listener -> base URL
  case $2 in
    plain) echo "http://127.0.0.1:${PORT[$1.$2]}" ;;
    *) echo "https://127.0.0.1:${PORT[$1.$2]}" ;;
  esac
}
for p in tether nginx; do
  for l in ec rsa proxy plain; do
    wait_http "$(url $p $l)/1k.bin" || die "$p $l does not answer on $(url $p $l)/1k.bin (logs in $OUT_DIR)"
    size=$(curl -sk -o /dev/null -w '%{size_download}' "$(url $p $l)/1k.bin")
    [ "$size" = 1024 ] || die "$p $l: /1k.bin is $size bytes"
  done
  # the certificate each TLS listener presents, checked against the file and its key type
  for l in ec rsa; do
    want=$(openssl x509 -noout -fingerprint -sha256 -in "$CERTS/$l.pem")
    got=$(openssl s_client -connect "127.0.0.1:${PORT[$p.$l]}" -servername localhost < /dev/null 2>/dev/null |
      openssl x509 -noout -fingerprint -sha256 2>/dev/null || true)
    [ "$want" = "$got" ] || die "$p $l does not present $CERTS/$l.pem"
  done
done

CLK_TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }
alive_check() {
  local p
  for p in tether nginx; do
    kill -0 "${PID[$p]}" 2>/dev/null && continue
    [ "$p" = tether ] && { log "tether died; last log lines:"; tail -20 "$OUT_DIR/tether.log" >&2; }
    die "$p (pid ${PID[$p]}) is gone"
  done
}

# ---------------------------------------------------------------- what each side negotiates, kTLS
FACTS=$OUT_DIR/facts.txt
: > "$FACTS"
for p in tether nginx; do
  for l in ec rsa; do
    neg=$(openssl s_client -connect "127.0.0.1:${PORT[$p.$l]}" -servername localhost -brief < /dev/null 2>&1 |
      awk -F': ' '/^Protocol version/ {v = $2} /^Ciphersuite/ {c = $2} /^Peer signature type/ {s = $2}
                  /^Server Temp Key|^Negotiated TLS1.3 group/ {k = $2} END { printf "%s %s sig=%s kx=%s", v, c, s, k }')
    echo "$p $l $neg" >> "$FACTS"
  done
done
ULP=$(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null || echo "?")
# nginx asks OpenSSL for kTLS (ssl_conf_command Options KTLS): watch each proxy's
# setsockopt and sendfile calls during one TLS download of 1 MiB from its ec listener.
head -c 1048576 "$WWW/1g.bin" > "$WWW/1m.bin"
declare -A KTLS
ktls_check() {  # proxy: what its process asked of the kernel during one TLS download
  local p=$1 f=$OUT_DIR/strace-$1-ktls.txt spid ulp ulp_ok sendfiles
  if ! command -v strace >/dev/null 2>&1; then KTLS[$p]="not checked (no strace)"; return; fi
  strace -f -e trace=setsockopt,sendfile -o "$f" -p "${PID[$p]}" 2>/dev/null &
  spid=$!; PIDS+=("$spid")
  sleep 1
  curl -sk -o /dev/null "$(url "$p" ec)/1m.bin" || true
  sleep 0.5
  kill -INT "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  ulp=$(grep -c 'TCP_ULP' "$f" || true)
  ulp_ok=$(grep 'TCP_ULP' "$f" | grep -c '= 0$' || true)
  sendfiles=$(grep -cE '^[0-9]+ +sendfile' "$f" || true)
  if [ "$ulp" -gt 0 ]; then
    KTLS[$p]="$p tried setsockopt(TCP_ULP, \"tls\") $ulp time(s), $ulp_ok succeeded (\`$(grep -m1 TCP_ULP "$f" | sed -E 's/^[0-9]+ +//')\`)"
  else
    KTLS[$p]="$p made no setsockopt(TCP_ULP) call"
  fi
  KTLS[$p]="${KTLS[$p]}, $sendfiles sendfile call(s) during a 1 MiB TLS download"
}
ktls_check nginx
ktls_check tether
log "available ULPs: $ULP; ${KTLS[nginx]}; ${KTLS[tether]}"

# ---------------------------------------------------------------- scenarios
RES=$OUT_DIR/results.txt
echo "# scenario proxy round rate cpu_us_per_op ops p99_us errors extra" > "$RES"

# s_time_run scenario proxy listener round mode(new|reuse): $HS_CLIENTS clients in parallel
s_time_run() {
  local sc=$1 p=$2 l=$3 r=$4 mode=$5 i t0 t1 w0 w1 conns full resumed rate cpu pids=()
  t0=$(cpu_ticks "${PID[$p]}"); w0=$(now)
  for i in $(seq "$HS_CLIENTS"); do
    taskset -c "$LOAD_CPU" timeout $((DURATION + 20)) openssl s_time -connect "127.0.0.1:${PORT[$p.$l]}" \
      "-$mode" -www /1k.bin -time "$DURATION" > "$OUT_DIR/stime-$sc-$p-$r-$i.txt" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
  w1=$(now); t1=$(cpu_ticks "${PID[$p]}")
  # s_time prints one mark per connection: `r` resumed, `*` (TLS >= 1.1) a full handshake
  conns=0; full=0; resumed=0
  for i in $(seq "$HS_CLIENTS"); do
    local f=$OUT_DIR/stime-$sc-$p-$r-$i.txt n
    n=$(awk '/connections in [0-9.]+s;/ {print $1; exit}' "$f"); conns=$((conns + ${n:-0}))
    n=$(grep -E '^[*rt3]+$' "$f" | tr -cd 'r' | wc -c); resumed=$((resumed + n))
    n=$(grep -E '^[*rt3]+$' "$f" | tr -cd '*' | wc -c); full=$((full + n))
  done
  rate=$(awk -v n="$conns" -v a="$w0" -v b="$w1" 'BEGIN { if (n > 0) printf "%.0f", n / (b - a); else print "nan" }')
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$conns" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / hz / n; else print "nan" }')
  echo "$sc $p $r $rate $cpu $conns nan 0 full=$full,resumed=$resumed" >> "$RES"
  log "$sc $p round $r: $rate handshakes/s, $cpu µs CPU/handshake ($conns connections: $full full, $resumed resumed)"
  alive_check
}

to_us() {  # wrk latency (12.3us, 4.56ms, 1.2s) -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : -1
    if (f < 0) print "nan"; else printf "%.1f", n * f }'
}
wrk_run() {  # scenario proxy round url
  local sc=$1 p=$2 r=$3 u=$4 out t0 t1 reqs rps p99 err cpu
  out=$OUT_DIR/wrk-$sc-$p-$r.txt
  t0=$(cpu_ticks "${PID[$p]}")
  taskset -c "$LOAD_CPU" timeout $((DURATION + 20)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency "$u" > "$out" 2>&1 || true
  t1=$(cpu_ticks "${PID[$p]}")
  reqs=$(awk '/requests in/ {print $1; exit}' "$out"); reqs=${reqs:-0}
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out"); rps=${rps:-nan}
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
  err=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print "nan" }')
  echo "$sc $p $r $rps $cpu $reqs $p99 $err -" >> "$RES"
  log "$sc $p round $r: $rps req/s, p99 $p99 µs, $cpu µs CPU/req, errors $err"
  alive_check
}
bulk_run() {  # scenario proxy round url
  local sc=$1 p=$2 r=$3 u=$4 t0 t1 res speed size code mbs cpug
  t0=$(cpu_ticks "${PID[$p]}")
  res=$(taskset -c "$LOAD_CPU" curl -sk -o /dev/null --max-time 120 \
    -w '%{speed_download} %{size_download} %{http_code}' "$u" || true)
  t1=$(cpu_ticks "${PID[$p]}")
  read -r speed size code <<< "$res"
  mbs=$(awk -v s="${speed:-0}" -v z="${size:-0}" -v want="$BULK_SIZE" 'BEGIN { if (z == want) printf "%.0f", s / 1e6; else print "nan" }')
  cpug=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v z="${size:-0}" 'BEGIN { if (z > 0) printf "%.3f", d / hz / (z / 1073741824); else print "nan" }')
  echo "$sc $p $r $mbs $cpug ${size:-0} nan $([ "${code:-000}" = 200 ] && echo 0 || echo 1) http=${code:-000}" >> "$RES"
  log "$sc $p round $r: $mbs MB/s, $cpug CPU s/GiB ($size bytes, HTTP $code)"
  alive_check
}

log "warm-up: ${WARMUP}s of each load per proxy"
for p in tether nginx; do
  for l in ec rsa; do
    taskset -c "$LOAD_CPU" openssl s_time -connect "127.0.0.1:${PORT[$p.$l]}" -new -www /1k.bin -time "$WARMUP" > /dev/null 2>&1 || true
  done
  taskset -c "$LOAD_CPU" timeout $((WARMUP + 20)) wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$(url "$p" proxy)/1k.bin" > /dev/null 2>&1 || true
done
alive_check

# Within a round the proxy that goes first alternates, so drifting noise hits both alike.
order() { if [ $(($1 % 2)) = 1 ]; then echo tether nginx; else echo nginx tether; fi; }
for r in $(seq "$ROUNDS"); do
  log "round $r of $ROUNDS (load average $(cut -d' ' -f1 /proc/loadavg))"
  for p in $(order "$r"); do s_time_run full-ec "$p" ec "$r" new; done
  for p in $(order "$r"); do s_time_run full-rsa "$p" rsa "$r" new; done
  for p in $(order "$r"); do s_time_run resumed "$p" ec "$r" reuse; done
  for p in $(order "$r"); do wrk_run keepalive "$p" "$r" "$(url "$p" proxy)/1k.bin"; done
  for p in $(order "$r"); do bulk_run bulk-tls "$p" "$r" "$(url "$p" proxy)/1g.bin"; done
  for p in $(order "$r"); do bulk_run bulk-static "$p" "$r" "$(url "$p" ec)/1g.bin"; done
  for p in $(order "$r"); do bulk_run bulk-plain "$p" "$r" "$(url "$p" plain)/1g.bin"; done
done

# ---------------------------------------------------------------- optional profile
if [ "$PERF" = 1 ]; then
  perf_one() {  # name, then the load command (run in the background, pinned to LOAD_CPU)
    local name=$1 wpid; shift
    log "perf: recording tether for ${PERF_SECONDS}s under $name"
    taskset -c "$LOAD_CPU" "$@" > "$OUT_DIR/perf-load-$name.txt" 2>&1 &
    wpid=$!; PIDS+=("$wpid")
    sleep 1
    perf record -q -F 499 -g -p "$TETHER_PID" -o "$OUT_DIR/perf-$name.data" -- sleep "$PERF_SECONDS" > /dev/null 2>&1 ||
      log "perf record failed"
    kill "$wpid" 2>/dev/null || true
    wait "$wpid" 2>/dev/null || true
    perf report -i "$OUT_DIR/perf-$name.data" --no-children --stdio --percent-limit 1 -g none \
      > "$OUT_DIR/perf-$name-self.txt" 2>/dev/null || true
    perf report -i "$OUT_DIR/perf-$name.data" --no-children --stdio --percent-limit 2 -g none --sort dso \
      > "$OUT_DIR/perf-$name-dso.txt" 2>/dev/null || true
  }
  perf_one rsa timeout $((PERF_SECONDS + 5)) openssl s_time -connect "127.0.0.1:${PORT[tether.rsa]}" -new -www /1k.bin -time $((PERF_SECONDS + 3))
  perf_one ec timeout $((PERF_SECONDS + 5)) openssl s_time -connect "127.0.0.1:${PORT[tether.ec]}" -new -www /1k.bin -time $((PERF_SECONDS + 3))
  perf_one keepalive timeout $((PERF_SECONDS + 5)) wrk -t1 -c"$CONNS" -d"$((PERF_SECONDS + 3))s" "$(url tether proxy)/1k.bin"
  perf_one bulk timeout $((PERF_SECONDS + 5)) curl -sk -o /dev/null -o /dev/null -o /dev/null "$(url tether proxy)/1g.bin" "$(url tether proxy)/1g.bin" "$(url tether proxy)/1g.bin"
fi

# ---------------------------------------------------------------- report
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p && $c != "nan" { print $c }' "$RES" | median; }
rng() {  # scenario proxy column
  awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p && $c != "nan" { print $c }' "$RES" | sort -g |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s–%s", lo, hi; else print "nan" }'
}
sumc() { awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p && $c != "nan" { t += $c } END { print t + 0 }' "$RES"; }
extra_sum() {  # scenario proxy key: sum of key=N in the extra column
  awk -v s="$1" -v p="$2" -v k="$3" '$1 == s && $2 == p { n = split($9, a, ","); for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == k) t += kv[2] } } END { print t + 0 }' "$RES"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "nan"; else printf "%.2f", a / b }'; }
busy() { awk -v r="$1" -v c="$2" 'BEGIN { if (r == "nan" || c == "nan") print "nan"; else printf "%.0f %%", r * c / 1e4 }'; }
inv() { awk -v v="$1" 'BEGIN { if (v == "nan" || v + 0 == 0) print "nan"; else printf "%.0f", 1e6 / v }'; }
pass() {  # value op limit
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { if (v == "nan") { print "?"; exit }
    ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "pass" : "**FAIL**" }'
}

first_line() { { "$@" 2>&1 || true; } | head -1 || true; }
tver=$(first_line "$TETHER" --version)
nver=$(first_line "$NGINX" -v | sed 's/.*: nginx.//')
over=$(first_line openssl version)
wver=$(first_line wrk -v | awk '{print $2}')
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'); $tver; nginx $nver; $over (nginx, s_time, wrk, curl); wrk $wver"
  echo "Machine: nproc $(nproc), $cpu_model, kernel $(uname -r)"
  echo "Load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "Settings: ROUNDS=$ROUNDS DURATION=${DURATION}s HS_CLIENTS=$HS_CLIENTS CONNS=$CONNS; proxies on CPU $PROXY_CPU, backend + clients on CPU $LOAD_CPU"
  echo
  echo "Negotiated (openssl s_client -brief):"
  echo
  sed 's/^/    /' "$FACTS"
  echo
  echo "kTLS: available ULPs \`$ULP\`; ${KTLS[nginx]}; ${KTLS[tether]}."
  echo
  echo "Handshakes ($HS_CLIENTS × \`openssl s_time -www /1k.bin\` for ${DURATION}s; medians of $ROUNDS; CPU = proxy utime+stime / connections; capacity = 1 s / CPU per handshake):"
  echo
  echo "| scenario | | handshakes/s | range | CPU µs/handshake | range | proxy CPU busy | capacity/s of one core | full / resumed |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for sc in full-ec full-rsa resumed; do
    for p in tether nginx; do
      echo "| $sc | $p | $(med "$sc" "$p" 4) | $(rng "$sc" "$p" 4) | $(med "$sc" "$p" 5) | $(rng "$sc" "$p" 5) | $(busy "$(med "$sc" "$p" 4)" "$(med "$sc" "$p" 5)") | $(inv "$(med "$sc" "$p" 5)") | $(extra_sum "$sc" "$p" full) / $(extra_sum "$sc" "$p" resumed) |"
    done
  done
  echo
  echo "Proxied 1 KiB over kept-alive TLS (wrk -t1 -c$CONNS, medians of $ROUNDS × ${DURATION}s):"
  echo
  echo "| | req/s | range | p99 | CPU µs/request | range | errors |"
  echo "|---|---|---|---|---|---|---|"
  for p in tether nginx; do
    echo "| $p | $(med keepalive "$p" 4) | $(rng keepalive "$p" 4) | $(med keepalive "$p" 7) µs | $(med keepalive "$p" 5) | $(rng keepalive "$p" 5) | $(sumc keepalive "$p" 8) |"
  done
  echo
  echo "Bulk: one 1 GiB download with curl (medians of $ROUNDS; CPU = the proxy's CPU s per GiB):"
  echo
  echo "| download | | MB/s | range | CPU s/GiB | range | failed |"
  echo "|---|---|---|---|---|---|---|"
  for sc in bulk-tls bulk-static bulk-plain; do
    for p in tether nginx; do
      echo "| $sc | $p | $(med "$sc" "$p" 4) | $(rng "$sc" "$p" 4) | $(med "$sc" "$p" 5) | $(rng "$sc" "$p" 5) | $(sumc "$sc" "$p" 8) |"
    done
  done
  echo
  r_hs_ec=$(ratio "$(med full-ec tether 4)" "$(med full-ec nginx 4)")
  r_hs_rsa=$(ratio "$(med full-rsa tether 4)" "$(med full-rsa nginx 4)")
  r_hs_res=$(ratio "$(med resumed tether 4)" "$(med resumed nginx 4)")
  # capacity ratio: nginx CPU per handshake / tether CPU per handshake
  c_hs_ec=$(ratio "$(med full-ec nginx 5)" "$(med full-ec tether 5)")
  c_hs_rsa=$(ratio "$(med full-rsa nginx 5)" "$(med full-rsa tether 5)")
  c_hs_res=$(ratio "$(med resumed nginx 5)" "$(med resumed tether 5)")
  r_ka=$(ratio "$(med keepalive tether 5)" "$(med keepalive nginx 5)")
  r_bulk=$(ratio "$(med bulk-tls tether 4)" "$(med bulk-tls nginx 4)")
  r_bulkc=$(ratio "$(med bulk-tls tether 5)" "$(med bulk-tls nginx 5)")
  r_static=$(ratio "$(med bulk-static tether 4)" "$(med bulk-static nginx 4)")
  r_self=$(ratio "$(med bulk-tls tether 4)" "$(med bulk-plain tether 4)")
  r_selfs=$(ratio "$(med bulk-static tether 4)" "$(med bulk-plain tether 4)")
  echo "Targets (issue 10):"
  echo
  echo "| measure | tether / nginx | target | result |"
  echo "|---|---|---|---|"
  # Handshakes/s are judged per core of the proxy (capacity = 1 s / CPU per handshake):
  # the s_time clients on one core cannot saturate a proxy on the other (see "proxy CPU busy").
  echo "| full handshakes/s, ECDSA P-256: capacity of one core (measured rate, client-bound) | $c_hs_ec ($r_hs_ec) | ≥ 1 | $(pass "$c_hs_ec" ">=" 1) |"
  echo "| full handshakes/s, RSA 2048: capacity of one core (measured rate, client-bound) | $c_hs_rsa ($r_hs_rsa) | ≥ 1 | $(pass "$c_hs_rsa" ">=" 1) |"
  echo "| resumed handshakes/s: capacity of one core (measured rate, client-bound) | $c_hs_res ($r_hs_res) | ≥ 1 | $(pass "$c_hs_res" ">=" 1) |"
  echo "| CPU per proxied 1 KiB request, kept-alive TLS | $r_ka | ≤ 1 | $(pass "$r_ka" "<=" 1) |"
  echo "| TLS bulk MB/s, proxied (no target vs nginx) | $r_bulk (CPU s/GiB: $r_bulkc) | — | — |"
  echo "| TLS bulk MB/s, static file (no target vs nginx) | $r_static | — | — |"
  echo "| TLS bulk, proxied / tether's plaintext proxied bulk | tether: $r_self | ≥ 0.8 (issue: with kTLS; none here) | $(pass "$r_self" ">=" 0.8) |"
  echo "| TLS bulk, static / tether's plaintext proxied bulk | tether: $r_selfs | ≥ 0.8 | $(pass "$r_selfs" ">=" 0.8) |"
  echo
  warns=$(grep -cE ' (WARN|ERROR) ' "$OUT_DIR/tether.log" || true)
  echo "tether log: $warns WARN/ERROR lines (RUST_LOG=${RUST_LOG:-warn}); raw outputs in $OUT_DIR"
  if [ "$warns" -gt 0 ]; then
    echo
    echo '```'
    grep -E ' (WARN|ERROR) ' "$OUT_DIR/tether.log" | sed -E 's/^\[[^ ]+ /[/' | sort | uniq -c | sort -rn | head -10
    echo '```'
  fi
  if [ "$PERF" = 1 ]; then
    for n in rsa ec keepalive bulk; do
      [ -s "$OUT_DIR/perf-$n-self.txt" ] || continue
      echo
      echo "perf (tether, $n, self time by shared object, then top symbols):"
      echo
      echo '```'
      grep -E '^ +[0-9]' "$OUT_DIR/perf-$n-dso.txt" | head -8
      grep -E '^ +[0-9]' "$OUT_DIR/perf-$n-self.txt" | head -20
      echo '```'
    done
  fi
} | tee "$OUT_DIR/report.md"
