#!/bin/bash
# SPDX-License-Identifier: MIT
# Crash safety (issue 7, item 2). mitmrec flushes its files at least once a second, so after
# a SIGKILL:
#   - tshark reads the pcapng up to its last complete block (a cut final block is the only
#     complaint allowed; every complete block is read: a structural walk of the file counts
#     the complete packet blocks and tshark must read exactly that many frames);
#   - the pcapng holds all data older than one second before the kill: in a 100 MiB HTTPS
#     download (curl --limit-rate 20M), the body bytes tshark decrypts from the pcapng are a
#     prefix of the file at least as long as what curl had received 1 s before the kill; with
#     many small requests (HTTPS keep-alive, HTTPS one per connection, plain HTTP, each with a
#     unique query, as fast as they go; then a trickle of one request every 0.1 s, far less
#     than the output buffer, so that only the once-a-second flush can have written it), every
#     request that completed more than 1 s before the kill is decrypted by tshark with its
#     response; a copy cut 7 bytes short (a kill in the middle of a write) reads the same way
#     up to its cut block, and mitmrec -r still writes a valid HAR from it;
#   - `mitmrec -r` rebuilds a HAR holding every request that completed in that window;
#   - the HAR left by the kill is readable as is (mitmrec rewrites its closing bytes after
#     every entry) or repaired by `mitmrec --repair-har`: either way it parses, validates and
#     holds the requests of that window.
# The same under SIGTERM loses nothing at all: every byte curl received and every request
# that completed is in the pcapng (tshark reads it without a complaint), in the HAR (complete
# as is) and in the HAR rebuilt by mitmrec -r; exit status 0 and the summary line.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark node
start_origin
T=https://127.0.0.1:$ORIGIN_TLSPORT
H=http://127.0.0.1:$ORIGIN_PORT
head -c $((100 << 20)) /dev/urandom >"$WWW/100m.bin" || fail "cannot make the 100 MiB file"

# The monitor: samples the size of curl's output every 20 ms; once it has MIN bytes it waits
# 1.5 s more, sends SIGNAL to mitmrec and prints "kill_time bytes_at_kill bytes_1s_before".
cat >"$WORK/monitor.py" <<'EOF'
import os, signal, sys, time
pid, path, sig, minbytes = int(sys.argv[1]), sys.argv[2], getattr(signal, "SIG" + sys.argv[3]), int(sys.argv[4])
samples, deadline, kill_at = [], time.time() + 60, None
while time.time() < deadline:
    now = time.time()
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    samples.append((now, size))
    if kill_at is None and size >= minbytes:
        kill_at = now + 1.5
    if kill_at is not None and now >= kill_at:
        break
    time.sleep(0.02)
else:
    sys.exit("download did not reach %d bytes within 60 s" % minbytes)
k = time.time()
os.kill(pid, sig)
before = max([s for t, s in samples if t <= k - 1.0] or [0])
print("%.3f %d %d" % (k, samples[-1][1], before))
EOF

# The small-request client: threads (ka: HTTPS keep-alive through one CONNECT tunnel, nc:
# HTTPS with a new tunnel per request, pl: plain HTTP) request /small.txt?q=THREAD-N, DELAY
# seconds apart, until RUN_SECONDS have passed, when the main thread sends SIGNAL to mitmrec. Each completed
# request (whole body read and checked) is logged as "time uri" to OUT; the kill time goes
# to OUT.kill.
cat >"$WORK/smalls.py" <<'EOF'
import http.client, os, signal, ssl, sys, threading, time
proxy, tls, plain, ca, pid, sig, secs, out = sys.argv[1:9]
proxy, pid, secs = int(proxy), int(pid), float(secs)
sig = getattr(signal, "SIG" + sig)
want = open(sys.argv[9], "rb").read()
delay = float(sys.argv[10])
which = sys.argv[11].split(",")
stop = threading.Event()
lock = threading.Lock()
log = open(out, "w")
ctx = ssl.create_default_context(cafile=ca)

def done(uri):
    with lock:
        log.write("%.6f %s\n" % (time.time(), uri))
        log.flush()

def get(conn, uri):
    conn.request("GET", uri)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or body != want:
        raise RuntimeError("bad answer %d for %s" % (r.status, uri))

def keepalive():
    n = 0
    try:
        c = http.client.HTTPSConnection("127.0.0.1", proxy, context=ctx, timeout=10)
        c.set_tunnel("127.0.0.1", int(tls))
        while not stop.is_set():
            uri = "/small.txt?q=ka-%d" % n
            get(c, uri)
            done(uri)
            n += 1
            time.sleep(delay)
    except Exception:
        pass

def newconn():
    n = 0
    while not stop.is_set():
        try:
            c = http.client.HTTPSConnection("127.0.0.1", proxy, context=ctx, timeout=10)
            c.set_tunnel("127.0.0.1", int(tls))
            uri = "/small.txt?q=nc-%d" % n
            get(c, uri)
            c.close()
            done(uri)
            n += 1
            time.sleep(delay)
        except Exception:
            break

def plainhttp():
    n = 0
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection("127.0.0.1", proxy, timeout=10)
            uri = "/small.txt?q=pl-%d" % n
            c.request("GET", "http://127.0.0.1:%s%s" % (plain, uri))
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status != 200 or body != want:
                break
            done("http:" + uri)
            n += 1
            time.sleep(delay)
        except Exception:
            break

funcs = {"ka": keepalive, "nc": newconn, "pl": plainhttp}
ts = [threading.Thread(target=funcs[w]) for w in which]
for t in ts:
    t.start()
time.sleep(secs)
k = time.time()
os.kill(pid, sig)
open(out + ".kill", "w").write("%.6f\n" % k)
time.sleep(0.5 if sig == signal.SIGKILL else 4)
stop.set()
for t in ts:
    t.join(15)
EOF

# check_pcapng_prefix WHAT FILE: structural walk and tshark agree; a cut final block is the
# only complaint allowed. Sets BLOCKS.
check_pcapng_prefix() {
    local frames err
    BLOCKS=$(pcapng_blocks "$2")
    frames=$(tshark -n -r "$2" -T fields -e frame.number 2>"$WORK/tshark.err" | wc -l)
    err=$(grep -v '^Running as user "root"' "$WORK/tshark.err" | grep -v '^$' |
        grep -v 'cut short in the middle of a packet\|appears to have been cut short')
    log "$1: $BLOCKS; tshark read $frames frames"
    [ "$(kv error "$BLOCKS")" = - ] || problem "$1: structural error in $2: $BLOCKS"
    [ -z "$err" ] || problem "$1: tshark complains about more than a cut final block: $err"
    [ "$frames" = "$(kv packets "$BLOCKS")" ] ||
        problem "$1: tshark read $frames frames, the file has $(kv packets "$BLOCKS") complete packet blocks"
}

# body_in_pcapng PCAP: the number of bytes of 100m.bin's body that tshark decrypts from the
# pcapng, after checking that they are a prefix of the file (else -1).
body_in_pcapng() {
    local s
    s=$(tshark_fields "$1" 'http.request.uri contains "100m.bin"' tcp.stream 2>/dev/null | head -n 1)
    [ -n "$s" ] || { echo 0; return; }
    tls_plain "$1" "$s" "$WORK/big.plain"
    "$PY" - "$WORK/big.plain.s2c" "$WWW/100m.bin" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
i = d.find(b"\r\n\r\n")
if i < 0:
    print(0)
    sys.exit()
body = d[i + 4:]
with open(sys.argv[2], "rb") as f:
    want = f.read(len(body))
print(len(body) if body == want else -1)
EOF
}

# ---- 1. SIGKILL and SIGTERM during a 100 MiB download ----------------------------------
big_run() {
    local sig=$1 name=big-$1 mon curl_pid got inpc
    start_mitmrec -o "$WORK/$name.pcapng" --cacert "$TEST_CA"
    pcurl -f -o "$WORK/$name.first" "$T/small.txt" || problem "$name: first GET failed"
    pcurl --limit-rate 20M -o "$WORK/$name.bin" "$T/100m.bin" 2>/dev/null &
    curl_pid=$!
    mon=$("$PY" "$WORK/monitor.py" "$MITM_PID" "$WORK/$name.bin" "$sig" $((20 << 20))) ||
        fail "$name: $mon"
    read -r K AT_KILL BEFORE <<<"$mon"
    wait_pid "$curl_pid" 20 || { kill "$curl_pid"; fail "$name: curl still runs 20 s after SIG$sig"; }
    local curl_rc=$WAIT_RC
    got=$(stat -c %s "$WORK/$name.bin")
    wait_pid "$MITM_PID" 30 || fail "$name: mitmrec did not end within 30 s of SIG$sig"
    MITM_RC=$WAIT_RC
    log "$name: SIG$sig at $K; curl had $BEFORE bytes 1 s before, $AT_KILL at the signal, $got in the end (curl exit $curl_rc); mitmrec exit $MITM_RC"
    if [ "$sig" = KILL ]; then
        check_pcapng_prefix "$name" "$MITM_PCAP"
        inpc=$(body_in_pcapng "$MITM_PCAP")
        log "$name: the pcapng holds $inpc body bytes (need >= $BEFORE: curl's bytes 1 s before the kill)"
        [ "$inpc" -ge 0 ] || problem "$name: the body tshark decrypts is not a prefix of 100m.bin"
        [ "$inpc" -ge "$BEFORE" ] ||
            problem "$name: the pcapng holds $inpc body bytes, curl had $BEFORE more than 1 s before SIGKILL: data older than 1 s was not flushed"
    else
        [ "$MITM_RC" = 0 ] || problem "$name: mitmrec exited $MITM_RC after SIGTERM, expected 0"
        grep -Eq 'flows?,' "$MITM_LOG" || problem "$name: no summary line after SIGTERM"
        tshark_ok "$MITM_PCAP"
        inpc=$(body_in_pcapng "$MITM_PCAP")
        log "$name: the pcapng holds $inpc body bytes (curl got $got)"
        [ "$inpc" -ge "$got" ] || problem "$name: after SIGTERM the pcapng holds $inpc body bytes, curl received $got: lost data"
        har_validate "$MITM_HAR"
    fi
}
big_run KILL
big_run TERM

# ---- 2. SIGKILL and SIGTERM during many small requests ---------------------------------
# small_run SIG NAME DELAY THREADS
small_run() {
    local sig=$1 name=$2 secs=3 k window
    start_mitmrec -o "$WORK/$name.pcapng" --cacert "$TEST_CA"
    "$PY" "$WORK/smalls.py" "$MITM_PORT" "$ORIGIN_TLSPORT" "$ORIGIN_PORT" "$MITM_CA" "$MITM_PID" \
        "$sig" $secs "$WORK/$name.done" "$WWW/small.txt" "$3" "$4" 2>"$WORK/$name.pyerr" ||
        fail "$name: client failed: $(cat "$WORK/$name.pyerr")"
    wait_pid "$MITM_PID" 30 || fail "$name: mitmrec did not end within 30 s of SIG$sig"
    MITM_RC=$WAIT_RC
    k=$(cat "$WORK/$name.done.kill")
    # The window: requests completed more than 1 s before SIGKILL; all of them for SIGTERM.
    if [ "$sig" = KILL ]; then window=$(awk -v k="$k" 'BEGIN { printf "%.6f", k - 1.0 }'); else window=99999999999; fi
    awk -v w="$window" '$1 <= w {print $2}' "$WORK/$name.done" | sort >"$WORK/$name.want"
    log "$name: SIG$sig after ${secs}s; $(wc -l <"$WORK/$name.done") requests completed, $(wc -l <"$WORK/$name.want") in the window; mitmrec exit $MITM_RC"
    [ "$(wc -l <"$WORK/$name.want")" -ge 15 ] || fail "$name: too few requests completed ($(wc -l <"$WORK/$name.want")) for the test to mean anything"

    if [ "$sig" = KILL ]; then
        check_pcapng_prefix "$name" "$MITM_PCAP"
        # A kill in the middle of a write leaves a cut final block (rarely caught in the act):
        # the same file cut 7 bytes short must read the same way, and mitmrec -r must cope.
        local cut=$WORK/$name.cut.pcapng
        head -c $(($(stat -c %s "$MITM_PCAP") - 7)) "$MITM_PCAP" >"$cut"
        check_pcapng_prefix "$name (cut 7 bytes short)" "$cut"
        [ "$(kv tail "$BLOCKS")" -gt 0 ] || problem "$name: the cut copy has no cut block?"
        "$MITMREC" -r "$cut" --har "$WORK/$name.cut.har" >/dev/null 2>"$WORK/$name.cut.err"
        rc=$?
        log "$name (cut copy): mitmrec -r exit $rc: $(tr '\n' ' ' <"$WORK/$name.cut.err")"
        if "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/$name.cut.har" 2>/dev/null; then
            har_validate "$WORK/$name.cut.har"
        else
            problem "$name: mitmrec -r wrote no valid HAR from a pcapng with a cut final block (exit $rc): $(cat "$WORK/$name.cut.err")"
        fi
        grep -qi 'cut\|truncat\|incomplete\|short\|end of file\|partial' "$WORK/$name.cut.err" ||
            log "note: mitmrec -r says nothing about the cut final block: $(cat "$WORK/$name.cut.err")"
    else
        [ "$MITM_RC" = 0 ] || problem "$name: mitmrec exited $MITM_RC after SIGTERM, expected 0"
        grep -Eq 'flows?,' "$MITM_LOG" || problem "$name: no summary line after SIGTERM"
        tshark_ok "$MITM_PCAP"
    fi
    # tshark: every request of the window, with its 200 response. Plain ones are absolute-form.
    tshark -n -r "$MITM_PCAP" "${TSHARK_DECODE_AS[@]}" -Y 'http.response.code == 200' -T fields \
        -e http.response_for.uri 2>/dev/null | sed -e "s|^http://127\.0\.0\.1:$ORIGIN_PORT|http:|" \
        -e "s|^https://127\.0\.0\.1:$ORIGIN_TLSPORT||" | sort -u >"$WORK/$name.tshark"
    missing=$(comm -23 "$WORK/$name.want" "$WORK/$name.tshark")
    [ -z "$missing" ] || problem "$name: $(printf '%s\n' "$missing" | wc -l) request(s) of the window are not decrypted by tshark with their response: $(printf '%s\n' "$missing" | head -n 5 | tr '\n' ' ')"
    log "$name: tshark decrypts $(wc -l <"$WORK/$name.tshark") answered requests"

    # mitmrec -r rebuilds them.
    "$MITMREC" -r "$MITM_PCAP" --har "$WORK/$name.rebuilt.har" >"$WORK/$name.r.out" 2>"$WORK/$name.r.err"
    rc=$?
    log "$name: mitmrec -r exit $rc: $(tr '\n' ' ' <"$WORK/$name.r.err")"
    if [ -s "$WORK/$name.rebuilt.har" ] && "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/$name.rebuilt.har" 2>/dev/null; then
        har_validate "$WORK/$name.rebuilt.har"
        har_uris "$WORK/$name.rebuilt.har" >"$WORK/$name.rebuilt"
        missing=$(comm -23 "$WORK/$name.want" "$WORK/$name.rebuilt")
        [ -z "$missing" ] || problem "$name: the HAR rebuilt by mitmrec -r lacks $(printf '%s\n' "$missing" | wc -l) request(s) of the window: $(printf '%s\n' "$missing" | head -n 5 | tr '\n' ' ')"
        log "$name: mitmrec -r rebuilt $(wc -l <"$WORK/$name.rebuilt") entries"
    else
        problem "$name: mitmrec -r wrote no readable HAR (exit $rc): $(cat "$WORK/$name.r.err")"
    fi
    [ "$sig" = KILL ] || [ "$rc" = 0 ] || problem "$name: mitmrec -r on the SIGTERM recording exited $rc"

    # The HAR left behind: readable as is, or repaired.
    local har=$MITM_HAR how="as is"
    if ! "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$har" 2>/dev/null; then
        [ "$sig" = KILL ] || problem "$name: the HAR is not valid JSON after SIGTERM"
        cp "$har" "$WORK/$name.repaired.har"
        har=$WORK/$name.repaired.har
        "$MITMREC" --repair-har "$har" >"$WORK/$name.rep.out" 2>&1 ||
            problem "$name: mitmrec --repair-har failed: $(cat "$WORK/$name.rep.out")"
        how="after mitmrec --repair-har ($(cat "$WORK/$name.rep.out"))"
    fi
    if "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$har" 2>/dev/null; then
        har_validate "$har"
        har_uris "$har" >"$WORK/$name.live"
        missing=$(comm -23 "$WORK/$name.want" "$WORK/$name.live")
        [ -z "$missing" ] || problem "$name: the HAR mitmrec wrote ($how) lacks $(printf '%s\n' "$missing" | wc -l) request(s) of the window: $(printf '%s\n' "$missing" | head -n 5 | tr '\n' ' ')"
        log "$name: the HAR left behind is readable $how: $(wc -l <"$WORK/$name.live") entries"
    else
        problem "$name: the HAR left behind does not parse, even $how"
    fi
}

# har_uris HAR: "URI" (origin-form path?query; "http:" before plain-HTTP ones) of each 200.
har_uris() {
    "$PY" - "$1" "$ORIGIN_PORT" <<'EOF' | sort -u
import json, sys, urllib.parse
h = json.load(open(sys.argv[1]))
for e in h["log"]["entries"]:
    if e["response"]["status"] != 200:
        continue
    u = urllib.parse.urlsplit(e["request"]["url"])
    p = u.path + ("?" + u.query if u.query else "")
    print(("http:" if u.scheme == "http" else "") + p)
EOF
}

# Busy: requests as fast as they go (the output buffer fills and drains by itself).
small_run KILL small-KILL 0 ka,nc,pl
small_run TERM small-TERM 0 ka,nc,pl
# A trickle, one request every 0.1 s: far less than the output buffer in a second, so only
# the once-a-second flush puts it on disk before the kill.
small_run KILL trickle-KILL 0.1 ka,pl

finish_problems
log "ok"
exit 0
