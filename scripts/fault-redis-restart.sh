#!/usr/bin/env bash
# Fault test: restart Redis (which keeps nothing on disk here, so every
# stream, group, fence and lease is lost) while a distributed run is in the
# middle of a stage. The run must complete, or fail with a clear error and
# then succeed when run again; the dataset must never be corrupted: it is
# either absent or a whole committed version, each row exactly once.
#
# usage: scripts/fault-redis-restart.sh WEIR_BINARY
# Needs redis-server and redis-cli; restarts the Redis on 127.0.0.1:6379 with
# the same command CI uses to start it.
set -euo pipefail

WEIR=$(realpath "$1")
URL=redis://127.0.0.1:6379
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

start_redis() {
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && return; sleep 0.2; done
    echo "Redis did not come back"; exit 1
}

mkdir -p "$WORK/lake/raw" "$WORK/policies" "$WORK/pipelines" "$WORK/state" "$WORK/markers"
printf 'id,v\n1,10\n2,20\n3,30\n' > "$WORK/lake/raw/a.csv"
cat > "$WORK/policies/fault.yaml" <<'EOF'
version: 1
stores: { lake: { url: ../lake } }
principals: { svc-fault: { kind: service } }
grants:
  - id: read-raw
    principal: svc-fault
    effect: allow
    actions: [read]
    resources: [{ store: lake, path: "raw/**" }]
  - id: write-out
    principal: svc-fault
    effect: allow
    actions: [read, write, delete, list]
    resources: [{ store: lake, path: "out/**" }]
EOF
cat > "$WORK/pipelines/fault.yaml" <<EOF
version: 1
name: fault-redis
principal: svc-fault
stores: { lake: { url: ../lake } }
datasets:
  raw: { store: lake, path: raw/a.csv, format: csv }
  out: { store: lake, path: out/copy, format: csv }
stages:
  - name: slow-copy
    kind: command
    timeout: 10s
    retries: 2
    inputs: [raw]
    outputs: [out]
    run: ["/bin/sh", "-c", "touch $WORK/markers/started-\$WEIR_ATTEMPT; sleep 2; cat \"\$WEIR_INPUT_RAW\"/* > \"\$WEIR_OUTPUT_OUT/copy.csv\""]
EOF

weir() { (cd "$WORK" && WEIR_STATE_DIR="$WORK/state" WEIR_POLICIES="$WORK/policies" exec "$WEIR" "$@"); }

weir keys rotate --hmac >/dev/null
weir keys jwks >/dev/null
# Started without the `weir` function so that `$!` is the worker itself
# (a backgrounded function is a subshell that would outlive a kill).
(cd "$WORK" && WEIR_STATE_DIR="$WORK/state" WEIR_POLICIES="$WORK/policies" \
    exec "$WEIR" worker --queue "$URL" --concurrency 2 --visibility-timeout 2) > "$WORK/worker.log" 2>&1 &
PIDS+=("$!")

echo "starting a run, restarting Redis while its stage runs"
set +e
(cd "$WORK" && WEIR_STATE_DIR="$WORK/state" WEIR_POLICIES="$WORK/policies" \
    exec "$WEIR" run pipelines/fault.yaml --queue "$URL" --output json) > "$WORK/run1.json" 2> "$WORK/run1.err" &
RUN=$!
PIDS+=("$RUN")
for _ in $(seq 1 300); do [ -e "$WORK/markers/started-1" ] && break; sleep 0.1; done
[ -e "$WORK/markers/started-1" ] || { echo "the stage never started"; cat "$WORK/run1.err" "$WORK/worker.log"; exit 1; }
redis-cli -h 127.0.0.1 shutdown nosave >/dev/null 2>&1
start_redis
wait "$RUN"
status=$?
set -e

check_dataset() {
    local manifest="$WORK/lake/out/copy/_weir/manifest.json"
    [ -e "$manifest" ] || { echo "no committed version"; return 1; }
    local version
    version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$manifest")
    diff -u "$WORK/lake/raw/a.csv" "$WORK/lake/out/copy/$version/copy.csv"
}

if [ "$status" = 0 ]; then
    echo "the run completed across the restart"
else
    echo "the run failed (exit $status); its error:"
    tail -n 5 "$WORK/run1.err"
    # A failed run leaves the dataset absent or whole, never partial.
    if [ -e "$WORK/lake/out/copy/_weir/manifest.json" ]; then check_dataset; fi
    echo "running it again"
    weir run pipelines/fault.yaml --queue "$URL" --output json > "$WORK/run2.json"
fi
check_dataset
echo "ok: the dataset is whole after a Redis restart"
