#!/usr/bin/env bash
# Memory per idle keep-alive connection of one tether build, quickly, for A/B comparisons of
# the core's and the session's per-connection state (compare.sh measures the same thing
# against nginx and HAProxy, in a full run).
#
#   bash benches/idle_rss.sh                       # target/release/tether, 10000 connections
#   TETHER=/tmp/old/tether COUNT=5000 bash benches/idle_rss.sh
#
# tether (--no-supervise: the process measured is the one that serves) serves a 1 KiB file
# on a free loopback port; benches/support/idle_conns.py opens COUNT connections, sends one
# GET on each, reads the answer and leaves them idle; the VmRSS growth divided by the
# connections held is printed. Everything started is killed on exit.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNT=${COUNT:-10000}
BENCH=idle_rss
# shellcheck source=benches/support/lib.sh
. "$repo/benches/support/lib.sh"
[ -n "${TETHER:-}" ] || build_tether
ulimit -n $((COUNT * 2 + 1024)) 2>/dev/null || true
bench_tmp
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$TMP/www"
head -c 1024 /dev/urandom > "$TMP/www/1k.bin"
cat > "$TMP/tether.toml" <<TOML
max_connections = $((COUNT + 1000))
[[listener]]
listen = "127.0.0.1:$PORT"
protocol = "http"
root = "$TMP/www"
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
  --path /1k.bin --hold 120 --timeout 90 > "$TMP/idle.txt" 2>&1 &
PIDS+=("$!")
for _ in $(seq 900); do
  grep -q '^ready' "$TMP/idle.txt" && break
  sleep 0.1
done
grep -q '^ready' "$TMP/idle.txt" || { echo "idle_conns did not finish: $(cat "$TMP/idle.txt")" >&2; exit 1; }
sleep 1
after=$(rss_kib "$TP")
read -r _ opened failed < <(grep '^ready' "$TMP/idle.txt")
awk -v a="$after" -v b="$before" -v n="$opened" -v f="$failed" -v t="$("$TETHER" --version | head -1)" \
  'BEGIN { printf "%s: RSS %d -> %d KiB, %d idle connections (%d failed): %.3f KiB per connection\n", t, b, a, n, f, (a - b) / n }'
