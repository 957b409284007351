#!/usr/bin/env bash
# Heap allocations per request on the proxy's steady-state path, counted by the
# `count-allocs` allocator (INFO proxy's `allocations` field).
#
#   scripts/alloc.sh [REQUESTS]        default 200000 per workload
#   scripts/alloc.sh --tls [REQUESTS]  the same over TLS, beside the plain port
#
# Builds the proxy with --features count-allocs (into target/alloc), starts its own cluster
# on 7500..7505 (stopped at exit) and the proxy, warms the connections up, then runs
# redis-benchmark -c 50 -d 64 GET and SET at -P 1 and -P 16 and prints allocations/request.
# --tls: a TLS-only cluster on 7510..7515 (throwaway certificates from scripts/cluster.sh
# certs), the proxy with backend_tls and a tls_port beside its plain port; every workload
# runs against the TLS port (redis-benchmark --tls) and then the plain port of the same
# proxy (so the plain column is clients in clear, nodes over TLS), each warmed up first.
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
TLS=0
[[ "${1:-}" == --tls ]] && { TLS=1; shift; }
N="${1:-200000}"
BASE=7500
((TLS)) && BASE=7510
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
BIN="$ROOT/target/alloc/release/redis-cluster-proxy"
PID='' TMP=''

cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
    "$ROOT/scripts/cluster.sh" stop "$BASE" >/dev/null 2>&1 || true
    [[ -n "$TMP" ]] && rm -rf "$TMP"
    return 0
}
trap cleanup EXIT

cargo build --release --features count-allocs --target-dir "$ROOT/target/alloc" \
    --manifest-path "$ROOT/Cargo.toml" >&2
CONF=()
if ((TLS)); then
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/alloc.XXXXXX")"
    "$ROOT/scripts/cluster.sh" certs "$TMP" >&2
    export CLUSTER_TLS_DIR="$TMP" # start and stop (cleanup) the TLS-only cluster
    TLS_PORT=$(free_port)
    printf '%s\n' "redis_nodes: [\"127.0.0.1:$BASE\"]" "tls_port: $TLS_PORT" \
        "tls: { cert_file: \"$TMP/server.pem\", key_file: \"$TMP/server.key\" }" \
        "backend_tls: { ca_file: \"$TMP/ca.pem\" }" >"$TMP/proxy.yaml"
    CONF=(--config "$TMP/proxy.yaml")
fi
"$ROOT/scripts/cluster.sh" start "$BASE" >&2
"$BIN" "${CONF[@]}" --nodes "127.0.0.1:$BASE" --port "$PORT" --log-level warn </dev/null >"${TMP:-/dev/null}${TMP:+/proxy.log}" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
allocs() { timeout 5 redis-cli -p "$PORT" info proxy | tr -d '\r' | sed -n 's/^allocations://p'; }
[[ -n "$(allocs)" ]] || { echo "the proxy does not report allocations" >&2; exit 1; }
if ((TLS)); then
    TLSB=(-p "$TLS_PORT" --tls --cacert "$TMP/ca.pem")
    timeout 120 redis-benchmark "${TLSB[@]}" -t get,set -c 50 -n 20000 -r 100000 -q >/dev/null 2>&1
    timeout 120 redis-benchmark -p "$PORT" -t get,set -c 50 -n 20000 -r 100000 -q >/dev/null 2>&1
    per_req() { # per_req REDIS-BENCHMARK-ARGS... -> allocations per request of one run of N
        local before after
        before=$(allocs)
        timeout 300 redis-benchmark "$@" -c 50 -d 64 -n "$N" -r 100000 -q >/dev/null 2>&1
        after=$(allocs)
        awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN { printf "%.4f", (a - b) / n }'
    }
    printf '%-8s %-6s %-22s %s\n' workload P "tls port (allocs/req)" "plain port, nodes TLS (allocs/req)"
    for P in 1 16; do
        for T in set get; do
            t=$(per_req "${TLSB[@]}" -t "$T" -P "$P")
            p=$(per_req -p "$PORT" -t "$T" -P "$P")
            printf '%-8s %-6s %-22s %s\n' "$T" "$P" "$t" "$p"
        done
    done
    grep -i 'warn\|error' "$TMP/proxy.log" >&2 || true
    echo "(commit $(git -C "$ROOT" rev-parse --short HEAD); redis-benchmark opens its 50 connections anew per run, so per-connection setup, with the TLS port a TLS handshake, is included)"
    exit 0
fi
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
