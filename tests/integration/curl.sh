#!/bin/bash
# SPDX-License-Identifier: MIT
# curl through mitmrec: HTTPS with TLS 1.2 and 1.3, keep-alive over one tunnel (gzip JSON,
# binary, 1 MiB, 5 MiB), plain HTTP in absolute form. Then the recording is judged by tshark
# (no key file) and by the HAR.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark node
start_origin
start_mitmrec -o "$WORK/out.pcapng" --cacert "$TEST_CA"
T=https://127.0.0.1:$ORIGIN_TLSPORT
H=http://127.0.0.1:$ORIGIN_PORT
mkdir -p dl

# 1. TLS 1.2 between curl and mitmrec.
code=$(pcurl --tlsv1.2 --tls-max 1.2 -o dl/tls12.txt -w '%{http_code}' "$T/small.txt") ||
    fail "curl --tls-max 1.2 $T/small.txt through the proxy failed"
[ "$code" = 200 ] || fail "TLS 1.2 GET small.txt: status $code"

# 2. TLS 1.3, by host name (the origin certificate names localhost).
code=$(pcurl --tlsv1.3 -o dl/tls13.txt -w '%{http_code}' "https://localhost:$ORIGIN_TLSPORT/small.txt") ||
    fail "curl --tlsv1.3 https://localhost:$ORIGIN_TLSPORT/small.txt through the proxy failed"
[ "$code" = 200 ] || fail "TLS 1.3 GET small.txt: status $code"

# 3. Keep-alive: five URLs, one curl, one tunnel (num_connects is 1 for the first only).
out=$(pcurl --tlsv1.3 --compressed -w '%{http_code} %{num_connects}\n' \
    -o dl/ka-small.txt "$T/small.txt" -o dl/ka-data.json "$T/data.json" \
    -o dl/ka-binary.bin "$T/binary.bin" -o dl/ka-1m.bin "$T/1m.bin" -o dl/ka-5m.bin "$T/5m.bin") ||
    fail "keep-alive curl run failed: $out"
[ "$(printf '%s\n' "$out" | awk '{print $1}' | sort -u)" = 200 ] || fail "keep-alive statuses: $out"
conns=$(printf '%s\n' "$out" | awk '{n += $2} END {print n}')
[ "$conns" = 1 ] || fail "keep-alive run opened $conns connections through the proxy, expected 1: $out"

# 4. Plain HTTP in absolute form, two requests on one connection.
out=$(pcurl --compressed -w '%{http_code}\n' -o dl/plain-small.txt "$H/small.txt" \
    -o dl/plain-data.json "$H/data.json") || fail "plain HTTP curl run failed: $out"
[ "$(printf '%s\n' "$out" | sort -u)" = 200 ] || fail "plain HTTP statuses: $out"

# Make sure gzip really was on the wire for data.json (else the test proves less).
enc=$(curl -q -sS --compressed -o /dev/null -w '%header{content-encoding}' "$H/data.json")
[ "$enc" = gzip ] || fail "the origin does not gzip data.json (Content-Encoding '$enc'): fix tests/nginx.conf.in"

stop_mitmrec
printf '%s' "$MITM_SUMMARY" | grep -Eq '(^|[^0-9])9 requests?' ||
    fail "the summary line does not count 9 requests: $MITM_SUMMARY"

# curl got the served bytes.
for f in tls12.txt:small.txt tls13.txt:small.txt ka-small.txt:small.txt ka-data.json:data.json \
    ka-binary.bin:binary.bin ka-1m.bin:1m.bin ka-5m.bin:5m.bin plain-small.txt:small.txt \
    plain-data.json:data.json; do
    same_file "dl/${f%%:*}" "$WWW/${f#*:}" "curl download ${f%%:*}"
done

# The recording, judged by tshark and the HAR (see tests/integration/recording.py).
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --tls-versions 0x0303,0x0304 \
    --expect "GET /small.txt 200" --expect "GET /small.txt 200" --expect "GET /small.txt 200" \
    --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /data.json 200" \
    --expect "GET /binary.bin 200" --expect "GET /1m.bin 200" --expect "GET /5m.bin 200" \
    /small.txt="$WWW/small.txt" /data.json="$WWW/data.json" /binary.bin="$WWW/binary.bin" \
    /1m.bin="$WWW/1m.bin" /5m.bin="$WWW/5m.bin"

# The same through the shell helpers, as a reader would do it.
n=$(tshark_requests "$MITM_PCAP" | grep -vc '^CONNECT ')
[ "$n" = 9 ] || fail "tshark_requests shows $n requests, expected 9: $(tshark_requests "$MITM_PCAP")"
tshark_export "$MITM_PCAP" "$WORK/objects"
for f in small.txt data.json binary.bin 1m.bin 5m.bin; do
    same_file "$WORK/objects/$f" "$WWW/$f" "tshark --export-objects http"
done

# The keep-alive requests share one TCP stream in the pcapng, the TLS 1.2 one has its own.
streams=$(har_query "$MITM_HAR" 'sorted(set(e["_pcapng"]["stream"] for e in h["log"]["entries"] if e["request"]["url"].startswith("https://127.0.0.1")))')
nstreams=$(printf '%s' "$streams" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$nstreams" = 2 ] || fail "HTTPS to 127.0.0.1 should be 2 TCP streams (TLS 1.2 run, keep-alive run), HAR says $streams"

# The gzip response: the HAR keeps the decoded text and says it was gzip on the wire.
har_query "$MITM_HAR" '[e["response"]["headers"] for e in h["log"]["entries"] if e["request"]["url"].endswith("/data.json")]' |
    grep -qi '"content-encoding", "value": "gzip"' ||
    fail "the HAR's data.json responses lack Content-Encoding: gzip"

# Output files hold secrets: 0600.
for f in "$MITM_PCAP" "$MITM_HAR"; do
    mode=$(stat -c %a "$f")
    [ "$mode" = 600 ] || fail "$f has mode $mode, expected 600"
done

log "ok"
exit 0
