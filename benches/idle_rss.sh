#!/usr/bin/env bash
# Memory per idle keep-alive connection of one tether build, quickly, for A/B comparisons of
# the core's and the session's per-connection state (compare.sh measures the same thing
# against nginx and HAProxy, in a full run).
#
#   bash benches/idle_rss.sh                       # target/release/tether, 10000 connections
#   TETHER=/tmp/old/tether COUNT=5000 bash benches/idle_rss.sh
#   MODE=noread bash benches/idle_rss.sh           # clients that never read their answer
#   TARGET=proxy bash benches/idle_rss.sh          # through the proxy (as compare.sh does)
#
# tether (--no-supervise: the process measured is the one that serves) serves files on a
# free loopback port; benches/support/idle_conns.py opens COUNT connections and sends one
# GET on each. MODE=idle (the default): GET /1k.bin, the answer is read and the connection
# left idle (keep-alive). MODE=noread: GET /1m.bin, a 1 MiB file, far more than the socket
# buffers hold (the clients' SO_RCVBUF is set to RCVBUF, 64 KiB by default), and the answer
# is never read, so tether holds each response it cannot send. TARGET=files (the default):
# tether serves the files itself; TARGET=proxy: tether proxies to a second tether process
# that serves them (over pooled keep-alive connections, as compare.sh's nginx). The VmRSS
# growth divided by the connections held is printed. Everything started is killed on exit.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNT=${COUNT:-10000}
MODE=${MODE:-idle}
TARGET=${TARGET:-files}
RCVBUF=${RCVBUF:-65536}
BENCH=idle_rss
case "$MODE" in
  idle) FILE=1k.bin; EXTRA=() ;;
  noread) FILE=1m.bin; EXTRA=(--no-read --rcvbuf "$RCVBUF") ;;
  *) echo "MODE is idle or noread, not $MODE" >&2; exit 2 ;;
esac
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
[ -n "${TETHER:-}" ] || build_tether
ulimit -n $((COUNT * 2 + 1024)) 2>/dev/null || true
bench_tmp
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$TMP/www"
head -c 1024 /dev/urandom > "$TMP/www/1k.bin"
head -c $((1024 * 1024)) /dev/urandom > "$TMP/www/1m.bin"
case "$TARGET" in
  files) SERVE="root = \"$TMP/www\"" ;;
  proxy)
    UP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '[[listener]]\nlisten = "127.0.0.1:%s"\nprotocol = "http"\nroot = "%s"\n' \
      "$UP" "$TMP/www" > "$TMP/backend.toml"
    RUST_LOG=warn "$TETHER" --no-supervise "$TMP/backend.toml" > "$TMP/backend.log" 2>&1 &
    PIDS+=("$!")
    SERVE="upstream = \"127.0.0.1:$UP\"" ;;
  *) echo "TARGET is files or proxy, not $TARGET" >&2; exit 2 ;;
esac
cat > "$TMP/tether.toml" <<TOML
max_connections = $((COUNT + 1000))
[[listener]]
listen = "127.0.0.1:$PORT"
protocol = "http"
idle_timeout_ms = 300000
$SERVE
TOML
RUST_LOG=warn "$TETHER" --no-supervise "$TMP/tether.toml" > "$TMP/tether.log" 2>&1 &
TP=$!; PIDS+=("$TP")
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/1k.bin" && break
  sleep 0.1
done
sleep 0.5
before=$(rss_kib "$TP")
python3 "$repo/benches/support/idle_conns.py" 127.0.0.1 "$PORT" --count "$COUNT" \
  --path "/$FILE" --hold 120 --timeout 90 "${EXTRA[@]}" > "$TMP/idle.txt" 2>&1 &
PIDS+=("$!")
for _ in $(seq 900); do
  grep -q '^ready' "$TMP/idle.txt" && break
  sleep 0.1
done
grep -q '^ready' "$TMP/idle.txt" || { echo "idle_conns did not finish: $(cat "$TMP/idle.txt")" >&2; exit 1; }
# No-read: the last responses fill the socket buffers and stop within a moment.
if [ "$MODE" = idle ]; then sleep 1; else sleep 3; fi
after=$(rss_kib "$TP")
read -r _ opened failed < <(grep '^ready' "$TMP/idle.txt")
awk -v a="$after" -v b="$before" -v n="$opened" -v f="$failed" -v t="$("$TETHER" --version | head -1)" \
  -v m="$MODE" -v g="$TARGET" 'BEGIN { printf "%s: RSS %d -> %d KiB, %d %s connections to %s (%d failed): %.3f KiB per connection\n", t, b, a, n, m, g, f, (a - b) / n }'
