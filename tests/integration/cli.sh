#!/bin/bash
# SPDX-License-Identifier: MIT
# The command line: usage errors (exit 2, one line), --help, an unwritable output path, the CA
# files in $HOME/.mitmrec, output file modes and default names.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

[ -x "$MITMREC" ] || skip "$MITMREC not built"

MITMREPLAY=${MITMREPLAY:-$top_builddir/mitmreplay}

# usage_error WHAT ARGS...: mitmrec ARGS (or $USAGE_BIN's) must exit 2 with exactly one line
# on stderr.
usage_error() {
    local what=$1 bin=${USAGE_BIN:-$MITMREC} rc lines name
    shift
    name=$(basename "$bin")
    timeout 10 "$bin" "$@" >"$WORK/usage.out" 2>"$WORK/usage.err"
    rc=$?
    [ $rc -ne 124 ] || fail "$what: '$name $*' still running after 10 s, expected exit 2"
    [ $rc -eq 2 ] || fail "$what: '$name $*' exited $rc, expected 2 (stderr: $(head -c 300 "$WORK/usage.err"))"
    lines=$(wc -l <"$WORK/usage.err")
    [ "$lines" -eq 1 ] ||
        fail "$what: '$name $*' printed $lines lines on stderr, expected one: $(head -c 300 "$WORK/usage.err")"
    if grep -q 'proxy listening' "$WORK/usage.err"; then
        fail "$what: '$name $*' started listening"
    fi
}

# usage_says TEXT: the last usage_error's line is "PROGRAM: TEXT".
usage_says() {
    local line
    line=$(cat "$WORK/usage.err")
    [ "${line#*: }" = "$1" ] || fail "expected '$1' on stderr, got: $line"
}

usage_error "unknown flag" --listen 0 -o "$WORK/a.pcapng" --no-such-flag
usage_says "unknown option '--no-such-flag' (see --help)"
usage_error "unknown short flag" --listen 0 -o "$WORK/a.pcapng" -x
usage_says "unknown option '-x' (see --help)"
usage_error "missing -o" --listen 0
usage_error "-o without a value" --listen 0 -o
usage_says "option '-o' needs an argument"
usage_error "-p without a value" -o "$WORK/a.pcapng" -p
usage_says "option '-p' needs an argument"
usage_error "-o /dev/null without --har" --listen 0 -o /dev/null
usage_says "with -o /dev/null (not a regular file) give --har FILE as well"
[ ! -e /dev/null.har ] || fail "-o /dev/null made /dev/null.har"
usage_error "-r with --upstream" -r "$WORK/a.pcapng" --upstream
usage_says "--upstream goes with live recording (--listen, -p or a command), not -r"
usage_error "-r with --cacert" -r "$WORK/a.pcapng" --har "$WORK/a.har" --cacert "$WORK/a.pem"
usage_says "--cacert goes with live recording (--listen, -p or a command), not -r"
usage_error "-p with an empty spec" -o "$WORK/a.pcapng" -p curl,,wget
usage_says "invalid -p '': expected NAME, PID, !NAME or !PID"
usage_error "-p 0" -o "$WORK/a.pcapng" -p 0
usage_says "invalid -p '0': no process has PID 0"
usage_error "-p with a PID past Linux's limit" -o "$WORK/a.pcapng" -p 'curl,!99999999999'
usage_says "invalid -p '!99999999999': no process has PID 99999999999"
usage_error "-r without a value" -r
usage_says "option '-r' needs an argument"
usage_error "--har without a value" --listen 0 -o "$WORK/a.pcapng" --har
usage_says "option '--har' needs an argument"
usage_error "--output without a value" --listen 0 --output
usage_says "option '--output' needs an argument"
usage_error "-w without a value" --listen 0 -w
usage_says "option '-w' needs an argument"
usage_error "a value for a flag" --listen 0 -o "$WORK/a.pcapng" --no-status=1
usage_says "option '--no-status' takes no argument"
usage_error "a value for a flag with a short form" --listen 0 -o "$WORK/a.pcapng" --quiet=1
usage_says "option '--quiet' takes no argument"
usage_error "bad --listen (not a number)" --listen notaport -o "$WORK/a.pcapng"
usage_error "bad --listen (port out of range)" --listen 65536 -o "$WORK/a.pcapng"
usage_error "bad --listen (bad address)" --listen 999.1.1.1:8080 -o "$WORK/a.pcapng"
usage_says "invalid --listen address '999.1.1.1': give an IPv4 or IPv6 address"
usage_error "bad --listen (a host name)" --listen example.org:8080 -o "$WORK/a.pcapng"
usage_says "invalid --listen address 'example.org': give an IPv4 or IPv6 address"
usage_error "stray argument" --listen 0 -o "$WORK/a.pcapng" extra-argument
usage_error "bad --ignore-hosts" -o "$WORK/a.pcapng" --ignore-hosts 10.0.0.0/33 -- true
usage_says "invalid --ignore-hosts '10.0.0.0/33': expected an IPv4 or IPv6 address or CIDR (10.0.0.0/8, ::1)"
usage_error "--ignore-hosts with --listen" --listen 0 -o "$WORK/a.pcapng" --ignore-hosts 10.0.0.0/8
usage_says "--ignore-hosts goes with -p or a command, not --listen"
usage_error "negative --max-body" --listen 0 -o "$WORK/a.pcapng" --max-body -5
usage_says "invalid --max-body '-5': expected a size of 1 byte or more, like 16M"
usage_error "--max-body 0" --listen 0 -o "$WORK/a.pcapng" --max-body 0
usage_says "invalid --max-body '0': expected a size of 1 byte or more, like 16M"
[ ! -e "$WORK/a.pcapng" ] || fail "a usage error left $WORK/a.pcapng behind"

# --listen on a port that is taken (IPv4 and IPv6): exit 1, one line naming the address as
# curl would ("[::1]:PORT"), no output file.
read -r P4 P6 < <(free_ports 2 | tr '\n' ' ')
"$PY" - "$P4" "$P6" "$WORK/taken" <<'EOF' &
import socket, sys, time
a = socket.socket(); a.bind(("127.0.0.1", int(sys.argv[1]))); a.listen()
try:
    b = socket.socket(socket.AF_INET6); b.bind(("::1", int(sys.argv[2]))); b.listen()
except OSError:
    b = None
open(sys.argv[3], "w").write("v6\n" if b else "v4\n")
time.sleep(30)
EOF
TAKEN_PID=$!
_LIB_PIDS+=("$TAKEN_PID")
for _ in $(seq 50); do [ -s "$WORK/taken" ] && break; sleep 0.05; done
listen_taken() {
    timeout 10 "$MITMREC" --listen "$1" -o "$WORK/taken.pcapng" >/dev/null 2>"$WORK/taken.err"
    rc=$?
    [ $rc = 1 ] || fail "--listen $1 (taken) exited $rc: $(cat "$WORK/taken.err")"
    [ "$(cat "$WORK/taken.err")" = "mitmrec: error: cannot listen on $1: address already in use" ] ||
        fail "--listen $1 (taken): $(cat "$WORK/taken.err")"
    [ ! -e "$WORK/taken.pcapng" ] || fail "--listen $1 (taken) left $WORK/taken.pcapng"
}
listen_taken "127.0.0.1:$P4"
grep -q v6 "$WORK/taken" && listen_taken "[::1]:$P6"
kill "$TAKEN_PID" 2>/dev/null
wait "$TAKEN_PID" 2>/dev/null
log "--listen on a taken port: one line, exit 1, no file ($(cat "$WORK/taken.err"))"

# A --cacert that cannot be used: one line with the system's reason (OpenSSL's own would be
# "system lib") or OpenSSL's when the file holds no certificate; exit 1, no file.
printf 'no certificate here\n' >"$WORK/notcert.pem"
for ca in "$WORK/no-such.pem" "$WORK" "$WORK/notcert.pem"; do
    case $ca in
    "$WORK/no-such.pem") want="No such file or directory" ;;
    "$WORK") want="Is a directory" ;;
    *) want="no certificate or crl found" ;;
    esac
    timeout 10 "$MITMREC" --listen 0 -o "$WORK/ca.pcapng" --cacert "$ca" >/dev/null 2>"$WORK/ca.err"
    rc=$?
    [ $rc = 1 ] && [ "$(cat "$WORK/ca.err")" = "mitmrec: error: cannot load --cacert $ca: $want" ] ||
        fail "--cacert $ca: expected exit 1 and 'cannot load --cacert $ca: $want', got $rc: $(cat "$WORK/ca.err")"
    [ ! -e "$WORK/ca.pcapng" ] || fail "--cacert $ca left $WORK/ca.pcapng"
done

# mitmreplay's usage errors, the same way.
if [ -x "$MITMREPLAY" ]; then
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: -o without a value" "$WORK/a.pcapng" -o
    usage_says "option '-o' needs an argument"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: --keylog without a value" "$WORK/a.pcapng" --keylog
    usage_says "option '--keylog' needs an argument"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: a value for a flag" "$WORK/a.pcapng" --strict=1
    usage_says "option '--strict' takes no argument"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: --output without a value" "$WORK/a.pcapng" --output
    usage_says "option '--output' needs an argument"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: -w without a value" "$WORK/a.pcapng" -w
    usage_says "option '-w' needs an argument"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: unknown flag" --no-such-flag "$WORK/a.pcapng"
    usage_says "unknown option '--no-such-flag' (see --help)"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: no recording" -q
    usage_says "no recording given (see --help)"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: -p 0" "$WORK/a.pcapng" -p 0
    usage_says "invalid -p '0': no process has PID 0"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: --client -o /dev/null" "$WORK/a.pcapng" --client -o /dev/null
    usage_says "with -o /dev/null (not a regular file) give --har FILE as well"
    # Options of one kind of replay given to the other would do nothing: said, not ignored.
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: --realtime with --client" "$WORK/a.pcapng" --client --realtime
    usage_says "--realtime goes with server replay (a command or -p), not --client"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: --ignore-param with --client" "$WORK/a.pcapng" --ignore-param x --client
    usage_says "--ignore-param goes with server replay (a command or -p), not --client"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: --concurrency without --client" "$WORK/a.pcapng" --concurrency 4 -- true
    usage_says "-o, --har, --to and --concurrency go with --client"

    # A file that is no recording, or none at all: exit 1, one line saying why, and the
    # command is not run (it would run with nothing to answer it).
    printf 'GET / HTTP/1.1\r\n\r\n' >"$WORK/not-a-capture"
    for rec in not-a-capture . no-such-file; do
        case $rec in
        not-a-capture) want="$WORK/$rec: not a pcap or pcapng file (magic 47455420)" ;;
        .) want="cannot read $WORK/$rec: Is a directory" ;;
        *) want="cannot read $WORK/$rec: No such file or directory" ;;
        esac
        rm -f "$WORK/ran"
        timeout 20 "$MITMREPLAY" "$WORK/$rec" -- touch "$WORK/ran" >"$WORK/rp.out" 2>"$WORK/rp.err"
        rc=$?
        [ $rc -eq 1 ] || fail "mitmreplay $rec exited $rc, expected 1 (stderr: $(head -c 300 "$WORK/rp.err"))"
        [ "$(cat "$WORK/rp.err")" = "mitmreplay: error: $want" ] ||
            fail "mitmreplay $rec: expected the one line 'mitmreplay: error: $want' on stderr, got: $(cat "$WORK/rp.err")"
        [ ! -e "$WORK/ran" ] || fail "mitmreplay $rec ran its command"
    done

    # A command that cannot be run: the shell's status (127 not found, 126 not runnable) and
    # one line, before anything is read or written: the --report already there is kept.
    printf 'kept\n' >"$WORK/kept.json"
    chmod 644 "$WORK/not-a-capture"
    for cmd in no-such-command-$$ "$WORK/no-such-command" "$WORK/not-a-capture"; do
        case $cmd in
        "$WORK/not-a-capture") want="cannot run '$cmd': Permission denied" st=126 ;;
        *) want="cannot run '$cmd': No such file or directory" st=127 ;;
        esac
        timeout 20 "$MITMREPLAY" "$top_srcdir/fixtures/replay/chrome-export.har" \
            --report "$WORK/kept.json" -- "$cmd" >"$WORK/rp.out" 2>"$WORK/rp.err"
        rc=$?
        [ $rc -eq $st ] && [ "$(cat "$WORK/rp.err")" = "mitmreplay: error: $want" ] ||
            fail "mitmreplay -- $cmd: expected exit $st and the one line '$want', got $rc: $(cat "$WORK/rp.err")"
        [ "$(cat "$WORK/kept.json")" = kept ] || fail "mitmreplay -- $cmd changed the --report file"
    done

    # A gzip file whose data is corrupt: one line, zlib's reason after the name, given once.
    printf '\037\213\010\000garbagegarbage' >"$WORK/corrupt.har.gz"
    timeout 20 "$MITMREPLAY" "$WORK/corrupt.har.gz" -- true >"$WORK/rp.out" 2>"$WORK/rp.err"
    rc=$?
    [ $rc -eq 1 ] && [ "$(wc -l <"$WORK/rp.err")" = 1 ] &&
        grep -q "^mitmreplay: error: cannot read $WORK/corrupt.har.gz: [a-z]" "$WORK/rp.err" ||
        fail "mitmreplay corrupt.har.gz: exit $rc: $(cat "$WORK/rp.err")"

    # A --report that cannot be written fails before the recording is loaded and the command
    # runs (it used to fail at the end, after the whole run), and leaves no report behind.
    rm -f "$WORK/ran" "$WORK/ok.json"
    timeout 20 "$MITMREPLAY" "$top_srcdir/fixtures/replay/chrome-export.har" --report "$WORK/ok.json" \
        --report "$WORK/no-such-dir/r.xml" -- touch "$WORK/ran" >"$WORK/rp.out" 2>"$WORK/rp.err"
    rc=$?
    [ $rc -eq 1 ] && [ "$(cat "$WORK/rp.err")" = "mitmreplay: error: cannot write --report $WORK/no-such-dir/r.xml: No such file or directory" ] ||
        fail "mitmreplay --report NO-SUCH-DIR/r.xml: expected exit 1 and one line, got $rc: $(cat "$WORK/rp.err")"
    [ ! -e "$WORK/ran" ] || fail "mitmreplay with an unwritable --report ran its command"
    [ ! -e "$WORK/ok.json" ] || fail "mitmreplay with an unwritable --report left ok.json behind"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: bad --to" "$WORK/a.pcapng" --client --to 127.0.0.1:80x
    usage_says "invalid --to '127.0.0.1:80x': expected ADDRESS:PORT (127.0.0.1:8443, [::1]:8443, localhost:8443)"
fi

# An output that names an input, or another output, is a usage error, and the input is left
# as it was: by the same name, through a symlink, through "..", and the HAR named after -o.
cp "$top_srcdir/fixtures/replay/chrome-export.har" "$WORK/in.har"
cp "$WORK/in.har" "$WORK/in.pcapng"   # (its content does not matter: nothing is read)
cp "$WORK/in.har" "$WORK/keep"
ln -sf in.pcapng "$WORK/link.har"
mkdir -p "$WORK/sub"
usage_error "-o is the -r input" -r "$WORK/in.pcapng" -o "$WORK/in.pcapng" --har "$WORK/out.har"
usage_says "-o $WORK/in.pcapng would overwrite -r $WORK/in.pcapng"
usage_error "--har is the -r input, through a symlink" -r "$WORK/in.pcapng" --har "$WORK/link.har"
usage_says "--har $WORK/link.har would overwrite -r $WORK/in.pcapng"
usage_error "--har is the -r input, through .." -r "$WORK/in.pcapng" --har "$WORK/sub/../in.pcapng"
usage_says "--har $WORK/sub/../in.pcapng would overwrite -r $WORK/in.pcapng"
usage_error "--har is the -r --keylog" -r "$WORK/in.pcapng" --keylog "$WORK/in.har" --har "$WORK/in.har"
usage_says "--har $WORK/in.har would overwrite --keylog $WORK/in.har"
usage_error "-o and --har the same new file" --listen 0 -o "$WORK/new.x" --har "$WORK/sub/../new.x"
usage_says "-o and --har name the same file ($WORK/sub/../new.x)"
usage_error "--keylog the HAR named after -o" --listen 0 -o "$WORK/new.pcapng" --keylog "$WORK/new.har"
usage_says "--har and --keylog name the same file ($WORK/new.har)"
usage_error "both to stdout" --listen 0 -o - --har -
usage_says "-o and --har both write to standard output"
if [ -x "$MITMREPLAY" ]; then
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: the HAR of -o is the recording" \
        "$WORK/in.har" --client -o "$WORK/in.pcapng.gz"
    usage_says "the HAR of -o $WORK/in.har would overwrite the recording $WORK/in.har"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: --record-new's HAR is the recording" \
        "$WORK/in.har" --unmatched passthrough --record-new "$WORK/in.pcapng" -- true
    usage_says "the HAR of --record-new $WORK/in.har would overwrite the recording $WORK/in.har"
    USAGE_BIN=$MITMREPLAY usage_error "mitmreplay: --report is --record-new" \
        "$WORK/in.har" --unmatched passthrough --record-new "$WORK/r.json" --report "$WORK/r.json" -- true
    usage_says "--record-new and --report name the same file ($WORK/r.json)"
fi
for f in in.har in.pcapng; do
    cmp -s "$WORK/keep" "$WORK/$f" || fail "a refused command line changed $f"
done
[ ! -e "$WORK/new.x" ] && [ ! -e "$WORK/new.pcapng" ] && [ ! -e "$WORK/out.har" ] ||
    fail "a refused command line created an output file"

# --help: exit 0, mentions the options.
timeout 10 "$MITMREC" --help >"$WORK/help.out" 2>"$WORK/help.err"
rc=$?
[ $rc -eq 0 ] || fail "mitmrec --help exited $rc, expected 0"
grep -q -- '--listen' "$WORK/help.out" "$WORK/help.err" || fail "mitmrec --help does not mention --listen"
grep -q -- '-o' "$WORK/help.out" "$WORK/help.err" || fail "mitmrec --help does not mention -o"

# An output path that cannot be created fails before listening: non-zero, one line naming it.
# (As root a permission check proves nothing, so the directory does not exist.)
bad=$WORK/no-such-dir/out.pcapng
timeout 10 "$MITMREC" --listen 0 -o "$bad" >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
[ $rc -ne 124 ] || fail "mitmrec -o $bad was still running after 10 s"
[ $rc -ne 0 ] || fail "mitmrec -o $bad exited 0"
grep -q 'proxy listening' "$WORK/bad.err" && fail "mitmrec -o $bad printed the listening line before failing"
[ "$(wc -l <"$WORK/bad.err")" -eq 1 ] || fail "mitmrec -o $bad: expected one line on stderr, got: $(cat "$WORK/bad.err")"
grep -qF "$bad" "$WORK/bad.err" || fail "mitmrec -o $bad: the message does not name the path: $(cat "$WORK/bad.err")"

# Same for a HAR path that cannot be created.
timeout 10 "$MITMREC" --listen 0 -o "$WORK/ok.pcapng" --har "$bad.har" >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
{ [ $rc -ne 124 ] && [ $rc -ne 0 ]; } || fail "mitmrec --har $bad.har exited $rc, expected a failure"
grep -qF "$bad.har" "$WORK/bad.err" || fail "mitmrec --har $bad.har: the message does not name the path: $(cat "$WORK/bad.err")"

# First run: the CA is created in $HOME/.mitmrec: the directory 0700, the file(s) holding the
# private key 0600; certificate-only files (what users install) may be readable, but no file
# may be writable by others.
# (A fresh HOME: the runs above may have made a CA before failing.)
export HOME=$WORK/home-ca
mkdir -p "$HOME"
start_mitmrec -o "$WORK/first.pcapng"
[ "$(grep -c . "$MITM_LOG")" -eq 1 ] || fail "expected exactly one line on stderr at start, got: $(cat "$MITM_LOG")"
[ -d "$HOME/.mitmrec" ] || fail "$HOME/.mitmrec not created"
mode=$(stat -c %a "$HOME/.mitmrec")
[ "$mode" = 700 ] || fail "$HOME/.mitmrec has mode $mode, expected 700"
[ -f "$MITM_CA" ] || fail "$MITM_CA not created (have: $(ls "$HOME/.mitmrec"))"
keys=0
for f in "$HOME"/.mitmrec/*; do
    mode=$(stat -c %a "$f")
    if grep -q 'PRIVATE KEY' "$f" 2>/dev/null; then
        [ "$mode" = 600 ] || fail "$f holds a private key and has mode $mode, expected 600"
        keys=$((keys + 1))
    fi
    [ $((8#$mode & 8#022)) -eq 0 ] || fail "$f has mode $mode: writable by group or others"
    log "CA file $(basename "$f"): mode $mode"
done
[ $keys -ge 1 ] || fail "no file in $HOME/.mitmrec holds the CA's private key (have: $(ls "$HOME/.mitmrec"))"
grep -q 'PRIVATE KEY' "$MITM_CA" && fail "$MITM_CA (the certificate users install) holds a private key"
openssl x509 -in "$MITM_CA" -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:TRUE' ||
    fail "$MITM_CA is not a CA certificate"
ca_sum=$(sha256 "$MITM_CA")
stop_mitmrec

# The default HAR name, and output modes (they hold TLS secrets).
[ -f "$WORK/first.har" ] || fail "default HAR $WORK/first.har not written (have: $(ls "$WORK"))"
for f in "$WORK/first.pcapng" "$WORK/first.har"; do
    mode=$(stat -c %a "$f")
    [ "$mode" = 600 ] || fail "$f has mode $mode, expected 600"
done
tshark_ok "$WORK/first.pcapng"
har_validate "$WORK/first.har"
n=$(har_query "$WORK/first.har" 'len(h["log"]["entries"])')
[ "$n" = 0 ] || fail "no traffic, yet $n HAR entries"

# Second run reuses the CA; a name without .pcapng gets .har appended; -w is -o (tcpdump's and
# mitmdump's name); --listen ADDR:0 works, with "localhost" as ADDR taken as 127.0.0.1 (no
# resolver asked).
_MITM_RUNS=$((_MITM_RUNS + 1))
MITM_LOG=$WORK/mitmrec.$_MITM_RUNS.log
"$MITMREC" --listen localhost:0 -w "$WORK/capture" >/dev/null 2>"$MITM_LOG" &
MITM_PID=$!
_LIB_PIDS+=("$MITM_PID")
export MITM_PCAP=$WORK/capture MITM_HAR=$WORK/capture.har
for _ in $(seq 100); do grep -q 'proxy listening on 127.0.0.1:' "$MITM_LOG" && break; sleep 0.1; done
grep -q 'proxy listening on 127.0.0.1:' "$MITM_LOG" || fail "--listen localhost:0: no listening line on 127.0.0.1: $(cat "$MITM_LOG")"
grep -q 'warning' "$MITM_LOG" && fail "--listen localhost:0 warned: $(cat "$MITM_LOG")"
stop_mitmrec
[ "$(sha256 "$MITM_CA")" = "$ca_sum" ] || fail "the second run replaced the CA certificate"
[ -s "$WORK/capture" ] || fail "-w capture: no pcapng written to capture (have: $(ls "$WORK"))"
[ -f "$WORK/capture.har" ] || fail "-w capture: expected capture.har (have: $(ls "$WORK"))"

# -o and --har ending in .gz write gzip (compressed on a thread of their own): tshark reads
# the pcapng as it is, and both decompress to a whole recording of what was fetched.
start_origin
# Only a HAR: -o /dev/null with --har.
start_mitmrec -o /dev/null --har "$WORK/only.har" --cacert "$TEST_CA"
pcurl -f -o "$WORK/only.json" "https://127.0.0.1:$ORIGIN_TLSPORT/data.json" || fail "GET data.json with -o /dev/null failed"
stop_mitmrec
same_file "$WORK/only.json" "$WWW/data.json" "-o /dev/null: data.json"
har_validate "$WORK/only.har"
[ "$(har_query "$WORK/only.har" '[e["request"]["url"].rsplit("/", 1)[1] for e in h["log"]["entries"]]')" = '["data.json"]' ] ||
    fail "-o /dev/null --har only.har: $(har_query "$WORK/only.har" '[e["request"]["url"] for e in h["log"]["entries"]]')"
[ -c /dev/null ] || fail "/dev/null is no longer a character device"

start_mitmrec -o "$WORK/zipped.pcapng.gz" --har "$WORK/zipped.har.gz" --cacert "$TEST_CA"
for i in 1 2 3; do
    pcurl -f -o "$WORK/zipped.$i.bin" "https://127.0.0.1:$ORIGIN_TLSPORT/1m.bin" || fail "GET $i of 1m.bin through mitmrec failed"
done
pcurl -f -o "$WORK/zipped.json" "https://127.0.0.1:$ORIGIN_TLSPORT/data.json" || fail "GET data.json through mitmrec failed"
stop_mitmrec
for f in zipped.pcapng.gz zipped.har.gz; do
    [ "$(head -c 2 "$WORK/$f" | od -An -tx1 | tr -d ' ')" = 1f8b ] || fail "$f is not gzip"
    gzip -t "$WORK/$f" 2>"$WORK/gzip.err" || fail "$f is not a whole gzip stream: $(cat "$WORK/gzip.err")"
done
tshark_ok "$WORK/zipped.pcapng.gz"
gzip -dc "$WORK/zipped.pcapng.gz" >"$WORK/zipped.pcapng"
gzip -dc "$WORK/zipped.har.gz" >"$WORK/zipped.har"
n=$(har_query "$WORK/zipped.har" 'len(h["log"]["entries"])')
[ "$n" = 4 ] || fail "zipped.har.gz holds $n entries, expected 4"
check_recording "$WORK/zipped.pcapng" "$WORK/zipped.har" /1m.bin="$WWW/1m.bin" /data.json="$WWW/data.json"
# ... and what mitmrec writes, it reads: -r of the .gz (and of it on stdin) gives the live
# HAR's entries, a .gz cut in the middle gives one error line and the entries before the cut,
# and mitmreplay replays the .har.gz and the .pcapng.gz (--client, against the origin).
check_same_entries "$WORK/zipped.pcapng.gz" "$WORK/zipped.har"
"$MITMREC" -r - --har "$WORK/zstdin.har" <"$WORK/zipped.pcapng.gz" 2>"$WORK/zstdin.err" ||
    fail "mitmrec -r - <zipped.pcapng.gz failed: $(cat "$WORK/zstdin.err")"
"$PY" "$top_srcdir/tests/integration/recording.py" same-entries "$WORK/zipped.har" "$WORK/zstdin.har" ||
    fail "mitmrec -r - <zipped.pcapng.gz does not give the live HAR's entries"
head -c $(($(stat -c %s "$WORK/zipped.pcapng.gz") / 2)) "$WORK/zipped.pcapng.gz" >"$WORK/zcut.pcapng.gz"
"$MITMREC" -r "$WORK/zcut.pcapng.gz" --har "$WORK/zcut.har" 2>"$WORK/zcut.err"
rc=$?
[ $rc -eq 1 ] || fail "mitmrec -r of a cut .gz exited $rc, expected 1: $(cat "$WORK/zcut.err")"
[ "$(grep -c 'error' "$WORK/zcut.err")" = 1 ] &&
    grep -qx "mitmrec: error: $WORK/zcut.pcapng.gz: unexpected end of file; converted what came before it" "$WORK/zcut.err" ||
    fail "mitmrec -r of a cut .gz: expected one 'unexpected end of file' error, got: $(cat "$WORK/zcut.err")"
n=$(har_query "$WORK/zcut.har" 'len(h["log"]["entries"])')
[ "$n" -ge 1 ] && [ "$n" -lt 4 ] || fail "mitmrec -r of the first half of zipped.pcapng.gz gave $n entries, expected 1 to 3"
if [ -x "$MITMREPLAY" ]; then
    for f in zipped.har.gz zipped.pcapng.gz; do
        timeout 60 "$MITMREPLAY" "$WORK/$f" --client --cacert "$TEST_CA" >"$WORK/zr.out" 2>"$WORK/zr.err"
        rc=$?
        [ $rc -eq 0 ] && grep -q "client replay of 4 requests: 4 same, 0 different, 0 failed" "$WORK/zr.err" ||
            fail "mitmreplay $f --client: exit $rc, expected 4 requests, 4 the same: $(tail -n 3 "$WORK/zr.err")"
    done
fi

# Both .gz files after a SIGKILL: what was flushed (at least once a second) decompresses.
# mitmrec -r of the cut .pcapng.gz says "unexpected end of file" once and gives the requests
# made more than a second before; --repair-har on the cut .har.gz writes a whole gzip HAR
# (replacing it, mode 0600 kept) that holds them too.
start_mitmrec -o "$WORK/killed.pcapng.gz" --har "$WORK/killed.har.gz" --cacert "$TEST_CA"
for i in 1 2 3; do
    pcurl -f -o /dev/null "https://127.0.0.1:$ORIGIN_TLSPORT/data.json?k=$i" || fail "killed: GET $i failed"
done
sleep 2.5
kill -KILL "$MITM_PID"
wait_pid "$MITM_PID" 10 || fail "mitmrec still running 10 s after SIGKILL"
for f in killed.pcapng.gz killed.har.gz; do
    ! gzip -t "$WORK/$f" 2>/dev/null || fail "$f is a whole gzip stream after SIGKILL: the test cannot tell anything"
done
"$MITMREC" -r "$WORK/killed.pcapng.gz" --har "$WORK/killed-r.har" 2>"$WORK/killed-r.err"
grep -q "killed.pcapng.gz: unexpected end of file; converted what came before it" "$WORK/killed-r.err" ||
    fail "mitmrec -r of a killed .pcapng.gz: $(cat "$WORK/killed-r.err")"
n=$(har_query "$WORK/killed-r.har" 'len([e for e in h["log"]["entries"] if "k=" in e["request"]["url"]])')
[ "$n" = 3 ] || fail "mitmrec -r of the killed .pcapng.gz gave $n of the 3 requests"
"$MITMREC" --repair-har "$WORK/killed.har.gz" 2>"$WORK/killed-rep.err" ||
    fail "mitmrec --repair-har killed.har.gz: $(cat "$WORK/killed-rep.err")"
grep -q "^mitmrec: repaired $WORK/killed.har.gz: kept 3 complete entries" "$WORK/killed-rep.err" ||
    fail "mitmrec --repair-har killed.har.gz said: $(cat "$WORK/killed-rep.err")"
gzip -t "$WORK/killed.har.gz" || fail "the repaired killed.har.gz is not a whole gzip stream"
[ "$(stat -c %a "$WORK/killed.har.gz")" = 600 ] || fail "the repaired killed.har.gz has mode $(stat -c %a "$WORK/killed.har.gz")"
gzip -dc "$WORK/killed.har.gz" >"$WORK/killed.har"
har_validate "$WORK/killed.har"
n=$(har_query "$WORK/killed.har" 'len([e for e in h["log"]["entries"] if "k=" in e["request"]["url"]])')
[ "$n" = 3 ] || fail "the repaired killed.har.gz holds $n of the 3 requests"
[ -z "$(find "$WORK" -maxdepth 1 -name 'killed.har.gz.repair-*')" ] || fail "--repair-har left its temporary file"
# --repair-har on a whole HAR (exit 0, nothing written), on a file that is no HAR and on one
# that does not exist (exit 1, one line, the file left as it was), and on a HAR cut after its
# one complete entry ("1 complete entry").
sum=$(sha256 "$WORK/killed.har")
"$MITMREC" --repair-har "$WORK/killed.har" 2>"$WORK/rep-whole.err" || fail "--repair-har of a whole HAR failed: $(cat "$WORK/rep-whole.err")"
n=$(har_query "$WORK/killed.har" 'len(h["log"]["entries"])')
[ "$(cat "$WORK/rep-whole.err")" = "mitmrec: $WORK/killed.har is complete ($n entries): nothing to repair" ] ||
    fail "--repair-har of a whole HAR said: $(cat "$WORK/rep-whole.err")"
[ "$(sha256 "$WORK/killed.har")" = "$sum" ] || fail "--repair-har changed a whole HAR"
cp /etc/passwd "$WORK/passwd.har"
for f in passwd.har no-such.har; do
    "$MITMREC" --repair-har "$WORK/$f" 2>"$WORK/rep-bad.err" && fail "--repair-har $f exited 0"
    [ "$(wc -l <"$WORK/rep-bad.err")" = 1 ] || fail "--repair-har $f: $(cat "$WORK/rep-bad.err")"
done
grep -q "^mitmrec: error: cannot open $WORK/no-such.har: No such file or directory$" "$WORK/rep-bad.err" ||
    fail "--repair-har no-such.har said: $(cat "$WORK/rep-bad.err")"
cmp -s /etc/passwd "$WORK/passwd.har" || fail "--repair-har changed a file that is no HAR"
"$PY" - "$WORK/killed.har" "$WORK/one.har" <<'EOF' || fail "cannot cut a HAR after its first entry"
import json, sys
h = json.load(open(sys.argv[1]))
text = json.dumps(h)
first = json.dumps(h["log"]["entries"][0])
cut = text.index(first) + len(first) + 5      # into the second entry
open(sys.argv[2], "w").write(text[:cut])
EOF
"$MITMREC" --repair-har "$WORK/one.har" 2>"$WORK/rep-one.err" || fail "--repair-har one.har: $(cat "$WORK/rep-one.err")"
grep -q "^mitmrec: repaired $WORK/one.har: kept 1 complete entry (" "$WORK/rep-one.err" ||
    fail "--repair-har one.har said: $(cat "$WORK/rep-one.err")"
[ "$(har_query "$WORK/one.har" 'len(h["log"]["entries"])')" = 1 ] || fail "one.har after repair: not 1 entry"

# A second SIGTERM while the files get their last bytes (a second Ctrl-C, or timeout(1)
# signalling its process group after the process) must not cut them: exit 0, a whole gzip
# stream and a HAR that parses, 5 times with the second signal 20 ms after the first (the
# build before the fix ended 5 of 5 such runs with status 143 and a .gz cut short).
for i in 1 2 3 4 5; do
    start_mitmrec -o "$WORK/twice.$i.pcapng.gz" --har "$WORK/twice.$i.har" --cacert "$TEST_CA"
    pcurl -f -o /dev/null "https://127.0.0.1:$ORIGIN_TLSPORT/5m.bin" || fail "twice $i: the 5 MiB GET failed"
    kill -TERM "$MITM_PID"
    sleep 0.02
    kill -TERM "$MITM_PID" 2>/dev/null
    wait_pid "$MITM_PID" 30 || fail "twice $i: mitmrec still running 30 s after two SIGTERMs"
    [ "$WAIT_RC" = 0 ] || fail "twice $i: mitmrec exited with status $WAIT_RC after a second SIGTERM, expected 0"
    gzip -t "$WORK/twice.$i.pcapng.gz" 2>"$WORK/gzip.err" ||
        fail "twice $i: a second SIGTERM cut the recording: $(cat "$WORK/gzip.err")"
    "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/twice.$i.har" ||
        fail "twice $i: the HAR is not valid JSON after a second SIGTERM"
done

# Local redirect mode without privileges: as nobody (no capabilities), -p NAME and spawn mode
# exit 2 with one line that names what is missing and points at --listen mode.
# unprivileged WHAT ARGS...: run mitmrec ARGS as nobody in $WORK/nobody (HOME there too).
unprivileged() {
    local what=$1 nb=$WORK/nobody rc lines
    shift
    (cd "$nb" && timeout 10 setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env HOME="$nb/home" "$MITMREC" "$@") >"$nb/out" 2>"$nb/err"
    rc=$?
    [ $rc -ne 124 ] || fail "$what as nobody: 'mitmrec $*' still running after 10 s"
    [ $rc -eq 2 ] || fail "$what as nobody: 'mitmrec $*' exited $rc, expected 2 (stderr: $(head -c 300 "$nb/err"))"
    lines=$(wc -l <"$nb/err")
    [ "$lines" -eq 1 ] || fail "$what as nobody: $lines lines on stderr, expected one: $(head -c 500 "$nb/err")"
    grep -Eq 'root|CAP_[A-Z_]+|privilege' "$nb/err" ||
        fail "$what as nobody: the message does not say what is missing (root or capabilities): $(cat "$nb/err")"
    grep -q -- '--listen' "$nb/err" || fail "$what as nobody: the message does not suggest --listen mode: $(cat "$nb/err")"
    grep -q 'proxy listening\|recording processes' "$nb/err" && fail "$what as nobody: mitmrec started: $(cat "$nb/err")"
    log "$what as nobody: $(cat "$nb/err")"
}
if [ "$(id -u)" != 0 ]; then
    log "not root: the unprivileged local redirect case is not run (it needs setpriv to nobody)"
elif ! command -v setpriv >/dev/null 2>&1 || ! id nobody >/dev/null 2>&1 || ! getent group nogroup >/dev/null; then
    log "no setpriv, user nobody or group nogroup: the unprivileged local redirect case is not run"
else
    mkdir -p "$WORK/nobody/home"
    chown -R nobody:nogroup "$WORK/nobody"
    chmod 711 "$WORK"           # nobody may pass through (not list) the test's directory
    if setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$MITMREC"; then
        unprivileged "-p curl" -p curl -o "$WORK/nobody/x.pcapng"
        unprivileged "spawn mode" -o "$WORK/nobody/y.pcapng" -- true
    else
        log "nobody cannot run $MITMREC (a private build directory): the unprivileged case is not run"
    fi
fi

# Under sudo, the files mitmrec and mitmreplay create go to the user who ran sudo (mode kept),
# so that they open their recording without sudo; a file that was there keeps its owner.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    NB="$(id -u nobody):$(id -g nobody)"
    owner() { stat -c '%u:%g %a' "$1"; }
    cp "$WORK/zipped.har" "$WORK/kept.har"
    SUDO_UID=${NB%:*} SUDO_GID=${NB#*:} SUDO_USER=nobody \
        "$MITMREC" -q -r "$WORK/zipped.pcapng" -o "$WORK/sudo.pcapng" --har "$WORK/kept.har" ||
        fail "mitmrec -r under sudo failed"
    [ "$(owner "$WORK/sudo.pcapng")" = "$NB 600" ] || fail "-r -o under sudo: $(owner "$WORK/sudo.pcapng"), expected $NB 600"
    [ "$(owner "$WORK/kept.har")" = "0:0 600" ] || fail "an existing --har under sudo: $(owner "$WORK/kept.har"), expected 0:0 600"
    if spawn_available; then
        SUDO_UID=${NB%:*} SUDO_GID=${NB#*:} SUDO_USER=nobody \
            "$MITMREC" -q -o "$WORK/sudo2.pcapng" --keylog "$WORK/sudo2.keys" -- true ||
            fail "spawn mode under sudo failed"
        for f in sudo2.pcapng sudo2.har sudo2.keys; do
            [ "$(owner "$WORK/$f")" = "$NB 600" ] || fail "$f under sudo: $(owner "$WORK/$f"), expected $NB 600"
        done
    fi
    if [ -x "$MITMREPLAY" ]; then
        SUDO_UID=${NB%:*} SUDO_GID=${NB#*:} SUDO_USER=nobody timeout 60 "$MITMREPLAY" -q --client \
            "$WORK/zipped.pcapng" --cacert "$TEST_CA" --report "$WORK/sudo.json" >/dev/null 2>&1
        [ "$(owner "$WORK/sudo.json")" = "$NB 644" ] || fail "--report under sudo: $(owner "$WORK/sudo.json"), expected $NB 644"
    fi
    log "under sudo: new files belong to the user who ran it, existing ones keep their owner"
fi

log "ok"
exit 0
