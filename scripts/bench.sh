#!/usr/bin/env bash
# Benchmark: the proxy against direct Redis Cluster access (and optionally a second, "peer"
# proxy), with redis-benchmark.
#
#   scripts/bench.sh [OPTIONS]
#
#   --quick              short run (N=20000) to check that everything works; its
#                        ratios are coarse (runs last about one 250 ms progress tick)
#   -n, --requests N     requests per -P 1 run (default 200000); -P 16 runs use 10*N
#                        and the -c 1 latency run N/5, so each run lasts a few seconds
#   --base PORT          base port of the cluster started here (default 7300..7305;
#                        with --tls 7310..7315)
#   --cluster HOST:PORT  use this existing cluster (any node) instead of starting one
#   --proxy HOST:PORT    benchmark an already running proxy (e.g. predixy)
#   --peer HOST:PORT     also benchmark this already running second proxy (e.g. predixy)
#                        in the same run; adds peer columns to the table
#   --proxy-bin PATH     start this binary (same flags) instead of the release build
#   --workers N          start the proxy with N reactor threads (--workers N)
#   --busy-poll D        start the proxy with --busy-poll D (e.g. 50us)
#   --pin                the proxy (and the peer) on the last CPU, the cluster's
#                        redis-servers and redis-benchmark on the others (taskset), as
#                        when the proxy has a host or core of its own; affinities of
#                        processes this run did not start are restored at the end
#   --peer-metrics       the peer is a second copy of the started proxy with
#                        metrics_address set (its latency histograms recorded): the cost
#                        of metrics, on (peer columns) against off, in the same run; not
#                        with --peer, --proxy or --tls
#   --rounds R           run every workload R times per target (default 1), as R whole
#                        passes over the workload list; the table then shows medians over
#                        the rounds and the min-max of the per-round ratios
#   --tls                TLS end to end: makes a throwaway CA and a certificate for 127.0.0.1
#                        with openssl (scripts/cluster.sh certs, in a temp dir), starts a
#                        TLS-only 3+3 cluster (CLUSTER_TLS_DIR=... scripts/cluster.sh start,
#                        default base 7310..7315) and the proxy with tls_port, tls and
#                        backend_tls in a config file, and runs every workload with
#                        redis-benchmark --tls --cacert ca.pem against the proxy's TLS port
#                        and directly against the TLS cluster (--cluster); not with
#                        --cluster, --proxy or --peer
#   -h, --help           print this help
#
# Workloads: redis-benchmark -c 50 -d 64 -r KEYSPACE (N/2, at most 100000), SET and GET at
# -P 1 and -P 16, GET at -c 1 -P 1 for latency, MGET of 10 random keys (so in different
# slots; direct: GET -P 10 with --cluster, counted per 10 GETs), then SET/GET of 1 KB values
# at -P 16 (5*N requests) and of 100 KB values at -P 1 (N/5). Each value size has its own
# keyspace, n/(10*masters) keys (at most 500 of 100 KB), so that its SET run writes every
# key (also each per-master key:{tag}:N copy that --cluster uses) ~10 times before its GET run reads it. Each workload runs through the
# proxy, directly against the cluster (redis-benchmark --cluster) and through the peer,
# rotating which goes first from workload to workload and from round to round. All use --threads <masters> (what --cluster implies), so the
# client side is the same. CPU: utime+stime from /proc/PID/stat of the proxy, the peer and
# the cluster's redis-server processes (pids found with ss, only on this host); memory:
# VmRSS of the proxy. Requests/s are those done by redis-benchmark's last progress report
# (every 250 ms) over the time to it: its closing figure also counts the wait for the tick
# on which a threaded run stops. Runs shorter than one tick (--quick) fall back to it.
# Environment: BENCH_RUN_TIMEOUT (seconds allowed per redis-benchmark run, default 300).
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
BIN="$ROOT/target/release/redis-cluster-proxy"
RUN_TIMEOUT="${BENCH_RUN_TIMEOUT:-300}"
CMDLINE="$(printf "%q " "${BASH_SOURCE[0]}" "$@")"; CMDLINE=${CMDLINE% }
N='' QUICK=0 PIN=0 TLS=0 PEER_METRICS=0 ROUNDS=1 BASE='' CLUSTER='' PROXY='' PEER='' PROXY_BIN='' WORKERS='' BUSY=''
MGET_KEYS=10 # keys per MGET in the "MGET 10 keys" workload

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^[^#]/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; } # the header
hostport() { [[ "$2" =~ ^[^:[:space:]]+:[0-9]+$ ]] || die "$1 expects HOST:PORT, got '$2'"; }

while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --pin) PIN=1 ;;
        --tls) TLS=1 ;;
        --peer-metrics) PEER_METRICS=1 ;;
        -h | --help) usage 0 ;;
        -n | --requests | --base | --cluster | --proxy | --peer | --proxy-bin | --workers | --busy-poll | --rounds)
            (($# >= 2)) || die "$1 needs a value"
            case "$1" in
                -n | --requests) N=$2 ;;
                --base) BASE=$2 ;;
                --cluster) hostport "$1" "$2"; CLUSTER=$2 ;;
                --proxy) hostport "$1" "$2"; PROXY=$2 ;;
                --peer) hostport "$1" "$2"; PEER=$2 ;;
                --proxy-bin) PROXY_BIN=$2 ;;
                --workers) WORKERS=$2 ;;
                --busy-poll) BUSY=$2 ;;
                --rounds) ROUNDS=$2 ;;
            esac
            shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[[ -z "$N" ]] && { ((QUICK)) && N=20000 || N=200000; }
[[ -z "$BASE" ]] && { ((TLS)) && BASE=7310 || BASE=7300; } # --tls: its own cluster, beside a plain one
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 100 ]] || die "--requests must be a number >= 100, got '$N'"
[[ "$ROUNDS" =~ ^[1-9][0-9]{0,2}$ ]] || die "--rounds must be a number 1..999, got '$ROUNDS'"
[[ "$BASE" =~ ^[0-9]+$ && "$BASE" -ge 1024 && "$BASE" -le 55530 ]] || die "--base must be 1024..55530"
[[ -n "$PROXY" && -n "$PROXY_BIN" ]] && die "--proxy and --proxy-bin exclude each other"
((PEER_METRICS)) && [[ -n "$PEER$PROXY" ]] && die "--peer-metrics starts its own peer: not with --peer or --proxy"
((PEER_METRICS && TLS)) && die "--peer-metrics: not with --tls"
[[ -n "$PEER" && "$PEER" == "$PROXY" ]] && die "--peer and --proxy are the same ($PEER)"
((TLS)) && [[ -n "$CLUSTER$PROXY$PEER" ]] && die "--tls starts its own TLS cluster and proxy: not with --cluster, --proxy or --peer"
CPUS="$(nproc)" PROXY_CPU='' OTHER_CPUS='' ALL_CPUS="0-$(($(nproc) - 1))"
if ((PIN)); then
    command -v taskset >/dev/null || die "--pin needs taskset (util-linux)"
    ((CPUS >= 2)) || die "--pin needs at least 2 CPUs, this machine has $CPUS"
    PROXY_CPU=$((CPUS - 1)) OTHER_CPUS=0 OTHER_LABEL="CPU 0"
    ((CPUS == 2)) || OTHER_CPUS="0-$((CPUS - 2))" OTHER_LABEL="CPUs 0-$((CPUS - 2))"
fi
TOOLS=(redis-benchmark redis-cli timeout getconf)
((TLS)) && TOOLS+=(openssl)
for t in "${TOOLS[@]}"; do
    command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh installs redis)"
done
KEYSPACE=$((N / 2 < 100000 ? N / 2 : 100000)) # every GET key is written ~22 times before (direct: ~22/masters)
TICKS="$(getconf CLK_TCK)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")"
STARTED_CLUSTER=0 PROXY_PID='' METRICS_PID='' RB_PID='' FAILED=0 REPIN=() # REPIN: pids whose affinity --pin changed
alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null || true)"; [[ -n "$s" && "$s" != Z* ]]; }
stop_proxy() {
    [[ -n "$PROXY_PID" ]] || return 0
    local i
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    for i in {1..50}; do alive "$PROXY_PID" || break; sleep 0.1; done
    alive "$PROXY_PID" && kill -KILL "$PROXY_PID" 2>/dev/null
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=
}
cleanup() {
    local rc=$?
    set +e
    [[ -n "$RB_PID" ]] && kill -TERM "$RB_PID" 2>/dev/null && wait "$RB_PID" 2>/dev/null
    [[ -n "$METRICS_PID" ]] && kill -TERM "$METRICS_PID" 2>/dev/null && wait "$METRICS_PID" 2>/dev/null
    if [[ -n "$PROXY_PID" ]]; then
        ((rc != 0)) && [[ -s "$TMP/proxy.log" ]] && { log "proxy log (tail):"; tail -n 20 "$TMP/proxy.log" >&2; }
        stop_proxy
    fi
    local p
    for p in "${REPIN[@]}"; do taskset -a -p -c "$ALL_CPUS" "$p" >/dev/null 2>&1; done
    if ((STARTED_CLUSTER == 2)); then
        timeout 60 "$ROOT/scripts/cluster.sh" stop "$BASE" >/dev/null 2>&1
    elif ((STARTED_CLUSTER)); then
        log "stopping the cluster on $BASE..$((BASE + 5))"
        timeout 60 "$ROOT/scripts/cluster.sh" stop "$BASE" >/dev/null 2>&1 || log "cluster stop failed; run: scripts/cluster.sh stop $BASE"
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rcli() { local hp=$1; shift; timeout 3 redis-cli "${TLS_CLI[@]}" -h "${hp%:*}" -p "${hp##*:}" "$@" </dev/null 2>/dev/null | tr -d '\r'; }
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
pid_of() { # pid_of HOST:PORT -> pid listening there if on this host and ss can tell, else ''
    [[ "${1%:*}" =~ ^(127\.0\.0\.1|localhost)$ ]] && command -v ss >/dev/null || return 0
    ss -Hltnp "sport = :${1##*:}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true
}

# --- TLS -----------------------------------------------------------------------------
TLS_CLI=() # redis-cli's and redis-benchmark's TLS arguments with --tls
if ((TLS)); then
    "$ROOT/scripts/cluster.sh" certs "$TMP/tls" >"$TMP/certs.log" 2>&1 || { cat "$TMP/certs.log" >&2; die "could not make TLS certificates"; }
    export CLUSTER_TLS_DIR="$TMP/tls" # cluster.sh start, status and stop: the TLS-only cluster
    TLS_CLI=(--tls --cacert "$TMP/tls/ca.pem")
    redis-cli --help 2>&1 | grep -q -- --tls || die "redis-cli is built without TLS"
    redis-benchmark --help 2>&1 | grep -q -- --tls || die "redis-benchmark is built without TLS"
fi

# --- cluster -------------------------------------------------------------------------
if [[ -z "$CLUSTER" ]]; then
    if "$ROOT/scripts/cluster.sh" status "$BASE" >/dev/null 2>&1; then
        log "reusing the healthy cluster already running on $BASE..$((BASE + 5)) (left running)"
    else
        log "starting a 3+3 ${TLS_CLI[0]:+TLS-only }cluster on $BASE..$((BASE + 5))"
        STARTED_CLUSTER=1
        timeout 150 "$ROOT/scripts/cluster.sh" start "$BASE" >"$TMP/cluster.log" 2>&1 || {
            tail -n 20 "$TMP/cluster.log" >&2
            STARTED_CLUSTER=2 # only what this run may have started is cleaned up, quietly
            ((TLS)) && die "could not start a TLS cluster on $BASE..$((BASE + 5)) (a TLS cluster left by an earlier run answers only its own, deleted, CA: stop it by its pids in .cluster/*/redis.pid); use --base PORT for other ports"
            die "could not start a cluster on $BASE..$((BASE + 5)); use --base PORT for other ports, or --cluster HOST:PORT to benchmark a running cluster (e.g. the quick start's, 127.0.0.1:7000)"
        }
    fi
    CLUSTER="127.0.0.1:$BASE"
fi
rcli "$CLUSTER" cluster info | grep -q '^cluster_state:ok' || die "$CLUSTER: not a healthy cluster node"
MASTERS="$(rcli "$CLUSTER" cluster nodes | awk '$3 ~ /master/ && NF > 8' | wc -l)"
((MASTERS >= 2)) || die "redis-benchmark --cluster needs at least 2 masters with slots, $CLUSTER has $MASTERS"

# --- proxy ---------------------------------------------------------------------------
if [[ -z "$PROXY" ]]; then
    if [[ -n "$PROXY_BIN" ]]; then
        BIN="$(command -v -- "$PROXY_BIN" || true)"
        [[ -x "$BIN" ]] || die "--proxy-bin: '$PROXY_BIN' is not an executable"
    elif [[ ! -x "$BIN" ]]; then
        log "release binary missing; running cargo build --release"
        (cd "$ROOT" && timeout 1800 cargo build --release) >&2 || die "cargo build --release failed"
    elif [[ -n "$(find "$ROOT/src" -name '*.rs' -newer "$BIN" -print -quit 2>/dev/null)" ]]; then
        log "warning: src/ is newer than $BIN; 'cargo build --release' to benchmark current sources"
    fi
    for _ in 1 2 3 4 5; do
        for _ in {1..50}; do port=$((40000 + RANDOM % 10000)); port_open "$port" || break; done
        conf=() bport=$port # bport: the port benchmarked, the TLS port with --tls
        if ((TLS)); then
            for _ in {1..50}; do bport=$((40000 + RANDOM % 10000)); ((bport != port)) && ! port_open "$bport" && break; done
            printf '%s\n' "redis_nodes: [\"$CLUSTER\"]" "tls_port: $bport" \
                "tls: { cert_file: \"$TMP/tls/server.pem\", key_file: \"$TMP/tls/server.key\" }" \
                "backend_tls: { ca_file: \"$TMP/tls/ca.pem\" }" >"$TMP/proxy.yaml"
            conf=(--config "$TMP/proxy.yaml")
        fi
        ${PROXY_CPU:+taskset -c "$PROXY_CPU"} "$BIN" "${conf[@]}" --port "$port" --nodes "$CLUSTER" --log-level warn ${WORKERS:+--workers "$WORKERS"} ${BUSY:+--busy-poll "$BUSY"} </dev/null >"$TMP/proxy.log" 2>&1 &
        PROXY_PID=$!
        deadline=$((SECONDS + 20))
        while alive "$PROXY_PID" && ((SECONDS < deadline)); do
            [[ "$(rcli "127.0.0.1:$bport" ping)" == PONG ]] && { PROXY="127.0.0.1:$bport"; break; }
            sleep 0.2
        done
        [[ -n "$PROXY" ]] && break
        alive "$PROXY_PID" || ! grep -qi 'listen' "$TMP/proxy.log" || { PROXY_PID=; continue; } # port race
        tail -n 20 "$TMP/proxy.log" >&2
        die "the proxy ($BIN) did not answer PING on port $bport${TLS_CLI[0]:+ (TLS)} within 20s"
    done
    [[ -n "$PROXY" ]] || die "could not find a free port for the proxy"
    PID=$PROXY_PID
    log "proxy $BIN running on $PROXY${TLS_CLI[0]:+ (its TLS port; plain port $port)} (pid $PID)"
else
    [[ "$(rcli "$PROXY" ping)" == PONG ]] || die "--proxy $PROXY does not answer PING"
    PID="$(pid_of "$PROXY")"
    if [[ -n "$PID" ]]; then log "external proxy on $PROXY is pid $PID"; else log "pid of $PROXY unknown: no CPU/RSS"; fi
fi

# --- peer proxy and cluster node pids --------------------------------------------------
if ((PEER_METRICS)); then
    for _ in {1..50}; do mport=$((40000 + RANDOM % 10000)); port_open "$mport" || break; done
    for _ in {1..50}; do hport=$((30000 + RANDOM % 10000)); port_open "$hport" || break; done
    printf '%s\n' "metrics_address: \"127.0.0.1:$hport\"" >"$TMP/metrics.yaml"
    ${PROXY_CPU:+taskset -c "$PROXY_CPU"} "$BIN" --config "$TMP/metrics.yaml" --port "$mport" --nodes "$CLUSTER" --log-level warn ${WORKERS:+--workers "$WORKERS"} ${BUSY:+--busy-poll "$BUSY"} </dev/null >"$TMP/metrics-proxy.log" 2>&1 &
    METRICS_PID=$!
    for _ in {1..100}; do [[ "$(rcli "127.0.0.1:$mport" ping)" == PONG ]] && break; sleep 0.2; done
    [[ "$(rcli "127.0.0.1:$mport" ping)" == PONG ]] || die "the metrics-on copy did not answer PING on $mport"
    PEER="127.0.0.1:$mport"
    log "peer: the same binary with metrics_address 127.0.0.1:$hport on $PEER (pid $METRICS_PID)"
fi
PEER_PID=
if [[ -n "$PEER" ]]; then
    [[ "$(rcli "$PEER" ping)" == PONG ]] || die "--peer $PEER does not answer PING"
    PEER_PID="$(pid_of "$PEER")"
    if [[ -n "$PEER_PID" ]]; then log "peer proxy on $PEER is pid $PEER_PID"; else log "pid of peer $PEER unknown: no peer CPU"; fi
fi
# pids of all the cluster's redis-servers (masters and replicas), by their listening
# ports from CLUSTER NODES; none unless every node is on this host and ss names its pid
NODE_PIDS=()
while read -r addr; do
    addr=${addr%%@*} addr=${addr%%,*} # ip:port@cport[,hostname]
    pid="$(pid_of "$addr")"
    [[ -n "$pid" ]] || { NODE_PIDS=(); log "pid of cluster node $addr unknown: no nodes CPU"; break; }
    NODE_PIDS+=("$pid")
done < <(rcli "$CLUSTER" cluster nodes |
    awk '{ n = split($3, f, ","); for (i = 1; i <= n; i++) if (f[i] == "fail" || f[i] == "noaddr") next; print $2 }')
((${#NODE_PIDS[@]})) && log "cluster nodes: pids ${NODE_PIDS[*]}"
pin() { # pin CPUS PID... : all threads of these processes on CPUS, restored at exit
    local c=$1 p; shift
    for p; do
        [[ -n "$p" ]] || continue
        taskset -a -p -c "$c" "$p" >/dev/null || die "--pin: taskset could not pin pid $p"
        REPIN+=("$p")
    done
}
if ((PIN)); then
    ((${#NODE_PIDS[@]})) || die "--pin needs the pids of the cluster's redis-servers (a cluster on this host, and ss)"
    pin "$OTHER_CPUS" "${NODE_PIDS[@]}"
    [[ -z "$PROXY_PID" ]] && { [[ -n "$PID" ]] || die "--pin: pid of --proxy $PROXY unknown"; pin "$PROXY_CPU" "$PID"; }
    [[ -n "$PEER" ]] && { [[ -n "$PEER_PID" ]] || die "--pin: pid of --peer $PEER unknown"; pin "$PROXY_CPU" "$PEER_PID"; }
    log "pinned: proxy${PEER:+ and peer} on CPU $PROXY_CPU; cluster and redis-benchmark on $OTHER_LABEL"
fi

cpu_ticks() { # cpu_ticks PID... -> utime+stime of these processes (all threads) in clock ticks, or -
    local pid s f sum=0
    (($#)) || { echo -; return; }
    for pid; do
        [[ -n "$pid" && -r "/proc/$pid/stat" ]] || { echo -; return; }
        s="$(<"/proc/$pid/stat")" || { echo -; return; }
        read -ra f <<<"${s##*) }"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}
per_req() { # per_req TICKS_BEFORE TICKS_AFTER REQUESTS -> CPU microseconds per request, or -
    [[ "$1" != - && "$2" != - ]] || { echo -; return; }
    awk -v d=$(($2 - $1)) -v t="$TICKS" -v n="$3" 'BEGIN{printf "%.2f", d / t * 1e6 / n}'
}
rss_kb() { [[ -n "$PID" ]] && awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo -; }

# --- runs ----------------------------------------------------------------------------
# bench TARGET TEST PIPELINE CLIENTS REQUESTS SIZE KEYSPACE [COMMAND...] -> sets
# R="rps p50 p99" from redis-benchmark's progress reports and closing latency summary
# (redis-benchmark >= 7). TARGET: proxy, peer or direct (--cluster). TEST '-' runs
# COMMAND instead of -t TEST.
bench() {
    local target=$1 test=$2 args title hp
    local cmd=("${@:8}")
    R="- - -"
    args=("${TLS_CLI[@]}" -P "$3" -c "$4" -n "$5" -d "$6" -r "$7" --threads "$MASTERS")
    if [[ "$test" == - ]]; then
        ((${#cmd[@]})) || die "bench: test '-' needs a command"
        args+=("${cmd[@]}") title="${cmd[*]}"
    else
        args=(-t "$test" "${args[@]}") title="${test^^}"
    fi
    case "$target" in
        proxy | peer) [[ "$target" == proxy ]] && hp=$PROXY || hp=$PEER
            args=(-h "${hp%:*}" -p "${hp##*:}" "${args[@]}") ;;
        direct) args=(--cluster -h "${CLUSTER%:*}" -p "${CLUSTER##*:}" "${args[@]}") ;;
        *) die "bench: unknown target '$target'" ;;
    esac
    # every round runs the same commands: list them once
    ((ROUND > 1)) || printf '  %-6s redis-benchmark %s\n' "$target" "${args[*]}" >>"$TMP/commands"
    # in the background: a trapped signal interrupts 'wait' at once, not after the run
    timeout -k 5 "$RUN_TIMEOUT" ${OTHER_CPUS:+taskset -c "$OTHER_CPUS"} redis-benchmark "${args[@]}" </dev/null >"$TMP/out" 2>"$TMP/err" &
    RB_PID=$!
    if ! wait "$RB_PID"; then
        RB_PID=''
        log "$target ${title%% *} failed or timed out after ${RUN_TIMEOUT}s:"; tail -n 5 "$TMP/out" "$TMP/err" >&2
        return 1
    fi
    RB_PID=''
    # rps: requests done by the last progress tick over the time to it. The summary's own
    # figure counts time to the 250 ms tick after the last reply (threaded redis-benchmark
    # only stops on a tick), up to 10 % low for a 2.5 s run, more for the faster target.
    R="$(tr '\r' '\n' <"$TMP/out" | awk '
        # the first report comes 1 ms into the run: too early to tell a rate
        match($0, /\(overall: [0-9.]+\) avg_msec/) && ++reports > 1 {
            v = substr($0, RSTART + 10, RLENGTH - 19); if (v + 0 > 0) tick = v
        }
        /throughput summary:/ { final = $3 }
        /latency summary/ { getline; getline; p50 = $3; p99 = $5 }
        END {
            r = (tick + 0 > 0) ? tick : final
            if (r + 0 <= 0 || p50 == "") exit 1
            printf "%.2f %s %s\n", r, p50, p99
        }')" || { R="- - -"; log "$target ${title%% *}: no result in redis-benchmark output"; return 1; }
}

# own keyspace of a value size: its SET run of n requests writes each key ~10 times, also
# each of the MASTERS copies key:{tag}:N that redis-benchmark --cluster writes
keyspace_for() { local k=$(($1 / (10 * MASTERS))); k=$((k < KEYSPACE ? k : KEYSPACE)); echo $((k < 1 ? 1 : k)); }
KS1K="$(keyspace_for $((N * 5)))" KS100K="$(keyspace_for $((N / 5)))"
KS100K=$((KS100K < 500 ? KS100K : 500)) # 100 KB values: at most ~400 MB in the cluster
MGET_CMD=(MGET)
for ((j = 0; j < MGET_KEYS; j++)); do MGET_CMD+=("key:__rand_int__"); done # each gets its own number

# name|test|pipeline|clients|requests|value size|keyspace; test 'mget' is the MGET row
WORKLOADS=("SET -P 1|set|1|50|$N|64|$KEYSPACE" "SET -P 16|set|16|50|$((N * 10))|64|$KEYSPACE"
    "GET -P 1|get|1|50|$N|64|$KEYSPACE" "GET -P 16|get|16|50|$((N * 10))|64|$KEYSPACE"
    "GET -c 1 -P 1|get|1|1|$((N / 5))|64|$KEYSPACE" "MGET $MGET_KEYS keys|mget|1|50|$N|64|$KEYSPACE"
    "SET 1KB -P 16|set|16|50|$((N * 5))|1024|$KS1K" "GET 1KB -P 16|get|16|50|$((N * 5))|1024|$KS1K"
    "SET 100KB -P 1|set|1|50|$((N / 5))|102400|$KS100K" "GET 100KB -P 1|get|1|50|$((N / 5))|102400|$KS100K")
TARGETS=(proxy direct)
[[ -n "$PEER" ]] && TARGETS+=(peer)
# per run: RES[round,i,target]="rps p50 p99", CPU (proxy, peer) and NCPU (nodes) us/req;
# RSS[i]: max proxy RSS after workload i's runs
declare -A RES CPU NCPU RSS
RSS_IDLE="$(rss_kb)" RSS_MAX="$(rss_kb)"
# whole passes over the workload list, so that in every round the SET runs of a value size
# fill its keys before its GET runs read them
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    RLOG=''
    ((ROUNDS == 1)) || RLOG="round $ROUND/$ROUNDS: "
    for i in "${!WORKLOADS[@]}"; do
        IFS='|' read -r name test pipe clients n size ks <<<"${WORKLOADS[$i]}"
        if ((ROUND > 1)); then
            : # the commands are listed once, in round 1
        elif [[ "$test" == mget ]]; then
            printf '%s (-c %s -n %s -r %s; direct: GET -P %s -n %s):\n' "$name" "$clients" "$n" "$ks" \
                "$MGET_KEYS" $((n * MGET_KEYS)) >>"$TMP/commands"
        else
            printf '%s (-c %s -P %s -n %s -r %s):\n' "$name" "$clients" "$pipe" "$n" "$ks" >>"$TMP/commands"
        fi
        order=() # rotate from workload to workload and from round to round, so that no target always goes first
        for j in "${!TARGETS[@]}"; do order+=("${TARGETS[(i + ROUND - 1 + j) % ${#TARGETS[@]}]}"); done
        for target in "${order[@]}"; do
            t=$test p=$pipe m=$n div=1 cmd=()
            if [[ "$test" == mget ]]; then
                # a cluster cannot MGET across slots: direct, a cluster-aware client's best is
                # MGET_KEYS GETs per round trip; rps / MGET_KEYS is then MGETs/s
                if [[ "$target" == direct ]]; then
                    t=get p=$MGET_KEYS m=$((n * MGET_KEYS)) div=$MGET_KEYS
                else
                    t=- cmd=("${MGET_CMD[@]}")
                fi
            fi
            case "$target" in proxy) tpid=$PID ;; peer) tpid=$PEER_PID ;; *) tpid= ;; esac
            log "$RLOG$name: $target (n=$m, -r $ks)"
            n0="$(cpu_ticks "${NODE_PIDS[@]}")" c0="$(cpu_ticks ${tpid:+"$tpid"})"
            bench "$target" "$t" "$p" "$clients" "$m" "$size" "$ks" "${cmd[@]}" || FAILED=1
            n1="$(cpu_ticks "${NODE_PIDS[@]}")" c1="$(cpu_ticks ${tpid:+"$tpid"})"
            if ((div > 1)) && [[ "$R" != "- - -" ]]; then
                read -r rps p50 p99 <<<"$R"
                R="$(awk -v r="$rps" -v d="$div" 'BEGIN{printf "%.2f", r / d}') $p50 $p99"
            fi
            RES[$ROUND,$i,$target]=$R
            NCPU[$ROUND,$i,$target]="$(per_req "$n0" "$n1" "$n")" # per MGET in the MGET row, also direct
            [[ "$target" == direct ]] && continue
            CPU[$ROUND,$i,$target]="$(per_req "$c0" "$c1" "$n")"
            if [[ "$target" == proxy ]]; then
                if [[ -n "$PROXY_PID" ]] && ! alive "$PROXY_PID"; then die "the proxy exited during '$name'"; fi
                rss="$(rss_kb)"
                if [[ "$rss" != - ]]; then
                    [[ "${RSS[$i]:--}" == - || "$rss" -gt "${RSS[$i]}" ]] && RSS[$i]=$rss
                    [[ "$RSS_MAX" == - || "$rss" -gt "$RSS_MAX" ]] && RSS_MAX=$rss
                fi
            elif [[ -n "$PEER_PID" ]] && ! alive "$PEER_PID"; then
                die "the peer proxy (pid $PEER_PID) exited during '$name'"
            fi
        done
    done
done

# --- report --------------------------------------------------------------------------
mb() { awk -v k="$1" 'BEGIN{ if (k == "-") print "-"; else printf "%.1f MB", k / 1024 }'; }
ratio() { awk -v p="$1" -v d="$2" 'BEGIN{ if (p + 0 > 0 && d + 0 > 0) printf "%.2f", p / d; else print "-" }'; }
median() { # median VALUE... -> their median, '-' (unknown) ignored, '-' if none is known; an odd
    # count gives the middle value as it is, an even one the mean of the two middle values
    # (with as many decimals as they have)
    awk 'BEGIN {
        for (k = 1; k < ARGC; k++) {
            v = ARGV[k]
            if (v == "-" || v == "") continue
            for (j = n++; j > 0 && a[j - 1] + 0 > v + 0; j--) a[j] = a[j - 1]
            a[j] = v
        }
        if (n == 0) { print "-"; exit }
        if (n % 2) { print a[(n - 1) / 2]; exit }
        x = a[n / 2 - 1]; y = a[n / 2]
        dx = index(x, ".") ? length(x) - index(x, ".") : 0
        dy = index(y, ".") ? length(y) - index(y, ".") : 0
        printf "%." (dx > dy ? dx : dy) "f\n", (x + y) / 2
    }' "$@"
}
ratio_range() { # ratio_range WORKLOAD TARGET -> min-max over the rounds of TARGET rps / direct rps
    # of the same round, '-' if no round has both
    local r x d args=()
    for ((r = 1; r <= ROUNDS; r++)); do
        read -r x _ <<<"${RES[$r,$1,$2]:-"- - -"}"
        read -r d _ <<<"${RES[$r,$1,direct]:-"- - -"}"
        args+=("$x" "$d")
    done
    awk 'BEGIN {
        for (k = 1; k + 1 < ARGC; k += 2) {
            p = ARGV[k] + 0; d = ARGV[k + 1] + 0
            if (p <= 0 || d <= 0) continue
            q = p / d
            if (!n++ || q < lo) lo = q
            if (n == 1 || q > hi) hi = q
        }
        if (n) printf "%.2f-%.2f\n", lo, hi; else print "-"
    }' "${args[@]}"
}
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] &&
    commit+=" (+ uncommitted changes in src/ or Cargo.*)"
echo
echo "command:  $CMDLINE"
echo "commit:   $commit"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(redis-benchmark --version | head -n1); $(redis-server --version 2>/dev/null | grep -o 'v=[^ ]*' || true)"
echo "proxy:    $PROXY ${PROXY_PID:+($BIN)}${PID:+ pid $PID}; cluster: $CLUSTER${NODE_PIDS[0]:+ (pids ${NODE_PIDS[*]})}"
[[ -n "$PEER" ]] && echo "peer:     $PEER${PEER_PID:+ pid $PEER_PID} ($(ps -o comm= -p "${PEER_PID:-0}" 2>/dev/null || echo 'process unknown'))"
((PIN)) && echo "pinned:   proxy${PEER:+ and peer} on CPU $PROXY_CPU; the cluster's redis-servers and redis-benchmark on $OTHER_LABEL (taskset)"
echo "rps:      requests done by redis-benchmark's last progress report over the time to it (a run shorter than its 250 ms period: the closing figure)"
((TLS)) && echo "tls:      TLS end to end: redis-benchmark --tls to the proxy's tls_port and directly to the TLS-only cluster (port 0, tls-port, tls-cluster yes); the proxy to the nodes with backend_tls; throwaway RSA-2048 certificates, rustls (proxy) and OpenSSL $(openssl version | cut -d' ' -f2) (redis)"
((QUICK)) && echo "quick:    runs this short are timed to redis-benchmark's 250 ms tick, so rps and ratios are coarse (0.50, 0.67, 1.00...); leave out --quick for figures"
echo "keyspace: -r $KEYSPACE; 1 KB values -r $KS1K; 100 KB values -r $KS100K; -d 64; --threads $MASTERS"
if ((ROUNDS > 1)); then
    echo "rounds:   $ROUNDS, medians (every round a whole pass over the workloads; target order rotating)"
    echo "runs (each $ROUNDS times; the order of targets is that of round 1):"
else
    echo "runs:"
fi
cat "$TMP/commands"
echo
# columns: name|printf format; the peer ones only with --peer
NODES_HDR="nodes CPU us/req D / P"
COLS=("workload|%-15s" "direct rps|%10s" "proxy rps|%10s" "ratio|%6s")
((ROUNDS > 1)) && COLS+=("ratio range|%11s")
[[ -n "$PEER" ]] && COLS+=("peer rps|%10s" "peer ratio|%10s") NODES_HDR+=" / peer"
[[ -n "$PEER" ]] && ((ROUNDS > 1)) && COLS+=("peer ratio range|%16s")
COLS+=("direct p50/p99 ms|%-17s" "proxy p50/p99 ms|%-17s")
[[ -n "$PEER" ]] && COLS+=("peer p50/p99 ms|%-17s")
COLS+=("proxy CPU us/req|%16s")
[[ -n "$PEER" ]] && COLS+=("peer CPU us/req|%15s")
COLS+=("proxy RSS|%9s" "$NODES_HDR|%-${#NODES_HDR}s")
FMT='|' HDR=() BLANK=()
for c in "${COLS[@]}"; do FMT+=" ${c#*|} |" HDR+=("${c%|*}") BLANK+=(''); done
# shellcheck disable=SC2059 # the format is built above from COLS
row() { printf "$FMT\n" "$@"; }
row "${HDR[@]}"
row "${BLANK[@]}" | tr ' ' -
declare -A MED MCPU MNCPU # per target of the current workload: medians over the rounds
for i in "${!WORKLOADS[@]}"; do
    for target in "${TARGETS[@]}"; do
        rl=() p50l=() p99l=() cl=() nl=()
        for ((r = 1; r <= ROUNDS; r++)); do
            read -r rps p50 p99 <<<"${RES[$r,$i,$target]:-"- - -"}"
            rl+=("$rps") p50l+=("$p50") p99l+=("$p99")
            cl+=("${CPU[$r,$i,$target]:--}") nl+=("${NCPU[$r,$i,$target]:--}")
        done
        MED[$target]="$(median "${rl[@]}") $(median "${p50l[@]}") $(median "${p99l[@]}")"
        MCPU[$target]="$(median "${cl[@]}")" MNCPU[$target]="$(median "${nl[@]}")"
    done
    read -r drps dp50 dp99 <<<"${MED[direct]}"
    read -r prps pp50 pp99 <<<"${MED[proxy]}"
    nodes="${MNCPU[direct]} / ${MNCPU[proxy]}"
    v=("${WORKLOADS[$i]%%|*}" "${drps%.*}" "${prps%.*}" "$(ratio "$prps" "$drps")")
    ((ROUNDS > 1)) && v+=("$(ratio_range "$i" proxy)")
    if [[ -n "$PEER" ]]; then
        read -r xrps xp50 xp99 <<<"${MED[peer]}"
        v+=("${xrps%.*}" "$(ratio "$xrps" "$drps")")
        ((ROUNDS > 1)) && v+=("$(ratio_range "$i" peer)")
        nodes+=" / ${MNCPU[peer]}"
    fi
    v+=("$dp50 / $dp99" "$pp50 / $pp99")
    [[ -n "$PEER" ]] && v+=("$xp50 / $xp99")
    v+=("${MCPU[proxy]}")
    [[ -n "$PEER" ]] && v+=("${MCPU[peer]}")
    ((${#NODE_PIDS[@]})) || nodes=-
    v+=("$(mb "${RSS[$i]:--}")" "$nodes")
    row "${v[@]}"
done
echo
echo "proxy RSS: idle $(mb "$RSS_IDLE"), max after a run $(mb "$RSS_MAX"); CPU us/req = (utime+stime)*1e6/requests, ${TICKS} ticks/s"
echo "nodes CPU us/req: utime+stime of all ${#NODE_PIDS[@]} redis-server processes of the cluster per request," \
    "direct / through the proxy${PEER:+ / through the peer} (- if their pids are unknown)"
echo "MGET $MGET_KEYS keys: MGETs/s of $MGET_KEYS random keys (in different slots) through the proxy${PEER:+ and the peer};" \
    "direct (a cluster cannot MGET across slots): GET -P $MGET_KEYS with --cluster, rps / $MGET_KEYS," \
    "latency of the $MGET_KEYS-GET pipeline, CPU per $MGET_KEYS GETs"
if ((ROUNDS > 1)); then
    echo "rounds: every figure is the median over the $ROUNDS rounds, of each column (rps, p50, p99, CPU us/req, nodes" \
        "CPU us/req) and target independently (so p50 and p99 may come from different rounds); with an even count" \
        "of known values the mean of the two middle ones; unknown values (-) are left out. ratio: of the median rps;" \
        "ratio range: min-max over the rounds of proxy rps / direct rps of the same round${PEER:+ (peer ratio range: peer / direct)};" \
        "proxy RSS: max after the proxy runs of the workload over the rounds"
fi
if [[ -n "$PROXY_PID" && -s "$TMP/proxy.log" ]]; then # started with --log-level warn: anything is news
    echo "proxy log: $(wc -l <"$TMP/proxy.log") lines at warn or above, the first 5:"
    head -n 5 "$TMP/proxy.log" | cut -c 1-300
fi
((FAILED == 0)) || die "some runs failed (see above)"
