#!/usr/bin/env bash
# Run the whole test suite: installs the test dependencies (redis-server,
# redis-cli, Python redis module) if missing, then `cargo test --all-targets --no-fail-fast`.
# Extra arguments are passed to cargo, e.g.:
#   scripts/test.sh -- --nocapture
#   scripts/test.sh --release
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

"$ROOT/scripts/install-deps.sh"

command -v cargo >/dev/null 2>&1 || {
    echo "[test] error: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
}

# --no-fail-fast: a failing test file does not keep the later ones from running (cargo
# lists the failed ones at the end).
echo "[test] cargo test --all-targets --no-fail-fast $*"
status=0
cargo test --all-targets --no-fail-fast "$@" || status=$?
if [[ "$status" -eq 0 ]]; then
    echo "[test] all tests passed"
else
    echo "[test] cargo test failed (exit status $status); the failed targets are listed above" >&2
fi
exit "$status"
