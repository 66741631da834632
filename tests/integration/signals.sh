#!/bin/bash
# SPDX-License-Identifier: MIT
# SIGINT and SIGTERM finalize both files (tshark reads the pcapng, the HAR validates), exit 0
# and print the summary line; so does SIGTERM in the middle of a large download.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark node
start_origin
T=https://127.0.0.1:$ORIGIN_TLSPORT
H=http://127.0.0.1:$ORIGIN_PORT

# A few complete requests, then the signal.
for sig in INT TERM; do
    start_mitmrec -o "$WORK/$sig.pcapng" --cacert "$TEST_CA"
    pcurl -f -o "$WORK/$sig.small" "$T/small.txt" || fail "SIG$sig run: HTTPS GET failed"
    pcurl -f -o "$WORK/$sig.json" --compressed "$T/data.json" || fail "SIG$sig run: HTTPS GET data.json failed"
    pcurl -f -o "$WORK/$sig.plain" "$H/small.txt" || fail "SIG$sig run: plain GET failed"
    stop_mitmrec "$sig"
    check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
        --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /small.txt 200" \
        /small.txt="$WWW/small.txt" /data.json="$WWW/data.json"
done

# SIGTERM while a rate-limited 5 MiB download is in flight (about 5 s at 1 MiB/s). The
# download may complete or be cut; the files must be valid and the completed requests there.
start_mitmrec -o "$WORK/busy.pcapng" --cacert "$TEST_CA"
pcurl -f -o "$WORK/busy.small" "$T/small.txt" || fail "busy run: HTTPS GET failed"
pcurl -f -o "$WORK/busy.plain" "$H/small.txt" || fail "busy run: plain GET failed"
pcurl --limit-rate 1M -o "$WORK/busy.5m" "$T/5m.bin" 2>/dev/null &
BIG=$!
sleep 1.5
[ "$(stat -c %s "$WORK/busy.5m" 2>/dev/null || echo 0)" -gt 0 ] || fail "the large download had not started after 1.5 s"
stop_mitmrec TERM
# curl ends either way (complete, or cut by the proxy); bound the wait.
for _ in $(seq 100); do kill -0 $BIG 2>/dev/null || break; sleep 0.1; done
if kill -0 $BIG 2>/dev/null; then
    kill $BIG
    fail "curl's download was still running 10 s after mitmrec exited"
fi
wait $BIG
log "large download: curl exit $?, $(stat -c %s "$WORK/busy.5m") of $(stat -c %s "$WWW/5m.bin") bytes"
check_recording "$MITM_PCAP" "$MITM_HAR" --contains "GET /small.txt 200" /small.txt="$WWW/small.txt"
n=$(har_query "$MITM_HAR" 'len([e for e in h["log"]["entries"] if e["request"]["url"].endswith("/small.txt") and e["response"]["status"] == 200])')
[ "$n" = 2 ] || fail "busy run: $n completed small.txt entries in the HAR, expected 2"

log "ok"
exit 0
