#!/usr/bin/env bash
# Install what tether's tests and demos need on a Debian machine: curl, nc (netcat-openbsd),
# python3, redis-server, chromium, openssl, haproxy, nghttp (nghttp2-client), pebble, dnsmasq, and the Python packages websockets, aiosmtpd, h2, grpcio and grpcio-health-checking. Safe to run twice;
# skips apt when everything is already there.
set -euo pipefail

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
# The tests rely on OpenBSD netcat's -N (shutdown after EOF on stdin).
if ! nc -h 2>&1 | grep -qE '^[[:space:]]+-N'; then need+=(netcat-openbsd); fi
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The affinity store tests (crates/store) start their own redis-server on a free port.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The broker's /monitor page is checked in headless Chromium (tests/broker.rs).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The TLS tests make their certificates at test time and use s_client (tests/tls*.rs).
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The PROXY protocol tests put HAProxy (send-proxy-v2) in front of tether (tests/proxy_protocol.rs).
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
# The HTTP/2 tests drive many streams on one connection with nghttp (tests/http2.rs).
command -v nghttp >/dev/null 2>&1 || need+=(nghttp2-client)
# The ACME tests get certificates from pebble, Let's Encrypt's test CA (tests/acme*.rs).
command -v pebble >/dev/null 2>&1 || need+=(pebble)
# Basic auth's password files are made at test time with htpasswd (crates/auth/tests).
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
# Compressed answers are decoded by the real tools (crates/compress/tests).
command -v gzip >/dev/null 2>&1 || need+=(gzip)
command -v brotli >/dev/null 2>&1 || need+=(brotli)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
# The combined access log is read back by GoAccess (tests/access_log_formats.rs).
command -v goaccess >/dev/null 2>&1 || need+=(goaccess)
# The store outage tests freeze redis-server with kill -STOP (procps).
command -v kill >/dev/null 2>&1 || need+=(procps)
# Backends found in DNS are served by a real dnsmasq on a loopback port (tests/dns_backends.rs);
# dnsmasq-base is the binary without the system service.
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The WebSocket tests use the Python `websockets` package (client and echo server).
if ! python3 -c 'import websockets' >/dev/null 2>&1; then
  echo "setup: installing python websockets"
  python3 -m pip install -q websockets 2>/dev/null || python3 -m pip install -q --break-system-packages websockets
fi
# The mail tests (tether-mail, tether-broker) send to a real SMTP server: aiosmtpd.
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "setup: installing python aiosmtpd"
  python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
fi
# The HTTP/2 attack tests (tests/http2_attacks.rs) build their frames with Python's h2 package.
if ! python3 -c 'import h2, hpack, hyperframe' >/dev/null 2>&1; then
  echo "setup: installing python h2"
  python3 -m pip install -q h2 2>/dev/null || python3 -m pip install -q --break-system-packages h2
fi
# The gRPC tests (tests/grpc.rs, tests/grpc_health.rs) run grpcio servers and clients and
# the standard health service (grpcio-health-checking).
if ! python3 -c 'import grpc, grpc_health' >/dev/null 2>&1; then
  echo "setup: installing python grpcio grpcio-health-checking"
  python3 -m pip install -q grpcio grpcio-health-checking 2>/dev/null || python3 -m pip install -q --break-system-packages grpcio grpcio-health-checking
fi
# HTTP/1.1 clients to an h2c upstream (tests/h2_upstream.rs) include python requests.
if ! python3 -c 'import requests' >/dev/null 2>&1; then
  echo "setup: installing python requests"
  python3 -m pip install -q requests 2>/dev/null || python3 -m pip install -q --break-system-packages requests
fi
# argon2 password files for the basic-auth tests (crates/auth/tests) come from argon2-cffi.
if ! python3 -c 'import argon2' >/dev/null 2>&1; then
  echo "setup: installing python argon2-cffi"
  python3 -m pip install -q argon2-cffi 2>/dev/null || python3 -m pip install -q --break-system-packages argon2-cffi
fi
echo "setup: curl $(curl --version | head -1 | cut -d' ' -f2), $(python3 --version), nc ok, $(redis-server --version | cut -d' ' -f1-3)"
