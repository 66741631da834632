#!/bin/bash
# SPDX-License-Identifier: MIT
# Client replay: a session recorded against nginx (HTTPS keep-alive, plain HTTP, a POST) is sent
# again with mitmreplay --client after nginx was restarted on the same ports with one file
# changed: exactly that request is reported, with its body hash and the headers that changed
# with the file (Content-Length, ETag, Last-Modified), the others are "same"; --strict makes
# it exit 1; the new run is recorded like mitmrec's (pcapng decrypted by tshark alone, HAR
# valid); --report writes the same results as JUnit XML (a failure for the difference) and
# JSON. Then HTTP/2: the Chrome HAR fixture's requests go over h2 to nginx's h2 port (--to).
# With the server gone, each request FAILED (a JUnit error each).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl tshark "$PY"
need_replay
start_origin
T=https://localhost:$ORIGIN_TLSPORT
"$MITMREC" -q -o "$WORK/rec.pcapng" --cacert "$TEST_CA" -- sh -c "
    curl -sS -o /dev/null -o /dev/null $T/small.txt $T/data.json &&
    curl -sS -o /dev/null http://127.0.0.1:$ORIGIN_PORT/index.html &&
    curl -sS -o /dev/null -d a=1 $T/binary.bin" 2>"$WORK/rec.log" ||
    { cat "$WORK/rec.log" >&2; fail "recording failed"; }

# Restart nginx on the same ports with small.txt changed.
stop_origin
old_mtime=$(stat -c %Y "$WWW/small.txt")
printf 'hello from the changed origin\n' >"$WWW/small.txt"
# Within the same second nginx's Last-Modified (and ETag time) would not change.
touch -d "@$((old_mtime + 3600))" "$WWW/small.txt"
/usr/sbin/nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
    -g 'daemon off;' >>"$WORK/nginx/stdout.log" 2>&1 &
ORIGIN_PID=$!
_LIB_PIDS+=("$ORIGIN_PID")
wait_port "$ORIGIN_TLSPORT" 10 && wait_port "$ORIGIN_PORT" 10 || skip "nginx could not get its ports back"

timeout 60 "$MITMREPLAY" --client "$WORK/rec.pcapng" --cacert "$TEST_CA" -o "$WORK/new.pcapng" \
    --report "$WORK/client.xml" --report "$WORK/client.json" >"$WORK/diff.txt" 2>"$WORK/client.log"
rc=$?
[ $rc = 0 ] || { cat "$WORK/client.log" >&2; fail "--client exited $rc without --strict"; }
cat "$WORK/diff.txt" >&2
[ "$(grep -c DIFFERENT "$WORK/diff.txt")" = 1 ] || fail "expected one difference"
d=$(grep DIFFERENT "$WORK/diff.txt")
case $d in *"GET $T/small.txt: DIFFERENT:"*) ;; *) fail "the difference is not small.txt's: $d" ;; esac
new_hash=$(sha256sum "$WWW/small.txt" | cut -c1-16)
for w in "Content-Length: 35 -> 30" "ETag: " "Last-Modified: " "body sha256:" "-> sha256:$new_hash"; do
    case $d in *"$w"*) ;; *) fail "difference lacks '$w': $d" ;; esac
done
n=$(printf '%s\n' "$d" | tr ';' '\n' | wc -l)
[ "$n" = 4 ] || fail "expected exactly 4 changes (length, ETag, Last-Modified, body), got $n: $d"
[ "$(grep -c ': same (' "$WORK/diff.txt")" = 3 ] || fail "expected 3 unchanged requests"
grep -q '4 requests: 3 same, 1 different, 0 failed' "$WORK/client.log" || fail "summary: $(cat "$WORK/client.log")"
log "client replay: exactly small.txt differs ($d)"

# The reports say the same: 4 test cases, one failure with that difference; JSON per request.
"$PY" - "$WORK/client.xml" "$WORK/client.json" "$T" "${d#*DIFFERENT: }" <<'EOF2' ||
import json, sys, xml.etree.ElementTree as ET
xml_path, json_path, base, diff = sys.argv[1:]
suite = ET.parse(xml_path).getroot().find("testsuite")
got = (suite.get("tests"), suite.get("failures"), suite.get("errors"))
assert got == ("4", "1", "0"), got
cases = suite.findall("testcase")
assert len(cases) == 4, len(cases)
failed = [c for c in cases if c.find("failure") is not None]
assert len(failed) == 1 and failed[0].get("name") == "[0] GET %s/small.txt" % base, [c.get("name") for c in failed]
f = failed[0].find("failure")
assert f.get("type") == "different" and f.get("message") == diff, (f.get("message"), diff)
assert all(c.find("error") is None for c in cases)
j = json.load(open(json_path))
assert j["mode"] == "client" and j["recording"].endswith("rec.pcapng"), j["recording"]
assert j["summary"] == {"requests": 4, "same": 3, "different": 1, "failed": 0}, j["summary"]
rs = j["requests"]
assert [r["entry"] for r in rs] == [0, 1, 2, 3], [r["entry"] for r in rs]
assert [r["result"] for r in rs] == ["different", "same", "same", "same"], [r["result"] for r in rs]
assert rs[0]["url"] == base + "/small.txt" and rs[0]["differences"] == diff, rs[0]
assert [r["method"] for r in rs] == ["GET", "GET", "GET", "POST"], [r["method"] for r in rs]
assert [(r["recordedStatus"], r["status"]) for r in rs] == [(200, 200)] * 3 + [(405, 405)], rs
assert all(r["ms"] > 0 for r in rs) and "differences" not in rs[1], rs
EOF2
    fail "--report of the client replay: $(cat "$WORK/client.xml" "$WORK/client.json")"
# A report that cannot be written stops the run before it sends anything.
timeout 60 "$MITMREPLAY" --client "$WORK/rec.pcapng" --cacert "$TEST_CA" \
    --report "$WORK/no/such/dir/r.xml" >"$WORK/nodir.txt" 2>"$WORK/nodir.log"
rc=$?
[ $rc = 1 ] && grep -q "cannot write --report $WORK/no/such/dir/r.xml: No such file or directory" \
    "$WORK/nodir.log" && [ ! -s "$WORK/nodir.txt" ] ||
    fail "--client --report into a missing directory: status $rc, $(cat "$WORK/nodir.log" "$WORK/nodir.txt")"
log "client replay --report: JUnit XML and JSON name the one difference"

# (-w: the same as -o, as in tcpdump and mitmdump.)
timeout 60 "$MITMREPLAY" --client "$WORK/rec.pcapng" --cacert "$TEST_CA" --strict \
    --concurrency 4 -w "$WORK/strict.pcapng" --report "$WORK/strict.json" >"$WORK/strict.txt" 2>&1
[ $? = 1 ] || fail "--client --strict with a difference did not exit 1"
# All 4 at once finish in any order (the plain HTTP one has no handshake); the report keeps
# the recording's.
log "--concurrency 4 finished: $(grep -o '^\[[0-9]\]' "$WORK/strict.txt" | tr -d '\n')"
[ "$(har_query "$WORK/strict.json" '",".join(str(r["entry"]) for r in h["requests"])')" = 0,1,2,3 ] ||
    fail "--concurrency 4 --report: not in the recording's order: $(cat "$WORK/strict.json")"
[ "$(tshark_requests "$WORK/strict.pcapng" | wc -l)" = 4 ] ||
    fail "-w strict.pcapng: $(tshark_requests "$WORK/strict.pcapng")"
[ -s "$WORK/strict.har" ] || fail "-w strict.pcapng wrote no strict.har (have: $(ls "$WORK"))"

# The new run is recorded like mitmrec's.
check_recording "$WORK/new.pcapng" "$WORK/new.har" /small.txt="$WWW/small.txt" /data.json="$WWW/data.json"
[ "$(tshark_requests "$WORK/new.pcapng" | wc -l)" = 4 ] || fail "new pcapng: $(tshark_requests "$WORK/new.pcapng")"

# HTTP/2 client replay: the Chrome HAR's requests to nginx's h2 port.
if [ -n "${ORIGIN_H2PORT:-}" ]; then
    timeout 60 "$MITMREPLAY" --client "$top_srcdir/fixtures/replay/chrome-export.har" --insecure \
        --to "127.0.0.1:$ORIGIN_H2PORT" -o "$WORK/h2.pcapng" >"$WORK/h2.txt" 2>"$WORK/h2.log"
    grep -q 'GET https://shop.example.test/app.js: DIFFERENT: status 200 -> 404' "$WORK/h2.txt" ||
        fail "h2 client replay: $(cat "$WORK/h2.txt" "$WORK/h2.log")"
    [ "$(har_query "$WORK/h2.har" '",".join(sorted(set(e["request"]["httpVersion"] for e in h["log"]["entries"])))')" = HTTP/2 ] ||
        fail "h2 client replay did not use HTTP/2: $(har_query "$WORK/h2.har" '[e["request"]["httpVersion"] for e in h["log"]["entries"]]')"
    log "HTTP/2 client replay: 4 requests over h2 to nginx, differences reported"
fi

# The server gone: each request FAILED, with the reason; exit 0, and 1 with --strict. And an
# origin whose certificate is not trusted (no --cacert): its 3 HTTPS requests FAILED, saying why.
stop_origin
timeout 60 "$MITMREPLAY" --client "$WORK/rec.pcapng" --report "$WORK/down.xml" >"$WORK/down.txt" \
    2>"$WORK/down.log"
rc=$?
[ $rc = 0 ] || fail "--client with the server down exited $rc: $(cat "$WORK/down.log")"
[ "$(grep -c ': FAILED: cannot connect: connection refused$' "$WORK/down.txt")" = 4 ] ||
    fail "--client with the server down: $(cat "$WORK/down.txt")"
grep -q '4 requests: 0 same, 0 different, 4 failed' "$WORK/down.log" || fail "summary: $(cat "$WORK/down.log")"
"$PY" - "$WORK/down.xml" <<'EOF2' || fail "--report with the server down: $(cat "$WORK/down.xml")"
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find("testsuite")
assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "0", "4"), suite.attrib
errs = [c.find("error") for c in suite.findall("testcase")]
assert all(e is not None and e.get("message") == "cannot connect: connection refused" for e in errs), errs
EOF2
timeout 60 "$MITMREPLAY" --client "$WORK/rec.pcapng" --strict -q >/dev/null 2>&1
[ $? = 1 ] || fail "--client --strict with the server down did not exit 1"
/usr/sbin/nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
    -g 'daemon off;' >>"$WORK/nginx/stdout.log" 2>&1 &
ORIGIN_PID=$!
_LIB_PIDS+=("$ORIGIN_PID")
wait_port "$ORIGIN_TLSPORT" 10 || skip "nginx could not get its ports back"
timeout 60 "$MITMREPLAY" --client "$WORK/rec.pcapng" >"$WORK/untrusted.txt" 2>"$WORK/untrusted.log"
[ "$(grep -c ': FAILED: TLS handshake failed: ' "$WORK/untrusted.txt")" = 3 ] ||
    fail "--client without --cacert: $(cat "$WORK/untrusted.txt")"
grep -q '4 requests: 1 same, 0 different, 3 failed' "$WORK/untrusted.log" ||
    fail "--client without --cacert: $(cat "$WORK/untrusted.log")"
log "client replay: a server down, an untrusted certificate: FAILED with the reason"
exit 0
