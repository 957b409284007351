#!/usr/bin/env bash
# Fuzz the proxy's parsers with cargo-fuzz (libFuzzer, nightly Rust).
#
#   scripts/fuzz.sh TARGET SECONDS    fuzz one target for SECONDS
#   scripts/fuzz.sh all SECONDS       every target in turn, SECONDS each
#   scripts/fuzz.sh list              the targets
#
# Targets: request_parser reply_parser roundtrip cluster_slots config route
# (fuzz/fuzz_targets/*.rs; the invariants they check live in fuzz/src/checks.rs).
#
# Per target: build; replay every committed input (fuzz/corpus/TARGET and
# fuzz/regressions/TARGET, full size, one run each); then fuzz for SECONDS starting from
# them. New interesting inputs go to fuzz/work/corpus/TARGET (git-ignored), never into the
# committed seed corpus. Prints the number of executions; exits non-zero on a crash or a
# broken invariant, saying where the input is and how to keep it as a regression.
#
# Environment:
#   FUZZ_MAX_LEN=4096      longest generated input (committed inputs replay at full size)
#   FUZZ_RSS_MB=1536       libFuzzer's memory limit (also caps single allocations)
#   FUZZ_TIMEOUT=10        seconds one input may take before it counts as a hang
#   FUZZ_SKIP_REPLAY=1     fuzz even while a committed input still fails (exploration)
#   FUZZ_NIGHTLY=nightly   the toolchain cargo-fuzz builds with
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
FUZZ="$ROOT/fuzz"
TARGETS=(request_parser reply_parser roundtrip cluster_slots config route)
MAX_LEN="${FUZZ_MAX_LEN:-4096}"
RSS_MB="${FUZZ_RSS_MB:-1536}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
NIGHTLY="${FUZZ_NIGHTLY:-nightly}"
BUILD_LIMIT=1800 # seconds a build may take (first builds compile the proxy with sanitizers)
# As cargo fuzz sets it, for the replay that runs the fuzz binary directly.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"

log() { printf '[fuzz] %s\n' "$*"; }
die() {
    printf '[fuzz] error: %s\n' "$*" >&2
    exit 2
}

usage() {
    sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

dict_for() {
    case "$1" in
    route) echo "$FUZZ/dict/route.dict" ;;
    config) echo "$FUZZ/dict/config.dict" ;;
    *) echo "$FUZZ/dict/resp.dict" ;;
    esac
}

is_target() {
    local t
    for t in "${TARGETS[@]}"; do [[ "$t" == "$1" ]] && return 0; done
    return 1
}

ensure_tools() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs"
    if ! cargo "+$NIGHTLY" --version >/dev/null 2>&1; then
        die "the $NIGHTLY toolchain is missing: rustup toolchain install $NIGHTLY"
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "cargo-fuzz not found; installing it (cargo install cargo-fuzz --locked)"
        cargo install cargo-fuzz --locked || cargo "+$NIGHTLY" install cargo-fuzz --locked ||
            die "cannot install cargo-fuzz"
    fi
    command -v timeout >/dev/null 2>&1 || die "timeout(1) not found (coreutils)"
}

# The crash input libFuzzer wrote, from its log.
artifact_of() {
    sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1" | tail -n 1
}

# Explains a failure found in log $2 for target $1 and how to keep the input.
report_crash() {
    local target=$1 logf=$2 input=$3 what
    what="$(grep -m1 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY:" "$logf" || true)"
    local msg
    msg="$(grep -m1 -A1 "panicked at" "$logf" | tail -n 1 || true)"
    printf '\n[fuzz] %s: FAILED: %s\n' "$target" "${what:-see the log}" >&2
    [[ -n "$msg" ]] && printf '[fuzz]   %s\n' "$msg" >&2
    if [[ -n "$input" ]]; then
        cat >&2 <<EOF
[fuzz]   input:      $input
[fuzz]   reproduce:  (cd fuzz && cargo +$NIGHTLY fuzz run $target ${input#"$FUZZ"/})
[fuzz]   minimize:   (cd fuzz && cargo +$NIGHTLY fuzz tmin $target ${input#"$FUZZ"/})
[fuzz]   keep it:    copy the (minimized) input to fuzz/regressions/$target/<what-it-does>
[fuzz]               so 'cargo test --test fuzz_corpus' replays it until the bug is fixed
EOF
    fi
    printf '[fuzz]   full log:   %s\n' "$logf" >&2
}

run_target() {
    local target=$1 seconds=$2
    local work="$FUZZ/work/corpus/$target" logs="$FUZZ/work/logs"
    mkdir -p "$work" "$logs" "$FUZZ/artifacts/$target"
    local corpus="$FUZZ/corpus/$target" regress="$FUZZ/regressions/$target"
    [[ -d "$corpus" && -n "$(ls -A "$corpus")" ]] || die "$corpus is missing or empty"
    mkdir -p "$regress"

    log "$target: building"
    (cd "$FUZZ" && timeout "$BUILD_LIMIT" cargo "+$NIGHTLY" fuzz build "$target") ||
        die "$target: build failed"
    local host bin
    host="$(rustc "+$NIGHTLY" -vV | sed -n 's/^host: //p')"
    bin="$FUZZ/target/$host/release/$target"
    [[ -x "$bin" ]] || die "$target: fuzz binary $bin not found after the build"

    local common=(-rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB" -timeout="$TIMEOUT")

    # 1. Every committed input, at full size (a directory given to libFuzzer is cut to
    #    -max_len; files given one by one are not).
    local dirs=("$work" "$corpus" "$regress")
    local files=()
    mapfile -t files < <(find "$corpus" "$regress" -type f ! -name '.*' | sort)
    log "$target: replaying ${#files[@]} committed inputs"
    local replay_log="$logs/$target.replay.log"
    if ! (cd "$FUZZ" && timeout $((60 + ${#files[@]} * (TIMEOUT + 1))) \
        "$bin" "${common[@]}" -artifact_prefix="$FUZZ/artifacts/$target/" "${files[@]}") \
        >"$replay_log" 2>&1; then
        local failed
        failed="$(grep "^Running: " "$replay_log" | tail -n 1 | sed 's/^Running: //')"
        printf '\n[fuzz] %s: a committed input breaks an invariant: %s\n' "$target" "${failed:-?}" >&2
        report_crash "$target" "$replay_log" ""
        if [[ "${FUZZ_SKIP_REPLAY:-}" != 1 ]]; then
            log "$target: fix it first (or FUZZ_SKIP_REPLAY=1 to fuzz anyway)"
            return 1
        fi
        log "$target: FUZZ_SKIP_REPLAY=1: fuzzing anyway, without fuzz/regressions/$target"
        dirs=("$work" "$corpus")
    fi

    # 2. Fuzz.
    local run_log="$logs/$target.log"
    log "$target: fuzzing for ${seconds}s (max_len $MAX_LEN, dict $(basename "$(dict_for "$target")"))"
    local status=0 started=$SECONDS
    (cd "$FUZZ" && timeout $((seconds + 120)) cargo "+$NIGHTLY" fuzz run "$target" \
        "${dirs[@]}" -- \
        -max_total_time="$seconds" -max_len="$MAX_LEN" -dict="$(dict_for "$target")" \
        -print_final_stats=1 "${common[@]}") >"$run_log" 2>&1 || status=$?

    local execs
    execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$run_log" | tail -n 1)"
    [[ -n "$execs" ]] || execs="$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$run_log" | tail -n 1)"
    [[ -n "$execs" ]] || execs="$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$run_log" | tail -n 1)"
    log "$target: ${execs:-?} executions in $((SECONDS - started))s; corpus now $(find "$work" -type f | wc -l) new inputs in fuzz/work/corpus/$target"

    if [[ "$status" -ne 0 ]]; then
        if [[ "$status" -eq 124 ]]; then
            printf '[fuzz] %s: the run did not stop in time (log %s)\n' "$target" "$run_log" >&2
        fi
        report_crash "$target" "$run_log" "$(artifact_of "$run_log")"
        return 1
    fi
    return 0
}

main() {
    [[ $# -ge 1 ]] || usage
    local what=$1
    if [[ "$what" == list ]]; then
        printf '%s\n' "${TARGETS[@]}"
        exit 0
    fi
    [[ $# -eq 2 ]] || usage
    local seconds=$2
    [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer, not '$seconds'"
    if [[ "$what" != all ]] && ! is_target "$what"; then
        die "unknown target '$what' (one of: ${TARGETS[*]}, or all)"
    fi
    ensure_tools

    # One fuzzing run at a time on this checkout.
    mkdir -p "$FUZZ/work"
    exec 9>"$FUZZ/work/.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -n 9 || die "another scripts/fuzz.sh is running on this checkout"
    fi

    local failed=()
    if [[ "$what" == all ]]; then
        local t
        for t in "${TARGETS[@]}"; do
            run_target "$t" "$seconds" || failed+=("$t")
        done
    else
        run_target "$what" "$seconds" || failed+=("$what")
    fi
    if [[ ${#failed[@]} -gt 0 ]]; then
        printf '\n[fuzz] FAILED: %s\n' "${failed[*]}" >&2
        exit 1
    fi
    log "no crash, no broken invariant"
}

main "$@"
