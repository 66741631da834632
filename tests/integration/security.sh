#!/bin/bash
# SPDX-License-Identifier: MIT
# Security promises (issue 7, item 6):
#   1. ~/.mitmrec is 0700 and the CA key 0600 (even under umask 000); a CA key that group or
#      others can read is refused with one error line naming it, before anything listens; so
#      is a CA directory others can write.
#   2. Output files (pcapng, HAR, --keylog) are created 0600, under umask 000 too; an existing
#      pcapng/HAR is made 0600, and so is an existing --keylog file (appended to).
#   3. The listener binds to 127.0.0.1 unless an address is given (ss shows it); an explicit
#      non-loopback address (--listen 0.0.0.0:0, in a network namespace of its own) warns.
#   4. Upstream certificates are verified by default (no --cacert: the test origin fails), and
#      a failed verification reaches the client as a TLS alert, never as a forged certificate
#      (openssl s_client sees no peer certificate at all).
#      The system trust store: with SSL_CERT_FILE unset or naming the system's own bundle,
#      mitmrec reads the hashed directory (SSL_CERT_DIR) per issuer and does not parse the
#      bundle at start-up (strace: the bundle is never opened); a CA found only there is
#      trusted. SSL_CERT_FILE naming another bundle is loaded as it is.
#   5. Spawn mode (root, eBPF): the command runs as the invoking sudo user (SUDO_UID/GID/USER
#      of nobody in mitmrec's environment), not root.
#   6. After start-up mitmrec holds no capability it no longer needs: CapEff and CapPrm from
#      /proc/PID/status, read while the spawned command runs (the BPF programs are attached
#      by then). Allowed: CAP_SYS_PTRACE alone in the redirect modes (reading /proc/PID/exe of
#      other users' processes for the process names); nothing at all in --listen mode.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl openssl ss tshark
start_origin
T=https://127.0.0.1:$ORIGIN_TLSPORT

mode_of() { stat -c %a "$1" 2>/dev/null || echo missing; }

# 1 and 2 under umask 000, with an existing world-readable HAR left from before.
umask 000
printf 'old\n' >"$WORK/out.har"
chmod 644 "$WORK/out.har"
start_mitmrec -o "$WORK/out.pcapng" --keylog "$WORK/keys.log" --cacert "$TEST_CA"
umask 077
pcurl -f -o "$WORK/a.txt" "$T/small.txt" || fail "HTTPS GET through the proxy failed"
same_file "$WORK/a.txt" "$WWW/small.txt" "download"

# 3. The listener: 127.0.0.1 only, as ss sees it.
listen=$(ss -Hltnp "sport = :$MITM_PORT" | grep "pid=$MITM_PID," | awk '{print $4}')
[ -n "$listen" ] || fail "ss shows no listening socket of pid $MITM_PID on port $MITM_PORT: $(ss -Hltnp "sport = :$MITM_PORT")"
[ "$(printf '%s\n' "$listen" | sort -u)" = "127.0.0.1:$MITM_PORT" ] ||
    fail "mitmrec listens on '$listen', expected 127.0.0.1:$MITM_PORT only"
others=$(ss -Hltnp | grep "pid=$MITM_PID," | awk '{print $4}' | grep -v "^127\.0\.0\.1:$MITM_PORT\$")
[ -z "$others" ] || fail "mitmrec (listen mode) has other listening sockets: $others"

# 6 (listen mode): root starts it, but it needs no capability once it listens.
if [ "$(id -u)" = 0 ]; then
    eff=$(awk '/^CapEff:/ {print $2}' "/proc/$MITM_PID/status")
    prm=$(awk '/^CapPrm:/ {print $2}' "/proc/$MITM_PID/status")
    log "listen mode, started as root: CapEff $eff CapPrm $prm"
    [ $((16#$eff)) -eq 0 ] && [ $((16#$prm)) -eq 0 ] ||
        fail "listen mode: mitmrec still holds capabilities after start-up (CapEff $eff, CapPrm $prm), expected none"
fi
stop_mitmrec

# capset(2) changes one thread: every thread of mitmrec must be without capabilities,
# the gzip threads (started by the first full buffer or flush) and libuv's workers too.
# all_threads_capless WHAT PID
all_threads_capless() {
    local t eff prm n=0
    for t in /proc/"$2"/task/*; do
        eff=$(awk '/^CapEff:/ {print $2}' "$t/status" 2>/dev/null) || continue
        prm=$(awk '/^CapPrm:/ {print $2}' "$t/status" 2>/dev/null)
        [ -n "$eff" ] || continue
        n=$((n + 1))
        [ $((16#$eff)) -eq 0 ] && [ $((16#$prm)) -eq 0 ] ||
            fail "$1: thread ${t##*/} ($(cat "$t/comm" 2>/dev/null)) holds CapEff $eff CapPrm $prm, expected none"
    done
    log "$1: $n threads, none with a capability"
    [ "$n" -ge 2 ] || fail "$1: only $n thread(s); expected the gzip threads too"
}
if [ "$(id -u)" = 0 ]; then
    start_mitmrec -o "$WORK/caps.pcapng.gz" --har "$WORK/caps.har.gz" --cacert "$TEST_CA"
    pcurl -f -o /dev/null "$T/small.txt" || fail "HTTPS GET through the proxy (gzip outputs) failed"
    sleep 1.5   # the once-a-second flush hands both files to their threads
    all_threads_capless "listen mode, gzip outputs" "$MITM_PID"
    stop_mitmrec
fi

for f in "$MITM_PCAP" "$MITM_HAR" "$WORK/keys.log"; do
    [ "$(mode_of "$f")" = 600 ] || fail "$f has mode $(mode_of "$f") (umask 000), expected 600"
done
[ -s "$WORK/keys.log" ] || fail "--keylog $WORK/keys.log is empty"
[ "$(mode_of "$HOME/.mitmrec")" = 700 ] || fail "$HOME/.mitmrec has mode $(mode_of "$HOME/.mitmrec"), expected 700"
[ "$(mode_of "$HOME/.mitmrec/mitmrec-ca.pem")" = 600 ] ||
    fail "the CA key $HOME/.mitmrec/mitmrec-ca.pem has mode $(mode_of "$HOME/.mitmrec/mitmrec-ca.pem"), expected 600"
grep -q 'PRIVATE KEY' "$HOME/.mitmrec/mitmrec-ca.pem" || fail "mitmrec-ca.pem holds no private key"
for f in mitmrec-ca-cert.pem mitmrec-ca-cert.cer; do
    [ -f "$HOME/.mitmrec/$f" ] || fail "$HOME/.mitmrec/$f missing"
    ! grep -q 'PRIVATE KEY' "$HOME/.mitmrec/$f" || fail "$f holds a private key"
done

# An --keylog file that already exists is appended to (as SSLKEYLOGFILE users expect) and made
# 0600, since it now holds TLS secrets; what it held stays.
printf '# kept\n' >"$WORK/shared.log"
chmod 644 "$WORK/shared.log"
start_mitmrec -o "$WORK/k.pcapng" --keylog "$WORK/shared.log" --cacert "$TEST_CA"
pcurl -f -o /dev/null "$T/small.txt" || fail "HTTPS GET with --keylog to an existing file failed"
stop_mitmrec
[ "$(mode_of "$WORK/shared.log")" = 600 ] ||
    fail "an existing --keylog file of mode 644 has mode $(mode_of "$WORK/shared.log") after the run, expected 600"
[ "$(head -n 1 "$WORK/shared.log")" = "# kept" ] || fail "the existing --keylog file lost its first line"
grep -q '^CLIENT_HANDSHAKE_TRAFFIC_SECRET \|^CLIENT_RANDOM ' "$WORK/shared.log" ||
    fail "the existing --keylog file got no secrets appended"

# An output that is not a regular file is written to and keeps its mode: mitmrec once made
# /dev/null 0600 for --har /dev/null run as root, and then no other user could write to it.
# Checked on a null device of its own, made here.
if [ "$(id -u)" = 0 ] && mknod -m 666 "$WORK/null" c 1 3 2>/dev/null; then
    start_mitmrec -o "$WORK/n.pcapng" --har "$WORK/null" --cacert "$TEST_CA"
    pcurl -f -o /dev/null "$T/small.txt" || fail "HTTPS GET with --har to a character device failed"
    stop_mitmrec
    [ "$(mode_of "$WORK/null")" = 666 ] ||
        fail "--har to a character device of mode 666 left it with mode $(mode_of "$WORK/null")"
    [ -c "$WORK/null" ] || fail "--har to a character device replaced it"
    [ "$(mode_of "$WORK/n.pcapng")" = 600 ] || fail "n.pcapng has mode $(mode_of "$WORK/n.pcapng")"
else
    log "note: could not make a character device (not root?): --har to a device not checked"
fi

# expect_refusal WHAT ARGS...: mitmrec must exit non-zero without listening, with exactly one
# error line (naming the file given in REFUSE_NAMES).
expect_refusal() {
    local what=$1 rc lines
    shift
    timeout 20 "$MITMREC" --listen 0 "$@" >"$WORK/refuse.out" 2>"$WORK/refuse.err"
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "$what: mitmrec exit status $rc, expected a refusal: $(cat "$WORK/refuse.err")"
    ! grep -q 'proxy listening' "$WORK/refuse.err" || fail "$what: mitmrec started listening"
    lines=$(grep -c . "$WORK/refuse.err")
    [ "$lines" = 1 ] || fail "$what: $lines lines on stderr, expected one: $(cat "$WORK/refuse.err")"
    grep -qF "$REFUSE_NAME" "$WORK/refuse.err" || fail "$what: the error does not name $REFUSE_NAME: $(cat "$WORK/refuse.err")"
    log "$what: refused (exit $rc): $(cat "$WORK/refuse.err")"
}

# 1. A CA key others (then the group) can read is refused, in ~/.mitmrec and with --ca.
for m in 644 640 604; do
    chmod "$m" "$HOME/.mitmrec/mitmrec-ca.pem"
    REFUSE_NAME=$HOME/.mitmrec/mitmrec-ca.pem
    expect_refusal "CA key mode $m" -o "$WORK/r.pcapng"
done
chmod 600 "$HOME/.mitmrec/mitmrec-ca.pem"
[ ! -e "$WORK/r.pcapng" ] || log "note: the refused start created $WORK/r.pcapng"
cp "$HOME/.mitmrec/mitmrec-ca.pem" "$WORK/other-ca.pem"
chmod 644 "$WORK/other-ca.pem"
REFUSE_NAME=$WORK/other-ca.pem
expect_refusal "--ca with mode 644" -o "$WORK/r2.pcapng" --ca "$WORK/other-ca.pem"
chmod 600 "$WORK/other-ca.pem"
chmod 777 "$HOME/.mitmrec"
REFUSE_NAME=$HOME/.mitmrec
expect_refusal "CA directory mode 777" -o "$WORK/r3.pcapng"
chmod 700 "$HOME/.mitmrec"

# A fresh home under umask 000: the directory and the key are still 0700 / 0600.
# The exit status and the seconds each step took go into the failure message: one CI run
# saw this fail with a normal summary line on stderr and no crash in the kernel log.
(
    umask 000
    export HOME=$WORK/home2
    mkdir -p "$HOME"
    t0=$(date +%s%N)
    timeout 20 "$MITMREC" --listen 0 -o "$WORK/fresh.pcapng" >/dev/null 2>"$WORK/fresh.err" &
    p=$!
    for _ in $(seq 100); do grep -q 'proxy listening' "$WORK/fresh.err" && break; sleep 0.1; done
    t1=$(date +%s%N)
    kill -TERM $p
    wait $p
    rc=$?
    echo "exit $rc (124: timeout's 20 s ran out); listening after $(((t1 - t0) / 1000000)) ms, exit $((($(date +%s%N) - t1) / 1000000)) ms after SIGTERM" >"$WORK/fresh.rc"
    exit $rc
) || fail "fresh start under umask 000 failed: $(cat "$WORK/fresh.rc"): $(cat "$WORK/fresh.err")"
[ "$(mode_of "$WORK/home2/.mitmrec")" = 700 ] || fail "a fresh ~/.mitmrec under umask 000 has mode $(mode_of "$WORK/home2/.mitmrec")"
[ "$(mode_of "$WORK/home2/.mitmrec/mitmrec-ca.pem")" = 600 ] ||
    fail "a fresh CA key under umask 000 has mode $(mode_of "$WORK/home2/.mitmrec/mitmrec-ca.pem")"
for f in fresh.pcapng fresh.har; do
    [ "$(mode_of "$WORK/$f")" = 600 ] || fail "$f has mode $(mode_of "$WORK/$f") under umask 000"
done

# 3. An explicit non-loopback address warns. In a network namespace of our own with only
#    loopback up, so nothing is exposed while it runs.
need unshare ip
if unshare -n true 2>/dev/null; then
    unshare -n bash -c '
        ip link set lo up
        "$1" --listen 0.0.0.0:0 -o "$2/any.pcapng" 2>"$2/any.err" &
        p=$!
        for _ in $(seq 100); do grep -q "proxy listening" "$2/any.err" && break; sleep 0.1; done
        ss -Hltnp | grep "pid=$p," >"$2/any.ss"
        kill -TERM $p
        wait $p
    ' _ "$MITMREC" "$WORK" || fail "--listen 0.0.0.0:0 run failed: $(cat "$WORK/any.err")"
    grep -q 'proxy listening on 0\.0\.0\.0:' "$WORK/any.err" || fail "--listen 0.0.0.0:0: no listening line: $(cat "$WORK/any.err")"
    grep -q '0\.0\.0\.0:' "$WORK/any.ss" || fail "--listen 0.0.0.0:0: ss shows $(cat "$WORK/any.ss")"
    grep -iv 'proxy listening\|flows\?,' "$WORK/any.err" | grep -Eqi 'warn|any host|0\.0\.0\.0' ||
        fail "--listen 0.0.0.0:0 printed no warning: $(cat "$WORK/any.err")"
    log "--listen 0.0.0.0:0 warns: $(grep -iv 'proxy listening\|flows\?,' "$WORK/any.err" | head -n 1)"
    # An explicit loopback address gives no warning.
    unshare -n bash -c '
        ip link set lo up
        "$1" --listen 127.0.0.2:0 -o "$2/lo2.pcapng" 2>"$2/lo2.err" &
        p=$!
        for _ in $(seq 100); do grep -q "proxy listening" "$2/lo2.err" && break; sleep 0.1; done
        kill -TERM $p
        wait $p
    ' _ "$MITMREC" "$WORK" || fail "--listen 127.0.0.2:0 run failed: $(cat "$WORK/lo2.err")"
    ! grep -qi 'any host\|warn' "$WORK/lo2.err" || fail "--listen 127.0.0.2:0 (loopback) warned: $(cat "$WORK/lo2.err")"
else
    log "note: cannot make a network namespace; --listen 0.0.0.0 warning not checked"
fi

# 4. Upstream verification. s_client through the proxy (CONNECT), trusting mitmrec's CA: it
#    must end in an alert with no peer certificate, i.e. no forged one.
sclient_through() {
    # sclient_through PORT OUT: openssl s_client via the proxy to 127.0.0.1:PORT.
    timeout 20 openssl s_client -proxy "127.0.0.1:$MITM_PORT" -connect "127.0.0.1:$1" \
        -servername localhost -CAfile "$MITM_CA" -verify_return_error </dev/null >"$2" 2>&1
}
check_no_forgery() {
    # check_no_forgery WHAT OUT RC
    [ "$3" -ne 0 ] || fail "$1: openssl s_client succeeded: $(head -c 2000 "$2")"
    grep -q 'alert' "$2" || fail "$1: s_client saw no TLS alert: $(head -c 2000 "$2")"
    grep -q 'no peer certificate available' "$2" ||
        fail "$1: the client was shown a certificate (a forged one hides the failure): $(grep -A3 -i 'certificate chain\|subject=' "$2" | head -20)"
    ! grep -q 'BEGIN CERTIFICATE' "$2" || fail "$1: the client received a certificate"
}

# 4a. No --cacert: the test origin (signed by a CA the system does not trust) fails.
start_mitmrec -o "$WORK/verify.pcapng"
sclient_through "$ORIGIN_TLSPORT" "$WORK/sc1.out"
check_no_forgery "default verification, untrusted origin CA" "$WORK/sc1.out" $?
code=$(pcurl -o /dev/null -w '%{http_code}' "$T/small.txt" 2>"$WORK/c1.err")
rc=$?
[ $rc -eq 35 ] || fail "curl via the proxy to an origin not trusted by default: exit $rc ($code), expected 35 (alert): $(cat "$WORK/c1.err")"
stop_mitmrec
errors=$(har_query "$MITM_HAR" '[e.get("_error") or e["response"].get("_error") for e in h["log"]["entries"]]')
case $errors in *verif* | *certificate* | *Verif* | *Certificate*) ;;
*) fail "the failed verification is not in the HAR as _error: $errors" ;; esac
tshark_fields "$MITM_PCAP" frame.comment frame.comment | grep -Eqi 'verif|certificate' ||
    fail "the failed verification is not in a pcapng comment"

# 4b. With --cacert: the self-signed origin still fails, the good one works.
start_mitmrec -o "$WORK/verify2.pcapng" --cacert "$TEST_CA"
sclient_through "$ORIGIN_BADPORT" "$WORK/sc2.out"
check_no_forgery "self-signed origin with --cacert" "$WORK/sc2.out" $?
sclient_through "$ORIGIN_TLSPORT" "$WORK/sc3.out" || fail "s_client via the proxy to the trusted origin failed: $(head -c 2000 "$WORK/sc3.out")"
grep -q 'Verify return code: 0 (ok)' "$WORK/sc3.out" || fail "trusted origin: s_client did not verify the forged certificate against mitmrec's CA"
stop_mitmrec
log "verification: failures end in an alert with no certificate shown; trusted origins work"

# 4c. The system trust store, with no --cacert. TRUST holds the test CA under its hash
#     name, as update-ca-certificates writes /etc/ssl/certs; NOHASH holds it under another.
mkdir -p "$WORK/trust" "$WORK/nohash"
cp "$TEST_CA" "$WORK/trust/$(openssl x509 -hash -noout -in "$TEST_CA").0"
cp "$TEST_CA" "$WORK/nohash/test-ca.pem"
SYSBUNDLE=$(openssl version -d | sed -n 's/^OPENSSLDIR: "\(.*\)"$/\1/p')/cert.pem
_saved_file=${SSL_CERT_FILE-unset} _saved_dir=${SSL_CERT_DIR-unset}
trust_case() {
    # trust_case WHAT EXPECT(ok|fail) SSL_CERT_FILE SSL_CERT_DIR ("-": unset)
    local code
    if [ "$3" = - ]; then unset SSL_CERT_FILE; else export SSL_CERT_FILE=$3; fi
    if [ "$4" = - ]; then unset SSL_CERT_DIR; else export SSL_CERT_DIR=$4; fi
    start_mitmrec -o "$WORK/trust.pcapng"
    code=$(pcurl -o "$WORK/t.txt" -w '%{http_code}' "$T/small.txt" 2>"$WORK/t.err")
    stop_mitmrec
    if [ "$2" = ok ]; then
        [ "$code" = 200 ] || fail "$1: curl through the proxy got '$code', expected 200: $(cat "$WORK/t.err")"
        same_file "$WORK/t.txt" "$WWW/small.txt" "$1"
    else
        [ "$code" != 200 ] || fail "$1: the origin was trusted, expected a failed verification"
    fi
}
trust_case "CA in the hashed directory, SSL_CERT_FILE unset" ok - "$WORK/trust"
trust_case "CA in the hashed directory, SSL_CERT_FILE the system's bundle" ok "$SYSBUNDLE" "$WORK/trust"
trust_case "CA in a directory without hash links" fail - "$WORK/nohash"
trust_case "CA in a bundle named by SSL_CERT_FILE" ok "$WORK/nohash/test-ca.pem" "$WORK/nohash"
if command -v strace >/dev/null; then
    # Start-up only: mitmrec opens no bundle unless SSL_CERT_FILE names one of its own.
    bundle=$(readlink -f "$SYSBUNDLE")
    SSL_CERT_FILE=$SYSBUNDLE SSL_CERT_DIR=$WORK/trust strace -f -qq -e trace=open,openat \
        -o "$WORK/open.trace" timeout -s INT 1 "$MITMREC" --listen 0 -o "$WORK/st.pcapng" \
        >/dev/null 2>&1
    [ -s "$WORK/open.trace" ] || fail "strace wrote nothing"
    ! grep -q -e "$bundle" -e "\"$SYSBUNDLE\"" "$WORK/open.trace" ||
        fail "the system's bundle was parsed at start-up: $(grep -e "$bundle" -e "\"$SYSBUNDLE\"" "$WORK/open.trace")"
    SSL_CERT_FILE=$WORK/nohash/test-ca.pem strace -f -qq -e trace=open,openat \
        -o "$WORK/open2.trace" timeout -s INT 1 "$MITMREC" --listen 0 -o "$WORK/st.pcapng" \
        >/dev/null 2>&1
    grep -q "$WORK/nohash/test-ca.pem" "$WORK/open2.trace" ||
        fail "a bundle named by SSL_CERT_FILE was not read"
fi
if [ "$_saved_file" = unset ]; then unset SSL_CERT_FILE; else export SSL_CERT_FILE=$_saved_file; fi
if [ "$_saved_dir" = unset ]; then unset SSL_CERT_DIR; else export SSL_CERT_DIR=$_saved_dir; fi
log "system trust: the hashed directory is read per issuer, the bundle only when named"

# 5 and 6: spawn mode (root, eBPF, cgroup v2).
if [ "$(id -u)" != 0 ]; then
    log "note: not root: spawn-mode privilege checks skipped"
    log "ok (partial)"
    exit 0
fi
TEST_USER=nobody
uid=$(id -u "$TEST_USER") gid=$(id -g "$TEST_USER") || skip "no user $TEST_USER"

# run_spawn NAME UMASK: mitmrec -o NAME.pcapng -- a command that prints its ids, waits 4 s
# and fetches small.txt over HTTPS; run as root with SUDO_* naming $TEST_USER, under UMASK.
# The command writes to mitmrec's stdout (opened by us, inherited): nobody cannot write
# $WORK. Sets SP_OUT, SP_ERR, SP_RC, SP_EFF and SP_PRM (read while the command waits: by
# then the BPF programs are attached and start-up is over).
run_spawn() {
    local name=$1 sp
    SP_OUT=$WORK/$name.out SP_ERR=$WORK/$name.err
    (
        umask "$2"
        export SUDO_UID=$uid SUDO_GID=$gid SUDO_USER=$TEST_USER
        exec "$MITMREC" -o "$WORK/$name.pcapng" --cacert "$TEST_CA" --no-status -- sh -c \
            'echo "uid=$(id -u) gid=$(id -g)"; sleep 4; curl -q -sS -o /dev/null -w "code=%{http_code}\n" "$0/small.txt"' \
            "$T" >"$SP_OUT" 2>"$SP_ERR"
    ) &
    sp=$!
    _LIB_PIDS+=("$sp")
    for _ in $(seq 150); do grep -q '^uid=' "$SP_OUT" 2>/dev/null && break; kill -0 $sp 2>/dev/null || break; sleep 0.1; done
    if ! grep -q '^uid=' "$SP_OUT"; then
        wait_pid $sp 30
        if grep -Eqi 'bpf|cgroup|not supported' "$SP_ERR" && [ "$WAIT_RC" = 2 ]; then
            skip "spawn mode unavailable here (exit $WAIT_RC): $(cat "$SP_ERR")"
        fi
        fail "spawn mode: the command printed nothing (exit $WAIT_RC): $(cat "$SP_ERR")"
    fi
    sleep 0.5
    SP_EFF=$(awk '/^CapEff:/ {print $2}' "/proc/$sp/status" 2>/dev/null)
    SP_PRM=$(awk '/^CapPrm:/ {print $2}' "/proc/$sp/status" 2>/dev/null)
    wait_pid $sp 60 || fail "spawn mode: mitmrec still runs 60 s after the command started"
    SP_RC=$WAIT_RC
    log "spawn mode, umask $2: command printed '$(tr '\n' ' ' <"$SP_OUT")'; mitmrec CapEff $SP_EFF CapPrm $SP_PRM; exit $SP_RC"
}

run_spawn spawn 022
grep -q "^uid=$uid gid=$gid\$" "$SP_OUT" ||
    fail "spawn mode with SUDO_UID=$uid: the command ran as '$(head -n 1 "$SP_OUT")', expected uid=$uid gid=$gid"
[ -n "$SP_EFF" ] || fail "could not read mitmrec's capabilities while the command ran"
# CAP_SYS_PTRACE is bit 19.
allowed=$((1 << 19))
if [ $((16#$SP_EFF & ~allowed)) -ne 0 ] || [ $((16#$SP_PRM & ~allowed)) -ne 0 ]; then
    fail "spawn mode: after start-up mitmrec still holds CapEff $SP_EFF CapPrm $SP_PRM; allowed: CAP_SYS_PTRACE (0x80000) only"
fi
grep -q '^code=200' "$SP_OUT" ||
    fail "spawn mode: the command's HTTPS request did not succeed: $(cat "$SP_OUT") $(cat "$SP_ERR")"
[ "$SP_RC" = 0 ] || fail "spawn mode: mitmrec exited $SP_RC: $(cat "$SP_ERR")"
for f in spawn.pcapng spawn.har; do
    [ "$(mode_of "$WORK/$f")" = 600 ] || fail "spawn mode: $f has mode $(mode_of "$WORK/$f")"
done
tshark_ok "$WORK/spawn.pcapng"

# Root's umask is often 077: the command, running as $TEST_USER, must still be able to read
# the CA bundle mitmrec makes for it (else every TLS client in it fails).
run_spawn spawn077 077
grep -q '^code=200' "$SP_OUT" ||
    fail "spawn mode under umask 077: the command (uid $uid) cannot use the CA bundle mitmrec made for it: $(tr '\n' ' ' <"$SP_OUT")$(grep -v '^mitmrec:' "$SP_ERR")"

log "ok"
exit 0
