#!/bin/bash
# SPDX-License-Identifier: MIT
# Server replay, the CI story: a script with several clients (curl HTTPS and plain HTTP,
# keep-alive, a gzip JSON, a POST, python3 urllib, wget) is recorded against nginx in spawn mode,
# nginx is stopped, and the same script replayed from the pcapng gives the same outputs and the
# same exit status, with no connection leaving the replayed cgroup except to mitmreplay's own
# listeners (sampled with ss while it runs). Then: the script exits non-zero -> so does
# mitmreplay; --strict fails on an extra request and names it; --report writes JUnit XML and
# JSON; mitmrec's HAR of the same session replays the same way.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl wget "$PY" ss
need_replay
start_origin
T=https://localhost:$ORIGIN_TLSPORT
H=http://127.0.0.1:$ORIGIN_PORT
mkdir -p "$WORK/out"

cat >"$WORK/client.sh" <<SH
#!/bin/sh
# The project's "test suite": every output goes to \$1, the exit status is the last curl's.
o=\$1
curl -sS $T/small.txt $T/data.json >"\$o/curl-keepalive.txt" || exit 11
curl -sS --compressed $T/data.json -o "\$o/gzip.json" -D "\$o/gzip.headers" || exit 12
curl -sS -d 'name=replay&n=1' $T/small.txt -o "\$o/post.txt" -w '%{http_code}\n' >"\$o/post.code"
curl -sS $H/binary.bin -o "\$o/binary.bin" || exit 13
# A binary body (base64 in the HAR's postData, "_encoding": "base64"), matched on its bytes.
curl -sS --data-binary @$WWW/binary.bin -H 'Content-Type: application/octet-stream' $T/post \
    -o "\$o/binpost.txt" || exit 18
curl -sS -o /dev/null -w '%{http_code}\n' $T/missing.txt >"\$o/missing.code"
wget -q -O "\$o/wget.txt" $T/index.html || exit 14
$PY -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' $T/small.txt >"\$o/python.txt" || exit 15
# A connection that stays open a while (SLOW seconds) before its request.
$PY -c '
import http.client, ssl, sys, time
c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ssl.create_default_context())
c.connect(); time.sleep(float(sys.argv[2])); c.request("GET", "/small.txt?slow=1")
sys.stdout.write(c.getresponse().read().decode())' $ORIGIN_TLSPORT \${SLOW:-0} >"\$o/slow.txt" || exit 17
curl -sS -I $T/index.html | grep -i -e '^HTTP' -e '^content-length' >"\$o/head.txt"
[ -n "\${EXTRA:-}" ] && { curl -sS -o /dev/null \$EXTRA || exit 16; }
exit \${EXIT:-3}
SH
chmod 755 "$WORK/client.sh"

# Record.
"$MITMREC" -q -o "$WORK/rec.pcapng" --cacert "$TEST_CA" -- "$WORK/client.sh" "$WORK/out" \
    2>"$WORK/rec.log"
rc=$?
[ $rc = 3 ] || { cat "$WORK/rec.log" >&2; fail "recording: exit status $rc, expected the script's 3"; }
[ -s "$WORK/rec.pcapng" ] && [ -s "$WORK/rec.har" ] || fail "no recording"
cmp -s "$WORK/out/binary.bin" "$WWW/binary.bin" || fail "recording run: binary.bin differs"
[ "$(cat "$WORK/out/binpost.txt")" = posted ] || fail "recording run: the binary POST got $(cat "$WORK/out/binpost.txt")"
mv "$WORK/out" "$WORK/out.rec"
stop_origin

# Replay, sampling the sockets while the script runs (SLOW keeps it alive for a few samples):
# ss lines of mitmreplay itself and of the processes in the cgroup it made for the command
# (CGROUP2/mitmrec-PID-N), so other programs on the machine do not count.
mkdir -p "$WORK/out"
SLOW=2 "$MITMREPLAY" "$WORK/rec.pcapng" --report "$WORK/r.xml" --report "$WORK/r.json" \
    -- "$WORK/client.sh" "$WORK/out" 2>"$WORK/replay.log" &
MR_PID=$!
_LIB_PIDS+=("$MR_PID")
while kill -0 "$MR_PID" 2>/dev/null; do
    pids=$(cat "$CGROUP2"/mitmrec-"$MR_PID"-*/cgroup.procs 2>/dev/null | tr '\n' '|')
    ss -tanp | grep -E "pid=(${pids}${MR_PID})," >>"$WORK/ss.txt"
    sleep 0.05
done
wait "$MR_PID"
REPLAY_RC=$?
[ "$REPLAY_RC" = 3 ] || { cat "$WORK/replay.log" >&2; fail "replay: exit status $REPLAY_RC, expected 3"; }
for f in "$WORK"/out.rec/*; do
    b=$(basename "$f")
    case $b in gzip.headers) continue ;; esac
    cmp -s "$f" "$WORK/out/$b" || fail "replay: $b differs: $(diff "$f" "$WORK/out/$b" | head -5)"
done
# Headers equal but for Date and Last-Modified (refreshed to the replay time) and Connection.
diff <(grep -iv -e '^date:' -e '^connection:' -e '^last-modified:' "$WORK/out.rec/gzip.headers" | tr -d '\r' | sort) \
     <(grep -iv -e '^date:' -e '^connection:' -e '^last-modified:' "$WORK/out/gzip.headers" | tr -d '\r' | sort) >"$WORK/hdiff" ||
    fail "replay: response headers differ: $(cat "$WORK/hdiff")"
grep -q '11 requests, 11 replayed, 0 unmatched' "$WORK/replay.log" ||
    fail "replay summary: $(cat "$WORK/replay.log")"
log "replay from the pcapng: identical outputs, exit status 3"

# No connection anywhere but to mitmreplay: every TCP socket of the command's processes that
# is connected or connecting goes to a port mitmreplay listens on, and mitmreplay itself has
# only its listeners and the sockets it accepted on them.
lports=$(awk '/LISTEN/ && /mitmreplay/ {n=split($4,a,":"); print a[n]}' "$WORK/ss.txt" | sort -u)
[ -n "$lports" ] || fail "no mitmreplay listener in the ss samples"
bad=$(awk -v lp="$(echo $lports | tr ' ' ,)" '
    BEGIN { n = split(lp, L, ","); for (i = 1; i <= n; i++) ok[L[i]] = 1 }
    /^(ESTAB|SYN-SENT|CLOSE-WAIT|FIN-WAIT)/ {
        m = split($5, p, ":"); peer = p[m]; k = split($4, q, ":"); local = q[k]
        if ($0 ~ /"mitmreplay"/) { if (!(local in ok)) print "mitmreplay connected out: " $0 }
        else if (!(peer in ok)) print "a replayed process went elsewhere: " $0
    }' "$WORK/ss.txt" | sort -u)
[ -z "$bad" ] || fail "connections outside mitmreplay's listeners: $bad"
n=$(grep -cvE 'LISTEN|"mitmreplay"' "$WORK/ss.txt")
[ "$n" -gt 0 ] || fail "ss never saw a connection of the replayed command (sampling failed?)"
log "ss: $n socket samples of the command's processes, all to mitmreplay's listeners ($(echo $lports))"

# Reports.
"$PY" - "$WORK/r.xml" "$WORK/r.json" <<'EOF2' || fail "reports are wrong"
import json, sys, xml.etree.ElementTree as ET
t = ET.parse(sys.argv[1]).getroot()
suite = t.find("testsuite")
cases = suite.findall("testcase")
assert len([c for c in cases if c.get("classname") != "tcp"]) == 11, len(cases)
assert suite.get("failures") == "0", suite.get("failures")
j = json.load(open(sys.argv[2]))
assert j["summary"]["requests"] == 11 and j["summary"]["unmatched"] == 0, j["summary"]
assert all(r["matched"] for r in j["requests"])
assert {r["process"] for r in j["requests"]} >= {"curl", "wget", "python3"}, {r["process"] for r in j["requests"]}
EOF2

# The script's own failure comes through.
EXIT=0 run_replay "$WORK/replay0.log" "$WORK/rec.pcapng" -q -- "$WORK/client.sh" "$WORK/out"
[ "$REPLAY_RC" = 0 ] || fail "replay with a script exiting 0: status $REPLAY_RC"

# --strict: an extra request fails the run and is named; without --strict it is a 404.
EXTRA="$T/not-recorded.txt?x=1" run_replay "$WORK/extra.log" "$WORK/rec.pcapng" -- \
    "$WORK/client.sh" "$WORK/out"
[ "$REPLAY_RC" = 3 ] || fail "extra request without --strict: status $REPLAY_RC, expected 3"
EXTRA="$T/not-recorded.txt?x=1" EXIT=0 run_replay "$WORK/strict.log" "$WORK/rec.pcapng" \
    --strict --report "$WORK/s.xml" -- "$WORK/client.sh" "$WORK/out"
[ "$REPLAY_RC" != 0 ] || fail "--strict with an unmatched request exited 0"
grep -q "unmatched: GET https://localhost:$ORIGIN_TLSPORT/not-recorded.txt?x=1" "$WORK/strict.log" ||
    fail "--strict does not name the request: $(cat "$WORK/strict.log")"
grep -q 'failures="1"' "$WORK/s.xml" && grep -q 'not-recorded.txt' "$WORK/s.xml" ||
    fail "JUnit report has no failure for the extra request: $(cat "$WORK/s.xml")"
log "--strict: exit $REPLAY_RC, names the extra request"
# The --report files are open while the command runs: the command must not inherit them.
run_replay "$WORK/fds.log" "$WORK/rec.pcapng" --report "$WORK/fds.xml" --report "$WORK/fds.json" \
    -- sh -c 'ls -l /proc/$$/fd/ >"$1"' sh "$WORK/fds.txt"
[ "$REPLAY_RC" = 0 ] || fail "replay of a command listing its fds: status $REPLAY_RC: $(cat "$WORK/fds.log")"
grep -q "fds.txt" "$WORK/fds.txt" || fail "the fd listing is not what it seems: $(cat "$WORK/fds.txt")"
! grep -q -e "fds.xml" -e "fds.json" "$WORK/fds.txt" ||
    fail "the command inherited a --report file: $(grep -e fds.xml -e fds.json "$WORK/fds.txt")"

# mitmrec's HAR of the same session, with -v: a line for each request answered.
rm -rf "$WORK/out" && mkdir -p "$WORK/out"
run_replay "$WORK/har.log" "$WORK/rec.har" -v -- "$WORK/client.sh" "$WORK/out"
[ "$REPLAY_RC" = 3 ] || { cat "$WORK/har.log" >&2; fail "HAR replay: status $REPLAY_RC"; }
n=$(grep -c '^mitmreplay: [A-Z]* https\?://[^ ]* -> entry [0-9]* ([0-9]*)$' "$WORK/har.log")
replayed=$(sed -n 's/^mitmreplay: [0-9]* requests\?, \([0-9]*\) replayed,.*/\1/p' "$WORK/har.log")
[ -n "$replayed" ] && [ "$replayed" -gt 0 ] && [ "$n" = "$replayed" ] ||
    fail "-v: $n request lines for ${replayed:-?} requests replayed: $(cat "$WORK/har.log")"
for f in "$WORK"/out.rec/*; do
    b=$(basename "$f")
    case $b in gzip.headers) continue ;; esac
    cmp -s "$f" "$WORK/out/$b" || fail "HAR replay: $b differs: $(diff "$f" "$WORK/out/$b" | head -5)"
done
log "replay from mitmrec's HAR: identical outputs"
exit 0
