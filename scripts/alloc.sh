#!/usr/bin/env bash
# Heap allocations per request on the proxy's steady-state path, counted by the
# `count-allocs` allocator (INFO proxy's `allocations` field).
#
#   scripts/alloc.sh [REQUESTS]      default 200000 per workload
#
# Builds the proxy with --features count-allocs (into target/alloc), starts its own cluster
# on 7500..7505 (stopped at exit) and the proxy, warms the connections up, then runs
# redis-benchmark -c 50 -d 64 GET and SET at -P 1 and -P 16 and prints allocations/request.
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
N="${1:-200000}"
BASE=7500
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BIN="$ROOT/target/alloc/release/redis-cluster-proxy"
PID=''

cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
    "$ROOT/scripts/cluster.sh" stop "$BASE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

cargo build --release --features count-allocs --target-dir "$ROOT/target/alloc" \
    --manifest-path "$ROOT/Cargo.toml" >&2
"$ROOT/scripts/cluster.sh" start "$BASE" >&2
"$BIN" --nodes "127.0.0.1:$BASE" --port "$PORT" --log-level warn </dev/null >/dev/null 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
allocs() { timeout 5 redis-cli -p "$PORT" info proxy | tr -d '\r' | sed -n 's/^allocations://p'; }
[[ -n "$(allocs)" ]] || { echo "the proxy does not report allocations" >&2; exit 1; }
timeout 120 redis-benchmark -p "$PORT" -t get,set -c 50 -n 20000 -r 100000 -q >/dev/null 2>&1
printf '%-8s %-6s %s\n' workload P allocations/request
for P in 1 16; do
    for T in set get; do
        before=$(allocs)
        timeout 300 redis-benchmark -p "$PORT" -t "$T" -c 50 -d 64 -n "$N" -P "$P" -r 100000 -q \
            >/dev/null 2>&1
        after=$(allocs)
        printf '%-8s %-6s %s\n' "$T" "$P" "$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN { printf "%.4f", (a - b) / n }')"
    done
done
echo "(commit $(git -C "$ROOT" rev-parse --short HEAD); redis-benchmark opens its 50 connections anew per run, so per-connection setup is included)"
