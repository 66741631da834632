#!/bin/bash
# SPDX-License-Identifier: MIT
# HTTP/2, from a capture that is not ours: dumpcap records curl --http2 against nginx's h2 port
# on the loopback interface while curl writes its TLS secrets to SSLKEYLOGFILE; nginx is
# stopped; mitmreplay reads that pcapng with --keylog and serves curl --http2 (two streams on
# one connection, a HEAD) and nghttp over HTTP/2 (an nghttp2 server session): same bodies and
# statuses. Without --keylog nothing can be decrypted, so the same run is all 404s.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl nghttp dumpcap "$PY"
need_replay
start_origin
[ -n "${ORIGIN_H2PORT:-}" ] || skip "tests/lib.sh gives no HTTP/2 origin port"
T=https://localhost:$ORIGIN_H2PORT

cat >"$WORK/curls.sh" <<SH
#!/bin/sh
o=\$1
curl -sS --http2 -w '%{http_version} %{http_code}\n' -o "\$o/small.txt" $T/small.txt \
    -o "\$o/data.json" $T/data.json >"\$o/curl.codes" || exit 11
curl -sS --http2 -I $T/index.html | grep -i -e '^HTTP' -e '^content-length' | tr -d '\r' >"\$o/head.txt"
curl -sS --http2 -o "\$o/binary.bin" $T/binary.bin || exit 12
SH
chmod 755 "$WORK/curls.sh"

# Record: dumpcap on lo, secrets from curl.
dumpcap -q -i lo -f "tcp port $ORIGIN_H2PORT" -w "$WORK/h2.pcapng" 2>"$WORK/dumpcap.log" &
DC=$!
_LIB_PIDS+=("$DC")
for _ in $(seq 50); do grep -q 'Capturing on' "$WORK/dumpcap.log" 2>/dev/null && break; sleep 0.1; done
# dumpcap says so just before it captures: one probe connection to be sure it sees packets.
sleep 0.5
mkdir -p "$WORK/out.rec" "$WORK/out"
SSLKEYLOGFILE=$WORK/keys.log CURL_CA_BUNDLE=$TEST_CA "$WORK/curls.sh" "$WORK/out.rec" ||
    fail "recording run failed"
sleep 0.5
kill -INT "$DC"
wait "$DC"
[ "$(sort -u "$WORK/out.rec/curl.codes")" = "2 200" ] || fail "curl did not use HTTP/2: $(cat "$WORK/out.rec/curl.codes")"
[ -s "$WORK/keys.log" ] || fail "curl wrote no key log"
stop_origin

cat >"$WORK/client.sh" <<SH
#!/bin/sh
"$WORK/curls.sh" "\$1" || exit \$?
nghttp -n -s $T/binary.bin $T/small.txt >"\$1/nghttp.stat" 2>&1 || exit 13
nghttp $T/small.txt >"\$1/nghttp.txt" || exit 14
SH
chmod 755 "$WORK/client.sh"
run_replay "$WORK/replay.log" "$WORK/h2.pcapng" --keylog "$WORK/keys.log" --strict \
    --report "$WORK/r.json" -- "$WORK/client.sh" "$WORK/out"
[ "$REPLAY_RC" = 0 ] || { cat "$WORK/replay.log" >&2; fail "replay: status $REPLAY_RC"; }
for f in small.txt data.json curl.codes head.txt binary.bin; do
    cmp -s "$WORK/out.rec/$f" "$WORK/out/$f" ||
        fail "replay: $f differs: $(diff "$WORK/out.rec/$f" "$WORK/out/$f" | head -5)"
done
cmp -s "$WORK/out/nghttp.txt" "$WWW/small.txt" || fail "nghttp got another small.txt"
"$PY" - "$WORK/r.json" <<'EOF2' || fail "the report does not show HTTP/2 requests from curl and nghttp"
import json, sys
r = json.load(open(sys.argv[1]))["requests"]
assert all(x["matched"] and x["httpVersion"] == "HTTP/2" for x in r), r
assert {x["process"] for x in r} == {"curl", "nghttp"}, {x["process"] for x in r}
assert len(r) == 7, len(r)
EOF2
log "HTTP/2 replay from a dumpcap capture + key log: curl --http2 and nghttp served over h2"

# The same capture as classic pcap (editcap), secrets from the key log alone.
if command -v editcap >/dev/null; then
    editcap -F pcap "$WORK/h2.pcapng" "$WORK/h2.pcap" || fail "editcap failed"
    run_replay "$WORK/pcap.log" "$WORK/h2.pcap" --keylog "$WORK/keys.log" --strict -- sh -c \
        "curl -sS --http2 $T/small.txt >$WORK/pcap.out"
    [ "$REPLAY_RC" = 0 ] && cmp -s "$WORK/pcap.out" "$WORK/out.rec/small.txt" ||
        fail "classic pcap replay: status $REPLAY_RC, $(cat "$WORK/pcap.log")"
    log "classic pcap + key log: replayed"
fi

# Without the secrets nothing is decrypted: every request is unmatched (404).
run_replay "$WORK/nokeys.log" "$WORK/h2.pcapng" -- sh -c \
    "curl -sS --http2 -o /dev/null -w '%{http_code}' $T/small.txt >$WORK/nokeys.code"
[ "$(cat "$WORK/nokeys.code")" = 404 ] || fail "without --keylog: $(cat "$WORK/nokeys.code")"
exit 0
