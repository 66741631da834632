#!/bin/bash
# SPDX-License-Identifier: MIT
# Spawn mode and ports nothing listens on. A connect() to a loopback address and port with no
# listener is left alone by the redirector (extension/redirect.bpf.c, loopback_unheard), so the
# application sees what it would see without mitmrec:
#   1. ECONNREFUSED at once, for 127.0.0.1 and ::1 (not a connection that mitmrec accepts and
#      then resets, as before: the application has no way to tell that from a server that
#      broke); nothing of it in the pcapng, no warning;
#   2. a name with both ::1 and 127.0.0.1 (what "localhost" is) and a server on 127.0.0.1
#      only: curl tries ::1, is refused, falls back to 127.0.0.1 and gets the file, recorded.
#      Before, the reset on ::1 failed the transfer (curl: "Recv failure: Connection reset by
#      peer"), and Chromium's page load with it.
# The command's exit status is mitmrec's.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark "$PY"
spawn_available || skip "spawn mode unavailable here ($SPAWN_WHY)"
start_origin

# Ports nobody listens on: bound, never listened on, closed as the client runs.
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
        print("%s: connected" % addr)
        bad += 1
    except ConnectionRefusedError:
        print("%s: refused" % addr)
    except OSError as e:
        print("%s: %r" % (addr, e))
        bad += 1
sys.exit(3 if bad else 7)
EOF
spawn_mitmrec 60 "$WORK/refused.pcapng" -- "$PY" "$WORK/client.py" "$P4" "${P6:-0}"
cat "$MITM_LOG.out" >&2
[ "$SPAWN_RC" = 7 ] || fail "mitmrec's status is $SPAWN_RC, the client's 7: $(cat "$MITM_LOG.out" "$MITM_LOG")"
! grep -q 'warning' "$MITM_LOG" || fail "warnings for connections mitmrec should not have seen: $(cat "$MITM_LOG")"
n=$(tshark_fields "$MITM_PCAP" "tcp.port == $P4${P6:+ || tcp.port == $P6}" frame.number | wc -l)
[ "$n" = 0 ] || fail "$n packets of refused connections in the pcapng"
log "refused at once, as without mitmrec: $(tr '\n' ';' <"$MITM_LOG.out")"

# "localhost" as ::1 and 127.0.0.1 (curl --resolve), the server on 127.0.0.1 only.
if [ -n "$P6" ]; then
    spawn_mitmrec 60 "$WORK/dual.pcapng" --cacert "$TEST_CA" -- curl -q -sS -o "$WORK/dual.txt" \
        -w '%{remote_ip}' --resolve "localhost:$ORIGIN_TLSPORT:::1,127.0.0.1" \
        "https://localhost:$ORIGIN_TLSPORT/small.txt"
    [ "$SPAWN_RC" = 0 ] || fail "curl to a name with ::1 and 127.0.0.1 exited $SPAWN_RC: $(cat "$MITM_LOG")"
    [ "$(cat "$MITM_LOG.out")" = 127.0.0.1 ] || fail "curl used $(cat "$MITM_LOG.out"), expected 127.0.0.1"
    same_file "$WORK/dual.txt" "$WWW/small.txt" "dual-stack name: small.txt"
    check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /small.txt 200" /small.txt="$WWW/small.txt"
    log "a name with ::1 and 127.0.0.1: curl fell back to 127.0.0.1 and got the file, recorded"
else
    log "no ::1 here: the dual-stack case is not run"
fi
log "ok"
