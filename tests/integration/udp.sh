#!/bin/bash
# SPDX-License-Identifier: MIT
# UDP in spawn mode with more client sockets than the relay keeps sessions for (4,096): a python3
# client opens 5,000 IPv4 sockets (and 20 IPv6 ones when ::1 works) and, in two rounds, sends
# from each a datagram naming the socket and the round to an echo server started outside the
# recorded command, waiting for each answer. Checks:
#   1. every answer comes back to the socket that asked, with its own payload (the second
#      round finds the newest sessions in the relay's table and remakes the evicted ones);
#   2. the pcapng holds each datagram and each answer exactly once, as UDP between the
#      client's address and the echo server's, each frame naming the python3 process; then a
#      child process binds the port of a socket just closed, whose session the relay still
#      has, and its datagram and answer name the child's pid;
#   3. nothing of it in the HAR, which stays valid.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need tshark "$PY"
spawn_available || skip "spawn mode unavailable here ($SPAWN_WHY)"
N=5000 N6=20 ROUNDS=2
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge $((N + N6 + 64)) ] ||
    skip "the open-file limit ($(ulimit -Hn)) is below $((N + N6 + 64))"
ulimit -n $((N + N6 + 64))

cat >"$WORK/echo.py" <<'EOF'
import select, socket, sys
socks = []
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    try:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        socks.append(s)
    except OSError:
        pass
print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        d, a = s.recvfrom(2048)
        s.sendto(d, a)
EOF
cat >"$WORK/client.py" <<'EOF'
import os, socket, sys
n, n6, rounds, port4 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
port6 = int(sys.argv[5]) if len(sys.argv) > 5 else 0
socks = [(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), ("127.0.0.1", port4)) for _ in range(n)]
if port6:
    socks += [(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM), ("::1", port6)) for _ in range(n6)]
bad = []
for r in range(rounds):
    for i, (s, dst) in enumerate(socks):
        s.settimeout(3)
        msg = b"socket %d round %d " % (i, r) + b"." * (i % 200)
        s.sendto(msg, dst)
        try:
            got, src = s.recvfrom(2048)
        except socket.timeout:
            bad.append("socket %d round %d: no answer" % (i, r))
            continue
        if got != msg:
            bad.append("socket %d round %d: got %r" % (i, r, got[:40]))
        if src[1] != dst[1]:
            bad.append("socket %d round %d: the answer came from port %d" % (i, r, src[1]))
# The last IPv4 socket's port, closed and bound again by a child process: its session is still
# in the relay's table, and the datagram must be the child's.
s, dst = socks[n - 1]
port = s.getsockname()[1]
s.close()
child = os.fork()
if child == 0:
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", port))
    c.settimeout(3)
    c.sendto(b"reused port", dst)
    try:
        os._exit(0 if c.recv(2048) == b"reused port" else 1)
    except socket.timeout:
        os._exit(2)
if os.waitpid(child, 0)[1] != 0:
    bad.append("the child on the reused port got no answer")
open(os.environ["PIDS"], "w").write("%d %d\n" % (os.getpid(), child))
for b in bad[:10]:
    print(b, file=sys.stderr)
print("%d datagrams, %d bad" % (rounds * len(socks), len(bad)))
sys.exit(1 if bad else 0)
EOF

"$PY" "$WORK/echo.py" >"$WORK/ports" 2>"$WORK/echo.err" &
ECHO_PID=$!
_LIB_PIDS+=("$ECHO_PID")
for _ in $(seq 50); do [ -s "$WORK/ports" ] && break; sleep 0.1; done
read -r PORT4 PORT6 <"$WORK/ports"
[ -n "$PORT4" ] || fail "the echo server did not start: $(cat "$WORK/echo.err")"
if [ -z "${PORT6:-}" ]; then
    N6=0
    log "no ::1 here: IPv4 sockets only"
fi

export PIDS=$WORK/pids
spawn_mitmrec 240 "$WORK/udp.pcapng" -- \
    "$PY" "$WORK/client.py" $N $N6 $ROUNDS "$PORT4" ${PORT6:+"$PORT6"}
cat "$MITM_LOG.out" >&2
[ "$SPAWN_RC" = 0 ] || fail "the client through mitmrec: status $SPAWN_RC: $(tail -n 12 "$MITM_LOG" "$MITM_LOG.out")"
want=$(((N + N6) * ROUNDS))
grep -q "^$want datagrams, 0 bad$" "$MITM_LOG.out" || fail "client: $(cat "$MITM_LOG.out")"
log "$want datagrams answered, each to the socket that sent it"

# The pcapng: each datagram and answer once, both directions, the process named.
tshark_ok "$MITM_PCAP"
tshark_fields "$MITM_PCAP" "(ip && udp.port == $PORT4)${PORT6:+ || (ipv6 && udp.port == $PORT6)}" \
    ip.src ipv6.src udp.srcport ip.dst ipv6.dst udp.dstport udp.payload frame.comment >"$WORK/udp.tsv"
read -r PARENT CHILD <"$WORK/pids"
"$PY" - "$WORK/udp.tsv" "$PORT4" "${PORT6:-0}" "$want" "$PARENT" "$CHILD" <<'EOF' || fail "the UDP in the pcapng (see above)"
import collections, sys
path, port4, port6, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) + 1
parent, child = sys.argv[5], sys.argv[6]
seen = collections.Counter()
bad = []
for line in open(path):
    src4, src6, sport, dst4, dst6, dport, data, comment = (line.rstrip("\n").split("\t") + [""] * 8)[:8]
    # (A client's port may be the echo server's port of the other family.)
    port = port4 if src4 else port6
    payload = bytes.fromhex(data.replace(":", ""))
    if dport == port:
        direction, peer = "query", src4 or src6
    elif sport == port:
        direction, peer = "answer", dst4 or dst6
    else:
        bad.append("frame from port %s to %s" % (sport, dport))
        continue
    if peer not in ("127.0.0.1", "::1"):
        bad.append("%s with client address %s" % (direction, peer))
    if not payload.startswith(b"socket ") and payload != b"reused port":
        bad.append("%s with payload %r" % (direction, payload[:40]))
    pid = child if payload == b"reused port" else parent
    if "process: python3, pid %s" % pid not in comment:
        bad.append("%s %r names %r, want pid %s" % (direction, payload[:24], comment, pid))
    seen[(direction, payload)] += 1
for direction in ("query", "answer"):
    n = sum(v for (d, _), v in seen.items() if d == direction)
    if n != want:
        bad.append("%d %s frames, want %d" % (n, direction, want))
dup = [k for k, v in seen.items() if v != 1]
if dup:
    bad.append("%d payloads recorded more than once, e.g. %r" % (len(dup), dup[0]))
for b in bad[:10]:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
log "pcapng: $want datagrams and $want answers, each once, python3 named"

har_validate "$MITM_HAR"
n=$(har_query "$MITM_HAR" 'len(h["log"]["entries"])')
[ "$n" = 0 ] || fail "UDP only, yet $n HAR entries"
log "ok"
