# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Sourced by bench/run and bench/instructions.
#
# debian_install PKG...: apt-get install the packages (no recommends, waiting up to 5 min for
# the dpkg lock); when that fails, apt-get update and try once more. On failure prints the
# last lines of apt-get's output on stderr and returns 1. Needs root.
debian_install() {
    local log rc=0
    log=$(mktemp "${TMPDIR:-/tmp}/bench-apt.XXXXXX") || return 1
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
        apt-get -o DPkg::Lock::Timeout=300 update -q >>"$log" 2>&1
        if ! apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@" \
            >>"$log" 2>&1; then
            tail -n 5 "$log" >&2
            rc=1
        fi
    fi
    rm -f "$log"
    return $rc
}
