#!/usr/bin/env bash
# A local Redis Cluster for development and tests: 3 masters + 3 replicas on
# 127.0.0.1, ports BASE_PORT..BASE_PORT+5 (default 7000..7005; the cluster bus
# uses port+10000). Data, logs and pid files live in .cluster/<port>/ at the
# repository root.
#
#   scripts/cluster.sh start  [BASE_PORT]   start (or reuse) and wait until healthy
#   scripts/cluster.sh status [BASE_PORT]   print node states; exit 0 only if healthy
#   scripts/cluster.sh stop   [BASE_PORT]   shut nodes down, remove their data
#   scripts/cluster.sh stop   all           stop every node under .cluster/ (any base)
#   scripts/cluster.sh certs  DIR           make throwaway TLS files in DIR with openssl: a CA
#                                           (ca.pem, ca.key) and a server certificate for
#                                           127.0.0.1 signed by it (server.pem, server.key)
#
# Environment: CLUSTER_READY_TIMEOUT (seconds, default 30). CLUSTER_TLS_DIR=DIR (a
# directory made by `certs`): start, status and stop a TLS-only cluster: every node with
# port 0 and tls-port BASE_PORT+i, tls-cluster and tls-replication yes, tls-auth-clients no
# (clients: redis-cli --tls --cacert DIR/ca.pem); give it to stop as well as to start.
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
DATA="$ROOT/.cluster"
HOST=127.0.0.1
COUNT=6
READY_TIMEOUT="${CLUSTER_READY_TIMEOUT:-30}"
TLS_DIR="${CLUSTER_TLS_DIR:-}"
TLS_CLI=() # redis-cli's TLS arguments with CLUSTER_TLS_DIR
if [[ -n "$TLS_DIR" ]]; then
    TLS_DIR="$(cd -P -- "$TLS_DIR" 2>/dev/null && pwd -P)" || {
        printf '[cluster] error: CLUSTER_TLS_DIR %s is not a directory\n' "$CLUSTER_TLS_DIR" >&2
        exit 1
    }
    TLS_CLI=(--tls --cacert "$TLS_DIR/ca.pem")
fi

log() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^[^#]/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

# redis-cli against one node, bounded in time, never reading stdin.
rcli() {
    local port=$1
    shift
    timeout 3 redis-cli "${TLS_CLI[@]}" -h "$HOST" -p "$port" "$@" </dev/null 2>/dev/null | tr -d '\r'
}

# Is something accepting TCP connections on HOST:port?
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# free | ours | foreign
#   ours:    a redis-server whose working dir is .cluster/<port> (started here)
#   foreign: the port (or its cluster bus port) is taken by something else
node_state() {
    local port=$1 dir
    if port_open "$port"; then
        dir="$(rcli "$port" config get dir | sed -n 2p || true)"
        if [[ "$dir" == "$DATA/$port" ]]; then
            echo ours
        else
            echo foreign
        fi
    elif port_open $((port + 10000)); then
        echo foreign
    else
        echo free
    fi
}

# Is the process alive? (a zombie waiting to be reaped counts as dead)
alive() {
    local stat
    stat="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [[ -n "$stat" && "$stat" != Z* ]]
}

# pid of a live redis-server recorded in .cluster/<port>/redis.pid, or nothing
node_pid() {
    local f="$DATA/$1/redis.pid" pid
    [[ -f "$f" ]] || return 0
    pid="$(tr -dc '0-9' <"$f")"
    [[ -n "$pid" ]] || return 0
    if alive "$pid" && ps -p "$pid" -o comm= 2>/dev/null | grep -q redis; then
        echo "$pid"
    fi
}

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        log "redis-server/redis-cli not found; running scripts/install-deps.sh"
        "$ROOT/scripts/install-deps.sh" ||
            die "could not install redis; run scripts/install-deps.sh (needs root or sudo)"
        command -v redis-server >/dev/null 2>&1 || die "redis-server missing; run scripts/install-deps.sh"
        command -v redis-cli >/dev/null 2>&1 || die "redis-cli missing; run scripts/install-deps.sh"
    fi
}

ports_for() {
    local base=$1 i
    for ((i = 0; i < COUNT; i++)); do echo $((base + i)); done
}

# Every node answers, cluster_state:ok with all slots, 3 masters, 3 replicas
# whose master links are up. Prints the reason when not healthy (with -v).
healthy() {
    local base=$1 verbose=${2:-} port info repl masters=0 replicas=0
    for port in $(ports_for "$base"); do
        info="$(rcli "$port" cluster info || true)"
        if ! grep -q '^cluster_state:ok' <<<"$info"; then
            [[ -n "$verbose" ]] && log "node $port: cluster_state not ok"
            return 1
        fi
        if ! grep -q '^cluster_slots_ok:16384' <<<"$info"; then
            [[ -n "$verbose" ]] && log "node $port: not all slots ok"
            return 1
        fi
        if ! grep -q "^cluster_known_nodes:$COUNT\$" <<<"$info"; then
            [[ -n "$verbose" ]] && log "node $port: does not know all $COUNT nodes yet"
            return 1
        fi
        # Every node sees the 3 replicas as replicas (gossip can lag a node's own role):
        # a proxy started now finds the whole cluster in its first view.
        if [[ "$(rcli "$port" cluster nodes | grep -c ' [a-z,]*slave ' || true)" -ne 3 ]]; then
            [[ -n "$verbose" ]] && log "node $port: does not see the 3 replicas as replicas yet"
            return 1
        fi
        repl="$(rcli "$port" info replication || true)"
        if grep -q '^role:master' <<<"$repl"; then
            masters=$((masters + 1))
        elif grep -q '^role:slave' <<<"$repl"; then
            if ! grep -q '^master_link_status:up' <<<"$repl"; then
                [[ -n "$verbose" ]] && log "replica $port: master link not up"
                return 1
            fi
            replicas=$((replicas + 1))
        else
            [[ -n "$verbose" ]] && log "node $port: no role reported"
            return 1
        fi
    done
    if [[ "$masters" -ne 3 || "$replicas" -ne 3 ]]; then
        [[ -n "$verbose" ]] && log "expected 3 masters + 3 replicas, have $masters + $replicas"
        return 1
    fi
    return 0
}

wait_healthy() {
    local base=$1 timeout=$2 deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        healthy "$base" && return 0
        sleep 0.5
    done
    healthy "$base" -v
}

stop_node() {
    local port=$1 state pid
    state="$(node_state "$port")"
    if [[ "$state" == foreign ]]; then
        log "port $port: in use by something not started by this script; leaving it alone"
        return 0
    fi
    pid="$(node_pid "$port")"
    if [[ "$state" == ours ]]; then
        if [[ -z "$pid" ]]; then
            pid="$(rcli "$port" info server | sed -n 's/^process_id://p' || true)"
        fi
        # NOW skips waiting for lagging replicas (Redis >= 7); older servers
        # reject it, so fall back to a plain SHUTDOWN NOSAVE.
        if rcli "$port" shutdown nosave now | grep -qi err; then
            rcli "$port" shutdown nosave >/dev/null || true
        fi
    fi
    if [[ -n "$pid" ]]; then
        local deadline=$((SECONDS + 5))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 3))
            while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
            if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
        fi
    fi
    if [[ "$state" == ours || -n "$pid" ]]; then
        log "stopped node $port"
    fi
    rm -rf "${DATA:?}/$port"
}

# Remove .cluster/ when no node directories remain, unless a proxy started by
# quickstart.sh is still running (its pid and log live there too).
cleanup_data_dir() {
    [[ -d "$DATA" ]] || return 0
    local d
    for d in "$DATA"/*/; do
        [[ -d "$d" ]] || continue
        if [[ "$(basename "$d")" =~ ^[0-9]+$ ]]; then
            log "other nodes remain under $DATA; keeping it"
            return 0
        fi
    done
    if [[ -f "$DATA/proxy.pid" ]] && alive "$(tr -dc '0-9' <"$DATA/proxy.pid")"; then
        log "a proxy started by quickstart.sh is still running; keeping $DATA (scripts/quickstart.sh stop)"
        return 0
    fi
    rm -rf "$DATA"
    log "removed $DATA"
}

cmd_stop() {
    local base=$1 ports=() d p
    if [[ "$base" != all ]]; then
        mapfile -t ports < <(ports_for "$base")
    else
        # every node directory we know of, plus the default ports
        mapfile -t ports < <(
            {
                ports_for 7000
                if [[ -d "$DATA" ]]; then
                    for d in "$DATA"/*/; do
                        p="$(basename "$d")"
                        [[ "$p" =~ ^[0-9]+$ ]] && echo "$p"
                    done
                fi
            } | sort -nu
        )
    fi
    if command -v redis-cli >/dev/null 2>&1; then
        for p in "${ports[@]}"; do stop_node "$p"; done
    else
        # no redis-cli: only kill processes from our pid files
        for p in "${ports[@]}"; do
            local pid
            pid="$(node_pid "$p")"
            if [[ -n "$pid" ]]; then
                kill -TERM "$pid" 2>/dev/null || true
                log "sent SIGTERM to node $p (pid $pid)"
            fi
            rm -rf "${DATA:?}/$p"
        done
    fi
    if [[ "$base" == all ]]; then
        rm -f "$DATA"/create-*.log 2>/dev/null || true
    else
        rm -f "$DATA/create-$base.log" 2>/dev/null || true
    fi
    cleanup_data_dir
}

start_node() {
    local port=$1 d="$DATA/$1" listen=(--port "$1")
    # CLUSTER_TLS_DIR: TLS only, for clients, the cluster bus and replication
    [[ -n "$TLS_DIR" ]] && listen=(--port 0 --tls-port "$port" --tls-cert-file "$TLS_DIR/server.pem"
        --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_DIR/ca.pem"
        --tls-cluster yes --tls-replication yes --tls-auth-clients no)
    rm -rf "$d"
    mkdir -p "$d"
    if ! redis-server \
        "${listen[@]}" \
        --bind "$HOST" \
        --dir "$d" \
        --cluster-enabled yes \
        --cluster-config-file "nodes-$port.conf" \
        --cluster-node-timeout 2000 \
        --cluster-require-full-coverage no \
        --repl-diskless-sync-delay 0 \
        --save "" \
        --appendonly no \
        --daemonize yes \
        --pidfile "$d/redis.pid" \
        --logfile "$d/redis.log" \
        >"$d/startup.out" 2>&1; then
        cat "$d/startup.out" >&2
        return 1
    fi
}

cmd_start() {
    local base=$1 port state ours=0 free=0 foreign=()
    ensure_redis
    for port in $(ports_for "$base"); do
        state="$(node_state "$port")"
        case "$state" in
            ours) ours=$((ours + 1)) ;;
            free) free=$((free + 1)) ;;
            foreign) foreign+=("$port") ;;
        esac
    done
    if ((${#foreign[@]} > 0)); then
        die "port(s) ${foreign[*]} (or their cluster bus ports +10000) are in use by something not started by this script; stop it or choose another base port: scripts/cluster.sh start BASE_PORT"
    fi

    if ((ours == COUNT)); then
        log "nodes on $base..$((base + COUNT - 1)) are already running (started by this script)"
        if wait_healthy "$base" 5; then
            log "cluster is healthy; reusing it"
            print_ready "$base"
            return 0
        fi
        log "existing cluster is not healthy; recreating it"
        for port in $(ports_for "$base"); do stop_node "$port"; done
    elif ((ours > 0)); then
        log "found a partial cluster ($ours of $COUNT nodes running); recreating it"
        for port in $(ports_for "$base"); do stop_node "$port"; done
    fi

    mkdir -p "$DATA"
    log "starting $COUNT redis-server nodes on $HOST:$base..$((base + COUNT - 1)) ($(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'))${TLS_DIR:+, TLS only (certificates in $TLS_DIR)}"
    for port in $(ports_for "$base"); do
        if ! start_node "$port"; then
            for p in $(ports_for "$base"); do stop_node "$p" >/dev/null; done
            die "redis-server failed to start on port $port"
        fi
    done

    local deadline=$((SECONDS + 10))
    for port in $(ports_for "$base"); do
        until [[ "$(rcli "$port" ping || true)" == PONG ]]; do
            if ((SECONDS >= deadline)); then
                tail -n 20 "$DATA/$port/redis.log" >&2 2>/dev/null || true
                for p in $(ports_for "$base"); do stop_node "$p" >/dev/null; done
                die "node $port did not answer PING within 10s (log above)"
            fi
            sleep 0.2
        done
    done

    local addrs=()
    for port in $(ports_for "$base"); do addrs+=("$HOST:$port"); done
    log "creating cluster (--cluster-replicas 1)"
    if ! timeout 60 redis-cli "${TLS_CLI[@]}" --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        </dev/null >"$DATA/create-$base.log" 2>&1; then
        tail -n 30 "$DATA/create-$base.log" >&2 || true
        for p in $(ports_for "$base"); do stop_node "$p" >/dev/null; done
        die "redis-cli --cluster create failed (output above)"
    fi

    log "waiting up to ${READY_TIMEOUT}s for cluster_state:ok and replica links"
    if ! wait_healthy "$base" "$READY_TIMEOUT"; then
        log "cluster did not become healthy; node logs are in $DATA/<port>/redis.log"
        cmd_status "$base" || true
        die "cluster on $base..$((base + COUNT - 1)) not healthy after ${READY_TIMEOUT}s"
    fi
    log "cluster is healthy"
    print_ready "$base"
}

print_ready() {
    local base=$1
    log "ready: 3 masters + 3 replicas on $HOST:$base..$((base + COUNT - 1)); try: redis-cli${TLS_DIR:+ --tls --cacert $TLS_DIR/ca.pem} -c -p $base"
    # quickstart.sh prints its own stop command (which stops the proxy too).
    if [[ -n "${CLUSTER_NO_STOP_HINT:-}" ]]; then
        return 0
    elif [[ "$base" -eq 7000 ]]; then
        log "stop with: scripts/cluster.sh stop"
    else
        log "stop with: scripts/cluster.sh stop $base"
    fi
}

cmd_status() {
    local base=$1 port state role cstate link ok=1
    if ! command -v redis-cli >/dev/null 2>&1; then
        log "redis-cli not found; run scripts/install-deps.sh"
        return 1
    fi
    printf '%-7s %-8s %-8s %-14s %s\n' PORT OWNER ROLE CLUSTER_STATE MASTER_LINK
    for port in $(ports_for "$base"); do
        state="$(node_state "$port")"
        role=- cstate=- link=-
        if [[ "$state" == ours ]]; then
            role="$(rcli "$port" info replication | sed -n 's/^role://p' || true)"
            cstate="$(rcli "$port" cluster info | sed -n 's/^cluster_state://p' || true)"
            [[ "$role" == slave ]] &&
                link="$(rcli "$port" info replication | sed -n 's/^master_link_status://p' || true)"
        else
            ok=0
        fi
        [[ "$state" == free ]] && state=down
        printf '%-7s %-8s %-8s %-14s %s\n' "$port" "$state" "${role:--}" "${cstate:--}" "${link:--}"
    done
    if [[ "$ok" -eq 1 ]] && healthy "$base"; then
        log "cluster on $base..$((base + COUNT - 1)) is healthy"
        return 0
    fi
    log "cluster on $base..$((base + COUNT - 1)) is not healthy (or not running)"
    return 1
}

# certs DIR: a throwaway CA, a certificate for 127.0.0.1 and a client certificate signed by
# it (2 days), as the
# tests make them (tests/common/tls.rs)
cmd_certs() {
    local dir=$1
    command -v openssl >/dev/null 2>&1 || die "openssl not found (scripts/install-deps.sh installs it)"
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=redis-cluster-proxy test CA" \
            -keyout ca.key -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj /CN=server -keyout server.key -out server.csr
        echo 'subjectAltName=IP:127.0.0.1' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile server.ext -out server.pem
        chmod 644 server.key # redis-server and the proxy read it
        # A client certificate for mutual TLS (X.509 v3: an -extfile makes it so).
        openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout client.key -out client.csr
        echo 'extendedKeyUsage=clientAuth' >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile client.ext -out client.pem
    ) </dev/null >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; die "openssl failed in $dir"; }
    log "made ca.pem, server.pem, server.key, client.pem, client.key in $dir"
}

main() {
    local cmd=${1:-} base=${2:-}
    [[ $# -le 2 ]] || usage
    if [[ "$cmd" == certs ]]; then
        [[ -n "$base" ]] || die "certs needs a directory"
        cmd_certs "$base"
        return
    fi
    if [[ -n "$base" && ! ("$cmd" == stop && "$base" == all) ]] && ! [[ "$base" =~ ^[0-9]+$ && "$base" -ge 1 && "$base" -le 55530 ]]; then
        die "BASE_PORT must be a number between 1 and 55530 (ports up to BASE+5 and bus ports +10000 must be valid), got '$base'"
    fi
    case "$cmd" in
        start) cmd_start "${base:-7000}" ;;
        stop) cmd_stop "${base:-7000}" ;;
        status) cmd_status "${base:-7000}" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
