#!/bin/bash
# SPDX-License-Identifier: MIT
# Programs that reach the network through an HTTP proxy (HTTPS_PROXY, a corporate proxy): Debian's
# tinyproxy between them and nginx. In spawn mode mitmrec sees their connections to the proxy;
# it passes each CONNECT on to the proxy, the proxy's answer back, and intercepts the TLS in the
# tunnel (its own handshake to nginx goes through the proxy). Checks:
#   1. curl (HTTP/1.1 and HTTP/2), python3's urllib and wget, all configured with the proxy, get
#      the served bytes; the HAR has one entry per request, https://localhost:PORT/..., 200 and
#      those bytes, and the proxy's log shows every tunnel (the traffic did go through it);
#      tshark decrypts the requests from the pcapng alone, which holds the CONNECTs and their
#      200s before the TLS records, as on the wire; mitmrec -r gives the same entries;
#   2. a proxy that wants credentials: without them curl gets the 407 (exit 56) and the HAR has
#      the CONNECT with its 407; with them the tunnel is intercepted as above;
#   3. mitmreplay answers the same programs, still configured with the proxy, from the
#      recording with the proxy stopped (no network): it answers the CONNECT itself;
#   4. bytes that only start like a CONNECT reach the server unchanged: "CONN" and a FIN, a
#      WebDAV COPY request, and a "CONNECT " longer than a head may be (70,012 bytes);
#   5. bytes a client sends right behind its CONNECT reach the proxy when it refuses.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl wget tshark "$PY"
command -v tinyproxy >/dev/null 2>&1 || skip "tinyproxy not installed (apt-get install tinyproxy)"
spawn_available || skip "spawn mode unavailable here ($SPAWN_WHY)"
start_origin
MITMREPLAY=${MITMREPLAY:-$top_builddir/mitmreplay}

# start_proxy NAME [BasicAuth line]: tinyproxy in the foreground on a free port; sets PROXY_PORT
# and PROXY_PID. No ConnectPort line: CONNECT to any port.
start_proxy() {
    local name=$1 auth=${2:-} user=
    PROXY_PORT=$(free_port)
    [ "$(id -u)" = 0 ] && user="User nobody
Group nogroup"
    cat >"$WORK/$name.conf" <<EOF
Port $PROXY_PORT
Listen 127.0.0.1
Timeout 30
MaxClients 50
LogLevel Connect
LogFile "$WORK/$name.log"
PidFile "$WORK/$name.pid"
DisableViaHeader Yes
$user
$auth
EOF
    : >"$WORK/$name.log"
    chmod 666 "$WORK/$name.log"
    chmod o+x "$WORK" # tinyproxy writes its log as nobody
    tinyproxy -d -c "$WORK/$name.conf" >"$WORK/$name.out" 2>&1 &
    PROXY_PID=$!
    _LIB_PIDS+=("$PROXY_PID")
    wait_port "$PROXY_PORT" 10 || fail "tinyproxy did not start: $(cat "$WORK/$name.out" "$WORK/$name.log")"
}

start_proxy open
OPEN=http://127.0.0.1:$PROXY_PORT
OPEN_PID=$PROXY_PID
T=https://localhost:$ORIGIN_TLSPORT
H2=https://localhost:$ORIGIN_H2PORT

cat >"$WORK/clients.sh" <<EOF
set -e
curl -sS -x $OPEN --http1.1 -o "$WORK/c1.out" "$T/small.txt"
curl -sS -x $OPEN --http2 -o "$WORK/c2.out" "$H2/data.json"
"$PY" - <<'PYEOF'
import urllib.request
op = urllib.request.build_opener(urllib.request.ProxyHandler({"https": "$OPEN"}))
open("$WORK/c3.out", "wb").write(op.open("$T/binary.bin").read())
PYEOF
wget -q -e use_proxy=yes -e https_proxy=$OPEN -O "$WORK/c4.out" "$T/1m.bin"
EOF

# ---- 1. through the proxy ----
spawn_mitmrec 120 "$WORK/rec.pcapng" --cacert "$TEST_CA" -- sh "$WORK/clients.sh"
[ "$SPAWN_RC" = 0 ] || fail "the clients through the proxy failed ($SPAWN_RC): $(cat "$MITM_LOG")"
same_file "$WORK/c1.out" "$WWW/small.txt"
same_file "$WORK/c2.out" "$WWW/data.json"
same_file "$WORK/c3.out" "$WWW/binary.bin"
same_file "$WORK/c4.out" "$WWW/1m.bin"
n=$(grep -c "Established connection to host \"localhost\"" "$WORK/open.log")
[ "$n" = 4 ] || fail "tinyproxy logged $n tunnels to localhost, not 4: $(cat "$WORK/open.log")"
got=$(har_query "$MITM_HAR" '"|".join("%s %s %d" % (e["request"]["method"], e["request"]["url"], e["response"]["status"]) for e in h["log"]["entries"])')
want="GET $T/small.txt 200|GET $H2/data.json 200|GET $T/binary.bin 200|GET $T/1m.bin 200"
[ "$got" = "$want" ] || fail "HAR entries: '$got', not '$want'"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
    --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /binary.bin 200" \
    --expect "GET /1m.bin 200" /small.txt="$WWW/small.txt" /data.json="$WWW/data.json" \
    /binary.bin="$WWW/binary.bin" /1m.bin="$WWW/1m.bin"
n=$(tshark -r "$MITM_PCAP" -Y 'http.request.method == "CONNECT"' -T fields -e frame.number 2>/dev/null | wc -l)
[ "$n" = 4 ] || fail "tshark finds $n CONNECTs in the pcapng, not 4"
n=$(tshark -r "$MITM_PCAP" -Y 'http.response.code == 200 and http.response.phrase contains "established"' \
    -T fields -e frame.number 2>/dev/null | wc -l)
[ "$n" = 4 ] || fail "tshark finds $n answers to the CONNECTs, not 4"
check_same_entries "$MITM_PCAP" "$MITM_HAR"
log "through tinyproxy: 4 tunnels intercepted, decrypted by tshark and mitmrec -r"

# ---- 2. a proxy that wants credentials ----
start_proxy auth "BasicAuth user secret"
AUTH_PORT=$PROXY_PORT
spawn_mitmrec 60 "$WORK/auth.pcapng" --cacert "$TEST_CA" -- sh -c "
    curl -sS -x http://127.0.0.1:$AUTH_PORT -o /dev/null '$T/small.txt'; echo \"no credentials: \$?\"
    curl -sS -x http://user:secret@127.0.0.1:$AUTH_PORT -o '$WORK/a.out' '$T/small.txt'; echo \"credentials: \$?\""
grep -q "^no credentials: 56$" "$MITM_LOG.out" && grep -q "^credentials: 0$" "$MITM_LOG.out" ||
    fail "curl through the proxy with credentials: $(cat "$MITM_LOG.out" "$MITM_LOG")"
same_file "$WORK/a.out" "$WWW/small.txt"
got=$(har_query "$MITM_HAR" '" ".join("%s %d" % (e["request"]["method"], e["response"]["status"]) for e in h["log"]["entries"])')
[ "$got" = "CONNECT 407 GET 200" ] || fail "HAR entries with the credentials proxy: '$got'"
har_validate "$MITM_HAR"
check_same_entries "$MITM_PCAP" "$MITM_HAR"

# ---- 3. replay, the proxy gone ----
kill "$OPEN_PID" "$PROXY_PID"
wait "$OPEN_PID" "$PROXY_PID" 2>/dev/null
rm -f "$WORK"/c?.out
timeout -k 5 120 "$MITMREPLAY" --strict "$WORK/rec.pcapng" -- sh "$WORK/clients.sh" \
    >"$WORK/replay.out" 2>"$WORK/replay.err"
rc=$?
[ $rc = 0 ] || fail "mitmreplay through the (stopped) proxy exited $rc: $(cat "$WORK/replay.err")"
same_file "$WORK/c1.out" "$WWW/small.txt"
same_file "$WORK/c2.out" "$WWW/data.json"
same_file "$WORK/c3.out" "$WWW/binary.bin"
same_file "$WORK/c4.out" "$WWW/1m.bin"
grep -q "4 requests, 4 replayed, 0 unmatched" "$WORK/replay.err" ||
    fail "mitmreplay's summary: $(cat "$WORK/replay.err")"

# ---- 4. not a CONNECT after all ----
R=$(free_port)
"$PY" - "$R" >"$WORK/rcv.out" 2>&1 <<'PYEOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(5)
while True:  # (wait_port connects too)
    c, _ = s.accept()
    d = b""
    while not d.endswith(b"\r\n\r\n"):
        x = c.recv(100)
        if not x:
            break
        d += x
    c.sendall(b"got %d " % len(d) + d[:60])
    c.close()
PYEOF
_LIB_PIDS+=($!)
wait_port "$R" 10 || fail "the receiver did not start: $(cat "$WORK/rcv.out")"
cat >"$WORK/cut.py" <<PYEOF
import socket
for msg, fin in ((b"CONN", True), (b"COPY /a HTTP/1.1\r\nDestination: /b\r\n\r\n", False),
                 (b"CONNECT " + b"a" * 70000 + b"\r\n\r\n", False)):
    s = socket.create_connection(("127.0.0.1", $R))
    s.sendall(msg)
    if fin:
        s.shutdown(socket.SHUT_WR)
    d = b""
    while True:
        x = s.recv(200)
        if not x:
            break
        d += x
    print(d[:40])
PYEOF
spawn_mitmrec 60 "$WORK/cut.pcapng" -- "$PY" "$WORK/cut.py"
[ "$SPAWN_RC" = 0 ] || fail "the cut CONNECT client exited $SPAWN_RC: $(cat "$MITM_LOG")"
cat >"$WORK/cut.want" <<'EOF'
b'got 4 CONN'
b'got 37 COPY /a HTTP/1.1\r\nDestination: /b'
b'got 70012 CONNECT aaaaaaaaaaaaaaaaaaaaaa'
EOF
diff "$WORK/cut.want" "$MITM_LOG.out" >&2 || fail "the server got other bytes (above: wanted, got)"

# ---- 5. bytes behind a refused CONNECT still reach the proxy ----
# A proxy of python3's that refuses every CONNECT with a 407 and keeps the connection (as one
# that waits for credentials does), writing what it gets behind the CONNECT to a file.
X=$(free_port)
"$PY" - "$X" "$WORK/refuser.got" >"$WORK/refuser.out" 2>&1 <<'PYEOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(5)
while True:  # (wait_port connects too)
    c, _ = s.accept()
    c.settimeout(2)
    d = b""
    answered = False
    try:
        while True:
            x = c.recv(100)
            if not x:
                break
            d += x
            if b"\r\n\r\n" in d and not answered:
                answered = True
                c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                          b"Proxy-Authenticate: Basic realm=x\r\nContent-Length: 2\r\n\r\nno")
            if answered and len(d.split(b"\r\n\r\n", 1)[1]) >= 5:
                break
    except socket.timeout:
        pass
    if answered:
        open(sys.argv[2], "wb").write(d.split(b"\r\n\r\n", 1)[1])
    c.close()
PYEOF
_LIB_PIDS+=($!)
wait_port "$X" 10 || fail "the refusing proxy did not start: $(cat "$WORK/refuser.out")"
cat >"$WORK/early.py" <<PYEOF
import socket
s = socket.create_connection(("127.0.0.1", $X))
s.sendall(b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\nEARLY")
d = b""
while not d.endswith(b"no"):
    x = s.recv(1000)
    if not x:
        break
    d += x
print(d.split(b"\r\n", 1)[0].decode())
PYEOF
spawn_mitmrec 60 "$WORK/early.pcapng" -- "$PY" "$WORK/early.py"
[ "$SPAWN_RC" = 0 ] || fail "the early-bytes client exited $SPAWN_RC: $(cat "$MITM_LOG")"
[ "$(cat "$MITM_LOG.out")" = "HTTP/1.1 407 Proxy Authentication Required" ] ||
    fail "the client got: '$(cat "$MITM_LOG.out")'"
for _ in $(seq 50); do [ -e "$WORK/refuser.got" ] && break; sleep 0.1; done
[ "$(cat "$WORK/refuser.got" 2>/dev/null)" = EARLY ] ||
    fail "the proxy got behind the CONNECT: '$(cat "$WORK/refuser.got" 2>/dev/null)', not EARLY"
got=$(har_query "$MITM_HAR" '" ".join("%s %d" % (e["request"]["method"], e["response"]["status"]) for e in h["log"]["entries"])')
[ "$got" = "CONNECT 407" ] || fail "HAR entries for the refused CONNECT: '$got'"
exit 0
