#!/bin/bash
# SPDX-License-Identifier: MIT
# QUIC (UDP to port 443) from a recorded program is refused, so that a browser uses TLS over TCP,
# which mitmrec decrypts; --allow-quic relays it undecrypted instead. A UDP echo server outside
# the recorded command listens on port 443 and on a free port, on 127.0.0.1 and ::1; a python3
# client in spawn mode sends to each with sendto(2) and with connect(2) then send(2). Checks:
#   1. by default the four attempts on port 443 fail at once with EPERM and reach no server; the
#      free port answers every datagram; the summary says "refused 4 QUIC attempts"; the
#      pcapng holds the free port's datagrams and answers, and nothing on port 443;
#   2. with --allow-quic every datagram is answered, port 443's too, and the pcapng holds them,
#      with no summary line about QUIC;
#   3. mitmreplay refuses QUIC the same way (a recording holds it only undecrypted);
#   4. --allow-quic with --listen or -r is a usage error (exit 2).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need tshark "$PY"
spawn_available || skip "spawn mode unavailable here ($SPAWN_WHY)"

cat >"$WORK/echo.py" <<'EOF'
import select, socket, sys
port, log = int(sys.argv[1]), open(sys.argv[2], "a")
socks = []
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    for p in (443, port):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.bind((addr, p))
        except OSError as e:
            if fam == socket.AF_INET:
                print("cannot bind %s:%d: %s" % (addr, p, e), flush=True)
                sys.exit(1)
            continue
        socks.append(s)
print("ready %d" % len(socks), flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        d, a = s.recvfrom(2048)
        log.write("%d %s\n" % (s.getsockname()[1], d.decode()))
        log.flush()
        s.sendto(d, a)
EOF
cat >"$WORK/client.py" <<'EOF'
import socket, sys
port, v6 = int(sys.argv[1]), sys.argv[2] == "1"
fams = [(socket.AF_INET, "127.0.0.1")] + ([(socket.AF_INET6, "::1")] if v6 else [])
for fam, addr in fams:
    for p in (443, port):
        for how in ("sendto", "connect"):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.settimeout(5)
            msg = "%s-%d-%s" % (addr, p, how)
            try:
                if how == "sendto":
                    s.sendto(msg.encode(), (addr, p))
                else:
                    s.connect((addr, p))
                    s.send(msg.encode())
                r = "answered" if s.recv(2048) == msg.encode() else "wrong answer"
            except PermissionError:
                r = "EPERM"
            except OSError as e:
                r = "error %s" % e
            print(msg, r, flush=True)
EOF

P=$(free_port)
: >"$WORK/echo.log"
"$PY" "$WORK/echo.py" "$P" "$WORK/echo.log" >"$WORK/echo.out" 2>&1 &
_LIB_PIDS+=($!)
for _ in $(seq 100); do grep -q . "$WORK/echo.out" && break; sleep 0.05; done
case $(cat "$WORK/echo.out") in
"ready 4") V6=1 ;;
"ready 2") V6=0 ;;
*"Address already in use"*) skip "UDP port 443 is taken here: $(cat "$WORK/echo.out")" ;;
*) fail "the echo server did not start: $(cat "$WORK/echo.out")" ;;
esac
N=$((2 + 2 * V6)) # attempts per port

# expect OUT PORT443 FREEPORT: the client's lines for each port say what they should.
expect() {
    local out=$1 want443=$2 wantfree=$3 n
    n=$(grep -c -- "-443-.* $want443\$" "$out")
    [ "$n" = $N ] || fail "$(basename "$out"): $n of $N attempts on port 443 $want443: $(cat "$out")"
    n=$(grep -c -- "-$P-.* $wantfree\$" "$out")
    [ "$n" = $N ] || fail "$(basename "$out"): $n of $N attempts on port $P $wantfree: $(cat "$out")"
}
# frames PCAP FILTER: how many frames of PCAP match the display filter.
frames() { tshark -r "$1" -Y "$2" -T fields -e frame.number 2>/dev/null | wc -l; }

# ---- 1. refused by default ----
spawn_mitmrec 60 "$WORK/refused.pcapng" -- "$PY" "$WORK/client.py" "$P" "$V6"
[ "$SPAWN_RC" = 0 ] || fail "spawn mode exited $SPAWN_RC: $(cat "$MITM_LOG")"
expect "$MITM_LOG.out" EPERM answered
grep -q " 443 " <(sed 's/^/ /' "$WORK/echo.log") && fail "a refused datagram reached port 443: $(cat "$WORK/echo.log")"
grep -q "^mitmrec: refused $N QUIC attempts (UDP port 443): browsers fall back to TLS over TCP" "$MITM_LOG" ||
    fail "no summary line for $N refused QUIC attempts: $(cat "$MITM_LOG")"
n=$(frames "$WORK/refused.pcapng" "udp.port == $P")
[ "$n" = $((2 * N)) ] || fail "the pcapng holds $n datagrams to and from port $P, not $((2 * N))"
n=$(frames "$WORK/refused.pcapng" "udp.port == 443")
[ "$n" = 0 ] || fail "the pcapng holds $n datagrams on port 443, not 0"
har_validate "$MITM_HAR"
log "refused: $N attempts on port 443 got EPERM, $N on port $P were answered"

# ---- 2. --allow-quic ----
: >"$WORK/echo.log"
spawn_mitmrec 60 "$WORK/allowed.pcapng" --allow-quic -- "$PY" "$WORK/client.py" "$P" "$V6"
[ "$SPAWN_RC" = 0 ] || fail "spawn mode with --allow-quic exited $SPAWN_RC: $(cat "$MITM_LOG")"
expect "$MITM_LOG.out" answered answered
n=$(grep -c '^443 ' "$WORK/echo.log")
[ "$n" = $N ] || fail "with --allow-quic port 443 got $n datagrams, not $N"
grep -q QUIC "$MITM_LOG" && fail "a QUIC line with --allow-quic: $(cat "$MITM_LOG")"
n=$(frames "$WORK/allowed.pcapng" "udp.port == 443")
[ "$n" = $((2 * N)) ] || fail "with --allow-quic the pcapng holds $n datagrams on port 443, not $((2 * N))"

# ---- 3. mitmreplay ----
MITMREPLAY=${MITMREPLAY:-$top_builddir/mitmreplay}
[ -x "$MITMREPLAY" ] || fail "$MITMREPLAY not built"
timeout -k 5 60 "$MITMREPLAY" "$WORK/refused.pcapng" -- "$PY" "$WORK/client.py" "$P" "$V6" \
    >"$WORK/replay.out" 2>"$WORK/replay.err"
rc=$?
[ $rc = 0 ] || fail "mitmreplay exited $rc: $(cat "$WORK/replay.err")"
n=$(grep -c -- "-443-.* EPERM\$" "$WORK/replay.out")
[ "$n" = $N ] || fail "under mitmreplay $n of $N attempts on port 443 got EPERM: $(cat "$WORK/replay.out")"

# ---- 4. usage ----
"$MITMREC" --listen 0 --allow-quic -o "$WORK/l.pcapng" >/dev/null 2>"$WORK/l.err"
rc=$?
[ $rc = 2 ] && grep -q -- "--allow-quic goes with -p or a command" "$WORK/l.err" ||
    fail "--listen with --allow-quic: exit $rc, $(cat "$WORK/l.err")"
"$MITMREC" -r "$WORK/refused.pcapng" --har "$WORK/r.har" --allow-quic >/dev/null 2>"$WORK/r.err"
rc=$?
[ $rc = 2 ] && grep -q -- "--allow-quic" "$WORK/r.err" ||
    fail "-r with --allow-quic: exit $rc, $(cat "$WORK/r.err")"
exit 0
