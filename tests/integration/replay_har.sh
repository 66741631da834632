#!/bin/bash
# SPDX-License-Identifier: MIT
# HAR input in Chrome's export layout (fixtures/replay/chrome-export.har: _initiator,
# _resourceType, HTTP/2 pseudo-headers among the request headers, base64 bodies, a
# Content-Encoding whose body Chrome already decoded, a blocked request with status 0):
# curl gets each body byte for byte over HTTP/2 (the recording's protocol), without the
# Content-Encoding header (the body is served decoded), the POST matches on its JSON body, and
# the blocked request is not in the replay (404).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl "$PY"
need_replay
HAR=$top_srcdir/fixtures/replay/chrome-export.har
mkdir -p "$WORK/want" "$WORK/got"
"$PY" - "$HAR" "$WORK/want" <<'EOF2' || fail "cannot read the fixture"
import base64, json, os, sys
for e in json.load(open(sys.argv[1]))["log"]["entries"]:
    c = e["response"]["content"]
    if e["response"]["status"] == 0:
        continue
    body = base64.b64decode(c["text"]) if c.get("encoding") == "base64" else c["text"].encode()
    name = e["request"]["url"].rsplit("/", 1)[1] or "index.html"
    open(os.path.join(sys.argv[2], name), "wb").write(body)
EOF2
U=https://shop.example.test
C="curl -sS --resolve shop.example.test:443:127.0.0.1"
run_replay "$WORK/r.log" "$HAR" --strict -- sh -c "
  $C -w '%{http_version} %{http_code}\n' -o $WORK/got/index.html -D $WORK/got/index.headers $U/ \
     -o $WORK/got/app.js $U/app.js -o $WORK/got/logo.png $U/logo.png >$WORK/got/versions &&
  $C -H 'content-type: application/json' -d '{\"sku\":\"A1\",\"qty\":2}' $U/api/cart -o $WORK/got/cart -w '%{http_code}\n' >$WORK/got/cart.code"
[ "$REPLAY_RC" = 0 ] || { cat "$WORK/r.log" >&2; fail "replay of the Chrome HAR: status $REPLAY_RC"; }
for f in index.html app.js logo.png cart; do
    cmp -s "$WORK/want/$f" "$WORK/got/$f" || fail "$f differs from the HAR's body"
done
[ "$(sort -u "$WORK/got/versions")" = "2 200" ] || fail "expected HTTP/2 200 for each: $(cat "$WORK/got/versions")"
[ "$(cat "$WORK/got/cart.code")" = 201 ] || fail "POST /api/cart: $(cat "$WORK/got/cart.code")"
grep -qi '^content-encoding' "$WORK/got/index.headers" && fail "Content-Encoding served with a decoded body"
grep -qi '^vary: Accept-Encoding' "$WORK/got/index.headers" || fail "recorded headers missing: $(cat "$WORK/got/index.headers")"
grep -q '4 requests, 4 replayed, 0 unmatched' "$WORK/r.log" || fail "summary: $(cat "$WORK/r.log")"
log "Chrome HAR: 4 requests over HTTP/2, bodies equal to the HAR's"
# The blocked request (status 0) is not replayed.
run_replay "$WORK/r2.log" "$HAR" -q -- sh -c "$C -o /dev/null -w '%{http_code}' $U/tracker.js >$WORK/got/tracker"
[ "$(cat "$WORK/got/tracker")" = 404 ] || fail "the blocked request got $(cat "$WORK/got/tracker")"

# A HAR with entries that cannot be replayed (fixtures/fuzz/harread/edge.har: an ftp:// URL,
# port 99999, status 1000, bad base64; also a request with no response, which is normal):
# one warning counting them, and the usable ones are served. Its first entry is
# https://example.org:8443/a?x=1 with the body "hello"; its second http://[::1]/p, a POST
# of "post" answered "hi!!!" (base64 with a line break and no padding).
EDGE=$top_srcdir/fixtures/fuzz/harread/edge.har
run_replay "$WORK/r3.log" "$EDGE" -- sh -c "
  curl -sS --resolve example.org:8443:127.0.0.1 https://example.org:8443/a?x=1 -o $WORK/got/edge1 &&
  curl -sS -g --data-binary post http://[::1]/p -o $WORK/got/edge2"
[ "$REPLAY_RC" = 0 ] || { cat "$WORK/r3.log" >&2; fail "replay of edge.har: status $REPLAY_RC"; }
[ "$(grep -c 'cannot be replayed' "$WORK/r3.log")" = 1 ] &&
    grep -q "edge.har: 4 of its entries cannot be replayed" "$WORK/r3.log" ||
    fail "edge.har: expected one warning counting 4 unusable entries: $(cat "$WORK/r3.log")"
[ "$(cat "$WORK/got/edge1")" = hello ] || fail "edge.har entry 1 served: $(head -c 100 "$WORK/got/edge1")"
[ "$(cat "$WORK/got/edge2")" = 'hi!!!' ] || fail "edge.har entry 2 served: $(head -c 100 "$WORK/got/edge2")"
log "edge.har: 4 unusable entries counted in one warning, the usable ones served"
exit 0
