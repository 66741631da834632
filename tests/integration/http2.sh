#!/bin/bash
# SPDX-License-Identifier: MIT
# HTTP/2 through mitmrec, against nginx's HTTP/2 ports (ORIGIN_H2PORT over TLS, ORIGIN_H2CPORT
# cleartext with prior knowledge):
#   explicit proxy: curl --http2 multiplexing five URLs (gzip JSON, 1 MiB and 5 MiB among them)
#     on one connection, an HTTP/2 POST, Python's http.client (ALPN http/1.1 only: the HTTP/2
#     origin must fall back to HTTP/1.1), h2c with prior knowledge inside a CONNECT tunnel;
#   spawn mode (skipped with a note when unavailable): nghttp -nv (no proxy support) with
#     several URLs on one connection, and curl h2c with prior knowledge.
# Judged by the HAR (httpVersion "HTTP/2", method, URL, status, sha256 of bodies), by tshark's
# http2 dissector (HEADERS frames, header values, streams, bodies, request count == entries),
# by check_recording and by the read-mode invariant (mitmrec -r gives the same entries).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark node "$PY"
start_origin
T=https://127.0.0.1:$ORIGIN_H2PORT
C=http://127.0.0.1:$ORIGIN_H2CPORT
RECPY=$top_srcdir/tests/integration/recording.py
mkdir -p dl
head -c 3000 "$WWW/binary.bin" >"$WORK/post.bin"
printf 'posted\n' >"$WORK/posted.txt"

# The origin really speaks HTTP/2 on both ports (else the test proves nothing).
v=$(curl -q -sS --cacert "$TEST_CA" --http2 -o /dev/null -w '%{http_version}' "$T/small.txt") ||
    fail "direct curl --http2 $T/small.txt failed"
[ "$v" = 2 ] || fail "nginx answers HTTP/$v on $T, expected 2: check tests/nginx.conf.in"
v=$(curl -q -sS --http2-prior-knowledge -o /dev/null -w '%{http_version}' "$C/small.txt") ||
    fail "direct curl --http2-prior-knowledge $C/small.txt failed"
[ "$v" = 2 ] || fail "nginx answers HTTP/$v on $C (h2c), expected 2"

# judge PCAP HAR SPEC...: each SPEC is "VERSION METHOD URL STATUS [BODYFILE [POSTFILE]]" for
# one entry (any order), VERSION being the HAR httpVersion; checks the HAR entries against the
# SPECs one to one, and tshark's HTTP/2 view against the HTTP/2 entries (request count, method,
# authority, path, status, bodies); prints "TCPSTREAM NSTREAMS" for each TCP connection
# carrying HTTP/2 into $WORK/h2streams.
judge() {
    local pcap=$1 har=$2
    shift 2
    "$PY" "$RECPY" http2 --pcap "$pcap" "${TSHARK_DECODE_AS[@]}" >"$WORK/h2view.json" ||
        fail "recording.py http2 failed on $pcap"
    "$PY" - "$har" "$WORK/h2view.json" "$WORK/h2streams" "$@" <<'EOF' || fail "HTTP/2 checks of $pcap / $har failed (see above)"
import base64, collections, hashlib, json, sys, urllib.parse

har, view, streams_out = sys.argv[1:4]
specs = [s.split() for s in sys.argv[4:]]
entries = json.load(open(har))["log"]["entries"]
h2 = [json.loads(l) for l in open(view) if l.strip()]
bad = []


def sha(b):
    return hashlib.sha256(b).hexdigest()


def body(c):
    if not c or c.get("text") is None:
        return None
    # content.encoding (HAR 1.2), or mitmrec's "_encoding" for a binary postData.text.
    b64 = c.get("encoding") == "base64" or c.get("_encoding") == "base64"
    return base64.b64decode(c["text"]) if b64 else c["text"].encode()


def read(f):
    with open(f, "rb") as fh:
        return fh.read()


if len(entries) != len(specs):
    bad.append("the HAR has %d entries, want %d: %s" % (
        len(entries), len(specs), [(e["request"]["method"], e["request"]["url"]) for e in entries]))
rest = list(entries)
for s in specs:
    ver, method, url, status = s[0], s[1], s[2], int(s[3])
    e = next((e for e in rest if e["request"]["method"] == method and e["request"]["url"] == url
              and e["response"]["status"] == status), None)
    if e is None:
        bad.append("no HAR entry %s %s %d (entries: %s)" % (method, url, status, [
            (x["request"]["method"], x["request"]["url"], x["response"]["status"]) for x in rest]))
        continue
    rest.remove(e)
    what = "entry %s (%s %s)" % (e.get("_index"), method, url)
    for side in ("request", "response"):
        if e[side].get("httpVersion") != ver:
            bad.append("%s: %s.httpVersion %r, want %r" % (what, side, e[side].get("httpVersion"), ver))
    if "_error" in e or "_error" in e["response"]:
        bad.append("%s: _error %r" % (what, e.get("_error", e["response"].get("_error"))))
    if len(s) > 4 and s[4] != "-":
        want, got = read(s[4]), body(e["response"].get("content"))
        if got != want:
            bad.append("%s: response body %s, want %d bytes sha256 %s" % (
                what, "missing" if got is None else "%d bytes sha256 %s" % (len(got), sha(got)[:16]),
                len(want), sha(want)[:16]))
        if e["response"]["content"].get("size") != len(want):
            bad.append("%s: content.size %r, want %d" % (what, e["response"]["content"].get("size"), len(want)))
    if len(s) > 5:
        want = read(s[5])
        pd = e["request"].get("postData")
        got = body(pd)
        if got != want:
            bad.append("%s: postData %s, want %d bytes sha256 %s" % (
                what, "missing" if got is None else "%d bytes sha256 %s" % (len(got), sha(got)[:16]),
                len(want), sha(want)[:16]))
        if e["request"].get("bodySize") != len(want):
            bad.append("%s: request.bodySize %r, want %d" % (what, e["request"].get("bodySize"), len(want)))
    if ver == "HTTP/2":
        names = [h["name"] for h in e["request"]["headers"]]
        if ":method" not in names or ":path" not in names:
            bad.append("%s: request headers lack the HTTP/2 pseudo-headers: %s" % (what, names))
        # tshark's view of the same exchange.
        u = urllib.parse.urlsplit(url)
        path = u.path + ("?" + u.query if u.query else "")
        t = [q for q in h2 if q["method"] == method and q["path"] == path
             and q["authority"] == u.netloc and q["scheme"] == u.scheme]
        if not t:
            bad.append("%s: tshark's http2 dissector shows no such request" % what)
            continue
        q = next((q for q in t if q.get("_used") is None and q["status"] == status), t[0])
        q["_used"] = 1
        if q["status"] != status:
            bad.append("%s: tshark's :status is %r, want %d" % (what, q["status"], status))
        if len(s) > 4 and s[4] != "-":
            want = read(s[4])
            if q["response_body_sha256"] != sha(want):
                bad.append("%s: tshark's HTTP/2 response body is %s bytes sha256 %s, want %d bytes %s"
                           % (what, q["response_body_len"], (q["response_body_sha256"] or "-")[:16],
                              len(want), sha(want)[:16]))
        if len(s) > 5 and q["request_body_sha256"] != sha(read(s[5])):
            bad.append("%s: tshark's HTTP/2 request body is %s bytes, want the %d posted"
                       % (what, q["request_body_len"], len(read(s[5]))))
        if e.get("_pcapng", {}).get("stream") != q["tcp"]:
            bad.append("%s: _pcapng.stream %r, tshark has the request in tcp.stream %d"
                       % (what, e.get("_pcapng", {}).get("stream"), q["tcp"]))
n2 = sum(1 for e in entries if e["request"].get("httpVersion") == "HTTP/2")
if len(h2) != n2:
    bad.append("tshark shows %d HTTP/2 requests, the HAR has %d HTTP/2 entries: %s" % (
        len(h2), n2, [(q["method"], q["authority"], q["path"]) for q in h2]))
per = collections.Counter(q["tcp"] for q in h2)
with open(streams_out, "w") as f:
    for tcp, n in sorted(per.items()):
        f.write("%d %d\n" % (tcp, n))
for b in bad:
    print("http2: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

# h2_headers_seen PCAP VALUE...: tshark -Y http2.type==1 shows each VALUE among http2.header.value.
h2_headers_seen() {
    local pcap=$1 v
    shift
    tshark_fields "$pcap" 'http2.type == 1' http2.header.value >"$WORK/h2hv.txt"
    [ -s "$WORK/h2hv.txt" ] || fail "tshark -Y http2.type==1 shows no HEADERS frame in $pcap"
    for v in "$@"; do
        tr ',' '\n' <"$WORK/h2hv.txt" | grep -qxF -- "$v" ||
            fail "tshark's http2.header.value in $pcap never is '$v'"
    done
}

# ---- 1. explicit proxy -----------------------------------------------------------------------
start_mitmrec -o "$WORK/proxy.pcapng" --cacert "$TEST_CA"

# A client failure is a problem (listed at the end) and skips the judging of that part only.
P1_OK=1
# curl multiplexes five URLs over one HTTP/2 connection (-Z, --compressed for the gzip JSON).
out=$(pcurl --no-progress-meter --http2 -Z --compressed -w '%{http_version} %{http_code} %{num_connects}\n' \
    -o dl/small.txt "$T/small.txt" -o dl/data.json "$T/data.json" \
    -o dl/binary.bin "$T/binary.bin" -o dl/1m.bin "$T/1m.bin" -o dl/5m.bin "$T/5m.bin?big=1" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ "$(printf '%s\n' "$out" | awk '{print $1, $2}' | sort -u)" != "2 200" ]; then
    problem "explicit proxy: curl --http2 -Z (five URLs, HTTPS, ALPN h2) failed ($rc): $(printf '%s' "$out" | tr '\n' ' ')"
    P1_OK=0
else
    conns=$(printf '%s\n' "$out" | awk '{n += $3} END {print n}')
    [ "$conns" = 1 ] || fail "curl --http2 -Z opened $conns connections through the proxy, expected 1: $out"
    for f in small.txt data.json binary.bin 1m.bin 5m.bin; do
        same_file "dl/$f" "$WWW/$f" "curl --http2 download $f"
    done
fi

# An HTTP/2 POST with a binary body.
code=$(pcurl --http2 -o dl/post.out -w '%{http_version} %{http_code}' --data-binary @"$WORK/post.bin" \
    -H 'Content-Type: application/octet-stream' "$T/post" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ "$code" != "2 200" ]; then
    problem "explicit proxy: curl --http2 POST failed ($rc): $code"
    P1_OK=0
else
    same_file dl/post.out "$WORK/posted.txt" "HTTP/2 POST answer"
fi

# Python's http.client speaks HTTP/1.1 only: it offers ALPN http/1.1 alone, and the origin,
# which prefers h2, must be left to answer HTTP/1.1 (mitmrec passes the client's offer on).
"$PY" - "$MITM_PORT" "$MITM_CA" "$ORIGIN_H2PORT" "$WWW" >"$WORK/py.out" 2>&1 <<'EOF' ||
import http.client, os, ssl, sys

proxy, cafile, port, www = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=cafile)
ctx.set_alpn_protocols(["http/1.1"])
c = http.client.HTTPSConnection("127.0.0.1", int(proxy), context=ctx, timeout=20)
c.set_tunnel("localhost", int(port))
for name in ("small.txt", "data.json"):
    c.request("GET", "/" + name, headers={"User-Agent": "mitmrec-test-python"})
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, "%s: status %d" % (name, r.status)
    assert r.version == 11, "%s: HTTP version %r" % (name, r.version)
    assert body == open(os.path.join(www, name), "rb").read(), name + " body"
alpn = c.sock.selected_alpn_protocol()
assert alpn == "http/1.1", "ALPN between python and mitmrec: %r" % alpn
print("python ok")
EOF
    fail "python http.client (ALPN http/1.1): $(cat "$WORK/py.out")"

# h2c with prior knowledge, inside a CONNECT tunnel (-p): no TLS, HTTP/2 from the first byte.
code=$(pcurl -p --http2-prior-knowledge -o dl/h2c.txt -w '%{http_version} %{http_code}' "$C/small.txt") ||
    fail "curl -p --http2-prior-knowledge through the proxy failed"
[ "$code" = "2 200" ] || fail "h2c through a CONNECT tunnel: version and status '$code'"
same_file dl/h2c.txt "$WWW/small.txt" "h2c download"

stop_mitmrec
har_validate "$MITM_HAR"
if [ $P1_OK = 1 ]; then
    judge "$MITM_PCAP" "$MITM_HAR" \
        "HTTP/2 GET $T/small.txt 200 $WWW/small.txt" \
        "HTTP/2 GET $T/data.json 200 $WWW/data.json" \
        "HTTP/2 GET $T/binary.bin 200 $WWW/binary.bin" \
        "HTTP/2 GET $T/1m.bin 200 $WWW/1m.bin" \
        "HTTP/2 GET $T/5m.bin?big=1 200 $WWW/5m.bin" \
        "HTTP/2 POST $T/post 200 $WORK/posted.txt $WORK/post.bin" \
        "HTTP/1.1 GET https://localhost:$ORIGIN_H2PORT/small.txt 200 $WWW/small.txt" \
        "HTTP/1.1 GET https://localhost:$ORIGIN_H2PORT/data.json 200 $WWW/data.json" \
        "HTTP/2 GET $C/small.txt 200 $WWW/small.txt"
    # The five multiplexed requests share one tcp.stream in the pcapng.
    awk '$2 >= 5 {ok = 1} END {exit !ok}' "$WORK/h2streams" ||
        fail "no TCP connection carries 5 HTTP/2 requests in tshark's view (tcp.stream, requests: $(tr '\n' ' ' <"$WORK/h2streams"))"
    h2_headers_seen "$MITM_PCAP" GET POST /small.txt /data.json /5m.bin?big=1 /post 200 "127.0.0.1:$ORIGIN_H2PORT" \
        "127.0.0.1:$ORIGIN_H2CPORT" gzip
    check_recording "$MITM_PCAP" "$MITM_HAR" --strict --tls-versions 0x0304 \
        --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /binary.bin 200" \
        --expect "GET /1m.bin 200" --expect "GET /5m.bin?big=1 200" --expect "POST /post 200" \
        --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /small.txt 200" \
        /small.txt="$WWW/small.txt" /data.json="$WWW/data.json" /binary.bin="$WWW/binary.bin" \
        /1m.bin="$WWW/1m.bin" /5m.bin?big=1="$WWW/5m.bin"
    check_same_entries "$MITM_PCAP" "$MITM_HAR"
    log "explicit proxy part ok"
fi

# ---- 1b. a header block past 256 KiB on the wire --------------------------------------------
# Node's HTTP/2 client (curl and nghttp refuse to send blocks over 64 KiB) through a CONNECT
# tunnel: a request with six fields of 60,000 random base64 characters (Huffman coding barely
# shrinks them: about 270 KB of HPACK), then a small request on the same connection. HPACK is
# decoded fragment by fragment, so both are in the HAR, the first with every field whole; the
# read mode gives the same entries.
start_mitmrec -o "$WORK/bighead.pcapng" --cacert "$TEST_CA"
out=$(node - "$MITM_PORT" "$MITM_CA" "$T/small.txt" 6 "$WORK/big" 2>&1 <<'EOF'
const http = require('http'), http2 = require('http2'), tls = require('tls');
const fs = require('fs'), crypto = require('crypto');
const [proxyPort, ca, url, n, prefix] = process.argv.slice(2);
const u = new URL(url);
function tunnel() {
  return new Promise((resolve, reject) => {
    const r = http.request({host: '127.0.0.1', port: +proxyPort, method: 'CONNECT', path: u.host});
    r.on('connect', (resp, sock) => resp.statusCode === 200 ? resolve(sock)
                                                            : reject(new Error('CONNECT ' + resp.statusCode)));
    r.on('error', reject);
    r.end();
  });
}
(async () => {
  const sock = await tunnel();
  const t = tls.connect({socket: sock, host: u.hostname, ca: fs.readFileSync(ca), ALPNProtocols: ['h2']});
  const s = http2.connect(url, {createConnection: () => t, maxSendHeaderBlockLength: 4 << 20});
  const get = (h) => new Promise((resolve, reject) => {
    const r = s.request(Object.assign({':path': u.pathname}, h));
    let st = 0, len = 0;
    r.on('response', (hh) => { st = hh[':status']; });
    r.on('data', (d) => { len += d.length; });
    r.on('end', () => resolve(st + ' ' + len));
    r.on('error', reject);
    r.end();
  });
  const h = {};
  for (let i = 1; i <= +n; i++) {
    h['x-big-' + i] = crypto.randomBytes(45000).toString('base64');
    fs.writeFileSync(prefix + i, h['x-big-' + i]);
  }
  console.log(await get(h));
  console.log(await get({}));
  s.close();
})().catch((e) => { console.error('node: ' + e.message); process.exit(1); });
EOF
) || fail "node's HTTP/2 requests through the proxy failed: $out"
size=$(stat -c %s "$WWW/small.txt")
[ "$out" = "$(printf '200 %s\n200 %s' "$size" "$size")" ] ||
    fail "node saw '$out', expected two 200s of $size bytes (nginx takes 128 KiB fields here)"
stop_mitmrec
har_validate "$MITM_HAR"
"$PY" - "$MITM_HAR" "$T" "$WORK"/big1 "$WORK"/big2 "$WORK"/big3 "$WORK"/big4 "$WORK"/big5 \
    "$WORK"/big6 <<'EOF' || fail "the big header block's entries (see above)"
import json, sys
har, t = sys.argv[1:3]
bigs = [open(f).read() for f in sys.argv[3:]]
es = json.load(open(har))["log"]["entries"]
bad = []
if len(es) != 2:
    bad.append("%d entries, want 2: %s" % (len(es), [e["request"]["url"] for e in es]))
else:
    big, small = es
    h = {x["name"]: x["value"] for x in big["request"]["headers"]}
    for i, v in enumerate(bigs, 1):
        got = h.get("x-big-%d" % i)
        if got != v:
            bad.append("entry 0: x-big-%d is %s, want the %d characters sent" % (
                i, "missing" if got is None else "%d other characters" % len(got), len(v)))
    for e, what in ((big, "entry 0"), (small, "entry 1")):
        if e["request"]["url"] != t + "/small.txt" or e["response"]["status"] != 200:
            bad.append("%s: %s %r" % (what, e["request"]["url"], e["response"]["status"]))
        if "_error" in e or "_error" in e["response"]:
            bad.append("%s: _error %r" % (what, e.get("_error", e["response"].get("_error"))))
    if big["request"]["httpVersion"] != "HTTP/2":
        bad.append("entry 0: httpVersion %r" % big["request"]["httpVersion"])
    if big.get("connection") != small.get("connection"):
        bad.append("the two entries are on connections %r and %r" % (
            big.get("connection"), small.get("connection")))
for b in bad:
    print("bighead: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
check_same_entries "$MITM_PCAP" "$MITM_HAR"
log "a 270 KB header block: both requests recorded, every field whole"

# ---- 2. spawn mode: nghttp (it has no proxy support) and curl h2c ----------------------------
if ! command -v nghttp >/dev/null 2>&1; then
    log "note: nghttp not found (Debian nghttp2-client): the spawn-mode part is skipped"
elif ! spawn_available; then
    log "note: spawn mode unavailable here ($SPAWN_WHY): the nghttp part is skipped"
else
    L=https://localhost:$ORIGIN_H2PORT
    cat >"$WORK/spawned.sh" <<EOF
#!/bin/sh
# nghttp: three URLs, one connection; -n discards the bodies (the HAR has them), -v the frames.
nghttp -nv "$L/small.txt" "$L/data.json" "$L/1m.bin" >"$WORK/nghttp.out" 2>&1 || exit 10
curl -q -sS --http2-prior-knowledge -o "$WORK/dl/sp-h2c.json" "$C/data.json" || exit 11
EOF
    chmod 755 "$WORK/spawned.sh"
    spawn_mitmrec 40 "$WORK/spawn.pcapng" --cacert "$TEST_CA" -- "$WORK/spawned.sh"
    n=$(grep -c ':status: 200' "$WORK/nghttp.out")
    if [ $SPAWN_RC -ne 0 ] || [ "$n" != 3 ]; then
        problem "spawn mode: the run exited $SPAWN_RC (10: nghttp failed, 11: curl h2c failed), nghttp saw $n ':status: 200' of 3: $(grep -E 'GOAWAY|error|SETTINGS expected' "$WORK/nghttp.out" | head -n 3 | tr '\n' ' ')"
        finish_problems
    fi
    same_file dl/sp-h2c.json "$WWW/data.json" "spawn-mode h2c download"
    har_validate "$MITM_HAR"
    judge "$MITM_PCAP" "$MITM_HAR" \
        "HTTP/2 GET $L/small.txt 200 $WWW/small.txt" \
        "HTTP/2 GET $L/data.json 200 $WWW/data.json" \
        "HTTP/2 GET $L/1m.bin 200 $WWW/1m.bin" \
        "HTTP/2 GET $C/data.json 200 $WWW/data.json"
    awk '$2 >= 3 {ok = 1} END {exit !ok}' "$WORK/h2streams" ||
        fail "nghttp's three requests are not on one TCP connection in tshark's view: $(tr '\n' ' ' <"$WORK/h2streams")"
    h2_headers_seen "$MITM_PCAP" /small.txt /data.json /1m.bin "$(nghttp --version | awk '{print $2}')" \
        "localhost:$ORIGIN_H2PORT"
    check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
        --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /1m.bin 200" \
        --expect "GET /data.json 200" \
        /small.txt="$WWW/small.txt" /data.json="$WWW/data.json" /1m.bin="$WWW/1m.bin"
    check_same_entries "$MITM_PCAP" "$MITM_HAR"
    log "spawn mode part (nghttp, curl h2c) ok"
fi

finish_problems
log "ok"
exit 0
