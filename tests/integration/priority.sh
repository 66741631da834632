#!/bin/bash
# SPDX-License-Identifier: MIT
# The relay's scheduling priority (--nice; src/priority.h):
#   1. Spawn mode, started at niceness 3 (3 steps from the suite's; the figures here are for
#      a suite at 0): every thread of mitmrec (the loop and libuv's
#      workers, which did the TLS handshakes of a curl through it: MITMREC_OFFLOAD=1) runs at
#      -2 (3 - 5, the default), and the command at 3, what mitmrec started with. The download
#      is recorded (tshark decrypts its request).
#   2. --nice 0 leaves mitmrec at 3; --nice 4 puts it at 7 (lowering needs no privilege);
#      --nice -30 is clamped to -20, as nice(1) does.
#   3. Not allowed to raise it (an unprivileged user with RLIMIT_NICE 0, listen mode): the
#      default stays silent and mitmrec runs at its start niceness; --nice -5 warns with one
#      line naming the option, and mitmrec still serves (a download through it).
#   4. Bad values: --nice x and --nice 41 exit 2 with one line naming the value; so does
#      mitmreplay's.
#   5. mitmreplay replays the same command from the recording: its threads at -2, the command
#      at 3, the same bytes.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl prlimit setpriv
# Run as root, not as the sudo user (the command writes into $WORK, which is root's).
unset SUDO_UID SUDO_GID SUDO_USER SUDO_COMMAND
start_origin
T=https://127.0.0.1:$ORIGIN_TLSPORT

# nice_of PID: the niceness of each thread of PID, one per line (field 19 of stat; the name
# in field 2 may hold spaces, so count from the ')' that ends it).
nice_of() {
    local t
    for t in /proc/"$1"/task/*; do
        sed 's/^.*) //' "$t/stat" | awk '{print $17}'
    done
}

# 4. Bad values, both programs.
for v in x 41 -41 ''; do
    rc=0
    "$MITMREC" --nice "$v" -o "$WORK/bad.pcapng" -- true >"$WORK/bad.out" 2>"$WORK/bad.err" || rc=$?
    [ $rc = 2 ] || fail "mitmrec --nice '$v': exit $rc, expected 2"
    [ "$(wc -l <"$WORK/bad.err")" = 1 ] && grep -q "^mitmrec: invalid --nice '$v'" "$WORK/bad.err" ||
        fail "mitmrec --nice '$v' said: $(cat "$WORK/bad.err")"
    [ ! -e "$WORK/bad.pcapng" ] || fail "mitmrec --nice '$v' wrote $WORK/bad.pcapng"
    if [ -x "$MITMREPLAY" ]; then
        rc=0
        "$MITMREPLAY" --nice "$v" "$WORK/none.pcapng" -- true >/dev/null 2>"$WORK/bad.err" || rc=$?
        [ $rc = 2 ] || fail "mitmreplay --nice '$v': exit $rc, expected 2"
        [ "$(wc -l <"$WORK/bad.err")" = 1 ] && grep -q "^mitmreplay: invalid --nice '$v'" "$WORK/bad.err" ||
            fail "mitmreplay --nice '$v' said: $(cat "$WORK/bad.err")"
    fi
done
log "bad values refused by both programs"

# 3. Without the right to raise it: nobody, RLIMIT_NICE 0 (so 20 - 0 = 20: no raise at all).
NB=$WORK/nobody
mkdir -p "$NB"
chmod 711 "$WORK" # nobody passes through to its own directory
chown nobody "$NB"
chmod 700 "$NB"
run_unprivileged() { # LOGNAME ARGS...: mitmrec --listen 0 ARGS as nobody, waits for its line
    local name=$1 i
    shift
    setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
        env HOME="$NB" prlimit --nice=0:0 "$MITMREC" --listen 0 -o "$NB/$name.pcapng" \
        --cacert "$TEST_CA" --no-status "$@" >/dev/null 2>"$NB/$name.err" &
    NB_PID=$!
    _LIB_PIDS+=("$NB_PID")
    for i in $(seq 200); do
        grep -q 'proxy listening on' "$NB/$name.err" 2>/dev/null && break
        kill -0 "$NB_PID" 2>/dev/null || break
        sleep 0.05
    done
    NB_PORT=$(sed -n 's/^mitmrec: proxy listening on 127\.0\.0\.1://p' "$NB/$name.err")
    [ -n "$NB_PORT" ] || fail "mitmrec as nobody ($*) did not listen: $(cat "$NB/$name.err")"
}
stop_unprivileged() {
    kill -TERM "$NB_PID"
    wait "$NB_PID" || fail "mitmrec as nobody exited with $?"
}
[ "$(id -u)" = 0 ] || skip "the rest needs root (setpriv to nobody, spawn mode)"
# The niceness this shell runs at (0 unless the suite was started under nice(1)), and
# clamp N: N within -20..19, as the kernel keeps it.
BASE=$(nice)
clamp() { local v=$1; [ "$v" -lt -20 ] && v=-20; [ "$v" -gt 19 ] && v=19; echo "$v"; }
START=$(clamp $((BASE + 3)))

run_unprivileged default
got=$(nice_of "$NB_PID" | sort -u | tr '\n' ' ')
[ "$got" = "$BASE " ] || fail "unprivileged, default: mitmrec's threads at niceness '$got', expected $BASE"
grep -q 'warning' "$NB/default.err" && fail "unprivileged, default: a warning: $(cat "$NB/default.err")"
stop_unprivileged
run_unprivileged asked --nice -5
n=$(grep -c '^mitmrec: warning: --nice -5: cannot change the relay.s priority: Permission denied' "$NB/asked.err")
[ "$n" = 1 ] || fail "unprivileged, --nice -5: expected one warning line, stderr: $(cat "$NB/asked.err")"
got=$(nice_of "$NB_PID" | sort -u | tr '\n' ' ')
[ "$got" = "$BASE " ] || fail "unprivileged, --nice -5: threads at niceness '$got', expected $BASE"
curl -q -sS -f -x "http://127.0.0.1:$NB_PORT" --cacert "$NB/.mitmrec/mitmrec-ca-cert.pem" \
    -o "$WORK/nb.txt" "$T/small.txt" || fail "unprivileged, --nice -5: download through mitmrec failed"
same_file "$WORK/nb.txt" "$WWW/small.txt" "unprivileged download"
stop_unprivileged
log "unprivileged: default silent at $BASE, --nice -5 warns once and serves"

spawn_available || skip "spawn mode unavailable here: $SPAWN_WHY"

# The command: one HTTPS download through the interception (so that handshakes ran on
# mitmrec's workers), then the niceness of each of mitmrec's threads and its own.
cat >"$WORK/probe.sh" <<SH
#!/bin/bash
out=\$1
curl -q -sS -f --cacert "\$SSL_CERT_FILE" -o "\$out/small.txt" $T/small.txt || exit 11
for t in /proc/\$PPID/task/*; do sed 's/^.*) //' "\$t/stat" | awk '{print \$17}'; done >"\$out/relay"
ls /proc/\$PPID/task | wc -l >"\$out/threads"
sed 's/^.*) //' /proc/self/stat | awk '{print \$17}' >"\$out/command"
SH
chmod 755 "$WORK/probe.sh"

# spawn_case NAME EXPECT-RELAY EXPECT-COMMAND [MITMREC ARGS...]: started 3 steps down.
spawn_case() {
    local name=$1 relay=$2 cmd=$3 got
    shift 3
    mkdir -p "$WORK/$name"
    _MITM_RUNS=$((_MITM_RUNS + 1))
    MITM_LOG=$WORK/mitmrec.$_MITM_RUNS.log
    # MITMREC_OFFLOAD=1: every handshake on libuv's workers, so that there are some.
    MITMREC_OFFLOAD=1 timeout -k 5 60 nice -n 3 "$MITMREC" -o "$WORK/$name.pcapng" --cacert "$TEST_CA" -q "$@" \
        -- "$WORK/probe.sh" "$WORK/$name" >"$MITM_LOG.out" 2>"$MITM_LOG" ||
        fail "$name: mitmrec exited with $?: $(cat "$MITM_LOG")"
    same_file "$WORK/$name/small.txt" "$WWW/small.txt" "$name: download"
    got=$(sort -u "$WORK/$name/relay" | tr '\n' ' ')
    [ "$got" = "$relay " ] ||
        fail "$name: mitmrec's $(cat "$WORK/$name/threads") threads at niceness '$got', expected $relay"
    got=$(cat "$WORK/$name/command")
    [ "$got" = "$cmd" ] || fail "$name: the command ran at niceness $got, expected $cmd"
    log "$name: relay ($(cat "$WORK/$name/threads") threads) at $relay, command at $cmd"
}

# 1 and 2.
spawn_case default "$(clamp $((START - 5)))" "$START"
[ "$(cat "$WORK/default/threads")" -ge 2 ] ||
    fail "default: mitmrec had $(cat "$WORK/default/threads") thread(s) after a TLS flow, expected its workers too"
n=$(tshark -n -r "$WORK/default.pcapng" "${TSHARK_DECODE_AS[@]}" -Y 'http.request.uri == "/small.txt"' 2>/dev/null | wc -l)
[ "$n" = 1 ] || fail "default: tshark decrypts $n requests for /small.txt, expected 1"
spawn_case zero "$START" "$START" --nice 0
spawn_case lower "$(clamp $((START + 4)))" "$START" --nice 4
spawn_case clamped -20 "$START" --nice -30

# 5. mitmreplay, from the first recording, with nginx gone.
if [ -x "$MITMREPLAY" ]; then
    stop_origin
    mkdir -p "$WORK/replay"
    rc=0
    MITMREC_OFFLOAD=1 timeout -k 5 60 nice -n 3 "$MITMREPLAY" -q "$WORK/default.pcapng" -- "$WORK/probe.sh" \
        "$WORK/replay" 2>"$WORK/replay.err" || rc=$?
    [ $rc = 0 ] || fail "mitmreplay exited with $rc: $(cat "$WORK/replay.err")"
    same_file "$WORK/replay/small.txt" "$WWW/small.txt" "replay: download"
    got=$(sort -u "$WORK/replay/relay" | tr '\n' ' ')
    want=$(clamp $((START - 5)))
    [ "$got" = "$want " ] || fail "replay: mitmreplay's threads at niceness '$got', expected $want"
    [ "$(cat "$WORK/replay/command")" = "$START" ] ||
        fail "replay: the command ran at niceness $(cat "$WORK/replay/command"), expected $START"
    log "mitmreplay: relay at $want, command at $START, the same bytes"
fi
log PASS
