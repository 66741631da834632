#!/bin/bash
# SPDX-License-Identifier: MIT
# Trailers, the fields after a body (gRPC's grpc-status rides in them): nginx adds
# X-Checksum after /trailer/small.txt, in the chunked coding to curl over HTTP/1.1 and as a
# last HEADERS frame to nghttp over HTTP/2. Recorded in spawn mode: both are in the HAR's
# "_trailers". Replayed with nginx stopped, from the pcapng and from the HAR: curl's raw
# bytes (--raw: chunk sizes, the trailer) are the recorded ones, and nghttp receives the
# trailer. mitmreplay sent neither before. An HTTP/1.0 client gets the body with its length.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl nghttp "$PY"
need_replay
start_origin
[ -n "${ORIGIN_H2PORT:-}" ] || skip "tests/lib.sh gives no HTTP/2 origin port"
T=https://127.0.0.1:$ORIGIN_TLSPORT
H2=https://127.0.0.1:$ORIGIN_H2PORT
cat >"$WORK/client.sh" <<SH
#!/bin/sh
curl -sS --raw -o "\$1.h1" $T/trailer/small.txt || exit 11
nghttp -v $H2/trailer/small.txt >"\$1.nghttp" 2>&1 || exit 12
grep -o 'recv (stream_id=[0-9]*) x-checksum: .*' "\$1.nghttp" | sed 's/stream_id=[0-9]*/stream/' >"\$1.h2"
SH
chmod 755 "$WORK/client.sh"
"$MITMREC" -q -o "$WORK/t.pcapng" --cacert "$TEST_CA" -- "$WORK/client.sh" "$WORK/rec" \
    2>"$WORK/rec.log" || { cat "$WORK/rec.log" >&2; fail "recording failed"; }
want='X-Checksum: sum-/trailer/small.txt'
grep -q $'^0\r$' "$WORK/rec.h1" && grep -qF "$want" "$WORK/rec.h1" ||
    fail "recording run: curl saw no trailer: $(od -c "$WORK/rec.h1" | tail -n 4)"
[ "$(cat "$WORK/rec.h2")" = "recv (stream) x-checksum: sum-/trailer/small.txt" ] ||
    fail "recording run: nghttp saw no trailer: $(cat "$WORK/rec.nghttp")"
[ "$(har_query "$WORK/t.har" '[[t["name"].lower() + ": " + t["value"] for t in e["response"].get("_trailers", [])] for e in h["log"]["entries"]]')" = \
  '[["x-checksum: sum-/trailer/small.txt"], ["x-checksum: sum-/trailer/small.txt"]]' ] ||
    fail "the HAR's _trailers: $(har_query "$WORK/t.har" '[e["response"].get("_trailers") for e in h["log"]["entries"]]')"
stop_origin

for from in t.pcapng t.har; do
    run_replay "$WORK/$from.log" "$WORK/$from" --strict -- "$WORK/client.sh" "$WORK/$from"
    [ "$REPLAY_RC" = 0 ] || fail "replay from $from: status $REPLAY_RC: $(cat "$WORK/$from.log")"
    cmp -s "$WORK/rec.h1" "$WORK/$from.h1" ||
        fail "replay from $from: curl's raw bytes differ: $(od -c "$WORK/$from.h1" | tail -n 4)"
    cmp -s "$WORK/rec.h2" "$WORK/$from.h2" ||
        fail "replay from $from: nghttp got no trailer: $(grep -i 'recv' "$WORK/$from.nghttp" | tail -n 5)"
done
log "trailers replayed from the pcapng and from the HAR: chunked to curl, HEADERS to nghttp"

# An HTTP/1.0 request gets no transfer coding (RFC 9112 6.1): the body with its length, no
# trailer. curl --raw would show the chunk framing.
run_replay "$WORK/h10.log" "$WORK/t.pcapng" -- \
    curl -0 -sS --raw -D "$WORK/h10.head" -o "$WORK/h10.body" "$T/trailer/small.txt"
[ "$REPLAY_RC" = 0 ] || fail "HTTP/1.0 replay: status $REPLAY_RC: $(cat "$WORK/h10.log")"
cmp -s "$WORK/h10.body" "$WWW/small.txt" ||
    fail "HTTP/1.0 replay: the body is not the file: $(od -c "$WORK/h10.body" | head -n 3)"
grep -qi '^transfer-encoding' "$WORK/h10.head" && fail "HTTP/1.0 replay: chunked: $(cat "$WORK/h10.head")"
grep -qi "^content-length: $(stat -c %s "$WWW/small.txt")"$'\r'"\$" "$WORK/h10.head" ||
    fail "HTTP/1.0 replay: no Content-Length: $(cat "$WORK/h10.head")"
log "HTTP/1.0: the body with Content-Length, not chunked"
exit 0
