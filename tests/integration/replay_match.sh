#!/bin/bash
# SPDX-License-Identifier: MIT
# Matching options, each with a case built for it, against a HAR made here (no origin at all:
# nothing listens on the ports the clients connect to, mitmreplay answers everything):
# --ignore-param, --ignore-payload-param, --ignore-body, --ignore-host, --ignore-port,
# --use-header, --no-reuse, --unmatched 502|kill, refresh of Date (and --no-refresh),
# --realtime, and DNS answered with the recorded address of a name (queried at 127.0.0.1:53,
# which is redirected to mitmreplay like any resolver address).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl "$PY"
need_replay

"$PY" - "$WORK/api.har" <<'EOF2'
import json, sys
def entry(method, url, body, headers=(), post=None, wait=5):
    req = {"method": method, "url": url, "httpVersion": "HTTP/1.1",
           "headers": [{"name": n, "value": v} for n, v in headers], "queryString": [],
           "cookies": [], "headersSize": -1, "bodySize": len(post or "")}
    if post is not None:
        req["postData"] = {"mimeType": "application/x-www-form-urlencoded", "text": post}
    return {"startedDateTime": "2020-01-01T00:00:00.000Z", "time": wait + 2,
            "serverIPAddress": "127.0.0.1",
            "request": req,
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                         "headers": [{"name": "Content-Type", "value": "text/plain"},
                                     {"name": "Date", "value": "Wed, 01 Jan 2020 00:00:00 GMT"},
                                     {"name": "Set-Cookie", "value": "s=1; Path=/; Expires=Thu, 02 Jan 2020 00:00:00 GMT"}],
                         "cookies": [], "content": {"size": len(body), "mimeType": "text/plain",
                                                    "text": body},
                         "redirectURL": "", "headersSize": -1, "bodySize": len(body)},
            "cache": {}, "timings": {"send": 1, "wait": wait, "receive": 1}}
form = [("Content-Type", "application/x-www-form-urlencoded")]
entries = [
    entry("GET", "https://api.test/items?page=1&ts=100", "items-1\n"),
    entry("GET", "https://api.test/items?page=1&ts=100", "items-2\n"),
    entry("POST", "https://api.test/login", "welcome\n", form, "user=a&nonce=1"),
    entry("GET", "https://other.test:8443/x", "x\n"),
    entry("GET", "https://api.test/me", "me-k1\n", [("X-Api-Key", "k1")]),
    entry("GET", "https://api.test/me", "me-k2\n", [("X-Api-Key", "k2")]),
    entry("GET", "http://api.test/slow", "slow\n", wait=1500),
]
json.dump({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"},
                   "entries": entries}}, open(sys.argv[1], "w"), indent=1)
EOF2

R="--resolve api.test:443:127.0.0.1 --resolve api.test:80:127.0.0.1 --resolve other.test:8443:127.0.0.1 --resolve other.test:9443:127.0.0.1 --resolve third.test:8443:127.0.0.1"
# rp OPTIONS... -- SHELL-COMMAND: replay api.har for the command (its stdout is ours; our
# stderr goes to $WORK/last.log, which stays after the subshell).
rp() {
    local opts=() 
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    run_replay "$WORK/last.log" "$WORK/api.har" -q "${opts[@]}" -- sh -c "$1"
}
# expect NAME GOT WANTED
expect() {
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3' (log: $(cat "$WORK/last.log"))"
    log "$1: $2"
}
C="curl -sS $R"
code() { echo "-o /dev/null -w %{http_code}"; }

expect "default, other ts" "$(rp -- "$C $(code) 'https://api.test/items?page=1&ts=200'")" 404
grep -q 'differs in query' "$WORK/last.log" || fail "the 404 is not explained: $(cat "$WORK/last.log")"
expect "--ignore-param ts" "$(rp --ignore-param ts -- "$C 'https://api.test/items?page=1&ts=200'")" items-1
expect "default, other nonce" "$(rp -- "$C $(code) -d user=a\&nonce=2 https://api.test/login")" 404
expect "--ignore-payload-param nonce" \
    "$(rp --ignore-payload-param nonce -- "$C -d user=a\&nonce=2 https://api.test/login")" welcome
expect "--ignore-payload-param nonce, other user" \
    "$(rp --ignore-payload-param nonce -- "$C $(code) -d user=b\&nonce=2 https://api.test/login")" 404
expect "--ignore-body" "$(rp --ignore-body -- "$C -d anything https://api.test/login")" welcome
expect "default, other host" "$(rp -- "$C $(code) https://third.test:8443/x")" 404
expect "--ignore-host" "$(rp --ignore-host -- "$C https://third.test:8443/x")" x
expect "default, other port" "$(rp -- "$C $(code) https://other.test:9443/x")" 404
expect "--ignore-port" "$(rp --ignore-port -- "$C https://other.test:9443/x")" x
expect "default, headers ignored" "$(rp -- "$C -H 'X-Api-Key: k2' https://api.test/me")" me-k1
expect "--use-header X-Api-Key" \
    "$(rp --use-header X-Api-Key -- "$C -H 'X-Api-Key: k2' https://api.test/me")" me-k2
expect "--use-header, key not recorded" \
    "$(rp --use-header X-Api-Key -- "$C $(code) -H 'X-Api-Key: k3' https://api.test/me")" 404
I="'https://api.test/items?page=1&ts=100'"
expect "identical requests in order, then the last again" \
    "$(rp -- "$C $I $I $I" | tr '\n' ' ')" "items-1 items-2 items-2 "
expect "--no-reuse" "$(rp --no-reuse -- "$C $I $I; $C $(code) $I" | tr '\n' ' ')" "items-1 items-2 404"
grep -q 'no-reuse' "$WORK/last.log" || fail "--no-reuse miss is not explained: $(cat "$WORK/last.log")"
expect "--unmatched 502" "$(rp --unmatched 502 -- "$C $(code) https://api.test/nope")" 502
expect "--unmatched kill" "$(rp --unmatched kill -- "$C https://api.test/nope 2>/dev/null; echo \$?")" 56
expect "404 body says what failed" "$(rp -- "$C https://api.test/nope" | grep -c 'no recorded response for GET https://api.test/nope')" 1

# Refresh: Date and cookie expiry move to now; --no-refresh keeps 2020.
year=$(date -u +%Y)
d=$(rp -- "$C -D - -o /dev/null $I" | tr -d '\r')
printf '%s\n' "$d" | grep -q "^Date: .* $year " || fail "Date not refreshed: $d"
printf '%s\n' "$d" | grep -qi "^Set-Cookie: s=1; Path=/; Expires=.* $year " || fail "cookie expiry not refreshed: $d"
d=$(rp --no-refresh -- "$C -D - -o /dev/null $I" | tr -d '\r')
printf '%s\n' "$d" | grep -q '^Date: Wed, 01 Jan 2020 00:00:00 GMT' || fail "--no-refresh changed Date: $d"
log "Date and cookie expiry refreshed to $year; --no-refresh keeps 2020"

# --realtime keeps the recorded 1.5 s wait; by default it is not kept.
t=$(rp -- "$C -o /dev/null -w %{time_total} http://api.test/slow")
"$PY" -c "import sys; sys.exit(0 if float('$t') < 1.0 else 1)" || fail "default: the slow entry took $t s"
t2=$(rp --realtime -- "$C -o /dev/null -w %{time_total} http://api.test/slow")
"$PY" -c "import sys; sys.exit(0 if 1.4 <= float('$t2') < 5 else 1)" || fail "--realtime: $t2 s, expected about 1.5"
log "--realtime: $t2 s (default $t s)"

# DNS: the recorded address of a name; an unknown name is NXDOMAIN.
cat >"$WORK/dns.py" <<'EOF2'
import socket, struct, sys
def ask(name, qtype=1):
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    q += struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, ("127.0.0.1", 53))
    r = s.recv(512)
    rcode, an = r[3] & 15, struct.unpack(">H", r[6:8])[0]
    addrs = [socket.inet_ntoa(r[i + 12:i + 16]) for i in range(len(q), len(r) - 15, 16)] if an else []
    return "%s rcode=%d %s" % (name, rcode, ",".join(addrs))
print(ask("api.test")); print(ask("unknown.test"))
EOF2
out=$(rp -- "$PY $WORK/dns.py" | tr '\n' ';')
expect "DNS" "$out" "api.test rcode=0 127.0.0.1;unknown.test rcode=3 ;"
exit 0
