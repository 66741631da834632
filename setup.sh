#!/bin/bash
# SPDX-License-Identifier: MIT
# Set up a Debian 12 machine for mitmrec and build it in the source tree; then, optionally,
# run the demo or the test suite.
#   ./setup.sh [build]   install what is missing (as root), autoreconf, configure, make
#   ./setup.sh demo      ... then examples/demo/run
#   ./setup.sh check     ... then make check (prints the logs of failed tests)
# Safe to run again: it installs and regenerates only what is missing or out of date.
set -euo pipefail

usage() { echo "usage: ./setup.sh [demo|check|build]"; }
mode=${1:-build}
case $mode in
demo | check | build) ;;
-h | --help) usage; exit 0 ;;
*) usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }

cd "$(dirname "$0")"
say() { printf 'setup: %s\n' "$*" >&2; }

PACKAGES=(build-essential autoconf automake libtool pkg-config libssl-dev libuv1-dev libcjson-dev
          zlib1g-dev libpcap-dev libhttp-parser-dev libnghttp2-dev libbrotli-dev libzstd-dev
          libbpf-dev bpftool clang llvm libclang-rt-14-dev nginx-light tshark curl wget openssl
          python3 nodejs npm ca-certificates nghttp2-client dnsmasq-base iproute2 valgrind
          nghttp2-proxy python3-websockets chromium libnss3-tools tcpdump redis-server redis-tools
          util-linux procps groff-base clang-format python3-grpcio strace tinyproxy)
NODE_PREFIX=/usr/local/lib/mitmrec-test
HAR_VALIDATOR=har-validator@5.1.5

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${PACKAGES[@]}"; do
    case $p in
    # NodeSource's nodejs package ships npm and conflicts with Debian's: the commands count.
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    python3) [ -x /usr/bin/python3 ] && continue ;;
    esac
    installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        say "missing Debian packages: ${missing[*]}"
        say "run as root (sudo ./setup.sh $mode) or install them with apt-get"
        exit 1
    fi
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting services (nginx would take port 80): the tests run
    # their own nginx on 127.0.0.1.
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ -n "$policy" ]; then rm -f "$policy"; trap - EXIT; fi
fi

# har-validator for tests/har-validate.js, outside the tree so the tree stays clean.
hv=$NODE_PREFIX/node_modules/har-validator/package.json
if ! grep -q '"version": *"5\.1\.5"' "$hv" 2>/dev/null; then
    if [ "$(id -u)" != 0 ] && ! [ -w "$(dirname "$NODE_PREFIX")" ]; then
        say "missing npm package $HAR_VALIDATOR in $NODE_PREFIX; run as root (sudo ./setup.sh $mode)"
        exit 1
    fi
    say "installing $HAR_VALIDATOR into $NODE_PREFIX"
    mkdir -p "$NODE_PREFIX"
    npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error "$HAR_VALIDATOR"
fi

# Build in the tree. autoreconf and configure run only when their inputs are newer than their
# outputs; after that, the Makefile's own rules keep them current.
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    say "autoreconf -fi"
    mkdir -p m4
    autoreconf -fi
fi
if [ ! -f Makefile ] || [ ! -f config.status ] || [ configure -nt config.status ]; then
    say "./configure"
    ./configure -q
fi
make -j2

case $mode in
build) ;;
demo) exec examples/demo/run ;;
check)
    if ! make -j2 check; then
        for trs in $(find tests -name '*.trs' | sort); do
            if grep -Eq '^:test-result: (FAIL|ERROR|XPASS)' "$trs"; then
                log=${trs%.trs}.log
                printf '\n===== %s =====\n' "$log"
                cat "$log"
            fi
        done
        exit 1
    fi
    ;;
esac
