#!/bin/bash
# SPDX-License-Identifier: MIT
# A half-closed client whose FIN reached mitmrec before mitmrec sent the server's FIN on: the
# recording must show the client's FIN first. The order is made, not hoped for: mitmrec relays
# the answer, is stopped (SIGSTOP), the server closes, then the client shuts down its side,
# and mitmrec goes on (SIGCONT) with both FINs waiting, the server's ahead in the poll. Ten
# rounds, plain HTTP through the proxy.
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
finish_problems
log "ok"
exit 0
