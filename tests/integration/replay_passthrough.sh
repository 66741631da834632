#!/bin/bash
# SPDX-License-Identifier: MIT
# What leaves the machine, and attach mode.
# 1. With the origin running, a replay with the default --unmatched 404 answers an unrecorded
#    request itself: nginx's access log gets no line. --unmatched passthrough alone sends it
#    upstream (one line in the access log, the real body), and --record-new records exactly
#    that flow (pcapng decrypted by tshark alone, HAR with one entry).
# 2. Attach mode: mitmreplay RECORDING -p curl --cgroup CG replays for a curl started in CG
#    until SIGINT, then prints its summary and exits 0.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl tshark "$PY"
need_replay
start_origin
T=https://localhost:$ORIGIN_TLSPORT
ACCESS=$WORK/nginx/access.log
"$MITMREC" -q -o "$WORK/rec.pcapng" --cacert "$TEST_CA" -- curl -sS -o /dev/null "$T/small.txt" \
    2>"$WORK/rec.log" || { cat "$WORK/rec.log" >&2; fail "recording failed"; }
lines=$(wc -l <"$ACCESS")

run_replay "$WORK/r404.log" "$WORK/rec.pcapng" -- sh -c \
    "curl -sS $T/small.txt; curl -sS -o /dev/null -w '%{http_code}\n' $T/data.json" >"$WORK/r404.out"
[ "$(tail -n1 "$WORK/r404.out")" = 404 ] || fail "unrecorded request: $(cat "$WORK/r404.out")"
[ "$(wc -l <"$ACCESS")" = "$lines" ] || fail "a replay without passthrough reached nginx: $(tail -n2 "$ACCESS")"
log "default: the unrecorded request got a 404 from mitmreplay, nginx saw nothing"

run_replay "$WORK/pass.log" "$WORK/rec.pcapng" --unmatched passthrough --cacert "$TEST_CA" \
    --record-new "$WORK/new.pcapng" -- sh -c \
    "curl -sS -o $WORK/small.out $T/small.txt && curl -sS -o $WORK/data.out $T/data.json"
[ "$REPLAY_RC" = 0 ] || { cat "$WORK/pass.log" >&2; fail "passthrough replay: status $REPLAY_RC"; }
cmp -s "$WORK/data.out" "$WWW/data.json" || fail "passthrough: data.json differs from the origin's"
cmp -s "$WORK/small.out" "$WWW/small.txt" || fail "passthrough: small.txt differs"
[ "$(($(wc -l <"$ACCESS") - lines))" = 1 ] && tail -n1 "$ACCESS" | grep -q 'GET /data.json' ||
    fail "passthrough: nginx should have seen exactly GET /data.json: $(tail -n3 "$ACCESS")"
[ "$(har_query "$WORK/new.har" '[e["request"]["url"] for e in h["log"]["entries"]]')" = "[\"$T/data.json\"]" ] ||
    fail "--record-new HAR: $(har_query "$WORK/new.har" '[e["request"]["url"] for e in h["log"]["entries"]]')"
check_recording "$WORK/new.pcapng" "$WORK/new.har" /data.json="$WWW/data.json"
log "passthrough: only the unrecorded request went upstream, --record-new recorded it"
stop_origin

# Attach mode.
make_cgroup attach
"$MITMREPLAY" "$WORK/rec.pcapng" -p curl,python3 --cgroup "$TEST_CGROUP" 2>"$WORK/attach.log" &
MR=$!
_LIB_PIDS+=("$MR")
for _ in $(seq 100); do grep -q 'SIGINT stops' "$WORK/attach.log" && break; sleep 0.1; done
grep -q "replaying .* in $TEST_CGROUP" "$WORK/attach.log" || fail "attach: $(cat "$WORK/attach.log")"
timeout 20 "$IN_CGROUP" "$TEST_CGROUP" "" curl -sS --cacert "$HOME/.mitmrec/mitmrec-ca-cert.pem" "$T/small.txt" >"$WORK/attach.out" ||
    fail "attach: curl failed"
cmp -s "$WORK/attach.out" "$WWW/small.txt" || fail "attach: curl got $(cat "$WORK/attach.out")"
# A client that keeps its connection open after its answer (as a browser does): SIGINT still
# ends mitmreplay within its grace time, closing that connection.
cat >"$WORK/hold.py" <<'EOF'
import http.client, ssl, sys, time
c = http.client.HTTPSConnection(sys.argv[1], int(sys.argv[2]), timeout=30,
                                context=ssl.create_default_context(cafile=sys.argv[3]))
c.request("GET", "/small.txt")
body = c.getresponse().read()
open(sys.argv[4], "wb").write(body)
t0 = time.time()
try:
    got = c.sock.recv(1)          # blocks until mitmreplay closes the connection
except OSError:
    got = b""
print("closed" if got == b"" else "data", round(time.time() - t0, 1))
EOF
timeout 40 "$IN_CGROUP" "$TEST_CGROUP" "" "$PY" "$WORK/hold.py" localhost "$ORIGIN_TLSPORT" \
    "$HOME/.mitmrec/mitmrec-ca-cert.pem" "$WORK/hold.out" >"$WORK/hold.txt" 2>&1 &
HOLD=$!
_LIB_PIDS+=("$HOLD")
for _ in $(seq 100); do [ -s "$WORK/hold.out" ] && break; sleep 0.1; done
cmp -s "$WORK/hold.out" "$WWW/small.txt" || fail "attach: the holding client got $(cat "$WORK/hold.out" "$WORK/hold.txt")"
t0=$SECONDS
kill -INT "$MR"
wait "$MR"
rc=$?
[ $rc = 0 ] || fail "attach: exit $rc after SIGINT: $(cat "$WORK/attach.log")"
[ $((SECONDS - t0)) -le 5 ] || fail "attach: mitmreplay took $((SECONDS - t0)) s to end with a connection open"
wait "$HOLD"
grep -q '^closed ' "$WORK/hold.txt" || fail "attach: the holding client: $(cat "$WORK/hold.txt")"
grep -q '2 requests, 2 replayed, 0 unmatched' "$WORK/attach.log" || fail "attach summary: $(cat "$WORK/attach.log")"
remove_cgroup "$TEST_CGROUP"
log "attach mode: curl in $TEST_CGROUP replayed, SIGINT ends it with a summary, a held connection closed"
exit 0
