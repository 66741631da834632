#!/bin/bash
# SPDX-License-Identifier: MIT
# Clients other than curl: openssl s_client through the proxy (a GET typed by hand), and
# Python's urllib (GETs, a form POST, 204, 304, a followed redirect, plain HTTP GET and POST).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need openssl tshark node "$PY"
start_origin
start_mitmrec -o "$WORK/out.pcapng" --cacert "$TEST_CA"

# 1. openssl s_client: CONNECT through the proxy, verify mitmrec's certificate for localhost.
printf 'GET /small.txt HTTP/1.1\r\nHost: localhost:%s\r\nUser-Agent: s_client\r\nConnection: close\r\n\r\n' \
    "$ORIGIN_TLSPORT" >"$WORK/sclient.in"
timeout 20 openssl s_client -quiet -proxy "127.0.0.1:$MITM_PORT" -connect "localhost:$ORIGIN_TLSPORT" \
    -servername localhost -CAfile "$MITM_CA" -verify_return_error -verify_hostname localhost \
    <"$WORK/sclient.in" >"$WORK/sclient.out" 2>"$WORK/sclient.err"
rc=$?
[ $rc -ne 124 ] || fail "openssl s_client did not finish within 20 s (Connection: close was sent)"
[ $rc -eq 0 ] || fail "openssl s_client exited $rc: $(tail -n 5 "$WORK/sclient.err")"
head -n 1 "$WORK/sclient.out" | grep -q '^HTTP/1.1 200' ||
    fail "openssl s_client: expected HTTP/1.1 200, got: $(head -n 1 "$WORK/sclient.out")"
tail -c "$(stat -c %s "$WWW/small.txt")" "$WORK/sclient.out" | cmp -s - "$WWW/small.txt" ||
    fail "openssl s_client: the body is not small.txt"

# 2. Python urllib through the proxy, trusting the mitmrec CA.
"$PY" - "$MITM_PORT" "$MITM_CA" "$ORIGIN_TLSPORT" "$ORIGIN_PORT" "$WWW" >"$WORK/py.out" 2>&1 <<'EOF' ||
import os, ssl, sys, urllib.error, urllib.parse, urllib.request

proxy, cafile, tlsport, port, www = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({"https": "http://127.0.0.1:" + proxy,
                                 "http": "http://127.0.0.1:" + proxy}),
    urllib.request.HTTPSHandler(context=ctx))
T = "https://localhost:%s" % tlsport
H = "http://127.0.0.1:%s" % port


def fetch(url, data=None, headers={}, want=200):
    req = urllib.request.Request(url, data=data, headers=dict(headers, **{"User-Agent": "mitmrec-test"}))
    try:
        with opener.open(req, timeout=20) as r:
            status, body, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, body, hdrs = e.code, e.read(), e.headers
    if status != want:
        sys.exit("%s %s: status %d, want %d" % (req.get_method(), url, status, want))
    return body, hdrs


def served(name):
    with open(os.path.join(www, name), "rb") as f:
        return f.read()


body, hdrs = fetch(T + "/small.txt")
assert body == served("small.txt"), "small.txt body"
etag = hdrs["ETag"]
assert etag, "no ETag from the origin"
body, _ = fetch(T + "/data.json")
assert body == served("data.json"), "data.json body"
form = urllib.parse.urlencode({"name": "mitmrec", "value": "42"}).encode()
body, _ = fetch(T + "/post", data=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
assert body == b"posted\n", "POST answer %r" % body
body, _ = fetch(T + "/empty", want=204)
assert body == b"", "204 with a body"
fetch(T + "/small.txt", headers={"If-None-Match": etag}, want=304)
body, _ = fetch(T + "/redirect")          # 302, then urllib follows to /small.txt
assert body == served("small.txt"), "redirect target body"
body, _ = fetch(H + "/small.txt")
assert body == served("small.txt"), "plain small.txt body"
body, _ = fetch(H + "/post", data=b"a=1&b=two", headers={"Content-Type": "application/x-www-form-urlencoded"})
assert body == b"posted\n", "plain POST answer %r" % body
print("python ok")
EOF
    fail "python urllib client: $(cat "$WORK/py.out")"

stop_mitmrec

check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
    --expect "GET /small.txt 200" \
    --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "POST /post 200" \
    --expect "GET /empty 204" --expect "GET /small.txt 304" --expect "GET /redirect 302" \
    --expect "GET /small.txt 200" --expect "GET /small.txt 200" --expect "POST /post 200" \
    /small.txt="$WWW/small.txt" /data.json="$WWW/data.json"

# The POSTs carry their form bodies in postData.
"$PY" - "$MITM_HAR" <<'EOF' || fail "HAR postData check failed"
import json, sys
h = json.load(open(sys.argv[1]))
posts = [e for e in h["log"]["entries"] if e["request"]["method"] == "POST"]
want = {"name=mitmrec&value=42": {"name": "mitmrec", "value": "42"}, "a=1&b=two": {"a": "1", "b": "two"}}
seen = set()
for e in posts:
    pd = e["request"].get("postData")
    if not pd:
        sys.exit("POST %s has no postData" % e["request"]["url"])
    if not pd.get("mimeType", "").startswith("application/x-www-form-urlencoded"):
        sys.exit("POST postData.mimeType is %r" % pd.get("mimeType"))
    text = pd.get("text")
    if text not in want:
        sys.exit("POST postData.text is %r" % text)
    if "params" in pd and pd["params"]:
        got = {p["name"]: p["value"] for p in pd["params"]}
        if got != want[text]:
            sys.exit("POST postData.params %r, want %r" % (pd["params"], want[text]))
    if e["request"]["bodySize"] != len(text):
        sys.exit("POST bodySize %r, want %d" % (e["request"]["bodySize"], len(text)))
    seen.add(text)
if seen != set(want):
    sys.exit("POST bodies seen: %r" % seen)
EOF

# The redirect entry names its target, and the s_client request is there by its User-Agent.
loc=$(har_query "$MITM_HAR" '[e["response"]["redirectURL"] for e in h["log"]["entries"] if e["response"]["status"] == 302]')
case $loc in *'/small.txt'*) ;; *) fail "302 entry redirectURL is $loc" ;; esac
n=$(tshark_fields "$MITM_PCAP" 'http.user_agent == "s_client"' frame.number | wc -l)
[ "$n" = 1 ] || fail "tshark finds $n requests with User-Agent s_client, expected 1"

log "ok"
exit 0
