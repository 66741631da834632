#!/bin/bash
# SPDX-License-Identifier: MIT
# Spawn mode, a connection to a port where nothing listens (IPv4, and IPv6 when ::1 works): the
# application's connect() has reached mitmrec already, so it gets a reset, the nearest thing to
# the refusal it would have seen, and no byte. mitmrec says why in one warning line; in the
# pcapng the flow ends with the server side's RST and carries the reason as a comment; the HAR
# has no entry. The command's exit status is mitmrec's.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need tshark "$PY"
spawn_available || skip "spawn mode unavailable here ($SPAWN_WHY)"

# Ports nobody listens on: bound, never listened, and closed as the client runs.
read -r P4 P6 < <("$PY" - <<'EOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0))
try:
    s6 = socket.socket(socket.AF_INET6); s6.bind(("::1", 0)); p6 = s6.getsockname()[1]
except OSError:
    p6 = 0
print(s.getsockname()[1], p6)
EOF
)
[ -n "$P4" ] || fail "no free port"

cat >"$WORK/client.py" <<'EOF'
import socket, sys
bad = 0
for fam, addr, port in ((socket.AF_INET, "127.0.0.1", int(sys.argv[1])),
                        (socket.AF_INET6, "::1", int(sys.argv[2]))):
    if not port:
        continue
    s = socket.socket(fam)
    s.settimeout(10)
    try:
        s.connect((addr, port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = s.recv(100)
        print("%s: got %r" % (addr, got))
        bad += 1
    except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError) as e:
        print("%s: %s" % (addr, type(e).__name__))
    except OSError as e:
        print("%s: unexpected %r" % (addr, e))
        bad += 1
sys.exit(3 if bad else 7)
EOF
spawn_mitmrec 60 "$WORK/refused.pcapng" -- "$PY" "$WORK/client.py" "$P4" "${P6:-0}"
cat "$MITM_LOG.out" >&2
[ "$SPAWN_RC" = 7 ] || fail "mitmrec's status is $SPAWN_RC, the client's 7: $(cat "$MITM_LOG.out" "$MITM_LOG")"

for a in "127.0.0.1:$P4" ${P6:+"[::1]:$P6"}; do
    port=${a##*:}
    n=$(grep -cF "flow NUM: cannot connect to $a: connection refused" <(sed "s/^mitmrec: warning: flow [0-9]*:/flow NUM:/" "$MITM_LOG"))
    [ "$n" = 1 ] || fail "$n warning lines for $a: $(cat "$MITM_LOG")"
    tshark_fields "$MITM_PCAP" "tcp.port == $port" tcp.flags.str tcp.srcport tcp.len frame.comment \
        >"$WORK/flow.$port.tsv"
    "$PY" - "$WORK/flow.$port.tsv" "$port" "$a" <<'EOF' || fail "the refused flow to $a in the pcapng (see above)"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
port, addr = sys.argv[2], sys.argv[3]
bad = []
if not rows:
    bad.append("no packet")
else:
    flags, sport = rows[-1][0], rows[-1][1]
    if "R" not in flags or sport != port:
        bad.append("the last packet is %s from port %s, not the server's RST" % (flags, sport))
    if any(r[2] not in ("", "0") for r in rows):
        bad.append("data in a flow that never connected: %s" % rows)
    if not any("mitmrec error: cannot connect to %s: connection refused" % addr in r[3] for r in rows):
        bad.append("no comment gives the reason: %s" % [r[3] for r in rows])
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
done
n=$(har_query "$MITM_HAR" 'len(h["log"]["entries"])')
[ "$n" = 0 ] || fail "$n HAR entries for connections that carried nothing"
har_validate "$MITM_HAR"
log "ok: $(tr '\n' ';' <"$MITM_LOG.out")"
