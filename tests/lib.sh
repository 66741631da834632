# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by tests/integration/*.sh (bash). Source it first thing:
#   . "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
#
# What it gives a test:
#   $WORK            a temp dir, removed on exit (kept when MITMREC_TEST_KEEP=1)
#   $HOME            $WORK/home, so mitmrec makes its CA in $HOME/.mitmrec
#   free_port / free_ports N
#   start_origin     nginx from tests/nginx.conf.in on 127.0.0.1; exports ORIGIN_PORT (HTTP),
#                    ORIGIN_TLSPORT (HTTPS, test-CA cert), ORIGIN_BADPORT (HTTPS, untrusted cert),
#                    WWW (document root), TEST_CA (fixtures/tls/test-ca.pem), and for HTTP/2
#                    ORIGIN_H2PORT (HTTPS, ALPN h2 and http/1.1) and ORIGIN_H2CPORT (cleartext
#                    HTTP/2 with prior knowledge, h2c)
#   start_mitmrec ARGS...   mitmrec --listen 0 ARGS in the background; exports MITM_PORT,
#                    MITM_PID, MITM_LOG (its stderr), MITM_PCAP, MITM_HAR, MITM_CA
#   stop_mitmrec [SIG]      SIGTERM (or SIG) to MITM_PID only, checks exit 0 and the summary line
#   pcurl ARGS...    curl through the proxy, trusting the mitmrec CA
#   tshark_requests FILE, tshark_export FILE DIR, tshark_fields FILE FILTER FIELD...
#   har_validate FILE, har_query FILE EXPR, check_recording PCAP HAR [NAME=FILE...]
#   skip MSG (exit 77), fail MSG (exit 1), need TOOL..., log MSG
#
# Facts about tshark 4.0.17 this relies on (checked on Debian 12):
#   - TLS and HTTP on ports other than 443/80 are found by the TCP heuristic dissectors (tls
#     and http, both on by default), on dumpcap captures and on mitmrec's pcapng alike. But a
#     dissector registered for a port wins over the heuristics (tcp.try_heuristic_first is
#     off), and the test ports are random, so the helpers pass "-d tcp.port==PORT,tls" for the
#     HTTPS origin ports and "-d tcp.port==PORT,http" for the plain one (TSHARK_DECODE_AS).
#   - The Decryption Secrets Block is enough: no -o tls.keylog_file is given anywhere, and
#     HOME is a temp dir, so no user preferences apply.
#   - --export-objects http writes bodies with Content-Encoding undone (the gzip JSON comes
#     out equal to the served file); names are the last path segment, "name(1).ext" for repeats.
#   - tcp.payload is there for every segment with data, even where HTTP dissects it.
#   - Run as root, tshark prints 'Running as user "root"...' on stderr; helpers drop that line.
#
# Tests only ever talk to 127.0.0.1. Processes are stopped by the PIDs this file started.

set -u

if [ -z "${top_srcdir:-}" ]; then
    top_srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fi
if [ -z "${top_builddir:-}" ]; then
    top_builddir=$(pwd)
fi
export top_srcdir top_builddir

MITMREC=${MITMREC:-$top_builddir/mitmrec}
PY=/usr/bin/python3
TLS_FIXTURES=${MITMREC_TEST_TLS:-$top_srcdir/fixtures/tls}
TEST_NAME=$(basename "$0" .sh)

# Keep the environment from steering clients elsewhere.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
unset SSLKEYLOGFILE CURL_HOME
export LC_ALL=C

log() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }
fail() { printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }
skip() { printf '%s: SKIP: %s\n' "$TEST_NAME" "$*" >&2; exit 77; }

# need TOOL...: skip the test when a program is missing.
need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || [ -x "$t" ] || skip "$t not found"
    done
}

_LIB_PIDS=()
_lib_cleanup() {
    local rc=$? pid
    trap - EXIT
    for pid in "${_LIB_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
        fi
    done
    for pid in "${_LIB_PIDS[@]}"; do
        local i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    done
    if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -n "${MITM_LOG:-}" ] && [ -s "${MITM_LOG:-}" ]; then
        printf '%s: --- mitmrec stderr (%s) ---\n' "$TEST_NAME" "$MITM_LOG" >&2
        tail -n 40 "$MITM_LOG" >&2
    fi
    if [ "${MITMREC_TEST_KEEP:-0}" = 1 ]; then
        printf '%s: kept %s\n' "$TEST_NAME" "$WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mitmrec-$TEST_NAME.XXXXXX") || exit 99
trap _lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export HOME=$WORK/home
mkdir -p "$HOME"
cd "$WORK" || exit 99

# free_ports N: N distinct free TCP ports on 127.0.0.1, one a line (held open together while
# picking, so they differ).
free_ports() {
    "$PY" - "${1:-1}" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
}
free_port() { free_ports 1; }

# wait_port PORT [SECONDS]: wait until 127.0.0.1:PORT accepts connections.
wait_port() {
    "$PY" - "$1" "${2:-10}" <<'EOF'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + limit
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

# make_www DIR: the files the origin serves, the same bytes on every run.
make_www() {
    mkdir -p "$1"
    "$PY" - "$1" <<'EOF'
import json, random, sys, os
d = sys.argv[1]
with open(os.path.join(d, "small.txt"), "w") as f:
    f.write("hello from the mitmrec test origin\n")
items = [{"id": i, "name": "item-%04d" % i, "tags": ["alpha", "beta", "gamma"][: i % 3 + 1],
          "price": round(i * 1.25, 2), "active": i % 2 == 0} for i in range(120)]
with open(os.path.join(d, "data.json"), "w") as f:
    json.dump({"items": items, "count": len(items)}, f, indent=1)
    f.write("\n")
rng = random.Random(20240601)
for name, size in (("binary.bin", 64 * 1024), ("1m.bin", 1 << 20), ("5m.bin", 5 << 20)):
    with open(os.path.join(d, name), "wb") as f:
        f.write(rng.randbytes(size))
with open(os.path.join(d, "index.html"), "w") as f:
    f.write("<!doctype html><title>mitmrec test origin</title><p>test origin</p>\n")
EOF
}

# start_origin: nginx on five free ports of 127.0.0.1 (see tests/nginx.conf.in; NGINX_CONF_IN
# names another template, e.g. a copy with more worker_connections).
start_origin() {
    need /usr/sbin/nginx
    local f
    for f in origin.pem origin-key.pem untrusted.pem untrusted-key.pem test-ca.pem; do
        [ -r "$TLS_FIXTURES/$f" ] || skip "missing $TLS_FIXTURES/$f"
    done
    TEST_CA=$TLS_FIXTURES/test-ca.pem
    local dir=$WORK/nginx ports user=
    mkdir -p "$dir/tmp"
    WWW=$WORK/www
    make_www "$WWW" || fail "cannot make $WWW"
    [ "$(id -u)" = 0 ] && user='user root root;'
    # A port picked free can be taken before nginx binds it (by any connection's ephemeral
    # port): nginx then exits, and the start is tried again on other ports.
    local ok=0 i
    for _ in 1 2 3; do
        ports=$(free_ports 5 | tr '\n' ' ')
        read -r ORIGIN_PORT ORIGIN_TLSPORT ORIGIN_BADPORT ORIGIN_H2PORT ORIGIN_H2CPORT <<<"$ports"
        sed -e "s|@DIR@|$dir|g" -e "s|@ROOT@|$WWW|g" -e "s|@TLS@|$TLS_FIXTURES|g" \
            -e "s|@PORT@|$ORIGIN_PORT|g" -e "s|@TLSPORT@|$ORIGIN_TLSPORT|g" \
            -e "s|@BADPORT@|$ORIGIN_BADPORT|g" -e "s|@H2PORT@|$ORIGIN_H2PORT|g" \
            -e "s|@H2CPORT@|$ORIGIN_H2CPORT|g" -e "s|@USER@|$user|g" \
            "${NGINX_CONF_IN:-$top_srcdir/tests/nginx.conf.in}" >"$dir/nginx.conf"
        rm -f "$dir/nginx.pid"
        /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' \
            >"$dir/stdout.log" 2>&1 &
        ORIGIN_PID=$!
        _LIB_PIDS+=("$ORIGIN_PID")
        # nginx writes its pid file once all its sockets are bound.
        for i in $(seq 100); do
            [ -s "$dir/nginx.pid" ] && break
            kill -0 "$ORIGIN_PID" 2>/dev/null || break
            sleep 0.1
        done
        if [ -s "$dir/nginx.pid" ] && kill -0 "$ORIGIN_PID" 2>/dev/null; then
            ok=1
            break
        fi
        wait "$ORIGIN_PID" 2>/dev/null
        grep -q 'Address already in use' "$dir/error.log" "$dir/stdout.log" 2>/dev/null || break
        log "nginx: a port was taken, trying others"
    done
    if [ $ok != 1 ]; then
        cat "$dir/stdout.log" "$dir/error.log" >&2 2>/dev/null
        fail "nginx did not start (see above)"
    fi
    local p
    for p in "$ORIGIN_PORT" "$ORIGIN_TLSPORT" "$ORIGIN_BADPORT" "$ORIGIN_H2PORT" "$ORIGIN_H2CPORT"; do
        wait_port "$p" 10 || fail "nginx is not accepting connections on 127.0.0.1:$p"
    done
    TSHARK_DECODE_AS=(-d "tcp.port==$ORIGIN_TLSPORT,tls" -d "tcp.port==$ORIGIN_BADPORT,tls"
                      -d "tcp.port==$ORIGIN_PORT,http" -d "tcp.port==$ORIGIN_H2PORT,tls"
                      -d "tcp.port==$ORIGIN_H2CPORT,http2")
    export ORIGIN_PORT ORIGIN_TLSPORT ORIGIN_BADPORT ORIGIN_H2PORT ORIGIN_H2CPORT ORIGIN_PID WWW TEST_CA
}
TSHARK_DECODE_AS=()

# _mitm_outputs ARGS...: sets MITM_PCAP and MITM_HAR from mitmrec's arguments.
_mitm_outputs() {
    MITM_PCAP='' MITM_HAR=''
    while [ $# -gt 0 ]; do
        case $1 in
        -o) MITM_PCAP=${2:-}; shift ;;
        --har) MITM_HAR=${2:-}; shift ;;
        esac
        shift
    done
    if [ -z "$MITM_HAR" ] && [ -n "$MITM_PCAP" ]; then
        case $MITM_PCAP in
        *.pcapng) MITM_HAR=${MITM_PCAP%.pcapng}.har ;;
        *) MITM_HAR=$MITM_PCAP.har ;;
        esac
    fi
}

_MITM_RUNS=0
# start_mitmrec ARGS...: start mitmrec --listen 0 ARGS and wait (10 s) for its listening line.
start_mitmrec() {
    [ -x "$MITMREC" ] || skip "$MITMREC not built"
    _MITM_RUNS=$((_MITM_RUNS + 1))
    MITM_LOG=$WORK/mitmrec.$_MITM_RUNS.log
    _mitm_outputs "$@"
    # MITMREC_WRAPPER (e.g. "valgrind --error-exitcode=1 --leak-check=full") prefixes the
    # binary; the wrapper must exec it in the same process (valgrind does), so MITM_PID is
    # mitmrec's. A wrapped start gets 60 s instead of 10.
    # shellcheck disable=SC2086
    ${MITMREC_WRAPPER:-} "$MITMREC" --listen 0 "$@" >"$WORK/mitmrec.$_MITM_RUNS.out" 2>"$MITM_LOG" &
    MITM_PID=$!
    _LIB_PIDS+=("$MITM_PID")
    local i=0 line= limit=200
    [ -n "${MITMREC_WRAPPER:-}" ] && limit=1200
    while [ $i -lt $limit ]; do
        line=$(grep -m1 '^mitmrec: proxy listening on ' "$MITM_LOG" 2>/dev/null)
        [ -n "$line" ] && break
        kill -0 "$MITM_PID" 2>/dev/null || break
        sleep 0.05
        i=$((i + 1))
    done
    if [ -z "$line" ]; then
        cat "$MITM_LOG" >&2
        fail "mitmrec did not print 'mitmrec: proxy listening on' within $((limit / 20)) s (${MITMREC_WRAPPER:+$MITMREC_WRAPPER }$MITMREC --listen 0 $*)"
    fi
    case $line in
    "mitmrec: proxy listening on 127.0.0.1:"[0-9]*) ;;
    *) fail "unexpected listening line: '$line'" ;;
    esac
    MITM_PORT=${line##*:}
    MITM_CA=$HOME/.mitmrec/mitmrec-ca-cert.pem
    export MITM_PORT MITM_PID MITM_LOG MITM_PCAP MITM_HAR MITM_CA
}

# stop_mitmrec [SIGNAL]: signal MITM_PID (TERM by default), wait up to 30 s, check exit
# status 0 and the summary line (flows, requests, bytes, file names). Sets MITM_SUMMARY.
stop_mitmrec() {
    local sig=${1:-TERM} i=0 rc
    kill -s "$sig" "$MITM_PID" 2>/dev/null || fail "mitmrec (pid $MITM_PID) was not running at stop"
    while kill -0 "$MITM_PID" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$MITM_PID" 2>/dev/null; then
        kill -KILL "$MITM_PID"
        fail "mitmrec did not exit within 30 s of SIG$sig"
    fi
    wait "$MITM_PID"
    rc=$?
    [ $rc -eq 0 ] || fail "mitmrec exited with status $rc after SIG$sig, expected 0"
    MITM_SUMMARY=$(grep '^mitmrec:' "$MITM_LOG" | grep -v '^mitmrec: proxy listening on' | tail -n 1)
    [ -n "$MITM_SUMMARY" ] || fail "no summary line on stderr after SIG$sig"
    check_summary "$MITM_SUMMARY"
}

# check_summary LINE: numbers of flows, requests and bytes, and the output file names.
check_summary() {
    local s=$1 w
    for w in flow request byte; do
        printf '%s\n' "$s" | grep -Eiq "[0-9]+[^0-9]*${w}|${w}[^0-9]*[0-9]+" ||
            fail "summary line has no number of ${w}s: '$s'"
    done
    if [ -n "${MITM_PCAP:-}" ]; then
        case $s in *"$(basename "$MITM_PCAP")"*) ;; *) fail "summary line does not name $MITM_PCAP: '$s'" ;; esac
    fi
    if [ -n "${MITM_HAR:-}" ]; then
        case $s in *"$(basename "$MITM_HAR")"*) ;; *) fail "summary line does not name $MITM_HAR: '$s'" ;; esac
    fi
}

# pcurl ARGS...: curl through the running mitmrec, trusting its CA, failing on HTTP errors
# is left to the caller. Never reads ~/.curlrc.
pcurl() {
    curl -q -sS -x "http://127.0.0.1:$MITM_PORT" --cacert "$MITM_CA" "$@"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# same_file A B WHAT: fail unless A and B have the same bytes.
same_file() {
    [ -f "$1" ] || fail "$3: $1 missing"
    [ "$(sha256 "$1")" = "$(sha256 "$2")" ] ||
        fail "$3: $1 ($(stat -c %s "$1") bytes) differs from $2 ($(stat -c %s "$2") bytes)"
}

# tshark_fields FILE FILTER FIELD...: tab-separated fields of the frames matching FILTER.
tshark_fields() {
    local file=$1 filter=$2 args=() f
    shift 2
    for f in "$@"; do args+=(-e "$f"); done
    tshark -n -r "$file" "${TSHARK_DECODE_AS[@]}" -Y "$filter" -T fields -E occurrence=a \
        -E aggregator=, "${args[@]}" 2> >(grep -v '^Running as user "root"' >&2)
}

# tshark_requests FILE: "METHOD URI" of each decrypted HTTP request, in frame order.
tshark_requests() {
    tshark_fields "$1" http.request http.request.method http.request.uri | tr '\t' ' '
}

# tshark_export FILE DIR: the HTTP bodies tshark can decrypt, one file each, into DIR.
tshark_export() {
    mkdir -p "$2"
    tshark -n -r "$1" "${TSHARK_DECODE_AS[@]}" -q --export-objects "http,$2" >/dev/null \
        2> >(grep -v '^Running as user "root"' >&2)
}

# tshark_ok FILE: tshark reads the whole file without a complaint.
tshark_ok() {
    local err
    [ -s "$1" ] || fail "$1 is missing or empty"
    err=$(tshark -n -r "$1" -q 2>&1 >/dev/null) || fail "tshark cannot read $1: $err"
    # tshark warns on stderr when run as root; anything else is a complaint about the file.
    err=$(printf '%s\n' "$err" | grep -v '^Running as user "root"' | grep -v '^$')
    [ -z "$err" ] || fail "tshark complains about $1: $err"
}

# har_validate FILE: HAR 1.2 schema check with har-validator (npm).
har_validate() {
    need node
    export NODE_PATH=${NODE_PATH:-/usr/local/lib/mitmrec-test/node_modules}
    [ -d "$NODE_PATH/har-validator" ] || skip "har-validator not installed in $NODE_PATH (run ./setup.sh)"
    local out
    if [ -f "$top_srcdir/tests/har-validate.js" ]; then
        out=$(node "$top_srcdir/tests/har-validate.js" "$1" 2>&1) || fail "HAR $1 does not validate: $out"
    else
        out=$(node -e 'require("har-validator").har(JSON.parse(require("fs").readFileSync(process.argv[1]))).then(()=>0,e=>{console.log(JSON.stringify(e.errors||e.message));process.exit(1)})' "$1" 2>&1) ||
            fail "HAR $1 does not validate: $out"
    fi
}

# har_query FILE EXPR: print the Python expression EXPR, with h = the parsed HAR.
har_query() {
    "$PY" -c 'import json,sys; h=json.load(open(sys.argv[1])); r=eval(sys.argv[2]); print(r if isinstance(r,str) else json.dumps(r))' "$1" "$2"
}

# check_recording PCAP HAR [PATH=FILE...]: the checks every recording must pass (see
# tests/integration/recording.py). Each PATH=FILE says "the response body of a GET of a URL
# whose path is PATH must equal FILE" (in the HAR and in tshark's exported objects).
check_recording() {
    local pcap=$1 har=$2
    shift 2
    tshark_ok "$pcap"
    har_validate "$har"
    "$PY" "$top_srcdir/tests/integration/recording.py" --pcap "$pcap" --har "$har" \
        --work "$WORK/check.$RANDOM" "${TSHARK_DECODE_AS[@]}" "$@" ||
        fail "recording check of $pcap / $har failed"
}

# ---- Local redirect mode (eBPF, cgroup v2) -----------------------------------------------------
#   need_redirect            skip (77) unless root, cgroup v2, kernel BTF, bpftool and cgroup BPF
#                            programs are there; sets CGROUP2 (the v2 mount point)
#   make_cgroup NAME         mkdir a cgroup of this test's own under CGROUP2, sets TEST_CGROUP;
#                            at exit the processes in it (all started by the test) are killed
#                            and it is removed
#   in_cgroup CG PIDFILE CMD ARGS...   run CMD inside CG: a shell writes its own pid into
#                            CG/cgroup.procs (and PIDFILE unless empty) and execs CMD, so
#                            PIDFILE holds the client's real pid; $IN_CGROUP is that shell
#                            script, for "timeout 20 $IN_CGROUP CG PIDFILE CMD..."
#   start_redirect_mitmrec ARGS...     mitmrec ARGS (attach mode: -p ... --cgroup ...) in the
#                            background, waiting (10 s) for its "recording processes" line;
#                            exports what start_mitmrec does (but no MITM_PORT); stop_mitmrec
#                            stops it
#   wait_pidfile FILE [SECONDS]        until FILE holds a pid
#   cgroup_bpf_progs CG      bpftool cgroup show CG without its header line (empty: none)
#   check_processes PCAP HAR NAME=PID... [--only]: see recording.py --process / --only-processes

# cgroup2_mount: where the cgroup v2 hierarchy is mounted (from /proc/self/mountinfo), or nothing.
cgroup2_mount() {
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
        /proc/self/mountinfo
}

need_redirect() {
    [ "$(id -u)" = 0 ] || skip "local redirect mode needs root"
    [ -x "$MITMREC" ] || skip "$MITMREC not built"
    CGROUP2=$(cgroup2_mount)
    [ -n "$CGROUP2" ] && [ -f "$CGROUP2/cgroup.procs" ] || skip "no cgroup v2 file system mounted"
    [ -r /sys/kernel/btf/vmlinux ] || skip "no kernel BTF (/sys/kernel/btf/vmlinux)"
    need bpftool
    bpftool feature probe kernel 2>/dev/null | grep -q 'program_type cgroup_sock_addr is available' ||
        skip "the kernel has no cgroup socket address BPF programs"
    # The wrapper as a file of its own, so that "timeout 20 $IN_CGROUP CG PIDFILE curl ..." works.
    IN_CGROUP=$WORK/in-cgroup
    cat >"$IN_CGROUP" <<'SH'
#!/bin/sh
# in-cgroup CG PIDFILE CMD ARGS...: join CG, write our pid to PIDFILE (unless ""), exec CMD.
cg=$1 pidfile=$2
shift 2
echo $$ >"$cg/cgroup.procs" || exit 126
if [ -n "$pidfile" ]; then
    echo $$ >"$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile" || exit 126
fi
exec "$@"
SH
    chmod 755 "$IN_CGROUP"
    export CGROUP2 IN_CGROUP
}

_LIB_CGROUPS=()
_lib_cgroup_cleanup() {
    local cg pid i
    for cg in "${_LIB_CGROUPS[@]}"; do
        [ -d "$cg" ] || continue
        # Everything in a test's cgroup was started by the test.
        for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        i=0
        while ! rmdir "$cg" 2>/dev/null && [ $i -lt 50 ]; do
            for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
            sleep 0.1
            i=$((i + 1))
        done
        [ -d "$cg" ] && printf '%s: could not remove cgroup %s\n' "$TEST_NAME" "$cg" >&2
    done
}

make_cgroup() {
    [ -n "${CGROUP2:-}" ] || fail "make_cgroup before need_redirect"
    TEST_CGROUP=$CGROUP2/mitmrec-test-$TEST_NAME-$$-$1
    mkdir "$TEST_CGROUP" || fail "cannot create cgroup $TEST_CGROUP"
    if [ ${#_LIB_CGROUPS[@]} -eq 0 ]; then
        # The cgroups go first (their processes killed, then rmdir), then the usual cleanup.
        trap 'rc=$?; _lib_cgroup_cleanup; (exit $rc); _lib_cleanup' EXIT
    fi
    _LIB_CGROUPS+=("$TEST_CGROUP")
    export TEST_CGROUP
}

# remove_cgroup CG: rmdir it now (its processes must be gone), fail if that does not work.
remove_cgroup() {
    local i=0
    while ! rmdir "$1" 2>/dev/null; do
        [ $i -lt 50 ] || fail "cannot remove cgroup $1 (processes: $(tr '\n' ' ' <"$1/cgroup.procs"))"
        sleep 0.1
        i=$((i + 1))
    done
}

in_cgroup() {
    "$IN_CGROUP" "$@"
}

wait_pidfile() {
    local i=0 limit=$((${2:-10} * 20))
    while ! [ -s "$1" ]; do
        [ $i -lt $limit ] || fail "no pid in $1 after ${2:-10} s"
        sleep 0.05
        i=$((i + 1))
    done
    cat "$1"
}

start_redirect_mitmrec() {
    [ -x "$MITMREC" ] || skip "$MITMREC not built"
    _MITM_RUNS=$((_MITM_RUNS + 1))
    MITM_LOG=$WORK/mitmrec.$_MITM_RUNS.log
    _mitm_outputs "$@"
    "$MITMREC" "$@" >"$WORK/mitmrec.$_MITM_RUNS.out" 2>"$MITM_LOG" &
    MITM_PID=$!
    _LIB_PIDS+=("$MITM_PID")
    local i=0
    while ! grep -q '^mitmrec: recording processes' "$MITM_LOG" 2>/dev/null; do
        if ! kill -0 "$MITM_PID" 2>/dev/null || [ $i -ge 200 ]; then
            cat "$MITM_LOG" >&2
            fail "mitmrec did not print 'mitmrec: recording processes' within 10 s (mitmrec $*)"
        fi
        sleep 0.05
        i=$((i + 1))
    done
    MITM_CA=$HOME/.mitmrec/mitmrec-ca-cert.pem
    export MITM_PID MITM_LOG MITM_PCAP MITM_HAR MITM_CA
}

cgroup_bpf_progs() {
    bpftool cgroup show "$1" 2>&1 | grep -v '^ID[[:space:]]*AttachType'
}

# check_processes PCAP HAR [--only] NAME=PID...: every packet of each process's streams names
# it, tshark's "frame.comment contains" filter selects exactly those, HAR entries in those
# streams have its _process and _pid (and an _exe and _cmdline); --only: no other process.
check_processes() {
    local pcap=$1 har=$2 args=() a
    shift 2
    for a in "$@"; do
        case $a in
        --only) args+=(--only-processes) ;;
        *) args+=(--process "$a") ;;
        esac
    done
    "$PY" "$top_srcdir/tests/integration/recording.py" --pcap "$pcap" --har "$har" \
        --work "$WORK/check.$RANDOM" "${TSHARK_DECODE_AS[@]}" "${args[@]}" ||
        fail "process check of $pcap / $har failed ($*)"
}

# ---- Helpers for the reliability, hostile-input and security tests (issue 7) -------------

# proc_kib PID FIELD: a "kB" field of /proc/PID/status (VmHWM, VmRSS, ...), 0 when not there.
proc_kib() {
    awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' \
        "/proc/$1/status" 2>/dev/null || echo 0
}

# mitm_instrumented: true when $MITMREC runs under a wrapper (valgrind) or was built with
# sanitizers; memory figures then say nothing about mitmrec itself.
mitm_instrumented() {
    [ -n "${MITMREC_WRAPPER:-}" ] && return 0
    grep -qa '__asan_init\|__ubsan_handle' "$MITMREC" 2>/dev/null && return 0
    ldd "$MITMREC" 2>/dev/null | grep -q 'libasan\|libubsan'
}

# wait_pid PID SECONDS: wait for a child of this shell to end; its status goes into WAIT_RC
# (255 and a return of 1 when it is still running after SECONDS).
wait_pid() {
    local pid=$1 n=$(($2 * 10)) i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt $n ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        WAIT_RC=255
        return 1
    fi
    wait "$pid"
    WAIT_RC=$?
    return 0
}

# mitm_still_serves WHAT: a normal HTTPS GET through the running mitmrec gets small.txt.
mitm_still_serves() {
    kill -0 "$MITM_PID" 2>/dev/null || fail "mitmrec is gone after $1"
    local out=$WORK/alive.$RANDOM
    pcurl -f -m 20 -o "$out" "https://127.0.0.1:$ORIGIN_TLSPORT/small.txt" 2>"$out.err" ||
        fail "after $1, a normal request through mitmrec failed: $(cat "$out.err")"
    same_file "$out" "$WWW/small.txt" "normal request after $1"
    rm -f "$out" "$out.err"
}

# tshark_readable FILE: tshark reads FILE; a cut final block is allowed (tshark then says "cut
# short in the middle of a packet" or "appears to have been cut short"), any other complaint
# fails. Prints the number of frames read.
tshark_readable() {
    local err n
    [ -s "$1" ] || fail "$1 is missing or empty"
    n=$(tshark -n -r "$1" -T fields -e frame.number 2>"$WORK/tshark.err" | wc -l)
    err=$(grep -v '^Running as user "root"' "$WORK/tshark.err" | grep -v '^$' |
        grep -v 'cut short in the middle of a packet\|appears to have been cut short')
    [ -z "$err" ] || fail "tshark complains about $1 (beyond a cut final block): $err"
    printf '%s\n' "$n"
}

# stop_redirect_mitmrec [SIGNAL]: stop_mitmrec for attach mode, where the summary line is
# followed by a per-process table ("mitmrec:   NAME PID N flows N requests N bytes"). Sets
# MITM_SUMMARY (the summary line) and MITM_PROCTABLE (the table's rows).
stop_redirect_mitmrec() {
    local sig=${1:-TERM} i=0 rc
    kill -s "$sig" "$MITM_PID" 2>/dev/null || fail "mitmrec (pid $MITM_PID) was not running at stop"
    while kill -0 "$MITM_PID" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$MITM_PID" 2>/dev/null; then
        kill -KILL "$MITM_PID"
        fail "mitmrec did not exit within 30 s of SIG$sig"
    fi
    wait "$MITM_PID"
    rc=$?
    [ $rc -eq 0 ] || fail "mitmrec exited with status $rc after SIG$sig, expected 0"
    MITM_SUMMARY=$(grep -E '^mitmrec: [0-9]+ flows?' "$MITM_LOG" | tail -n 1)
    [ -n "$MITM_SUMMARY" ] || fail "no summary line on stderr after SIG$sig: $(cat "$MITM_LOG")"
    check_summary "$MITM_SUMMARY"
    MITM_PROCTABLE=$(grep -E '^mitmrec:   .* [0-9]+ +[0-9]+ flows? ' "$MITM_LOG")
}

# pcapng_blocks FILE: walks FILE's pcapng blocks (no tshark) and prints one line
# "complete=N packets=N good_end=OFFSET size=SIZE tail=BYTES error=TEXT": the complete blocks,
# those of them that are packets (EPB, SPB, PB), the offset where the last complete block
# ends, the bytes after it (a cut final block), and the first structural error ("-": none).
pcapng_blocks() {
    "$PY" - "$1" <<'PYEOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
off, n, pk, err, bo = 0, 0, 0, "-", "<"
while off < len(data):
    if len(data) - off < 12:
        break
    btype = struct.unpack_from(bo + "I", data, off)[0]
    if btype == 0x0A0D0D0A:
        magic = data[off + 8:off + 12]
        if magic == b"\x4d\x3c\x2b\x1a":
            bo = "<"
        elif magic == b"\x1a\x2b\x3c\x4d":
            bo = ">"
        else:
            err = "bad byte-order magic at %d" % off
            break
    elif off == 0:
        err = "not a pcapng (first block type 0x%08x)" % btype
        break
    blen = struct.unpack_from(bo + "I", data, off + 4)[0]
    if blen < 12 or blen % 4:
        err = "bad block length %d at %d" % (blen, off)
        break
    if len(data) - off < blen:
        break
    if struct.unpack_from(bo + "I", data, off + blen - 4)[0] != blen:
        err = "trailing length differs at %d" % off
        break
    n += 1
    pk += btype in (2, 3, 6)
    off += blen
print("complete=%d packets=%d good_end=%d size=%d tail=%d error=%s"
      % (n, pk, off, len(data), len(data) - off, err.replace(" ", "_")))
PYEOF
}

# kv KEY LINE: the value of KEY=VALUE in LINE (as pcapng_blocks prints).
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# Deferred failures: a test records every problem with problem MSG and ends with
# finish_problems, which fails listing them all (so one run reports each finding).
_PROBLEMS=()
problem() {
    printf '%s: PROBLEM: %s\n' "$TEST_NAME" "$*" >&2
    _PROBLEMS+=("$*")
}
finish_problems() {
    [ ${#_PROBLEMS[@]} -eq 0 ] && return 0
    local p
    printf '%s: %d problem(s):\n' "$TEST_NAME" "${#_PROBLEMS[@]}" >&2
    for p in "${_PROBLEMS[@]}"; do printf '%s:   - %s\n' "$TEST_NAME" "$p" >&2; done
    fail "${#_PROBLEMS[@]} problem(s), listed above"
}

# ---- HTTP fidelity and read mode (http2, websocket, browser, readmode) ---------------------

# check_same_entries PCAP HAR [same-entries ARGS...]: the read-mode invariant. "mitmrec -r PCAP
# --har AGAIN.har" must give HAR's entries (count, methods, URLs, statuses, headers, bodies,
# ...: see same_entries in tests/integration/recording.py). Every test that makes a recording
# should call it. Sets AGAIN_HAR.
check_same_entries() {
    local pcap=$1 har=$2 rc
    shift 2
    AGAIN_HAR=$WORK/again.$RANDOM.har
    "$MITMREC" -r "$pcap" --har "$AGAIN_HAR" >"$AGAIN_HAR.out" 2>"$AGAIN_HAR.err"
    rc=$?
    [ $rc -eq 0 ] || fail "mitmrec -r $pcap --har $AGAIN_HAR exited $rc: $(head -c 2000 "$AGAIN_HAR.err")"
    "$PY" "$top_srcdir/tests/integration/recording.py" same-entries "$har" "$AGAIN_HAR" "$@" ||
        fail "mitmrec -r $(basename "$pcap") does not give the entries of the live $(basename "$har") (see above)"
}

# spawn_available: true when spawn mode ("mitmrec -o F -- COMMAND": root, cgroup v2, eBPF) works
# here; probed once with "-- true". SPAWN_WHY says why not.
spawn_available() {
    if [ -z "${_SPAWN_OK:-}" ]; then
        _SPAWN_OK=no
        SPAWN_WHY=
        if [ "$(id -u)" != 0 ]; then
            SPAWN_WHY="not root"
        else
            mkdir -p "$WORK/spawn-probe"
            if timeout 30 "$MITMREC" -q -o "$WORK/spawn-probe/p.pcapng" -- true \
                >"$WORK/spawn-probe/out" 2>"$WORK/spawn-probe/err"; then
                _SPAWN_OK=yes
            else
                SPAWN_WHY="mitmrec -o F -- true failed: $(head -n 3 "$WORK/spawn-probe/err" | tr '\n' ' ')"
            fi
        fi
    fi
    [ "$_SPAWN_OK" = yes ]
}

# spawn_mitmrec SECONDS PCAP [ARGS...] -- COMMAND...: spawn mode in the foreground, bounded by
# SECONDS; stderr in $MITM_LOG, stdout in $MITM_LOG.out. Sets MITM_PCAP, MITM_HAR, MITM_CA,
# SPAWN_RC (mitmrec's exit status, which is the command's). Fails when the time runs out.
spawn_mitmrec() {
    local secs=$1 pcap=$2
    shift 2
    [ -x "$MITMREC" ] || skip "$MITMREC not built"
    _MITM_RUNS=$((_MITM_RUNS + 1))
    MITM_LOG=$WORK/mitmrec.$_MITM_RUNS.log
    local own=() a
    for a in "$@"; do
        [ "$a" = -- ] && break
        own+=("$a")
    done
    _mitm_outputs -o "$pcap" "${own[@]}"
    MITM_CA=$HOME/.mitmrec/mitmrec-ca-cert.pem
    export MITM_PCAP MITM_HAR MITM_CA MITM_LOG
    timeout -k 5 "$secs" "$MITMREC" -o "$pcap" "$@" >"$MITM_LOG.out" 2>"$MITM_LOG"
    SPAWN_RC=$?
    [ $SPAWN_RC -ne 124 ] && [ $SPAWN_RC -ne 137 ] ||
        fail "spawn mode did not finish within $secs s: mitmrec -o $pcap $*"
}

# tls_plain FILE STREAM OUT: the decrypted bytes of tcp.stream STREAM of the pcapng FILE
# (tshark's "follow,tls,raw", from the file's own secrets) into OUT.c2s and OUT.s2c (the
# server side is the one that starts with "HTTP/"). A cut final block is tolerated.
tls_plain() {
    tshark -n -r "$1" "${TSHARK_DECODE_AS[@]}" -q -z "follow,tls,raw,$2" 2>/dev/null |
        "$PY" -c '
import sys, binascii
# Which node tshark lists first (no indent) varies; the side that starts with "HTTP/" is the
# server.
out = [bytearray(), bytearray()]
for line in sys.stdin:
    if line.startswith(("=====", "Follow:", "Filter:", "Node ")) or not line.strip():
        continue
    d = 1 if line.startswith("\t") else 0
    try:
        out[d] += binascii.unhexlify(line.strip())
    except binascii.Error:
        pass
if out[0].startswith(b"HTTP/") or (out[1] and not out[1].startswith(b"HTTP/") and not out[0]):
    out.reverse()
open(sys.argv[1] + ".c2s", "wb").write(out[0])
open(sys.argv[1] + ".s2c", "wb").write(out[1])
' "$3"
}
