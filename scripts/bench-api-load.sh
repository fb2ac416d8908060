#!/usr/bin/env bash
# Load test of the HTTP API with wrk (Debian package `wrk`), on loopback.
#
#   scripts/bench-api-load.sh [DURATION]   (default 30s; the 1,000-client run is always 30s)
#
# Builds weir in release mode, starts `weir serve` on a free port with a
# fresh state folder, issues an engineer token, and measures
# GET /api/v1/whoami (authentication, role check, one durable audit event
# per request) with the verified-token cache on and off, at 64 and at 1,000
# connections, and, for the ceiling of the HTTP stack alone on this machine,
# GET /.well-known/jwks.json (no authentication, no audit event) at 64
# connections. Prints wrk's summaries (requests/s, latency percentiles,
# errors). Results are recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-30s}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/weir-target-rel}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --locked -p weir-cli
WEIR="$CARGO_TARGET_DIR/release/weir"
WORK=$(mktemp -d)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n 65536 2>/dev/null || true

run() { # cache-capacity connections label duration [path, unauthenticated]
    local state="$WORK/state-$1-$2-${5:+ceiling}"
    "$WEIR" --state-dir "$state" audit verify >/dev/null
    local token
    token=$("$WEIR" --state-dir "$state" token issue --sub bench --role engineer --ttl 2h)
    local port=$((18000 + RANDOM % 1000))
    "$WEIR" --state-dir "$state" serve --listen "127.0.0.1:$port" --token-cache "$1" 2>"$WORK/serve.log" &
    SERVER=$!
    for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/api/v1/openapi.json" && break; sleep 0.1; done
    echo
    echo "== $3: $2 connections, token cache capacity $1, $4"
    if [ -n "${5:-}" ]; then
        wrk -t2 -c"$2" -d"$4" --latency "http://127.0.0.1:$port$5"
    else
        wrk -t2 -c"$2" -d"$4" --latency -H "Authorization: Bearer $token" \
            "http://127.0.0.1:$port/api/v1/whoami"
    fi
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
}

run 100000 64 "ceiling: JWKS, no auth, no audit" "$DURATION" /.well-known/jwks.json
run 100000 64 "cached" "$DURATION"
run 0 64 "uncached" "$DURATION"
run 100000 1000 "cached, 1,000 clients" 30s
