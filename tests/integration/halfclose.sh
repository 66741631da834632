#!/bin/bash
# SPDX-License-Identifier: MIT
# A half-closed client whose FIN reached mitmrec before mitmrec sent the server's FIN on: the
# recording must show the client's FIN first. The order is made, not hoped for: mitmrec relays
# the answer, is stopped (SIGSTOP), the server closes, then the client shuts down its side,
# and mitmrec goes on (SIGCONT) with both FINs waiting, the server's ahead in the poll. Ten
# rounds, plain HTTP through the proxy.
# Then a half-closed client that starts reading only 1 s after it sent its request (its answer,
# 32 MiB, is more than the sockets between hold, so part of it is queued in mitmrec when the
# origin's FIN comes): it gets all of it, byte for byte, with plain
# HTTP and inside a CONNECT + TLS tunnel, and the recording ends with a FIN from each side.
# Then a plain-HTTP client whose FIN cuts its second request line: the origin gets the line.
# Last, a TLS client whose request and close_notify go in one write: the request's record is
# in the pcapng, and the answer reaches the client; and one whose request and a record that
# does not decrypt go in one write: both records are in the pcapng.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need tshark "$PY"
start_mitmrec -o "$WORK/out.pcapng"
client_failed() { kill -CONT "$MITM_PID" 2>/dev/null; fail "client: $(cat "$WORK/client.err")"; }
"$PY" - "$MITM_PORT" "$MITM_PID" 10 >"$WORK/ports" 2>"$WORK/client.err" <<'EOF' || client_failed
import os, signal, socket, sys, threading, time
proxy, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
sport = ls.getsockname()[1]
stopped, closed = threading.Event(), threading.Event()


def state():
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def server():
    for _ in range(n):
        c, _ = ls.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        stopped.wait(10)
        c.close()
        closed.set()


threading.Thread(target=server, daemon=True).start()
ports = []
for _ in range(n):
    stopped.clear()
    closed.clear()
    s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
    ports.append(s.getsockname()[1])
    s.sendall(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % sport)
    got = b""
    while not got.endswith(b"hello"):
        b = s.recv(4096)
        if not b:
            sys.exit("the answer did not come through: %r" % got)
        got += b
    os.kill(pid, signal.SIGSTOP)
    for _ in range(200):
        if state() == "T":
            break
        time.sleep(0.005)
    stopped.set()
    closed.wait(10)
    time.sleep(0.02)
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.02)
    os.kill(pid, signal.SIGCONT)
    while s.recv(4096):
        pass
    s.close()
print(sport, " ".join(map(str, ports)))
EOF
stop_mitmrec
read -r sport ports <"$WORK/ports"

# CLIENTPORT EVENTS per flow, EVENTS in frame order: c:F / c:R from the client, s:F / s:R from
# the server.
tshark -n -r "$MITM_PCAP" -Y 'tcp.flags.fin == 1 || tcp.flags.reset == 1' -T fields \
    -e tcp.srcport -e tcp.dstport -e tcp.flags.reset 2>/dev/null |
    awk -v sp="$sport" '{ if ($1 == sp) { p = $2; s = "s" } else { p = $1; s = "c" }
                          e[p] = e[p] " " s ":" ($3 == "1" || $3 == "True" ? "R" : "F") }
                        END { for (p in e) print p e[p] }' >"$WORK/endings"
for p in $ports; do
    got=$(awk -v p="$p" '$1 == p { $1 = ""; sub(/^ /, ""); print }' "$WORK/endings")
    [ "$got" = "c:F s:F" ] ||
        problem "client port $p is recorded as '${got:-no FIN, no RST}', expected 'c:F s:F'"
done
log "$(awk '{ $1 = ""; print }' "$WORK/endings" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"

# The late reader, against an origin of its own (nginx stops sending once it sees the
# client's FIN, so it cannot show what mitmrec keeps).
start_mitmrec -o "$WORK/late.pcapng" --cacert "$top_srcdir/fixtures/tls/test-ca.pem"
"$PY" - "$MITM_PORT" "$top_srcdir/fixtures/tls/origin.pem" "$top_srcdir/fixtures/tls/origin-key.pem" \
    "$HOME/.mitmrec/mitmrec-ca-cert.pem" >"$WORK/late.out" 2>&1 <<'EOF' || fail "late reader: $(cat "$WORK/late.out")"
import os, socket, ssl, sys, threading, time
proxy, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
# Answers of several sizes around what the sockets between hold (about 4 MB here): part
# of each is still queued in mitmrec when the origin's FIN comes.
SIZES = (3800000, 4000000, 4200000, 4400000, 5 << 20)
bodies = {n: os.urandom(n) for n in SIZES}


# The origin: answers a request for /N with N bytes and closes, whatever the client did with
# its side (nginx would stop sending once it sees the client's FIN).
def origin(ls, wrap):
    while True:
        c, _ = ls.accept()
        if wrap:
            c = wrap(c)
        head = b""
        while b"\r\n\r\n" not in head:
            b = c.recv(4096)
            if not b:
                break
            head += b
        n = int(head.split(b" ")[1].rsplit(b"/", 1)[1])
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % n + bodies[n])
        c.close()


def listener():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    return ls


plain_ls, tls_ls = listener(), listener()
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)
threading.Thread(target=origin, args=(plain_ls, None), daemon=True).start()
threading.Thread(target=origin, args=(tls_ls, lambda c: sctx.wrap_socket(c, server_side=True)), daemon=True).start()


def request(n):
    return b"GET /%d HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % n


def body_of(d):
    return d[d.find(b"\r\n\r\n") + 4:]


def read_all(s):
    """Everything until the peer's end (for TLS, also one without close_notify)."""
    d = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return d
            d += b
    except ssl.SSLEOFError:
        return d


for n in SIZES:
    # Plain HTTP: absolute form, then the FIN at once; reading starts 1 s later.
    s = socket.create_connection(("127.0.0.1", proxy), timeout=60)
    s.sendall(request(n).replace(b"GET /", b"GET http://127.0.0.1:%d/" % plain_ls.getsockname()[1]))
    s.shutdown(socket.SHUT_WR)
    time.sleep(1)
    d = read_all(s)
    if body_of(d) != bodies[n]:
        sys.exit("plain: got %d bytes of the body, want %d" % (len(body_of(d)), n))
    print("plain: port %d, %d bytes, equal" % (s.getsockname()[1], n))

    # TLS in a CONNECT tunnel: the origin's answer, close_notify and FIN come while the
    # client sleeps.
    tport = tls_ls.getsockname()[1]
    s = socket.create_connection(("127.0.0.1", proxy), timeout=60)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (tport, tport))
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="127.0.0.1")
    t.sendall(request(n))
    time.sleep(1)
    d = read_all(t)
    if body_of(d) != bodies[n]:
        sys.exit("tls: got %d bytes of the body, want %d" % (len(body_of(d)), n))
    print("tls: %d bytes, equal" % n)
EOF
log "$(tr '\n' ';' <"$WORK/late.out")"
stop_mitmrec
tshark_ok "$MITM_PCAP"
for lport in $(awk '/^plain: port/ { sub(/,/, "", $3); print $3 }' "$WORK/late.out"); do
    got=$(tshark -n -r "$MITM_PCAP" -Y "tcp.port == $lport && (tcp.flags.fin == 1 || tcp.flags.reset == 1)" \
        -T fields -e tcp.srcport -e tcp.flags.reset 2>/dev/null |
        awk -v p="$lport" '{ printf "%s%s:%s", (NR > 1 ? " " : ""), ($1 == p ? "c" : "s"), (($2 == "1" || $2 == "True") ? "R" : "F") }')
    [ "$got" = "c:F s:F" ] || problem "the late reader on port $lport is recorded as '${got:-nothing}', expected 'c:F s:F'"
done

# A plain-HTTP client whose FIN cuts its second request line (keep-alive through the proxy):
# the server gets that line, rewritten to origin form, then the FIN. (The rewriting held the
# line back until it ended, and the FIN left it there: the server got "GET ", found by
# fuzz_rewrite.)
start_mitmrec -o "$WORK/cut.pcapng"
"$PY" - "$MITM_PORT" >"$WORK/cut.out" 2>"$WORK/cut.err" <<'EOF' || fail "cut request line: $(cat "$WORK/cut.err")"
import socket, sys, threading
proxy = int(sys.argv[1])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
port = ls.getsockname()[1]
got = []


def origin():
    c, _ = ls.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    while True:
        d = c.recv(4096)
        if not d:
            break
        data += d
    got.append(data)
    c.close()


t = threading.Thread(target=origin)
t.start()
s = socket.create_connection(("127.0.0.1", proxy))
s.settimeout(10)
u = "http://127.0.0.1:%d/a" % port
s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % u).encode())
answer = b""
while not answer.endswith(b"ok"):
    answer += s.recv(4096)
s.sendall(("GET %s2 HTTP/1.1\r\n" % u).encode())
s.shutdown(socket.SHUT_WR)
t.join(10)
want = b"GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /a2 HTTP/1.1\r\n"
if not got or got[0] != want:
    sys.exit("the origin got %r, want %r" % (got[0] if got else None, want))
print("the origin got both request lines, the second cut by the FIN")
EOF
stop_mitmrec
log "$(cat "$WORK/cut.out")"

# A TLS client whose request and close_notify leave in one write (one segment): its own origin
# answers a request it has read whole, whatever the client's TLS side did after it. The
# request's record must be in the pcapng (it used to be told to the recorder after the
# close_notify had ended the leg, and was dropped), so mitmrec -r finds the entry, and the
# client still gets its answer.
start_mitmrec -o "$WORK/cn.pcapng" --cacert "$top_srcdir/fixtures/tls/test-ca.pem"
"$PY" - "$MITM_PORT" "$top_srcdir/fixtures/tls/origin.pem" "$top_srcdir/fixtures/tls/origin-key.pem" \
    "$HOME/.mitmrec/mitmrec-ca-cert.pem" >"$WORK/cn.out" 2>&1 <<'EOF' || fail "close_notify client: $(cat "$WORK/cn.out")"
import socket, ssl, sys, threading
proxy, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
BODY = b"answered after the client's close_notify\n"
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)


def origin():
    for _ in range(4):
        c = sctx.wrap_socket(ls.accept()[0], server_side=True)
        head = b""
        while b"\r\n\r\n" not in head:
            try:
                b = c.recv(4096)
            except (ssl.SSLError, OSError):
                b = b""
            if not b:
                break
            head += b
        try:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY) + BODY)
            # Read to the client's end first: closing with its close_notify unread would
            # send a reset, which may overtake the answer.
            while c.recv(4096):
                pass
        except (ssl.SSLError, OSError):
            pass
        c.close()


threading.Thread(target=origin, daemon=True).start()
port = ls.getsockname()[1]
cctx = ssl.create_default_context(cafile=ca)


def tunnel():
    """A CONNECT tunnel through the proxy, and TLS over memory BIOs in it."""
    s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
    r = b""
    while b"\r\n\r\n" not in r:
        r += s.recv(4096)
    assert r.startswith(b"HTTP/1.1 200"), r
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = cctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
    while True:
        try:
            o.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            inc.write(s.recv(65536))
    s.sendall(out.read())
    return s, o, inc, out


for i in range(3):
    s, o, inc, out = tunnel()
    o.write(b"GET /cn%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (i, port))
    try:
        o.unwrap()
    except ssl.SSLWantReadError:
        pass
    s.sendall(out.read())  # the request's record and the close_notify, in one write
    answer = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        inc.write(d)
        try:
            while True:
                answer += o.read(65536)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
    assert answer.endswith(BODY), answer
    s.close()
print("3 requests sent with their close_notify, 3 answers")
# A request, then a record no key opens, in one write: mitmrec ends the flow (the client
# gets what it gets), after both records are in the pcapng.
s, o, inc, out = tunnel()
o.write(b"GET /bad HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
s.sendall(out.read() + b"\x17\x03\x03\x00\x64" + bytes(100))
try:
    while s.recv(65536):
        pass
except OSError:
    pass
s.close()
print("then a request and a record that does not decrypt, in one write; origin port %d" % port)
EOF
stop_mitmrec
oport=$(sed -n 's/.*origin port \([0-9]*\)$/\1/p' "$WORK/cn.out")
# The origin's port is any free one: tshark is told it is TLS rather than left to guess.
TSHARK_DECODE_AS+=(-d "tcp.port==${oport:-0},tls")
n=$(tshark_fields "$MITM_PCAP" http.request.uri http.request.uri | grep -c '^/cn[0-9]$')
if [ "$n" != 3 ]; then
    # What tshark made of each frame, and what the HAR has: which of the two lost it.
    tshark -n -r "$MITM_PCAP" "${TSHARK_DECODE_AS[@]}" -T fields -e frame.number -e tcp.stream \
        -e tcp.srcport -e tcp.dstport -e tcp.len -e _ws.col.Protocol -e _ws.col.Info >&2 2>/dev/null
    fail "tshark finds $n of the 3 requests sent with a close_notify in the pcapng; the HAR has $(har_query "$MITM_HAR" '[(e["request"]["url"], e["response"]["status"]) for e in h["log"]["entries"]]')"
fi
tshark_fields "$MITM_PCAP" 'http.request.uri == "/bad"' frame.number | grep -q . ||
    fail "the request sent with a bad record is not in the pcapng"
tshark_fields "$MITM_PCAP" "tcp.dstport == ${oport:-0} && tls.record.length == 100" \
    tls.record.length | tr ',' '\n' | grep -qx 100 ||
    fail "the client's 100-byte record that does not decrypt is not in the pcapng"
[ "$(har_query "$MITM_HAR" 'len([e for e in h["log"]["entries"] if "/cn" in e["request"]["url"] and e["response"]["status"] == 200])')" = 3 ] ||
    fail "the HAR lacks the close_notify requests: $(har_query "$MITM_HAR" '[(e["request"]["url"], e["response"]["status"]) for e in h["log"]["entries"]]')"
check_same_entries "$MITM_PCAP" "$MITM_HAR"
log "$(cat "$WORK/cn.out"); each in the pcapng"

finish_problems
log "ok"
exit 0
