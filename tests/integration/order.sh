#!/bin/bash
# SPDX-License-Identifier: MIT
# The pcapng is in time order, as a capture is: 20 HTTPS downloads at once (curl, 1 MiB each,
# their TLS handshakes queued behind each other in mitmrec), in spawn mode and through the
# explicit proxy. In both no packet's timestamp is earlier than the one before it in the file:
# through the proxy, where a tunnel's destination is known only from its CONNECT, its SYN,
# SYN/ACK and ACK are stamped when the client connected, or, when packets of other flows
# stamped later are in the file by then, with the latest of those. Either way tshark, reading
# the file once with nothing but its own secrets, decrypts all 20 requests and answers (a
# Decryption Secrets Block still comes before the records it opens, although packets no longer
# wait for the handshake to end), and the HAR validates, with 20 entries of 200 and 1 MiB.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark "$PY"
start_origin
N=20

# order_check PCAP NAME: no packet goes back in time; then the N requests and their answers,
# decrypted.
order_check() {
    local pcap=$1 mode=$2 n # mode: a name for the files and messages
    tshark -r "$pcap" -T fields -e frame.number -e frame.time_epoch -e tcp.flags.syn \
        -e tcp.flags.ack -e tcp.len >"$WORK/$mode.times" 2>"$WORK/tshark.err" ||
        fail "tshark cannot read $pcap: $(cat "$WORK/tshark.err")"
    "$PY" - "$WORK/$mode.times" "$mode" <<'EOF' || fail "$mode: packets out of time order (above)"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
latest, back, worst = 0.0, [], 0.0
for num, ts, syn, ack, tlen in rows:
    t = float(ts)
    if t < latest:
        back.append("frame %s: %.6f s before a frame ahead of it" % (num, latest - t))
        worst = max(worst, latest - t)
    latest = max(latest, t)
for b in back[:10]:
    print(b, file=sys.stderr)
print("%d packets, the furthest back %.6f s" % (len(rows), worst))
sys.exit(1 if back else 0)
EOF
    n=$(tshark -r "$pcap" "${TSHARK_DECODE_AS[@]}" -Y 'http.request or http2.headers.method' \
        -T fields -e frame.number 2>/dev/null | wc -l)
    [ "$n" = $N ] || fail "$mode: tshark decrypted $n requests, not $N"
    n=$(tshark -r "$pcap" "${TSHARK_DECODE_AS[@]}" -Y 'http.response or http2.headers.status' \
        -T fields -e frame.number 2>/dev/null | wc -l)
    [ "$n" = $N ] || fail "$mode: tshark decrypted $n answers, not $N"
    har_validate "${pcap%.pcapng}.har"
    n=$(har_query "${pcap%.pcapng}.har" 'str(sum(1 for e in h["log"]["entries"] if e["response"]["status"] == 200 and e["response"]["content"]["size"] == 1048576))')
    [ "$n" = $N ] || fail "$mode: $n HAR entries of 200 with 1 MiB, not $N"
}

# ---- spawn mode ----
if spawn_available; then
    spawn_mitmrec 120 "$WORK/spawn.pcapng" --cacert "$TEST_CA" -q -- sh -c '
        for i in $(seq '$N'); do
            curl -sS -o /dev/null https://localhost:'"$ORIGIN_TLSPORT"'/1m.bin &
        done
        wait'
    [ "$SPAWN_RC" = 0 ] || fail "spawn mode exited $SPAWN_RC: $(cat "$MITM_LOG")"
    order_check "$WORK/spawn.pcapng" spawn >"$WORK/spawn.out"
    log "spawn mode: $(cat "$WORK/spawn.out")"
else
    log "spawn mode not here ($SPAWN_WHY): explicit proxy only"
fi

# ---- explicit proxy ----
start_mitmrec -o "$WORK/proxy.pcapng" --cacert "$TEST_CA"
curls=()
for i in $(seq $N); do
    curl -sS -o /dev/null --cacert "$MITM_CA" -x "http://127.0.0.1:$MITM_PORT" \
        "https://localhost:$ORIGIN_TLSPORT/1m.bin" &
    curls+=($!)
done
for c in "${curls[@]}"; do wait "$c" || fail "a download through the proxy failed"; done
stop_mitmrec
order_check "$WORK/proxy.pcapng" proxy >"$WORK/proxy.out"
log "explicit proxy: $(cat "$WORK/proxy.out")"
exit 0
