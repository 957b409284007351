#!/usr/bin/env bash
# Run the whole test suite: installs the test dependencies (redis-server,
# redis-cli, Python redis module) if missing, then `cargo test --all-targets`.
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

echo "[test] cargo test --all-targets $*"
status=0
cargo test --all-targets "$@" || status=$?
if [[ "$status" -eq 0 ]]; then
    echo "[test] all tests passed"
else
    echo "[test] cargo test failed (exit status $status)" >&2
fi
exit "$status"
