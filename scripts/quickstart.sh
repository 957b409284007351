#!/usr/bin/env bash
# One command from a fresh clone to a running proxy in front of a local
# Redis Cluster:
#
#   scripts/quickstart.sh         install deps, build, start cluster (7000..7005)
#                                 and the proxy (config.yaml, port 6379)
#   scripts/quickstart.sh stop    stop the proxy and the cluster
#
# Environment: PROXY_PORT (overrides the port from config.yaml, passed as --port),
#              PROXY_READY_TIMEOUT (seconds to wait for PONG, default 20).
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
DATA="$ROOT/.cluster"
CONFIG="$ROOT/config.yaml"
BIN="$ROOT/target/release/redis-cluster-proxy"
LOG="$DATA/proxy.log"
PIDFILE="$DATA/proxy.pid"
CLUSTER_BASE=7000
READY_TIMEOUT="${PROXY_READY_TIMEOUT:-20}"

log() { printf '[quickstart] %s\n' "$*"; }
die() { printf '[quickstart] error: %s\n' "$*" >&2; exit 1; }

alive() {
    local stat
    stat="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [[ -n "$stat" && "$stat" != Z* ]]
}

# pid of the running proxy started by this script, or nothing
proxy_pid() {
    [[ -f "$PIDFILE" ]] || return 0
    local pid
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    if [[ -n "$pid" ]] && alive "$pid" &&
        ps -p "$pid" -o args= 2>/dev/null | grep -q redis-cluster-proxy; then
        echo "$pid"
    fi
}

# The port the proxy will listen on: PROXY_PORT, else proxy_port from
# config.yaml, else the default 6379.
proxy_port() {
    if [[ -n "${PROXY_PORT:-}" ]]; then
        echo "$PROXY_PORT"
        return
    fi
    local p=""
    if [[ -f "$CONFIG" ]]; then
        p="$(sed -n 's/^proxy_port:[[:space:]]*"\{0,1\}\([0-9]\{1,5\}\)"\{0,1\}[[:space:]]*\(#.*\)\{0,1\}$/\1/p' "$CONFIG" | head -n 1)"
    fi
    echo "${p:-6379}"
}

ping_proxy() {
    [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping </dev/null 2>/dev/null | tr -d '\r')" == PONG ]]
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# listens_on PID PORT: whether PID is the process listening on 127.0.0.1:PORT (unknown
# without ss: then assumed, as the proxy started here is the likely listener).
listens_on() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -Hltnp "sport = :$2" 2>/dev/null | grep -q "pid=$1,"
}

stop_proxy() {
    local pid
    pid="$(proxy_pid)"
    if [[ -n "$pid" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 5))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if alive "$pid"; then
            log "proxy (pid $pid) did not exit after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped proxy (pid $pid)"
    else
        log "no proxy started by quickstart.sh is running"
    fi
    rm -f "$PIDFILE"
}

cmd_stop() {
    stop_proxy
    "$ROOT/scripts/cluster.sh" stop "$CLUSTER_BASE"
}

cmd_start() {
    local port
    port="$(proxy_port)"
    [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1 && "$port" -le 65535 ]] ||
        die "invalid proxy port '$port' (PROXY_PORT or proxy_port in config.yaml)"

    "$ROOT/scripts/install-deps.sh"

    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs"
    log "building: cargo build --release"
    cargo build --release
    [[ -x "$BIN" ]] || die "build finished but $BIN is missing"

    CLUSTER_NO_STOP_HINT=1 "$ROOT/scripts/cluster.sh" start "$CLUSTER_BASE"

    # Always (re)start the proxy so that the freshly built binary is the one
    # running; the cluster itself is reused.
    local pid
    pid="$(proxy_pid)"
    # Checked before the earlier proxy is stopped, so a busy port does not leave none.
    if port_open "$port" && { [[ -z "$pid" ]] || ! listens_on "$pid" "$port"; }; then
        die "port $port is already in use by another program (a system redis-server?); stop it or run: PROXY_PORT=6380 scripts/quickstart.sh"
    fi
    if [[ -n "$pid" ]]; then
        log "restarting the proxy started by an earlier run (pid $pid)"
        stop_proxy
    fi
    if port_open "$port"; then
        die "port $port is already in use by another program (a system redis-server?); stop it or run: PROXY_PORT=6380 scripts/quickstart.sh"
    fi

    local args=()
    if [[ -f "$CONFIG" ]]; then
        args+=(--config "$CONFIG")
    else
        log "warning: $CONFIG not found; using --nodes with the local cluster"
        args+=(--nodes "127.0.0.1:$CLUSTER_BASE,127.0.0.1:$((CLUSTER_BASE + 1)),127.0.0.1:$((CLUSTER_BASE + 2))")
    fi
    if [[ -n "${PROXY_PORT:-}" || ! -f "$CONFIG" ]]; then
        args+=(--port "$port")
    fi

    mkdir -p "$DATA"
    # The previous run's log is kept (one generation), not truncated.
    local previous=""
    if [[ -s "$LOG" ]]; then
        mv -f "$LOG" "$LOG.1"
        previous=", previous: proxy.log.1"
    fi
    log "starting: target/release/redis-cluster-proxy ${args[*]} (log: .cluster/proxy.log$previous)"
    nohup "$BIN" "${args[@]}" </dev/null >"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"

    local deadline=$((SECONDS + READY_TIMEOUT))
    until ping_proxy "$port"; do
        if ! alive "$pid"; then
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            rm -f "$PIDFILE"
            log "proxy exited (status $rc) before answering; last lines of $LOG:"
            tail -n 30 "$LOG" >&2 || true
            die "proxy failed to start (the cluster is still running; stop it with: scripts/quickstart.sh stop)"
        fi
        if ((SECONDS >= deadline)); then
            log "proxy did not answer PING on port $port within ${READY_TIMEOUT}s; last lines of $LOG:"
            tail -n 30 "$LOG" >&2 || true
            stop_proxy
            die "proxy not ready (the cluster is still running; stop it with: scripts/quickstart.sh stop)"
        fi
        sleep 0.2
    done
    log "proxy is running (pid $pid)"
    print_ready "$port"
}

print_ready() {
    echo
    echo "ready: redis-cli -p $1"
    echo "  e.g.  redis-cli -p $1 set greeting hello && redis-cli -p $1 get greeting"
    echo "  logs: .cluster/proxy.log   stop: scripts/quickstart.sh stop"
}

case "${1:-start}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    -h | --help | help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *)
        sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
