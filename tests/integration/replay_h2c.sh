#!/bin/bash
# SPDX-License-Identifier: MIT
# Cleartext HTTP/2 with prior knowledge (h2c, no TLS, no Upgrade) from nginx's h2c port,
# recorded in spawn mode: curl --http2-prior-knowledge, and nghttp with two streams on one
# connection (curl 7.88 cannot reuse an h2c connection: "Error in the HTTP2 framing layer",
# direct as well). nginx is stopped and mitmreplay answers the same command over h2c (its
# server recognises the client's preface): same bodies, HTTP/2 in curl's view and in the
# report. Then a client that does not trust the replay's CA: the command sees the
# certificate error (curl exits 60) and mitmreplay says what went wrong, in one line.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl nghttp "$PY"
need_replay
start_origin
[ -n "${ORIGIN_H2CPORT:-}" ] || skip "tests/lib.sh gives no h2c origin port"
H=http://127.0.0.1:$ORIGIN_H2CPORT
T=https://127.0.0.1:$ORIGIN_TLSPORT

cat >"$WORK/client.sh" <<SH
#!/bin/sh
o=\$1
curl -sS --http2-prior-knowledge -w '%{http_version} %{http_code}\n' -o "\$o/small.txt" \
    $H/small.txt >"\$o/codes" || exit 11
nghttp -n -s $H/small.txt $H/binary.bin | awk '\$7 ~ /^\// {print \$5, \$6, \$7}' | sort >"\$o/streams" || exit 12
nghttp $H/binary.bin >"\$o/binary.bin" || exit 13
SH
chmod 755 "$WORK/client.sh"
mkdir -p "$WORK/out.rec" "$WORK/out"
"$MITMREC" -q -o "$WORK/rec.pcapng" --cacert "$TEST_CA" -- sh -c \
    "$WORK/client.sh $WORK/out.rec && curl -sS -o $WORK/out.rec/tls.txt $T/small.txt" \
    2>"$WORK/rec.log" || { cat "$WORK/rec.log" >&2; fail "recording failed"; }
[ "$(cat "$WORK/out.rec/codes")" = "2 200" ] || fail "curl did not use h2c: $(cat "$WORK/out.rec/codes")"
[ "$(cat "$WORK/out.rec/streams")" = "$(printf '200 35 /small.txt\n200 64K /binary.bin')" ] ||
    fail "nghttp's two streams: $(cat "$WORK/out.rec/streams")"
same_file "$WORK/out.rec/small.txt" "$WWW/small.txt" "recording run"
same_file "$WORK/out.rec/binary.bin" "$WWW/binary.bin" "recording run"
[ "$(har_query "$WORK/rec.har" '" ".join(e["request"]["httpVersion"] for e in h["log"]["entries"] if e["request"]["url"].startswith("http:"))')" = "HTTP/2 HTTP/2 HTTP/2 HTTP/2" ] ||
    fail "the HAR does not show four h2c requests"
stop_origin

run_replay "$WORK/replay.log" "$WORK/rec.pcapng" --strict --report "$WORK/r.json" -- \
    "$WORK/client.sh" "$WORK/out"
[ "$REPLAY_RC" = 0 ] || { cat "$WORK/replay.log" >&2; fail "replay: status $REPLAY_RC"; }
for f in codes streams small.txt binary.bin; do
    cmp -s "$WORK/out.rec/$f" "$WORK/out/$f" ||
        fail "replay: $f differs: $(diff "$WORK/out.rec/$f" "$WORK/out/$f" | head -5)"
done
"$PY" - "$WORK/r.json" <<'EOF' || fail "the report: $(cat "$WORK/r.json")"
import json, sys
r = json.load(open(sys.argv[1]))["requests"]
assert len(r) == 4 and all(x["matched"] and x["httpVersion"] == "HTTP/2" for x in r), r
assert sorted(x["process"] for x in r) == ["curl", "nghttp", "nghttp", "nghttp"], r
EOF
log "h2c prior knowledge: curl, and nghttp with 2 streams on one connection, replayed over HTTP/2, bytes identical"

# A client that trusts another CA: curl fails on the certificate, mitmreplay says why.
run_replay "$WORK/untrusted.log" "$WORK/rec.pcapng" -- \
    curl -sS --cacert "$TEST_CA" -o /dev/null "$T/small.txt"
[ "$REPLAY_RC" = 60 ] || fail "untrusted: curl exited $REPLAY_RC, expected 60: $(cat "$WORK/untrusted.log")"
[ "$(grep -c '^mitmreplay: TLS handshake with a client of 127.0.0.1:[0-9]* failed (does it trust the CA?)$' "$WORK/untrusted.log")" = 1 ] ||
    fail "untrusted: mitmreplay did not say so once: $(cat "$WORK/untrusted.log")"
log "a client not trusting the CA: curl exit 60, $(grep 'TLS handshake' "$WORK/untrusted.log")"
exit 0
