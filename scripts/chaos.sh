#!/usr/bin/env bash
# The long chaos run, by hand (minutes; not part of the test suite): a fresh 3+3 cluster
# (scripts/cluster.sh, cluster-node-timeout 2000), the proxy in front of it, and
# scripts/chaos.py: 8 RESP2 clients (5 s timeout, no retries) INCR 5,000 counters through
# a reshard of 4,000 slots there and back, a slot held half-migrated, a graceful CLUSTER
# FAILOVER and a SIGKILLed master. Prints the errors per phase and the acknowledged
# increments lost, for each target, on a fresh cluster each time.
#
#   scripts/chaos.sh [--runs N] [--base PORT] [--proxy-bin PATH] [--peer-bin PATH]
#                    [--predixy PATH]
#
#   --runs N          passes per target (default 1)
#   --base PORT       cluster base port (default 7400); the proxy listens on PORT+80
#   --proxy-bin PATH  the proxy binary (default: target/release, built here)
#   --peer-bin PATH   also run another build of this proxy (e.g. an older commit's), as
#                     "peer", without --failover-wait
#   --predixy PATH    also run against predixy (a built binary), on PORT+81
#   --failover-wait D the proxy's failover_wait (default: its own, 5s)
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
RUNS=1
BASE=7400
BIN=""
PREDIXY=""
PEER=""
WAIT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --base) BASE=$2; shift 2 ;;
        --proxy-bin) BIN=$2; shift 2 ;;
        --predixy) PREDIXY=$2; shift 2 ;;
        --peer-bin) PEER=$2; shift 2 ;;
        --failover-wait) WAIT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "[chaos] unknown argument $1" >&2; exit 2 ;;
    esac
done
"$ROOT/scripts/install-deps.sh" >/dev/null
if [[ -z "$BIN" ]]; then
    cargo build --release --quiet
    BIN="$ROOT/target/release/redis-cluster-proxy"
fi
PPORT=$((BASE + 80))
XPORT=$((BASE + 81))
TMP="$(mktemp -d)"
PID=""
cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
    "$ROOT/scripts/cluster.sh" stop "$BASE" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

one_pass() { # label [binary]
    local label=$1 bin=${2:-$BIN}
    "$ROOT/scripts/cluster.sh" stop "$BASE" >/dev/null 2>&1 || true
    "$ROOT/scripts/cluster.sh" start "$BASE" >/dev/null
    if [[ "$label" != predixy ]]; then
        {
            echo "proxy_port: $PPORT"
            echo "redis_nodes: [\"127.0.0.1:$BASE\"]"
            echo "log_level: warn"
            if [[ -n "$WAIT" && "$label" == proxy ]]; then echo "failover_wait: $WAIT"; fi
        } >"$TMP/proxy.yaml"
        "$bin" --config "$TMP/proxy.yaml" >"$TMP/proxy.log" 2>&1 &
        PID=$!
        target="127.0.0.1:$PPORT"
    else
        cat >"$TMP/predixy.conf" <<EOF
Bind 127.0.0.1:$XPORT
WorkerThreads 1
ClientTimeout 0
Log $TMP/predixy.log
LogVerbSample 0
LogDebugSample 0
LogInfoSample 0
LogNoticeSample 1
LogWarnSample 1
LogErrorSample 1
ClusterServerPool {
    MasterReadPriority 100
    RefreshInterval 1
    ServerTimeout 5
    ServerFailureLimit 10
    ServerRetryTimeout 1
    Servers {
        + 127.0.0.1:$BASE
    }
}
EOF
        "$PREDIXY" "$TMP/predixy.conf" >/dev/null 2>&1 &
        PID=$!
        target="127.0.0.1:$XPORT"
    fi
    for _ in $(seq 100); do
        redis-cli -p "${target##*:}" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    python3 "$ROOT/scripts/chaos.py" --proxy "$target" --cluster "$BASE" --label "$label" \
        --pids "$ROOT/.cluster"
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

for r in $(seq "$RUNS"); do
    echo "[chaos] run $r of $RUNS"
    one_pass proxy
    if [[ -n "$PEER" ]]; then one_pass peer "$PEER"; fi
    if [[ -n "$PREDIXY" ]]; then one_pass predixy; fi
done
