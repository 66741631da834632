#!/bin/bash
# SPDX-License-Identifier: MIT
# HAR entries in the order their requests began (HAR 1.2's preferred order), not the order they
# ended, through the explicit proxy with curl and nginx:
#   1. a download at 1 MB/s (nginx's /slow/, 400 kB) and, while it runs, five small requests
#      that end before it: the HAR lists the download first, every _index at its own position,
#      startedDateTime never going back; the small ones did end first (their ends are before
#      the download's, so the order was not the order they ended in);
#   2. a download that takes 3.8 s, and three small requests that end at once: they do not
#      wait for it past a second (they are in the HAR on disk 2.3 s after they ended, while it
#      still runs), and it comes after them when it ends;
#   3. mitmrec -r of each pcapng writes the entries in the same order as the live HAR, and
#      both HARs validate.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl "$PY"
start_origin
head -c 400000 /dev/urandom >"$WWW/400k.bin" || fail "cannot make 400k.bin"
head -c 4000000 /dev/urandom >"$WWW/4m.bin" || fail "cannot make 4m.bin"
T=https://127.0.0.1:$ORIGIN_TLSPORT

get() { curl -sS -o /dev/null --cacert "$MITM_CA" -x "http://127.0.0.1:$MITM_PORT" "$T$1"; }

# order HAR: one line per entry: _index, startedDateTime, end (ms since the epoch), URL path.
order() {
    "$PY" - "$1" <<'EOF'
import datetime, json, sys, urllib.parse
for e in json.load(open(sys.argv[1]))["log"]["entries"]:
    t = datetime.datetime.strptime(e["startedDateTime"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000
    u = urllib.parse.urlsplit(e["request"]["url"])
    print(e.get("_index", "-"), "%.3f" % t, "%.3f" % (t + e["time"]), u.path + ("?" + u.query if u.query else ""))
EOF
}

# same_order PCAP HAR: mitmrec -r PCAP lists HAR's entries in the same order.
same_order() {
    "$MITMREC" -q -r "$1" --har "$WORK/again.har" 2>"$WORK/again.err" ||
        fail "mitmrec -r $1: $(cat "$WORK/again.err")"
    har_validate "$WORK/again.har"
    order "$2" | cut -d' ' -f1,4 >"$WORK/live.order"
    order "$WORK/again.har" | cut -d' ' -f1,4 >"$WORK/again.order"
    diff "$WORK/live.order" "$WORK/again.order" >&2 ||
        fail "mitmrec -r $(basename "$1") orders the entries differently (above: live, read)"
}

# ---- 1. in the order they began ----
start_mitmrec -o "$WORK/a.pcapng" --cacert "$TEST_CA"
get /slow/400k.bin &
slow=$!
sleep 0.1
for i in 1 2 3 4 5; do get "/small.txt?q=$i" || fail "small request $i failed"; done
wait $slow || fail "the slow download failed"
stop_mitmrec
har_validate "$MITM_HAR"
order "$MITM_HAR" >"$WORK/a.order"
"$PY" - "$WORK/a.order" <<'EOF' || fail "the HAR is not in the order the requests began (above)"
import sys
rows = [l.split() for l in open(sys.argv[1])]
paths = [r[3] for r in rows]
want = ["/slow/400k.bin"] + ["/small.txt?q=%d" % i for i in range(1, 6)]
ok = paths == want
ok &= [r[0] for r in rows] == [str(i) for i in range(6)]
ok &= all(float(a[1]) <= float(b[1]) for a, b in zip(rows, rows[1:]))
# Each small request ended before the download: the order is not the order they ended in.
ok &= all(float(r[2]) < float(rows[0][2]) for r in rows[1:])
if not ok:
    sys.stderr.write("".join(" ".join(r) + "\n" for r in rows))
sys.exit(0 if ok else 1)
EOF
same_order "$WORK/a.pcapng" "$MITM_HAR"

# ---- 2. a request that takes long holds the others back for a second only ----
start_mitmrec -o "$WORK/b.pcapng" --cacert "$TEST_CA"
get /slow/4m.bin &
slow=$!
sleep 0.1
for i in 1 2 3; do get "/small.txt?q=$i" || fail "small request $i failed"; done
sleep 2.3
kill -0 $slow 2>/dev/null || fail "the 3.8 s download ended too soon for this test"
n=$(har_query "$MITM_HAR" 'str(len(h["log"]["entries"]))')
[ "$n" = 3 ] || fail "2.3 s after the small requests ended the HAR on disk holds $n entries, not 3"
wait $slow || fail "the slow download failed"
stop_mitmrec
har_validate "$MITM_HAR"
got=$(order "$MITM_HAR" | cut -d' ' -f1,4 | tr '\n' ' ')
[ "$got" = "1 /small.txt?q=1 2 /small.txt?q=2 3 /small.txt?q=3 0 /slow/4m.bin " ] ||
    fail "entries: '$got'"
same_order "$WORK/b.pcapng" "$MITM_HAR"
exit 0
