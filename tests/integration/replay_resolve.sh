#!/bin/bash
# SPDX-License-Identifier: MIT
# mitmreplay --client looks up host names (a HAR entry without serverIPAddress) off the event
# loop: with a resolver that never answers, a request to slow.test waits for it, and a request
# to localhost, after it in the HAR, is sent, answered and reported meanwhile. slow.test then
# FAILED with the resolver's reason. The resolver is ours: a UDP socket on a 127.53.x.y address
# that logs each query and answers none, named in an /etc/resolv.conf bind-mounted in a private
# mount namespace (unshare -m); the machine's resolver is never asked.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl unshare "$PY"
MITMREPLAY=${MITMREPLAY:-$top_builddir/mitmreplay}
[ -x "$MITMREPLAY" ] || skip "$MITMREPLAY not built"
[ "$(id -u)" = 0 ] || skip "needs root (unshare -m, a bind mount of /etc/resolv.conf)"
unshare -m true 2>/dev/null || skip "unshare -m does not work here"
grep -Eqi '(^|[[:space:]])slow\.test([[:space:]]|$)' /etc/hosts &&
    skip "/etc/hosts names slow.test: the name would not go to our resolver"
start_origin

# ---- the resolver that never answers ----
QLOG=$WORK/queries.log
DNS_ADDR=
for _ in 1 2 3 4 5; do
    addr=127.53.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
    rm -f "$WORK/dns.ready"
    "$PY" - "$addr" "$QLOG" "$WORK/dns.ready" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind((sys.argv[1], 53))
except OSError:
    sys.exit(1)
open(sys.argv[3], "w").close()
with open(sys.argv[2], "a") as log:
    while True:
        q, _ = s.recvfrom(512)
        labels, i = [], 12
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        log.write(".".join(labels) + "\n")
        log.flush()
EOF
    DNS_PID=$!
    _LIB_PIDS+=("$DNS_PID")
    for _ in $(seq 50); do
        [ -e "$WORK/dns.ready" ] && break
        kill -0 "$DNS_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -e "$WORK/dns.ready" ]; then
        DNS_ADDR=$addr
        break
    fi
done
[ -n "$DNS_ADDR" ] || fail "no free 127.53.x.y:53 for the test resolver"
printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$DNS_ADDR" >"$WORK/resolv.conf"

# ---- a HAR: slow.test first, then localhost; neither has a server address ----
"$PY" - "$ORIGIN_PORT" "$WWW/small.txt" >"$WORK/two.har" <<'EOF'
import email.utils, json, os, sys
port, body = sys.argv[1], open(sys.argv[2]).read()
st = os.stat(sys.argv[2])
# What nginx sends for the file (Date is not compared).
served = [("Server", "nginx"), ("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
          ("Last-Modified", email.utils.formatdate(int(st.st_mtime), usegmt=True)),
          ("ETag", '"%x-%x"' % (int(st.st_mtime), st.st_size)), ("Accept-Ranges", "bytes")]
def entry(host):
    return {
        "startedDateTime": "2026-11-27T10:00:00.000Z", "time": 1,
        "request": {"method": "GET", "url": "http://%s:%s/small.txt" % (host, port),
                    "httpVersion": "HTTP/1.1", "cookies": [],
                    "headers": [{"name": "Host", "value": "%s:%s" % (host, port)}],
                    "queryString": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                     "cookies": [], "headers": [{"name": n, "value": v} for n, v in served],
                     "content": {"size": len(body), "mimeType": "text/plain", "text": body},
                     "redirectURL": "", "headersSize": -1, "bodySize": len(body)},
        "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}
json.dump({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"},
                   "entries": [entry("slow.test"), entry("localhost")]}}, sys.stdout)
EOF

# run_client ARGS...: mitmreplay --client in its own mount namespace with our resolv.conf; it
# refuses to start unless it sees it. Output in client.txt (report) and client.log.
run_client() {
    SECONDS=0
    timeout 60 unshare -m sh -c '
        mount --bind "$1" /etc/resolv.conf || exit 98
        cmp -s "$1" /etc/resolv.conf || exit 97
        shift
        exec "$@"' sh "$WORK/resolv.conf" "$MITMREPLAY" --client "$@" \
        >"$WORK/client.txt" 2>"$WORK/client.log"
    CLIENT_RC=$?
    CLIENT_S=$SECONDS
}

run_client --concurrency 2 "$WORK/two.har"
[ $CLIENT_RC = 0 ] || fail "--client exited $CLIENT_RC: $(cat "$WORK/client.txt" "$WORK/client.log")"
cat "$WORK/client.txt" >&2
[ "$(wc -l <"$WORK/client.txt")" = 2 ] || fail "expected 2 report lines: $(cat "$WORK/client.txt")"
# localhost is answered while slow.test's lookup waits: its line comes first.
sed -n 1p "$WORK/client.txt" | grep -q "^\[1\] GET http://localhost:$ORIGIN_PORT/small.txt: same (" ||
    fail "the localhost request was not reported first: $(cat "$WORK/client.txt")"
sed -n 2p "$WORK/client.txt" | grep -q "^\[0\] GET http://slow.test:$ORIGIN_PORT/small.txt: FAILED: cannot resolve slow.test: " ||
    fail "slow.test did not fail on its lookup: $(cat "$WORK/client.txt")"
grep -q '2 requests: 1 same, 0 different, 1 failed' "$WORK/client.log" ||
    fail "summary: $(cat "$WORK/client.log")"
grep -qx 'slow.test' "$QLOG" || fail "our resolver was not asked for slow.test: $(cat "$QLOG" 2>/dev/null)"
[ "$CLIENT_S" -lt 30 ] || fail "the run took ${CLIENT_S}s (the resolver gives up after 2 s)"
log "--client: localhost answered while slow.test waited on the resolver, then FAILED ($(sed -n 2p "$WORK/client.txt" | sed 's/.*FAILED: //'))"

# One at a time (the default), in the HAR's order: the lookup's failure, then localhost.
run_client "$WORK/two.har"
[ $CLIENT_RC = 0 ] || fail "--client (1 at a time) exited $CLIENT_RC: $(cat "$WORK/client.log")"
sed -n 1p "$WORK/client.txt" | grep -q "slow.test.*FAILED: cannot resolve" &&
    sed -n 2p "$WORK/client.txt" | grep -q "localhost.*: same (" ||
    fail "--client (1 at a time): $(cat "$WORK/client.txt")"
log "--client, one at a time: in the HAR's order"
exit 0
