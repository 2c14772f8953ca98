#!/usr/bin/env bash
# The fleet test, long (issue 23 item 5): tests/fleet.rs with its timeline stretched.
#
#   bash benches/fleet.sh                 # FLEET_SCALE=4: about 4 minutes per run
#   FLEET_SCALE=8 bash benches/fleet.sh
#   RELEASE=1 bash benches/fleet.sh       # a release build (the figures are counts of
#                                         # failures and lost sessions: debug is the default)
#
# Both runs of tests/fleet.rs, one after the other: three tether instances behind HAProxy
# (PROXY protocol v2), learned sessions shared through a Sentinel group (one master, one
# replica, three sentinels, down-after-milliseconds 1000) and then through a three-master
# Redis Cluster, backends on 127.0.0.2-4 found through dnsmasq, each keeping its sessions in
# its own memory. Users click every 200 ms (30 at the start, one more a second) while the
# Redis master is killed (Sentinel run), a backend joins DNS, one leaves it (drained for
# drain_timeout_ms = 5 s x FLEET_SCALE) and one instance restarts. Each run prints one
# `fleet[...]` line: requests, failures outside and inside the failover window, the window,
# sessions lost (and those of the removed backend), the new backend's first user. The
# test's own assertions (no failure outside the window, no session lost but the removed
# backend's) hold here too. Loopback only; everything started is killed by the test.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export FLEET_SCALE=${FLEET_SCALE:-4}
cd "$repo"
echo "# fleet, FLEET_SCALE=$FLEET_SCALE ($(date -u '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD))"
profile=()
[ "${RELEASE:-0}" = 1 ] && profile=(--release)
cargo test "${profile[@]}" --test fleet -- --nocapture --test-threads=1 2>&1 |
  grep -E '^fleet\[|^test |test result' || {
    echo "the fleet test failed: rerun with cargo test --test fleet -- --nocapture"
    exit 1
  }
