#!/usr/bin/env bash
# The shared-sessions scenario of docs/affinity.md in one go: one redis-server, two
# visit_counter backends (alpha, beta), two tether instances (A, B) running
# examples/configs/shared-sessions.toml (ports rewritten to free ones), then two users with
# curl cookie jars hopping between A and B, and alpha or beta killed in the middle.
#
#   bash examples/visit_counter/demo.sh            # uses target/debug/tether (builds it)
#   TETHER=target/release/tether bash examples/visit_counter/demo.sh
#   BALANCE=learn bash examples/visit_counter/demo.sh   # the learned-session variant
#
# Needs redis-server, python3, curl. Everything it starts is killed on exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BALANCE=${BALANCE:-cookie}
if [ -z "${TETHER:-}" ]; then
  (cd "$repo" && cargo build --quiet --bin tether)
  TETHER=$repo/target/debug/tether
fi
TMP=$(mktemp -d /tmp/visit-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2; exit 1
}
R=$(free_port); P1=$(free_port); P2=$(free_port); A=$(free_port); B=$(free_port)

redis-server --port "$R" --save '' --appendonly no > "$TMP/redis.log" &
PIDS+=($!); wait_port "$R"
declare -A BACKEND
for name in alpha beta; do
  port=$P1; [ "$name" = beta ] && port=$P2
  python3 "$repo/examples/visit_counter/app.py" --port "$port" --name "$name" --redis "127.0.0.1:$R" &
  BACKEND[$name]=$!; PIDS+=($!); wait_port "$port"
done

config() {  # listen port -> config text
  sed -e "s/127.0.0.1:5001/127.0.0.1:$P1/; s/127.0.0.1:5002/127.0.0.1:$P2/; s/127.0.0.1:8080/127.0.0.1:$1/" \
    "$repo/examples/configs/shared-sessions.toml" |
  if [ "$BALANCE" = learn ]; then
    sed -e '/^keys = /d; /^cookie_/d' \
        -e "s/^balance = \"cookie\"/balance = \"learn\"\nsession_cookie = \"visit_sid\"/" |
      { echo "store = \"redis://127.0.0.1:$R/0\""; cat; }
  else cat; fi
}
for i in A B; do
  port=$A; [ "$i" = B ] && port=$B
  config "$port" > "$TMP/$i.toml"
  RUST_LOG=info "$TETHER" "$TMP/$i.toml" 2> "$TMP/tether-$i.log" &
  PIDS+=($!); wait_port "$port"
done
echo "redis :$R   alpha :$P1   beta :$P2   tether A :$A   tether B :$B   (balance = \"$BALANCE\")"

visit() {  # user instance
  local port=$A; [ "$2" = B ] && port=$B
  printf '%-5s via %s: ' "$1" "$2"
  curl -sS -c "$TMP/$1.jar" -b "$TMP/$1.jar" "http://127.0.0.1:$port/"
  echo
}
for i in A B A B; do visit alice "$i"; visit bob "$i"; done
home=$(curl -sS -b "$TMP/alice.jar" "http://127.0.0.1:$A/" | sed -E 's/.*Hello from ([a-z]+)!.*/\1/')
echo "--- killing $home, alice's backend (that was visit 5 for alice, via A)"
kill "${BACKEND[$home]}"
wait "${BACKEND[$home]}" 2>/dev/null || true
for i in B A B; do visit alice "$i"; visit bob "$i"; done
