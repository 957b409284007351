#!/usr/bin/env bash
# Benchmark: the proxy against direct Redis Cluster access, with redis-benchmark.
#
#   scripts/bench.sh [OPTIONS]
#
#   --quick              short run (N=20000) to check that everything works
#   -n, --requests N     requests per -P 1 run (default 200000); -P 16 runs use 10*N
#                        and the -c 1 latency run N/5, so each run lasts a few seconds
#   --base PORT          base port of the cluster started here (default 7300..7305)
#   --cluster HOST:PORT  use this existing cluster (any node) instead of starting one
#   --proxy HOST:PORT    benchmark an already running proxy (e.g. predixy)
#   --proxy-bin PATH     start this binary (same flags) instead of the release build
#   --workers N          start the proxy with N reactor threads (--workers N)
#   -h, --help           print this help
#
# Workloads: redis-benchmark -c 50 -d 64 -r KEYSPACE, SET and GET at -P 1 and -P 16,
# SET/GET of 1 KB values at -P 16 and of 100 KB values at -P 1,
# then GET at -c 1 -P 1 for latency. Each runs through the proxy and directly against
# the cluster (redis-benchmark --cluster), alternating which goes first. Both use
# --threads <masters> (what --cluster implies), so the client side is the same. Proxy
# CPU: utime+stime from /proc/PID/stat; memory: VmRSS (only for a proxy on this host).
# Threaded redis-benchmark ends runs on a 250 ms tick: short (--quick) runs understate rps.
# Environment: BENCH_RUN_TIMEOUT (seconds allowed per redis-benchmark run, default 300).
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
BIN="$ROOT/target/release/redis-cluster-proxy"
RUN_TIMEOUT="${BENCH_RUN_TIMEOUT:-300}"
CMDLINE="$(printf "%q " "${BASH_SOURCE[0]}" "$@")"; CMDLINE=${CMDLINE% }
N='' QUICK=0 BASE=7300 CLUSTER='' PROXY='' PROXY_BIN='' WORKERS=''

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
hostport() { [[ "$2" =~ ^[^:[:space:]]+:[0-9]+$ ]] || die "$1 expects HOST:PORT, got '$2'"; }

while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        -h | --help) usage 0 ;;
        -n | --requests | --base | --cluster | --proxy | --proxy-bin | --workers)
            (($# >= 2)) || die "$1 needs a value"
            case "$1" in
                -n | --requests) N=$2 ;;
                --base) BASE=$2 ;;
                --cluster) hostport "$1" "$2"; CLUSTER=$2 ;;
                --proxy) hostport "$1" "$2"; PROXY=$2 ;;
                --proxy-bin) PROXY_BIN=$2 ;;
                --workers) WORKERS=$2 ;;
            esac
            shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[[ -z "$N" ]] && { ((QUICK)) && N=20000 || N=200000; }
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 100 ]] || die "--requests must be a number >= 100, got '$N'"
[[ "$BASE" =~ ^[0-9]+$ && "$BASE" -ge 1024 && "$BASE" -le 55530 ]] || die "--base must be 1024..55530"
[[ -n "$PROXY" && -n "$PROXY_BIN" ]] && die "--proxy and --proxy-bin exclude each other"
for t in redis-benchmark redis-cli timeout getconf; do
    command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh installs redis)"
done
KEYSPACE=$((N / 2 < 100000 ? N / 2 : 100000)) # every GET key is written ~22 times before
TICKS="$(getconf CLK_TCK)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")"
STARTED_CLUSTER=0 PROXY_PID='' RB_PID='' FAILED=0
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
    if [[ -n "$PROXY_PID" ]]; then
        ((rc != 0)) && [[ -s "$TMP/proxy.log" ]] && { log "proxy log (tail):"; tail -n 20 "$TMP/proxy.log" >&2; }
        stop_proxy
    fi
    if ((STARTED_CLUSTER)); then
        log "stopping the cluster on $BASE..$((BASE + 5))"
        timeout 60 "$ROOT/scripts/cluster.sh" stop "$BASE" >/dev/null 2>&1 || log "cluster stop failed; run: scripts/cluster.sh stop $BASE"
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rcli() { local hp=$1; shift; timeout 3 redis-cli -h "${hp%:*}" -p "${hp##*:}" "$@" </dev/null 2>/dev/null | tr -d '\r'; }
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# --- cluster -------------------------------------------------------------------------
if [[ -z "$CLUSTER" ]]; then
    if "$ROOT/scripts/cluster.sh" status "$BASE" >/dev/null 2>&1; then
        log "reusing the healthy cluster already running on $BASE..$((BASE + 5)) (left running)"
    else
        log "starting a 3+3 cluster on $BASE..$((BASE + 5))"
        STARTED_CLUSTER=1
        timeout 150 "$ROOT/scripts/cluster.sh" start "$BASE" >"$TMP/cluster.log" 2>&1 ||
            { tail -n 20 "$TMP/cluster.log" >&2; die "could not start the cluster on $BASE"; }
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
        "$BIN" --port "$port" --nodes "$CLUSTER" --log-level warn ${WORKERS:+--workers "$WORKERS"} </dev/null >"$TMP/proxy.log" 2>&1 &
        PROXY_PID=$!
        deadline=$((SECONDS + 20))
        while alive "$PROXY_PID" && ((SECONDS < deadline)); do
            [[ "$(rcli "127.0.0.1:$port" ping)" == PONG ]] && { PROXY="127.0.0.1:$port"; break; }
            sleep 0.2
        done
        [[ -n "$PROXY" ]] && break
        alive "$PROXY_PID" || ! grep -qi 'listen' "$TMP/proxy.log" || { PROXY_PID=; continue; } # port race
        tail -n 20 "$TMP/proxy.log" >&2
        die "the proxy ($BIN) did not answer PING on port $port within 20s"
    done
    [[ -n "$PROXY" ]] || die "could not find a free port for the proxy"
    PID=$PROXY_PID
    log "proxy $BIN running on $PROXY (pid $PID)"
else
    [[ "$(rcli "$PROXY" ping)" == PONG ]] || die "--proxy $PROXY does not answer PING"
    PID=
    if [[ "${PROXY%:*}" =~ ^(127\.0\.0\.1|localhost)$ ]] && command -v ss >/dev/null; then
        PID="$(ss -Hltnp "sport = :${PROXY##*:}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true)"
    fi
    if [[ -n "$PID" ]]; then log "external proxy on $PROXY is pid $PID"; else log "pid of $PROXY unknown: no CPU/RSS"; fi
fi

cpu_ticks() { # utime+stime of the proxy process (all threads), in clock ticks
    local s f
    [[ -n "$PID" && -r "/proc/$PID/stat" ]] || { echo -; return; }
    s="$(<"/proc/$PID/stat")"
    read -ra f <<<"${s##*) }"
    echo $((f[11] + f[12]))
}
rss_kb() { [[ -n "$PID" ]] && awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo -; }

# --- runs ----------------------------------------------------------------------------
# bench TARGET TEST PIPELINE CLIENTS REQUESTS -> sets R="rps p50 p99" from --csv output
# (columns found by header name; redis-benchmark >= 7 prints percentiles there).
bench() {
    local target=$1 test=$2 args
    R="- - -"
    args=(-t "$test" -P "$3" -c "$4" -n "$5" -d "${6:-64}" -r "$KEYSPACE" --threads "$MASTERS" --csv)
    if [[ "$target" == proxy ]]; then
        args=(-h "${PROXY%:*}" -p "${PROXY##*:}" "${args[@]}")
    else
        args=(--cluster -h "${CLUSTER%:*}" -p "${CLUSTER##*:}" "${args[@]}")
    fi
    printf '  %-6s redis-benchmark %s\n' "$target" "${args[*]}" >>"$TMP/commands"
    # in the background: a trapped signal interrupts 'wait' at once, not after the run
    timeout -k 5 "$RUN_TIMEOUT" redis-benchmark "${args[@]}" </dev/null >"$TMP/out" 2>"$TMP/err" &
    RB_PID=$!
    if ! wait "$RB_PID"; then
        RB_PID=''
        log "$target $test failed or timed out after ${RUN_TIMEOUT}s:"; tail -n 5 "$TMP/out" "$TMP/err" >&2
        return 1
    fi
    RB_PID=''
    R="$(tr '\r' '\n' <"$TMP/out" | awk -F, -v t="${test^^}" '
        { gsub(/"/, "") }
        $1 == "test" { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == t && $2 + 0 > 0 {
            r = ("rps" in col) ? $col["rps"] : $2
            p50 = ("p50_latency_ms" in col) ? $col["p50_latency_ms"] : "-"
            p99 = ("p99_latency_ms" in col) ? $col["p99_latency_ms"] : "-"
            print r, p50, p99; ok = 1; exit
        }
        END { exit !ok }')" || { R="- - -"; log "$target $test: no result in redis-benchmark output"; return 1; }
}

WORKLOADS=("SET -P 1|set|1|50|$N" "SET -P 16|set|16|50|$((N * 10))" "GET -P 1|get|1|50|$N"
    "GET -P 16|get|16|50|$((N * 10))" "GET -c 1 -P 1|get|1|1|$((N / 5))"
    "SET 1KB -P 16|set|16|50|$((N * 5))|1024" "GET 1KB -P 16|get|16|50|$((N * 5))|1024"
    "SET 100KB -P 1|set|1|50|$((N / 20))|102400" "GET 100KB -P 1|get|1|50|$((N / 20))|102400")
declare -A RES CPU RSS
RSS_IDLE="$(rss_kb)" RSS_MAX="$(rss_kb)"
for i in "${!WORKLOADS[@]}"; do
    IFS='|' read -r name test pipe clients n size <<<"${WORKLOADS[$i]}"
    printf '%s (-c %s -P %s -n %s):\n' "$name" "$clients" "$pipe" "$n" >>"$TMP/commands"
    order=(proxy direct)
    ((i % 2)) && order=(direct proxy)
    for target in "${order[@]}"; do
        log "$name: $target (n=$n)"
        [[ "$target" == proxy ]] && c0="$(cpu_ticks)"
        bench "$target" "$test" "$pipe" "$clients" "$n" "${size:-64}" || FAILED=1
        RES[$i,$target]=$R
        if [[ "$target" == proxy ]]; then
            if [[ -n "$PROXY_PID" ]] && ! alive "$PROXY_PID"; then die "the proxy exited during '$name'"; fi
            c1="$(cpu_ticks)" RSS[$i]="$(rss_kb)"
            CPU[$i]=-
            [[ "$c0" != - && "$c1" != - ]] && CPU[$i]="$(awk -v d=$((c1 - c0)) -v t="$TICKS" -v n="$n" 'BEGIN{printf "%.2f", d / t * 1e6 / n}')"
            [[ "${RSS[$i]}" != - && "${RSS[$i]}" -gt "$RSS_MAX" ]] && RSS_MAX=${RSS[$i]}
        fi
    done
done

# --- report --------------------------------------------------------------------------
mb() { awk -v k="$1" 'BEGIN{ if (k == "-") print "-"; else printf "%.1f MB", k / 1024 }'; }
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] &&
    commit+=" (+ uncommitted changes in src/ or Cargo.*)"
echo
echo "command:  $CMDLINE"
echo "commit:   $commit"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(redis-benchmark --version | head -n1); $(redis-server --version 2>/dev/null | grep -o 'v=[^ ]*' || true)"
echo "proxy:    $PROXY ${PROXY_PID:+($BIN)}${PID:+ pid $PID}; cluster: $CLUSTER; keyspace -r $KEYSPACE; -d 64; --threads $MASTERS"
echo "runs:"
cat "$TMP/commands"
echo
row() { printf '| %-13s | %10s | %10s | %6s | %-17s | %-17s | %12s | %9s |\n' "$@"; }
row workload "direct rps" "proxy rps" ratio "direct p50/p99 ms" "proxy p50/p99 ms" "CPU us/req" "proxy RSS"
row '' '' '' '' '' '' '' '' | tr ' ' -
for i in "${!WORKLOADS[@]}"; do
    read -r drps dp50 dp99 <<<"${RES[$i,direct]}"
    read -r prps pp50 pp99 <<<"${RES[$i,proxy]}"
    ratio=$(awk -v p="$prps" -v d="$drps" 'BEGIN{ if (p + 0 > 0 && d + 0 > 0) printf "%.2f", p / d; else print "-" }')
    row "${WORKLOADS[$i]%%|*}" "${drps%.*}" "${prps%.*}" "$ratio" "$dp50 / $dp99" "$pp50 / $pp99" \
        "${CPU[$i]:--}" "$(mb "${RSS[$i]:--}")"
done
echo
echo "proxy RSS: idle $(mb "$RSS_IDLE"), max after a run $(mb "$RSS_MAX"); CPU us/req = (utime+stime)*1e6/requests, ${TICKS} ticks/s"
((FAILED == 0)) || die "some runs failed (see above)"
