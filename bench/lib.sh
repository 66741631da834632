# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Sourced by bench/run and bench/instructions: what both need.

# have CMD-OR-PATH: a command on PATH, or a file that exists.
have() { command -v "$1" >/dev/null 2>&1 || [ -e "$1" ]; }

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

# bench_nginx_conf DIR WWW PORT TIXPORT: writes DIR/nginx.conf from bench/nginx.conf.in for the
# origin both scripts measure against: prefix DIR, document root WWW, TLS 1.3 on 127.0.0.1:PORT
# with full handshakes only and on TIXPORT with session tickets; as root, workers run as root.
bench_nginx_conf() {
    local user=''
    [ "$(id -u)" = 0 ] && user='user root root;'
    sed -e "s|@DIR@|$1|g" -e "s|@ROOT@|$2|g" -e "s|@TLS@|$TLS_FIXTURES|g" \
        -e "s|@TLSPORT@|$3|g" -e "s|@TIXPORT@|$4|g" -e "s|@USER@|$user|g" \
        "$BENCH_DIR/nginx.conf.in" >"$1/nginx.conf"
}
