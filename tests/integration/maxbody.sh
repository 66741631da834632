#!/bin/bash
# SPDX-License-Identifier: MIT
# --max-body: the HAR keeps the start of each body, says so, and the pcapng keeps it all.
# curl fetches binary.bin (64 KiB) and data.json (15 KiB) and POSTs binary.bin, recorded in
# spawn mode with --max-body 1K. The HAR: each body is its first 1,024 bytes exactly, content
# .size and bodySize the whole, "_truncated" and a comment on content and postData, valid.
# tshark exports binary.bin whole from the pcapng; mitmrec -r --max-body 2K keeps 2,048.
# mitmreplay from the HAR warns once (3 entries) and serves the 1,024 bytes; from the pcapng it
# serves all 65,536, with no warning.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl tshark node "$PY"
need_replay
start_origin
T=https://127.0.0.1:$ORIGIN_TLSPORT
"$MITMREC" -q --max-body 1K -o "$WORK/m.pcapng" --cacert "$TEST_CA" -- sh -c "
    curl -sS -o /dev/null $T/binary.bin && curl -sS -o /dev/null $T/data.json &&
    curl -sS -o /dev/null --data-binary @$WWW/binary.bin -H 'Content-Type: application/octet-stream' $T/post" \
    2>"$WORK/rec.log" || { cat "$WORK/rec.log" >&2; fail "recording failed"; }
har_validate "$WORK/m.har"

# check_har HAR KEPT: each body is the first KEPT bytes of what was served, marked as such.
check_har() {
    "$PY" - "$1" "$2" "$WWW" <<'EOF' || fail "$1: bodies are not the first $2 bytes, marked"
import base64, json, os, sys
har, kept, www = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def body(o):
    t = o.get("text", "")
    return base64.b64decode(t) if (o.get("encoding") or o.get("_encoding")) == "base64" else t.encode()
bad, seen = [], 0
for e in json.load(open(har))["log"]["entries"]:
    name = e["request"]["url"].rsplit("/", 1)[1]
    if name == "post":
        pd, want = e["request"]["postData"], open(os.path.join(www, "binary.bin"), "rb").read()
        parts = [("postData", pd, len(want))]
    else:
        want = open(os.path.join(www, name), "rb").read()
        parts = [("content", e["response"]["content"], len(want))]
        if e["response"]["content"]["size"] != len(want) or e["response"]["bodySize"] != len(want):
            bad.append("%s: size %s, bodySize %s, served %d" % (name, e["response"]["content"]["size"], e["response"]["bodySize"], len(want)))
    for what, o, full in parts:
        seen += 1
        if body(o) != want[:kept]:
            bad.append("%s %s: %d bytes, not the first %d served" % (name, what, len(body(o)), kept))
        if o.get("_truncated") is not True or "first %d bytes" % kept not in o.get("comment", ""):
            bad.append("%s %s: not marked (%r, %r)" % (name, what, o.get("_truncated"), o.get("comment")))
if seen != 3:
    bad.append("%d bodies, want 3" % seen)
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}
check_har "$WORK/m.har" 1024
tshark_export "$WORK/m.pcapng" "$WORK/export"
same_file "$WORK/export/binary.bin" "$WWW/binary.bin" "the pcapng's binary.bin"
"$MITMREC" -q -r "$WORK/m.pcapng" --max-body 2K --har "$WORK/r.har" || fail "mitmrec -r failed"
check_har "$WORK/r.har" 2048
log "--max-body 1K: the HAR has the first 1,024 bytes of each body, marked; the pcapng all; -r --max-body 2K: 2,048"

stop_origin
run_replay "$WORK/har.log" "$WORK/m.har" -- sh -c "curl -sS -o $WORK/from-har.bin $T/binary.bin"
[ "$REPLAY_RC" = 0 ] || fail "replay from the HAR: status $REPLAY_RC: $(cat "$WORK/har.log")"
[ "$(grep -c 'warning: .*: 3 of its entries hold only the start of a body' "$WORK/har.log")" = 1 ] ||
    fail "replay from the HAR: no warning: $(cat "$WORK/har.log")"
head -c 1024 "$WWW/binary.bin" >"$WORK/first1k.bin"
same_file "$WORK/from-har.bin" "$WORK/first1k.bin" "binary.bin replayed from the HAR"
run_replay "$WORK/pcap.log" "$WORK/m.pcapng" -- sh -c "curl -sS -o $WORK/from-pcapng.bin $T/binary.bin"
[ "$REPLAY_RC" = 0 ] || fail "replay from the pcapng: status $REPLAY_RC: $(cat "$WORK/pcap.log")"
grep -q warning "$WORK/pcap.log" && fail "replay from the pcapng warned: $(cat "$WORK/pcap.log")"
same_file "$WORK/from-pcapng.bin" "$WWW/binary.bin" "binary.bin replayed from the pcapng"
log "replay: from the HAR, 1,024 bytes and a warning; from the pcapng, all 65,536"
exit 0
