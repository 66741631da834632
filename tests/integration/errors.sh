#!/bin/bash
# SPDX-License-Identifier: MIT
# Failures: a client speaking neither HTTP nor TLS; raw bytes inside a CONNECT tunnel; an origin
# whose certificate the test CA did not sign (TLS alert to the client, "_error" in the HAR, a
# pcapng comment, while a parallel good download goes on); the origin's good chain under a name
# it does not cover, after the same chain passed for another name (refused); the same with
# --insecure; a plain
# HTTP request to a port where nothing listens (502); a request in origin form (400); a request
# head nginx refuses, with a 400, before it has all arrived.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark node "$PY"
start_origin
start_mitmrec -o "$WORK/out.pcapng" --cacert "$TEST_CA"
T=https://127.0.0.1:$ORIGIN_TLSPORT
BAD=https://127.0.0.1:$ORIGIN_BADPORT
MARK='MITMREC-RAW-7f3a'

# 1. Garbage to the proxy port: mitmrec must close the connection (an error answer first is
#    fine) within 10 s, and keep serving.
"$PY" - "$MITM_PORT" >"$WORK/garbage.out" 2>&1 <<'EOF' || fail "garbage client: $(cat "$WORK/garbage.out")"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"\x00\x01\x02 this is neither HTTP nor TLS \xff\xfe\r\n\r\n")
got = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except ConnectionResetError:
    pass
except socket.timeout:
    sys.exit("the proxy did not close the connection within 10 s (got %r)" % got[:100])
print("closed after %d bytes: %r" % (len(got), got[:60]))
EOF

# 2. A CONNECT tunnel to the plain HTTP port carrying bytes that are neither TLS nor HTTP: they
#    are relayed (nginx answers 400) and recorded as TCP payload.
"$PY" - "$MITM_PORT" "$ORIGIN_PORT" "$MARK" >"$WORK/raw.out" 2>&1 <<'EOF' || fail "raw tunnel: $(cat "$WORK/raw.out")"
import socket, sys
proxy, port, mark = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n" % (port.encode(), port.encode()))
head = b""
while b"\r\n\r\n" not in head:
    b = s.recv(1)
    if not b:
        sys.exit("proxy closed the CONNECT: %r" % head)
    head += b
if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
    sys.exit("CONNECT answer: %r" % head)
s.sendall(b"\x00\x07" + mark + b"\xff\xfe raw bytes\r\n\r\n")
got = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except socket.timeout:
    sys.exit("no close within 10 s, got %r" % got[:200])
if b" 400 " not in got.split(b"\r\n")[0]:
    sys.exit("expected nginx's 400 through the tunnel, got %r" % got[:200])
print("relayed")
EOF

# 3. Untrusted origin while a good download is in progress.
pcurl --limit-rate 2M -o "$WORK/parallel.bin" -w '%{http_code}' "$T/5m.bin" >"$WORK/parallel.code" 2>"$WORK/parallel.err" &
PAR=$!
sleep 0.5
pcurl -o "$WORK/bad.out" "$BAD/small.txt" 2>"$WORK/bad.err"
rc=$?
# 35: CURLE_SSL_CONNECT_ERROR (the handshake ended by an alert). Not 60 or 51: curl must not
# have seen a certificate it could judge, mitmrec refuses before.
[ $rc -eq 35 ] || fail "curl $BAD/small.txt through the proxy: exit $rc, expected 35 (TLS alert): $(cat "$WORK/bad.err")"
grep -qi 'alert' "$WORK/bad.err" || fail "curl's error does not mention a TLS alert: $(cat "$WORK/bad.err")"
wait $PAR || fail "the parallel good download failed: $(cat "$WORK/parallel.err")"
[ "$(cat "$WORK/parallel.code")" = 200 ] || fail "parallel download status $(cat "$WORK/parallel.code")"
same_file "$WORK/parallel.bin" "$WWW/5m.bin" "parallel download during the failure"

# 3b. The origin's own chain under a name it is not valid for, after the same chain was
#     verified for 127.0.0.1 (mitmrec keeps successful verifications): still refused. Then
#     under "localhost", which its certificate names, twice: accepted.
pcurl -o /dev/null --connect-to "wrong.invalid:$ORIGIN_TLSPORT:127.0.0.1:$ORIGIN_TLSPORT" \
    "https://wrong.invalid:$ORIGIN_TLSPORT/small.txt" 2>"$WORK/wrongname.err"
rc=$?
[ $rc -eq 35 ] || fail "the origin under a name its certificate lacks: curl exit $rc, expected 35: $(cat "$WORK/wrongname.err")"
for i in 1 2; do
    pcurl -o "$WORK/byname.out" --connect-to "localhost:$ORIGIN_TLSPORT:127.0.0.1:$ORIGIN_TLSPORT" \
        "https://localhost:$ORIGIN_TLSPORT/small.txt" 2>"$WORK/byname.err" ||
        fail "the origin as localhost (try $i): $(cat "$WORK/byname.err")"
    same_file "$WORK/byname.out" "$WWW/small.txt" "the origin as localhost (try $i)"
done

# 4. A plain HTTP request to a port where nothing listens: 502 from the proxy.
closed=$(free_port)
code=$(pcurl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$closed/nothing") 
[ "$code" = 502 ] || fail "plain HTTP to a closed port: status $code, expected 502"

stop_mitmrec
tshark_ok "$MITM_PCAP"
har_validate "$MITM_HAR"

# The good request is recorded as usual (the failed ones carry "_error", so no --strict).
check_recording "$MITM_PCAP" "$MITM_HAR" --contains "GET /5m.bin 200" /5m.bin="$WWW/5m.bin"

# Errors in the HAR: entry._error or response._error (Chrome's place).
errors=$(har_query "$MITM_HAR" '[[e["request"]["url"], e.get("_error") or e["response"].get("_error")] for e in h["log"]["entries"] if e.get("_error") or e["response"].get("_error")]')
log "HAR errors: $errors"
case $errors in *"127.0.0.1:$ORIGIN_BADPORT"*) ;; *) fail "no HAR entry with _error for the untrusted origin 127.0.0.1:$ORIGIN_BADPORT: $errors" ;; esac
case $errors in *"127.0.0.1:$closed"*) ;; *) fail "no HAR entry with _error for the refused plain HTTP request to port $closed: $errors" ;; esac

# The verification failure is in a pcapng comment.
comments=$(tshark_fields "$MITM_PCAP" frame.comment frame.comment)
printf '%s\n' "$comments" | grep -Eqi 'verif|certificate' ||
    fail "no pcapng comment mentions the certificate verification failure; comments: $comments"

# The garbage client: a HAR entry with _error, or at least a pcapng comment; which one the
# recording used is logged. It is told apart from the other failures by its ports: it talked
# to the proxy's port, not to an origin port. (mitmrec 0.1.0 writes a pcapng comment only,
# "mitmrec error: client spoke neither HTTP nor TLS", on packets to the proxy's port, and no
# HAR entry.)
others="127.0.0.1:$ORIGIN_PORT 127.0.0.1:$ORIGIN_BADPORT 127.0.0.1:$closed"
garbage_har=$(har_query "$MITM_HAR" '[e.get("_error") or e["response"].get("_error") for e in h["log"]["entries"] if (e.get("_error") or e["response"].get("_error")) and not any(o in e["request"]["url"] for o in "'"$others"'".split())]')
garbage_pcap=$(tshark_fields "$MITM_PCAP" "frame.comment && tcp.port == $MITM_PORT" frame.comment)
if [ "$garbage_har" != "[]" ]; then
    log "garbage client: recorded as a HAR entry with _error: $garbage_har"
elif [ -n "$garbage_pcap" ]; then
    log "garbage client: recorded as a pcapng comment only (no HAR entry): $garbage_pcap"
else
    fail "the garbage client is neither in a HAR _error nor in a pcapng comment on port $MITM_PORT; HAR errors: $errors; comments: $comments"
fi

# The raw tunnel bytes are TCP payload between the client and the origin's port.
n=$(tshark_fields "$MITM_PCAP" "tcp.payload contains \"$MARK\" && tcp.port == $ORIGIN_PORT" frame.number | wc -l)
[ "$n" -ge 1 ] || fail "the raw tunnel bytes ($MARK) are not in any TCP payload to port $ORIGIN_PORT"
n=$(tshark_fields "$MITM_PCAP" "tcp.srcport == $ORIGIN_PORT && tcp.payload contains \"400 Bad Request\"" frame.number | wc -l)
[ "$n" -ge 1 ] || fail "nginx's 400 answer in the raw tunnel is not in the pcapng"

# 5. --insecure: the same untrusted origin works.
start_mitmrec -o "$WORK/insecure.pcapng" --insecure
code=$(pcurl -o "$WORK/insecure.txt" -w '%{http_code}' "$BAD/small.txt" 2>"$WORK/insecure.err") ||
    fail "with --insecure, curl $BAD/small.txt failed: $(cat "$WORK/insecure.err")"
[ "$code" = 200 ] || fail "with --insecure: status $code"
same_file "$WORK/insecure.txt" "$WWW/small.txt" "--insecure download"
stop_mitmrec
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /small.txt 200" /small.txt="$WWW/small.txt"

# 6. A request for the origin, not for a proxy ("GET /x", as if the proxy were the server):
#    400 saying what a proxy wants; the flow recorded once (the request once in the pcapng, a
#    HAR entry with status 400) and one warning for it. (It was recorded a second time, as a
#    request cut short, when the client closed.)
start_mitmrec -o "$WORK/origin-form.pcapng"
code=$(curl -q -sS -o "$WORK/origin-form.txt" -w '%{http_code}' "http://127.0.0.1:$MITM_PORT/index.html") ||
    fail "curl to the proxy port failed"
[ "$code" = 400 ] && [ "$(cat "$WORK/origin-form.txt")" = "mitmrec: this is a proxy; send CONNECT or absolute-form" ] ||
    fail "origin-form request to the proxy: $code $(cat "$WORK/origin-form.txt")"
sleep 0.3
stop_mitmrec
n=$(tshark_fields "$MITM_PCAP" 'http.request' frame.number | wc -l)
[ "$n" = 1 ] || fail "origin-form request: $n requests in the pcapng, expected 1"
n=$(grep -c '^mitmrec: warning: flow 1: ' "$MITM_LOG")
[ "$n" = 1 ] || fail "origin-form request: $n warnings for flow 1: $(cat "$MITM_LOG")"
[ "$(har_query "$MITM_HAR" '[e["response"]["status"] for e in h["log"]["entries"]]')" = "[400]" ] ||
    fail "origin-form request: HAR entries $(har_query "$MITM_HAR" '[(e["request"]["url"], e["response"]["status"]) for e in h["log"]["entries"]]')"
tshark_ok "$MITM_PCAP"

# 7. A request head far too big for nginx (a 300 KB Cookie; nginx allows 8 KiB a line): nginx
#    answers 400 and closes before the head is all in, and curl stops sending. The HAR has the
#    request as far as it went (method, URL) with the 400 and an "_error", one warning says so,
#    and mitmrec -r gives the same entries from the pcapng. (It was left out of the HAR.)
start_mitmrec -o "$WORK/bighead.pcapng" --cacert "$TEST_CA"
printf 'Cookie: c=%s\r\n' "$(head -c 300000 /dev/zero | tr '\0' a)" >"$WORK/bighead.h"
code=$(pcurl -H @"$WORK/bighead.h" -o /dev/null -w '%{http_code}' "$T/small.txt" 2>"$WORK/bighead.err")
[ "$code" = 400 ] || fail "a 300 KB header: curl got $code ($(cat "$WORK/bighead.err"))"
stop_mitmrec
got=$(har_query "$MITM_HAR" '[(e["request"]["method"], e["request"]["url"].split("/", 3)[3], e["response"]["status"], "_error" in e) for e in h["log"]["entries"]]')
[ "$got" = '[["GET", "small.txt", 400, true]]' ] || fail "a 300 KB header: HAR entries $got"
n=$(grep -c '^mitmrec: warning: flow 1: HTTP request head incomplete: ' "$MITM_LOG")
[ "$n" = 1 ] || fail "a 300 KB header: $n warnings: $(cat "$MITM_LOG")"
har_validate "$MITM_HAR"
check_same_entries "$MITM_PCAP" "$MITM_HAR"
log "a head too big for nginx: the 400 recorded with the request's line and its error"

log "ok"
exit 0
