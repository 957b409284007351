#!/usr/bin/env bash
# Memory footprint of the proxy: RSS when idle, RSS with N idle clients connected, the cost
# of one idle client in KB, and the size of the stripped release binary.
#
#   scripts/memory.sh [CLIENTS]        default 10000
#
# Builds the release binary, starts its own cluster on 7400..7405 (MEMORY_BASE to change;
# only that cluster is stopped at exit), starts the proxy on a free port with max_clients
# above CLIENTS, opens CLIENTS idle connections from a python3 helper (which raises its own
# RLIMIT_NOFILE to the hard limit), and reads the proxy's VmRSS from /proc/PID/status.
# Every step is bounded in time; the proxy, the helper and the temp dir are cleaned up.
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
N="${1:-10000}"
BASE="${MEMORY_BASE:-7400}"
BIN="$ROOT/target/release/redis-cluster-proxy"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/rcp-memory.XXXXXX")"
PROXY_PID='' HOLDER_PID='' CLUSTER_STARTED=0

log() { printf '[memory] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Stops a child: TERM, up to 5 s, then KILL.
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for i in {1..50}; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$HOLDER_PID" ]] && stop_pid "$HOLDER_PID"
    if [[ -n "$PROXY_PID" ]]; then
        if ((rc != 0)) && [[ -s "$TMP/proxy.log" ]]; then
            log "proxy log (tail):"
            tail -n 20 "$TMP/proxy.log" >&2
        fi
        stop_pid "$PROXY_PID"
    fi
    if ((CLUSTER_STARTED)); then
        timeout 60 "$ROOT/scripts/cluster.sh" stop "$BASE" >/dev/null 2>&1 || log "could not stop the cluster on $BASE"
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1 && "$N" -le 60000 ]] || die "CLIENTS must be 1..60000, got '$N'"
[[ "$BASE" =~ ^[0-9]+$ && "$BASE" -ge 1024 && "$BASE" -le 55530 ]] || die "MEMORY_BASE must be 1024..55530"
for t in cargo python3 redis-cli strip timeout awk; do
    command -v "$t" >/dev/null || die "$t not found"
done

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
rcli() { timeout 5 redis-cli -h 127.0.0.1 -p "$PORT" "$@" </dev/null 2>/dev/null | tr -d '\r'; }

# --- build ---------------------------------------------------------------------------------
log "building the release binary"
timeout 1800 cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2 || die "cargo build --release failed"
[[ -x "$BIN" ]] || die "$BIN not found after the build"

# --- cluster -------------------------------------------------------------------------------
CLUSTER_STARTED=1
timeout 120 "$ROOT/scripts/cluster.sh" start "$BASE" >&2 || die "the cluster on $BASE did not start"

# --- proxy ---------------------------------------------------------------------------------
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$TMP/proxy.yaml" <<EOF
proxy_port: $PORT
bind: 127.0.0.1
redis_nodes:
  - "127.0.0.1:$BASE"
max_clients: $((N + 100))
log_level: info
EOF
"$BIN" --config "$TMP/proxy.yaml" </dev/null >"$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
up=0
for _ in {1..100}; do
    kill -0 "$PROXY_PID" 2>/dev/null || die "the proxy exited at start"
    [[ "$(rcli ping)" == PONG ]] && { up=1; break; }
    sleep 0.2
done
((up)) || die "the proxy did not answer PING on port $PORT within 20 s"
log "proxy pid $PROXY_PID on 127.0.0.1:$PORT; $(grep -o 'open files limit.*' "$TMP/proxy.log" | head -n1 || true)"

# Warm up: node connections open, a few requests through.
for i in {1..20}; do
    [[ "$(rcli set "memory:warm:$i" v)" == OK ]] || die "SET through the proxy failed"
done
sleep 0.5
IDLE="$(rss_kb "$PROXY_PID")"
[[ -n "$IDLE" ]] || die "cannot read VmRSS of pid $PROXY_PID"

# --- N idle clients ------------------------------------------------------------------------
cat >"$TMP/hold.py" <<'EOF'
import resource, select, socket, sys, time

n, port, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = n + 64
if hard != resource.RLIM_INFINITY and hard < need:
    print(f"error: the hard RLIMIT_NOFILE is {hard}, {need} needed (ulimit -Hn)", flush=True)
    sys.exit(2)
if soft != resource.RLIM_INFINITY and soft < need:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
deadline = time.monotonic() + 120
conns = []
t0 = time.monotonic()
for i in range(n):
    if time.monotonic() > deadline:
        print(f"error: only {i} connections opened in 120 s", flush=True)
        sys.exit(3)
    conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
opened = time.monotonic() - t0
# The last one answering means every earlier one was accepted (the backlog is FIFO).
last = conns[-1]
last.sendall(b"PING\r\n")
reply = last.recv(64)
if reply != b"+PONG\r\n":
    print(f"error: the last connection answered {reply!r}", flush=True)
    sys.exit(4)
# None was refused or closed: nothing readable on any other.
p = select.poll()
for s in conns[:-1]:
    p.register(s, select.POLLIN)
ready = p.poll(0)
if ready:
    print(f"error: {len(ready)} connections were refused or closed", flush=True)
    sys.exit(5)
print(f"ready {n} {opened:.2f}", flush=True)
time.sleep(hold)
EOF
log "opening $N idle clients"
python3 "$TMP/hold.py" "$N" "$PORT" 180 >"$TMP/hold.out" 2>&1 &
HOLDER_PID=$!
ready=0
for _ in {1..1500}; do # 150 s
    if grep -qs '^ready' "$TMP/hold.out"; then ready=1; break; fi
    kill -0 "$HOLDER_PID" 2>/dev/null || break
    sleep 0.1
done
((ready)) || die "the idle clients were not all connected: $(cat "$TMP/hold.out")"
OPEN_SECS="$(awk '/^ready/ { print $3 }' "$TMP/hold.out")"
sleep 0.5
kill -0 "$PROXY_PID" 2>/dev/null || die "the proxy died with $N clients"
WITH="$(rss_kb "$PROXY_PID")"
CONNECTED="$(rcli proxy info | awk -F: '/^connected_clients:/ { print $2 }' || true)"
[[ "$(rcli ping)" == PONG ]] || die "the proxy does not answer PING with $N idle clients"
stop_pid "$HOLDER_PID"
HOLDER_PID=''
sleep 1
AFTER="$(rss_kb "$PROXY_PID")"

# --- binary --------------------------------------------------------------------------------
cp "$BIN" "$TMP/stripped"
strip "$TMP/stripped"
SIZE="$(stat -c %s "$BIN")"
STRIPPED="$(stat -c %s "$TMP/stripped")"

PER="$(awk -v a="$IDLE" -v b="$WITH" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / n }')"
printf 'proxy idle RSS:                   %s (%s kB)\n' "$(mb "$IDLE")" "$IDLE"
printf 'RSS with %d idle clients:      %s (%s kB; PROXY INFO connected_clients, counting the query itself: %s; opened in %ss)\n' \
    "$N" "$(mb "$WITH")" "$WITH" "${CONNECTED:-?}" "$OPEN_SECS"
printf 'per idle client:                  %s KB\n' "$PER"
printf 'RSS after they closed:            %s (%s kB)\n' "$(mb "$AFTER")" "$AFTER"
printf 'release binary:                   %s bytes (%s)\n' "$SIZE" "$(mb $((SIZE / 1024)))"
printf 'stripped release binary:          %s bytes (%s)\n' "$STRIPPED" "$(mb $((STRIPPED / 1024)))"
