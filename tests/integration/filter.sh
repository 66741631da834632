#!/bin/bash
# SPDX-License-Identifier: MIT
# -f EXPR while recording (issue 4, item 6: a tcpdump filter on the synthesized packets; -r
# is readmode.sh's). A flow is recorded whole or not at all, chosen by its client leg's
# synthesized SYN, SYN/ACK and ACK, so the HAR stays what the pcapng gives. Through the
# explicit proxy, curl fetches over HTTPS (the origin's TLS port) and plain HTTP:
#   1. -f 'tcp port TLSPORT': the pcapng holds only TLS-port packets, both directions, which
#      tshark decrypts with no key file; the HAR holds only the HTTPS requests, their bodies
#      the files served; mitmrec -r of the pcapng gives the same entries, and the summary
#      counts only the recorded flows and requests;
#   2. -f 'src port PORT' (only the server's direction names the plain port): the plain flow
#      is recorded whole, requests and responses;
#   3. -f 'udp': no TCP flow at all, an empty HAR, and nothing lost from the transfers;
#   4. --keylog with a filter: only the recorded flows' secrets;
#   5. a filter that does not parse: exit 1, one line, no output file made.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark node "$PY"
start_origin
T=https://127.0.0.1:$ORIGIN_TLSPORT
H=http://127.0.0.1:$ORIGIN_PORT
mkdir -p "$WORK/dl"

# fetch TAG: two HTTPS GETs on one connection and one plain GET on another, checked.
fetch() {
    pcurl -f -o "$WORK/dl/$1-small.txt" "$T/small.txt" -o "$WORK/dl/$1-data.json" "$T/data.json" ||
        fail "$1: the HTTPS GETs failed"
    pcurl -f -o "$WORK/dl/$1-plain.bin" "$H/binary.bin" || fail "$1: the plain GET failed"
    same_file "$WORK/dl/$1-small.txt" "$WWW/small.txt" "$1: small.txt"
    same_file "$WORK/dl/$1-data.json" "$WWW/data.json" "$1: data.json"
    same_file "$WORK/dl/$1-plain.bin" "$WWW/binary.bin" "$1: binary.bin"
}

# urls HAR: the entries' URLs, sorted.
urls() { har_query "$1" '"\n".join(sorted(e["request"]["url"] for e in h["log"]["entries"]))'; }

# 1. Only the TLS port.
start_mitmrec -o "$WORK/tls.pcapng" --cacert "$TEST_CA" -f "tcp port $ORIGIN_TLSPORT"
fetch tls
stop_mitmrec
ports=$(tshark_fields "$MITM_PCAP" tcp tcp.srcport tcp.dstport | tr '\t' '\n' | sort -u | tr '\n' ' ')
case $ports in
*"$ORIGIN_TLSPORT "*) ;;
*) fail "1: no packet of the TLS port in the pcapng (ports: $ports)" ;;
esac
for p in $ports; do
    [ "$p" = "$ORIGIN_TLSPORT" ] || [ "$(tshark_fields "$MITM_PCAP" "tcp.port == $p && tcp.port == $ORIGIN_TLSPORT" frame.number | wc -l)" -gt 0 ] ||
        fail "1: -f 'tcp port $ORIGIN_TLSPORT' recorded a packet of port $p that is not on a TLS-port flow"
done
n=$(tshark_fields "$MITM_PCAP" "tcp.srcport == $ORIGIN_TLSPORT && tcp.len > 0" frame.number | wc -l)
[ "$n" -gt 0 ] || fail "1: no packet from the server side in the pcapng"
[ "$(tshark_fields "$MITM_PCAP" "tcp.port == $ORIGIN_PORT" frame.number | wc -l)" = 0 ] ||
    fail "1: the plain flow is in the pcapng"
[ "$(tshark_requests "$MITM_PCAP" | sort | tr '\n' ' ')" = "GET /data.json GET /small.txt " ] ||
    fail "1: tshark decrypts: $(tshark_requests "$MITM_PCAP" | tr '\n' ' ')"
[ "$(urls "$MITM_HAR" | tr '\n' ' ')" = "$T/data.json $T/small.txt " ] ||
    fail "1: the HAR holds: $(urls "$MITM_HAR" | tr '\n' ' ')"
check_recording "$MITM_PCAP" "$MITM_HAR" /small.txt="$WWW/small.txt" /data.json="$WWW/data.json"
check_same_entries "$MITM_PCAP" "$MITM_HAR"
case $MITM_SUMMARY in
"mitmrec: 1 flow, 2 requests,"*) ;;
*) fail "1: the summary counts what was not recorded: $MITM_SUMMARY" ;;
esac
log "1: -f 'tcp port $ORIGIN_TLSPORT': the HTTPS flow alone, whole, decrypted; $MITM_SUMMARY"

# 4. Two TLS flows, to two ports, one recorded: the key log holds that flow's secrets only
#    (its client session and mitmrec's upstream one: two handshakes), the pcapng's DSB too.
start_mitmrec -o "$WORK/keys.pcapng" --cacert "$TEST_CA" -f "tcp port $ORIGIN_TLSPORT" \
    --keylog "$WORK/keys.log"
pcurl -f -o /dev/null "$T/small.txt" || fail "4: GET on the TLS port failed"
pcurl -f -o /dev/null "https://localhost:$ORIGIN_H2PORT/small.txt" || fail "4: GET on the h2 port failed"
stop_mitmrec
n=$(grep -c 'CLIENT_HANDSHAKE_TRAFFIC_SECRET' "$WORK/keys.log")
[ "$n" = 2 ] || fail "4: --keylog with -f holds $n handshakes, expected 2 (one flow, two legs)"
n=$(tshark -r "$MITM_PCAP" -T fields -e tls.handshake.type 2>/dev/null | grep -c .)
[ "$n" -gt 0 ] || fail "4: no TLS handshake in the pcapng"
[ "$(urls "$MITM_HAR" | tr '\n' ' ')" = "$T/small.txt " ] || fail "4: the HAR holds: $(urls "$MITM_HAR")"
log "4: --keylog with -f: the recorded flow's secrets only"

# 2. A filter that only the server's direction matches takes the flow whole.
start_mitmrec -o "$WORK/src.pcapng" --cacert "$TEST_CA" -f "src port $ORIGIN_PORT"
fetch src
stop_mitmrec
[ "$(urls "$MITM_HAR" | tr '\n' ' ')" = "$H/binary.bin " ] ||
    fail "2: the HAR holds: $(urls "$MITM_HAR" | tr '\n' ' ')"
c2s=$(tshark_fields "$MITM_PCAP" "tcp.dstport == $ORIGIN_PORT" frame.number | wc -l)
s2c=$(tshark_fields "$MITM_PCAP" "tcp.srcport == $ORIGIN_PORT" frame.number | wc -l)
[ "$c2s" -gt 0 ] && [ "$s2c" -gt 0 ] || fail "2: the plain flow is not whole: $c2s packets to the server, $s2c from it"
[ "$(tshark_fields "$MITM_PCAP" "tcp.port == $ORIGIN_TLSPORT" frame.number | wc -l)" = 0 ] ||
    fail "2: the HTTPS flow is in the pcapng"
check_recording "$MITM_PCAP" "$MITM_HAR" /binary.bin="$WWW/binary.bin"
check_same_entries "$MITM_PCAP" "$MITM_HAR"
log "2: -f 'src port $ORIGIN_PORT': the plain flow whole ($c2s + $s2c packets)"

# 3. A filter no TCP flow matches: nothing recorded, nothing lost.
start_mitmrec -o "$WORK/udp.pcapng" --cacert "$TEST_CA" -f udp
fetch udp
stop_mitmrec
[ "$(tshark_fields "$MITM_PCAP" tcp frame.number | wc -l)" = 0 ] || fail "3: -f udp recorded TCP packets"
[ "$(har_query "$MITM_HAR" 'len(h["log"]["entries"])')" = 0 ] || fail "3: -f udp: the HAR has entries"
har_validate "$MITM_HAR"
tshark_ok "$MITM_PCAP"
log "3: -f udp: no TCP flow recorded, the transfers whole"

# 5. A filter that does not parse.
timeout 10 "$MITMREC" --listen 0 -o "$WORK/bad.pcapng" -f 'tcp port' >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/bad.err")" = 1 ] &&
    grep -q "^mitmrec: error: invalid filter 'tcp port': " "$WORK/bad.err" ||
    fail "5: -f 'tcp port': exit $rc, expected 1 and one 'invalid filter' line: $(cat "$WORK/bad.err")"
[ ! -e "$WORK/bad.pcapng" ] && [ ! -e "$WORK/bad.har" ] || fail "5: a bad filter left output files"
# The same in spawn mode: exit 1 (not the status of a command that never ran), and no command.
timeout 30 "$MITMREC" -o "$WORK/bad.pcapng" -f 'tcp port' -- touch "$WORK/ran" >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/bad.err")" = 1 ] &&
    grep -q "^mitmrec: error: invalid filter 'tcp port': " "$WORK/bad.err" ||
    fail "5: -f 'tcp port' -- COMMAND: exit $rc, expected 1 and one 'invalid filter' line: $(cat "$WORK/bad.err")"
[ ! -e "$WORK/ran" ] || fail "5: -f 'tcp port' -- COMMAND ran the command"
[ ! -e "$WORK/bad.pcapng" ] && [ ! -e "$WORK/bad.har" ] || fail "5: a bad filter left output files (spawn mode)"
log "ok"
