#!/bin/bash
# SPDX-License-Identifier: MIT
# A real browser: Debian's headless Chromium, in spawn mode, loads a page with subresources
# (two style sheets, one importing the other, a background image named only in CSS, two
# scripts, a synchronous XMLHttpRequest for the gzip JSON, a PNG, an SVG, a 200 kB binary
# image) from nginx over HTTP/2 at https://localhost:PORT/. Chromium trusts the mitmrec CA
# through an NSS database made with certutil in $HOME/.pki/nssdb (no --ignore-certificate-errors).
# The page names an inline icon: Chromium then asks for no /favicon.ico, which it cancelled
# (RST_STREAM, an "_error" entry) when --dump-dom finished first, as under ASan it could.
# Checks: Chromium ran the page's script (--dump-dom), the HAR holds the page and every
# subresource, each HTTP/2 with status 200 and the served bytes; tshark decodes the same
# requests from the pcapng's HTTP/2 (HEADERS frames, :path, bodies); check_recording;
# mitmrec -r gives the same entries.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need tshark node "$PY"
CHROMIUM=
for c in chromium chromium-browser; do
    command -v "$c" >/dev/null 2>&1 && { CHROMIUM=$c; break; }
done
[ -n "$CHROMIUM" ] || skip "chromium not installed (apt-get install chromium)"
need certutil
start_origin
spawn_available || skip "spawn mode unavailable here ($SPAWN_WHY); Chromium has no per-run proxy CA setting to test otherwise"

# The site, under $WWW/site.
S=$WWW/site
mkdir -p "$S"
"$PY" - "$S" <<'EOF' || fail "cannot make the test site"
import os, random, struct, sys, zlib

d = sys.argv[1]


def png(w, h, rgb):
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


files = {
    "index.html": """<!doctype html>
<html><head><meta charset="utf-8"><title>mitmrec browser test</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="style.css">
<script src="app.js"></script>
<script src="lib/util.js"></script>
</head>
<body>
<p id="status">static</p>
<img src="img/red.png" alt="red"> <img src="img/logo.svg" alt="logo">
<img src="img/big.png" alt="big" width="10" height="10">
</body></html>
""",
    "style.css": '@import url("theme.css");\np { color: #333; }\n',
    "theme.css": 'body { background: #fff url("img/bg.png") repeat; }\n',
    "app.js": """// Runs before the body: a synchronous request, then fills in the page on DOMContentLoaded.
var xhr = new XMLHttpRequest();
xhr.open("GET", "/data.json", false);
xhr.send();
var count = JSON.parse(xhr.responseText).count;
document.addEventListener("DOMContentLoaded", function () {
  document.getElementById("status").textContent = "js ran, " + count + " items, " + util();
});
""",
    "lib/util.js": 'function util() { return "util loaded"; }\n',
    "img/logo.svg": '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
                    '<rect width="40" height="20" fill="#08c"/></svg>\n',
}
for name, text in files.items():
    os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write(text)
with open(os.path.join(d, "img/red.png"), "wb") as f:
    f.write(png(16, 16, (255, 0, 0)))
with open(os.path.join(d, "img/bg.png"), "wb") as f:
    f.write(png(8, 8, (240, 240, 255)))
# A PNG that does not compress: a big body in several DATA frames.
rng = random.Random(7)
raw = bytes(rng.randrange(256) for _ in range(3 * 256 * 256))
w = h = 256
def chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
rows = b"".join(b"\x00" + raw[y * w * 3:(y + 1) * w * 3] for y in range(h))
with open(os.path.join(d, "img/big.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 0)) + chunk(b"IEND", b""))
EOF
PAGE=https://localhost:$ORIGIN_H2PORT/site/index.html
PATHS=(/site/index.html /site/style.css /site/theme.css /site/img/bg.png /site/app.js
       /site/lib/util.js /data.json /site/img/red.png /site/img/logo.svg /site/img/big.png)
file_of() { case $1 in /data.json) echo "$WWW/data.json" ;; *) echo "$WWW$1" ;; esac; }

# The mitmrec CA exists once spawn mode ran (spawn_available); Chromium reads $HOME/.pki/nssdb.
[ -r "$HOME/.mitmrec/mitmrec-ca-cert.pem" ] || fail "no mitmrec CA in $HOME/.mitmrec after a spawn-mode run"
mkdir -p "$HOME/.pki/nssdb"
certutil -N -d "sql:$HOME/.pki/nssdb" --empty-password >/dev/null 2>&1 ||
    fail "certutil -N failed"
certutil -A -d "sql:$HOME/.pki/nssdb" -n "mitmrec test CA" -t "C,," \
    -i "$HOME/.mitmrec/mitmrec-ca-cert.pem" || fail "certutil -A (the mitmrec CA) failed"

# Chromium resolves localhost to ::1 and 127.0.0.1 and tries ::1 first, where nginx does not
# listen: the redirector leaves a connect to a loopback port with no listener alone, so
# Chromium is refused there and falls back to 127.0.0.1, as without mitmrec. (Before, mitmrec
# accepted that connection and reset it, and the page load failed.)
UDD=$(mktemp -d "$WORK/chromium-profile.XXXXXX")
spawn_mitmrec 60 "$WORK/browser.pcapng" --cacert "$TEST_CA" -- \
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --disable-quic \
    --user-data-dir="$UDD" --dump-dom "$PAGE"
[ $SPAWN_RC -eq 0 ] || fail "chromium under mitmrec exited $SPAWN_RC: $(tail -n 8 "$MITM_LOG")"
grep -q 'js ran, 120 items, util loaded' "$MITM_LOG.out" ||
    fail "chromium's DOM does not show the scripts' work (the page or a script failed to load through mitmrec): $(head -c 600 "$MITM_LOG.out") / $(grep -v '^mitmrec:   ' "$MITM_LOG" | tail -n 5)"

har_validate "$MITM_HAR"
"$PY" "$top_srcdir/tests/integration/recording.py" http2 --pcap "$MITM_PCAP" "${TSHARK_DECODE_AS[@]}" \
    >"$WORK/h2view.json" || fail "recording.py http2 failed on $MITM_PCAP"
specs=()
for p in "${PATHS[@]}"; do specs+=("$p=$(file_of "$p")"); done
"$PY" - "$MITM_HAR" "$WORK/h2view.json" "localhost:$ORIGIN_H2PORT" "${specs[@]}" <<'EOF' ||
import base64, hashlib, json, sys, urllib.parse

har, view, authority = sys.argv[1:4]
want = dict(a.split("=", 1) for a in sys.argv[4:])
entries = json.load(open(har))["log"]["entries"]
h2 = [json.loads(l) for l in open(view) if l.strip()]
bad = []


def sha(b):
    return hashlib.sha256(b).hexdigest()


seen = {}
for e in entries:
    u = urllib.parse.urlsplit(e["request"]["url"])
    path = u.path + ("?" + u.query if u.query else "")
    what = "entry %s (%s %s)" % (e.get("_index"), e["request"]["method"], e["request"]["url"])
    if path == "/favicon.ico":
        continue                       # the browser's own idea; any status will do
    if path not in want:
        bad.append("%s: not a resource of the page" % what)
        continue
    if path in seen:
        bad.append("%s: a second entry for %s" % (what, path))
    seen[path] = e
    if u.netloc != authority or u.scheme != "https":
        bad.append("%s: want https://%s%s" % (what, authority, path))
    if e["request"]["method"] != "GET" or e["response"]["status"] != 200:
        bad.append("%s: status %r%s" % (what, e["response"]["status"], "; _error: %s" % (
            e.get("_error") or e["response"].get("_error")) if "_error" in e or "_error" in e["response"] else ""))
    for side in ("request", "response"):
        if e[side].get("httpVersion") != "HTTP/2":
            bad.append("%s: %s.httpVersion %r, want HTTP/2" % (what, side, e[side].get("httpVersion")))
    data = open(want[path], "rb").read()
    c = e["response"].get("content", {})
    got = None
    if c.get("text") is not None:
        got = base64.b64decode(c["text"]) if c.get("encoding") == "base64" else c["text"].encode()
    if got != data:
        bad.append("%s: body %s, want %d bytes sha256 %s" % (
            what, "missing" if got is None else "%d bytes sha256 %s" % (len(got), sha(got)[:16]),
            len(data), sha(data)[:16]))
    t = [q for q in h2 if q["path"] == path and q["authority"] == authority]
    if len(t) != 1:
        bad.append("%s: tshark's http2 dissector shows %d such requests" % (what, len(t)))
        continue
    q = t[0]
    if q["status"] != 200 or q["response_body_sha256"] != sha(data):
        bad.append("%s: tshark's HTTP/2 :status %r, body %s bytes sha256 %s, want 200 and %d bytes %s" % (
            what, q["status"], q["response_body_len"], (q["response_body_sha256"] or "-")[:16],
            len(data), sha(data)[:16]))
    if e.get("_pcapng", {}).get("stream") != q["tcp"]:
        bad.append("%s: _pcapng.stream %r, tshark has the request in tcp.stream %d"
                   % (what, e.get("_pcapng", {}).get("stream"), q["tcp"]))
for p in sorted(set(want) - set(seen)):
    bad.append("no HAR entry for %s (entries: %s)" % (p, [e["request"]["url"] for e in entries]))
n2 = sum(1 for e in entries if e["request"].get("httpVersion") == "HTTP/2")
if len(h2) != n2:
    bad.append("tshark shows %d HTTP/2 requests, the HAR has %d HTTP/2 entries" % (len(h2), n2))
for b in bad:
    print("browser: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
    fail "the browser recording misses or mangles resources (see above)"

# tshark shows the HEADERS frames with the paths.
tshark_fields "$MITM_PCAP" 'http2.type == 1' http2.header.value | tr ',' '\n' >"$WORK/h2hv.txt"
for p in "${PATHS[@]}"; do
    grep -qxF -- "$p" "$WORK/h2hv.txt" || fail "tshark -Y http2.type==1 never shows the header value $p"
done

check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
    --contains "GET /site/index.html 200" --contains "GET /site/img/big.png 200" \
    --contains "GET /data.json 200" \
    /site/index.html="$S/index.html" /site/img/big.png="$S/img/big.png" /data.json="$WWW/data.json"
check_same_entries "$MITM_PCAP" "$MITM_HAR"

log "ok"
exit 0
