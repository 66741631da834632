#!/bin/bash
# SPDX-License-Identifier: MIT
# Read mode (mitmrec -r): captures that mitmrec did not make, and its own recordings.
#  (a) dumpcap (and tcpdump, if installed) capture lo while curl, writing SSLKEYLOGFILE, fetches
#      from the origin: TLS 1.2 and 1.3, HTTP/1.1 keep-alive, HTTP/2, POSTs, plain HTTP. Then
#      1. mitmrec -r cap.pcapng --keylog keys.log: the HAR holds each request (connection, HTTP
#         version, method, URL, status, the served bytes, the posted bytes), and tshark, given
#         the same secrets, agrees (check_recording --no-comments);
#      2. editcap --inject-secrets: the secrets from the file's DSB alone give the same entries
#         (and DSB plus --keylog too);
#      3. classic pcap (editcap -F pcap, -F nsecpcap, tcpdump -w) gives the same entries.
#  (b) -f 'tcp port X' keeps only those flows; -o copy.pcapng holds just them and their secrets
#      (tshark decrypts it with no key file), and the HAR's _pcapng points into the copy.
#  (c) a pcapng cut short (inside a block, and at an arbitrary offset) and one with a corrupt
#      block length: exit status non-zero, one error line naming the bad block's byte offset,
#      and the HAR still holds the requests before it. Input that is no capture at all: one
#      line, exit 1, and the --har and -o files already there are kept.
#  (d) the invariant: for a live recording (explicit proxy, several clients), mitmrec -r gives
#      the live HAR's entries (recording.py same-entries); so does it with -o, and the copy is
#      readable and decryptable by tshark alone; -f works on it too (raw IP packets). Then the
#      same for HTTP/2 over TLS.
# Problems are collected (problem/finish_problems) so that one run reports every finding.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark node dumpcap editcap "$PY"
[ -x "$MITMREC" ] || skip "$MITMREC not built"
start_origin
RECPY=$top_srcdir/tests/integration/recording.py
T=https://127.0.0.1:$ORIGIN_TLSPORT
TL=https://localhost:$ORIGIN_TLSPORT
H2=https://localhost:$ORIGIN_H2PORT
H2I=https://127.0.0.1:$ORIGIN_H2PORT
P=http://127.0.0.1:$ORIGIN_PORT
mkdir -p dl
head -c 3000 "$WWW/binary.bin" >"$WORK/post.bin"
printf 'posted\n' >"$WORK/posted.txt"
printf 'name=mitmrec&value=42' >"$WORK/form.txt"

# pcapblocks.py FILE: one line per pcapng block "OFFSET TYPE LENGTH[ SYN K]": SYN K marks the
# Enhanced Packet Block holding the K-th TCP SYN (no ACK) of the file, that is the start of
# tshark's tcp.stream K when every connection was captured from its start. Then one line per
# TCP connection "STREAM K FIRST END": the offset of its first block, the end of its last.
cat >"$WORK/pcapblocks.py" <<'EOF'
import struct, sys

data = open(sys.argv[1], "rb").read()
off, bo, links, syns = 0, "<", [], 0
conns, span = {}, {}
while off + 12 <= len(data):
    t = struct.unpack_from(bo + "I", data, off)[0]
    if t == 0x0A0D0D0A:
        bo = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        t = 0x0A0D0D0A
        links = []
    ln = struct.unpack_from(bo + "I", data, off + 4)[0]
    if ln < 12 or ln % 4 or off + ln > len(data):
        print("%d %d %d BAD" % (off, t, ln))
        break
    extra = ""
    if t == 1:
        links.append(struct.unpack_from(bo + "H", data, off + 8)[0])
    elif t == 6:
        ifid, _, _, caplen = struct.unpack_from(bo + "IIII", data, off + 8)
        pkt = data[off + 28:off + 28 + caplen]
        lt = links[ifid] if ifid < len(links) else -1
        ip = {1: pkt[14:], 101: pkt, 228: pkt, 229: pkt, 0: pkt[4:], 113: pkt[16:]}.get(lt, b"")
        proto, tcp = None, b""
        if ip and ip[0] >> 4 == 4:
            proto, tcp = ip[9], ip[(ip[0] & 15) * 4:]
        elif ip and ip[0] >> 4 == 6:
            proto, tcp = ip[6], ip[40:]
        if proto == 6 and len(tcp) >= 14:
            src = (ip[12:16] if ip[0] >> 4 == 4 else ip[8:24]) + tcp[0:2]
            dst = (ip[16:20] if ip[0] >> 4 == 4 else ip[24:40]) + tcp[2:4]
            key = tuple(sorted((src, dst)))
            if tcp[13] & 0x12 == 0x02:
                extra = " SYN %d" % syns
                conns[key] = syns
                syns += 1
            k = conns.get(key)
            if k is not None:
                span.setdefault(k, [off, 0])[1] = off + ln
    print("%d %d %d%s" % (off, t, ln, extra))
    off += ln
for k in sorted(span):
    print("STREAM %d %d %d" % (k, span[k][0], span[k][1]))
EOF

# har_filter IN OUT PYEXPR: OUT gets IN's entries for which PYEXPR (with e the entry) is true.
har_filter() {
    "$PY" - "$1" "$2" "$3" <<'EOF' || fail "har_filter $1 failed"
import json, sys
h = json.load(open(sys.argv[1]))
h["log"]["entries"] = [e for e in h["log"]["entries"] if eval(sys.argv[3])]
json.dump(h, open(sys.argv[2], "w"))
EOF
}

# same_entries A B [ARGS...] WHAT: recording.py same-entries, a problem when they differ.
same_entries() {
    local what=${*: -1}
    "$PY" "$RECPY" same-entries "${@:1:$#-1}" || problem "$what: the entries differ (see above)"
}

# expect_entries HAR SPEC...: HAR's entries are exactly the SPECs, one to one, where a SPEC is
# "STREAM VERSION METHOD URL STATUS BODYFILE|- [POSTFILE]" (STREAM: _pcapng.stream, or -;
# VERSION: both httpVersions, or "REQUEST,RESPONSE").
expect_entries() {
    local har=$1
    shift
    "$PY" - "$har" "$@" <<'EOF'
import base64, hashlib, json, sys

har = sys.argv[1]
specs = [s.split() for s in sys.argv[2:]]
try:
    entries = json.load(open(har))["log"]["entries"]
except (OSError, ValueError, KeyError) as e:
    sys.exit("expect_entries: %s unreadable: %s" % (har, e))
bad = []


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def body(c):
    if not c or c.get("text") is None:
        return None
    b64 = c.get("encoding") == "base64" or c.get("_encoding") == "base64"
    return base64.b64decode(c["text"]) if b64 else c["text"].encode()


def label(e):
    return "%s %s %s %s (stream %s)" % (e["request"].get("httpVersion"), e["request"]["method"],
                                        e["request"]["url"], e["response"]["status"],
                                        e.get("_pcapng", {}).get("stream"))


if len(entries) != len(specs):
    bad.append("%d entries, want %d" % (len(entries), len(specs)))
rest = list(entries)
for s in specs:
    stream, ver, method, url, status = s[0], s[1], s[2], s[3], int(s[4])
    e = next((e for e in rest if e["request"]["method"] == method and e["request"]["url"] == url
              and e["response"]["status"] == status
              and (stream == "-" or e.get("_pcapng", {}).get("stream") == int(stream))), None)
    if e is None:
        bad.append("no entry %s %s %s %d in stream %s (left: %s)" % (ver, method, url, status, stream,
                                                                     [label(x) for x in rest]))
        continue
    rest.remove(e)
    what = "entry %s (%s %s)" % (e.get("_index"), method, url)
    vers = ver.split(",") * (2 if "," not in ver else 1)
    for side, v in zip(("request", "response"), vers):
        if e[side].get("httpVersion") != v:
            bad.append("%s: %s.httpVersion %r, want %s" % (what, side, e[side].get("httpVersion"), v))
    if "_error" in e or "_error" in e["response"]:
        bad.append("%s: _error %r" % (what, e.get("_error", e["response"].get("_error"))))
    if len(s) > 5 and s[5] != "-":
        want, got = open(s[5], "rb").read(), body(e["response"].get("content"))
        if got != want:
            bad.append("%s: body %s, want %d bytes sha256 %s" % (
                what, "missing" if got is None else "%d bytes sha256 %s" % (len(got), sha(got)),
                len(want), sha(want)))
    if len(s) > 6:
        want, got = open(s[6], "rb").read(), body(e["request"].get("postData"))
        if got != want:
            bad.append("%s: postData %s, want %d bytes sha256 %s" % (
                what, "missing" if got is None else "%d bytes sha256 %s" % (len(got), sha(got)),
                len(want), sha(want)))
for b in bad:
    print("expect_entries %s: %s" % (har, b), file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

# read_har IN HAR [ARGS...]: mitmrec -r IN --har HAR ARGS; READ_RC, READ_ERR (stderr file).
read_har() {
    local in=$1 har=$2
    shift 2
    READ_ERR=$har.err
    timeout 60 "$MITMREC" -r "$in" --har "$har" "$@" >"$har.out" 2>"$READ_ERR"
    READ_RC=$?
}

# =============================================================================================
# (a) a foreign capture
FILTER="tcp port $ORIGIN_TLSPORT or tcp port $ORIGIN_H2PORT or tcp port $ORIGIN_PORT"
KC=(curl -q -sS --cacert "$TEST_CA")

# capture_once: dumpcap (and tcpdump) on lo around the curl runs; keys.log, cap.pcapng,
# capk.pcapng (secrets injected), tcpdump.pcap. Returns 1 with CAPTURE_WHY when the capture
# itself is incomplete (lost packets, a connection missing): not mitmrec's fault, try again.
capture_once() {
    local i s1 lost nsyn
    rm -f "$WORK/cap.pcapng" "$WORK/capk.pcapng" "$WORK/tcpdump.pcap" "$WORK/keys.log"
    # A big capture buffer: a 1 MiB response on lo comes in a burst.
    dumpcap -B 64 -i lo -f "$FILTER" -w "$WORK/cap.pcapng" >"$WORK/dumpcap.out" 2>&1 &
    DUMPCAP_PID=$!
    _LIB_PIDS+=("$DUMPCAP_PID")
    TCPDUMP_PID=
    if command -v tcpdump >/dev/null 2>&1; then
        # --immediate-mode: else the last packets wait in the kernel ring for a timeout, and
        # a SIGTERM before it loses them.
        tcpdump -i lo -B 65536 -s 0 --immediate-mode -w "$WORK/tcpdump.pcap" "$FILTER" \
            >"$WORK/tcpdump.out" 2>&1 &
        TCPDUMP_PID=$!
        _LIB_PIDS+=("$TCPDUMP_PID")
    fi
    for i in $(seq 100); do
        grep -q 'Capturing on' "$WORK/dumpcap.out" &&
            { [ -z "$TCPDUMP_PID" ] || grep -q 'listening on' "$WORK/tcpdump.out"; } && break
        sleep 0.1
    done
    grep -q 'Capturing on' "$WORK/dumpcap.out" || fail "dumpcap did not start: $(cat "$WORK/dumpcap.out")"
    [ -z "$TCPDUMP_PID" ] || grep -q 'listening on' "$WORK/tcpdump.out" ||
        fail "tcpdump did not start: $(cat "$WORK/tcpdump.out")"
    sleep 0.3
    (
        export SSLKEYLOGFILE=$WORK/keys.log
        set -e
        # stream 0: TLS 1.2, HTTP/1.1 keep-alive, gzip JSON.
        "${KC[@]}" --tlsv1.2 --tls-max 1.2 --http1.1 --compressed -o dl/c1-small.txt "$T/small.txt" \
            -o dl/c1-data.json "$T/data.json" -o dl/c1-binary.bin "$T/binary.bin"
        # stream 1: TLS 1.3, HTTP/1.1 keep-alive, 1 MiB, then a form POST on the same
        # connection; nginx proxies /post to /posted on the plain port (HTTP/1.0): stream 2.
        "${KC[@]}" --tlsv1.3 --http1.1 -o dl/c2-small.txt "$TL/small.txt" -o dl/c2-1m.bin "$TL/1m.bin" \
            --next --cacert "$TEST_CA" --tlsv1.3 --http1.1 --data-binary @"$WORK/form.txt" \
            -H 'Content-Type: application/x-www-form-urlencoded' -o dl/c2-post.txt "$TL/post"
        # stream 3: TLS 1.3, HTTP/2, four requests on one connection.
        "${KC[@]}" --tlsv1.3 --http2 --compressed -o dl/c3-small.txt "$H2/small.txt" \
            -o dl/c3-data.json "$H2/data.json" -o dl/c3-binary.bin "$H2/binary.bin" -o dl/c3-1m.bin "$H2/1m.bin"
        # stream 4: TLS 1.2, HTTP/2, a GET then a binary POST (nginx's /posted: stream 5).
        "${KC[@]}" --tlsv1.2 --tls-max 1.2 --http2 -o dl/c4-small.txt "$H2I/small.txt" \
            --next --cacert "$TEST_CA" --tlsv1.2 --tls-max 1.2 --http2 --data-binary @"$WORK/post.bin" \
            -H 'Content-Type: application/octet-stream' -o dl/c4-post.txt "$H2I/post"
        # stream 6: plain HTTP/1.1.
        "${KC[@]}" --http1.1 --compressed -o dl/c5-small.txt "$P/small.txt" -o dl/c5-data.json "$P/data.json"
    ) || fail "a curl run during the capture failed"
    for f in c1-small.txt:small.txt c1-data.json:data.json c1-binary.bin:binary.bin c2-small.txt:small.txt \
        c2-1m.bin:1m.bin c3-small.txt:small.txt c3-data.json:data.json c3-binary.bin:binary.bin \
        c3-1m.bin:1m.bin c4-small.txt:small.txt c5-small.txt:small.txt c5-data.json:data.json; do
        same_file "dl/${f%%:*}" "$WWW/${f#*:}" "curl download ${f%%:*}"
    done
    same_file dl/c2-post.txt "$WORK/posted.txt" "curl POST answer"
    same_file dl/c4-post.txt "$WORK/posted.txt" "curl HTTP/2 POST answer"
    # Let the capturers write everything (the files stop growing), then stop them.
    for i in $(seq 50); do
        s1=$(stat -c %s "$WORK/cap.pcapng" "$WORK/tcpdump.pcap" 2>/dev/null | tr '\n' ' ')
        sleep 0.2
        [ "$s1" = "$(stat -c %s "$WORK/cap.pcapng" "$WORK/tcpdump.pcap" 2>/dev/null | tr '\n' ' ')" ] && break
    done
    kill -TERM "$DUMPCAP_PID"
    wait "$DUMPCAP_PID" 2>/dev/null
    if [ -n "$TCPDUMP_PID" ]; then
        kill -TERM "$TCPDUMP_PID"
        wait "$TCPDUMP_PID" 2>/dev/null
    fi
    grep -q '^CLIENT_RANDOM ' "$WORK/keys.log" && grep -q '^CLIENT_TRAFFIC_SECRET_0 ' "$WORK/keys.log" ||
        fail "curl's SSLKEYLOGFILE lacks TLS 1.2 or TLS 1.3 secrets: $(cut -d' ' -f1 "$WORK/keys.log" | sort | uniq -c)"
    editcap --inject-secrets "tls,$WORK/keys.log" "$WORK/cap.pcapng" "$WORK/capk.pcapng" ||
        fail "editcap --inject-secrets failed"
    lost=$(tshark_fields "$WORK/capk.pcapng" 'tcp.analysis.lost_segment or tcp.analysis.ack_lost_segment' frame.number | wc -l)
    if [ "$lost" != 0 ]; then
        CAPTURE_WHY="dumpcap lost packets ($lost frames with tcp.analysis.lost_segment)"
        return 1
    fi
    # Seven connections: one per curl run, and nginx's own for each POST.
    nsyn=$("$PY" "$WORK/pcapblocks.py" "$WORK/capk.pcapng" | grep -c ' SYN ')
    if [ "$nsyn" != 7 ]; then
        CAPTURE_WHY="the capture holds $nsyn TCP connections (SYNs), expected 7 (5 curl runs, 2 proxied POSTs): $(tshark_fields "$WORK/cap.pcapng" 'tcp.flags.syn == 1 and tcp.flags.ack == 0' tcp.srcport tcp.dstport | tr '\n\t' '; ')"
        return 1
    fi
    return 0
}
for try in 1 2 3; do
    capture_once && break
    [ $try = 3 ] && fail "three captures were incomplete (the capture's fault, not mitmrec's); last: $CAPTURE_WHY"
    log "note: capture $try incomplete ($CAPTURE_WHY): trying again"
done

SPECS=(
    "0 HTTP/1.1 GET $T/small.txt 200 $WWW/small.txt"
    "0 HTTP/1.1 GET $T/data.json 200 $WWW/data.json"
    "0 HTTP/1.1 GET $T/binary.bin 200 $WWW/binary.bin"
    "1 HTTP/1.1 GET $TL/small.txt 200 $WWW/small.txt"
    "1 HTTP/1.1 GET $TL/1m.bin 200 $WWW/1m.bin"
    "1 HTTP/1.1 POST $TL/post 200 $WORK/posted.txt $WORK/form.txt"
    "2 HTTP/1.0,HTTP/1.1 POST $P/posted 200 $WORK/posted.txt $WORK/form.txt"
    "3 HTTP/2 GET $H2/small.txt 200 $WWW/small.txt"
    "3 HTTP/2 GET $H2/data.json 200 $WWW/data.json"
    "3 HTTP/2 GET $H2/binary.bin 200 $WWW/binary.bin"
    "3 HTTP/2 GET $H2/1m.bin 200 $WWW/1m.bin"
    "4 HTTP/2 GET $H2I/small.txt 200 $WWW/small.txt"
    "4 HTTP/2 POST $H2I/post 200 $WORK/posted.txt $WORK/post.bin"
    "5 HTTP/1.0,HTTP/1.1 POST $P/posted 200 $WORK/posted.txt $WORK/post.bin"
    "6 HTTP/1.1 GET $P/small.txt 200 $WWW/small.txt"
    "6 HTTP/1.1 GET $P/data.json 200 $WWW/data.json"
)
EXPECT=(--expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /binary.bin 200"
        --expect "GET /small.txt 200" --expect "GET /1m.bin 200" --expect "POST /post 200"
        --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /binary.bin 200"
        --expect "GET /1m.bin 200" --expect "GET /small.txt 200" --expect "POST /post 200"
        --expect "GET /small.txt 200" --expect "GET /data.json 200"
        --expect "POST /posted 200" --expect "POST /posted 200")
BODIES=(/small.txt="$WWW/small.txt" /data.json="$WWW/data.json" /binary.bin="$WWW/binary.bin"
        /1m.bin="$WWW/1m.bin")

# (a1) pcapng + --keylog.
read_har "$WORK/cap.pcapng" "$WORK/a.har" --keylog "$WORK/keys.log"
[ $READ_RC -eq 0 ] || fail "(a1) mitmrec -r cap.pcapng --keylog keys.log exited $READ_RC: $(cat "$READ_ERR")"
! grep -qi 'error' "$READ_ERR" || problem "(a1) mitmrec -r cap.pcapng printed an error: $(cat "$READ_ERR")"
har_validate "$WORK/a.har"
expect_entries "$WORK/a.har" "${SPECS[@]}" || problem "(a1) mitmrec -r cap.pcapng --keylog: wrong HAR entries (see above)"
( check_recording "$WORK/capk.pcapng" "$WORK/a.har" --strict --no-comments --tls-versions 0x0303,0x0304 \
    "${EXPECT[@]}" "${BODIES[@]}" ) ||
    problem "(a1) tshark, given the same secrets, disagrees with the HAR of the foreign capture (see above)"

# (a2) the secrets from a Decryption Secrets Block (editcap --inject-secrets), and both sources.
read_har "$WORK/capk.pcapng" "$WORK/b.har"
[ $READ_RC -eq 0 ] || fail "(a2) mitmrec -r capk.pcapng (secrets in a DSB) exited $READ_RC: $(cat "$READ_ERR")"
har_validate "$WORK/b.har"
same_entries "$WORK/a.har" "$WORK/b.har" "(a2) DSB vs --keylog"
read_har "$WORK/capk.pcapng" "$WORK/b2.har" --keylog "$WORK/keys.log"
[ $READ_RC -eq 0 ] || problem "(a2) mitmrec -r capk.pcapng --keylog keys.log (the secrets twice) exited $READ_RC: $(cat "$READ_ERR")"
same_entries "$WORK/a.har" "$WORK/b2.har" "(a2) DSB and --keylog vs --keylog"

# (a3) classic pcap: microseconds, nanoseconds, and tcpdump's own.
for fmt in pcap nsecpcap; do
    editcap -F "$fmt" "$WORK/cap.pcapng" "$WORK/cap.$fmt" || fail "editcap -F $fmt failed"
    read_har "$WORK/cap.$fmt" "$WORK/c-$fmt.har" --keylog "$WORK/keys.log"
    if [ $READ_RC -ne 0 ]; then
        problem "(a3) mitmrec -r cap.$fmt (editcap -F $fmt) exited $READ_RC: $(cat "$READ_ERR")"
        continue
    fi
    # Microsecond timestamps may shift startedDateTime, which same-entries does not compare.
    same_entries "$WORK/a.har" "$WORK/c-$fmt.har" "(a3) classic pcap ($fmt) vs pcapng"
done
# The same gzipped, as captures are often kept (read through zlib and fopencookie into
# libpcap), and on standard input, plain and gzipped.
gzip -c "$WORK/cap.pcap" >"$WORK/cap.pcap.gz"
read_har "$WORK/cap.pcap.gz" "$WORK/c-pcapgz.har" --keylog "$WORK/keys.log"
if [ $READ_RC -ne 0 ]; then
    problem "(a3) mitmrec -r cap.pcap.gz exited $READ_RC: $(cat "$READ_ERR")"
else
    same_entries "$WORK/c-pcap.har" "$WORK/c-pcapgz.har" "(a3) cap.pcap.gz vs cap.pcap"
fi
for f in cap.pcap cap.pcap.gz; do
    timeout 60 "$MITMREC" -r - --har "$WORK/stdin-$f.har" --keylog "$WORK/keys.log" \
        <"$WORK/$f" >/dev/null 2>"$WORK/stdin-$f.err"
    rc=$?
    if [ $rc -ne 0 ]; then
        problem "(a3) mitmrec -r - <$f exited $rc: $(cat "$WORK/stdin-$f.err")"
        continue
    fi
    same_entries "$WORK/c-pcap.har" "$WORK/stdin-$f.har" "(a3) -r - <$f vs -r cap.pcap"
done
tlost=$(tshark_fields "$WORK/tcpdump.pcap" 'tcp.analysis.lost_segment or tcp.analysis.ack_lost_segment' frame.number 2>/dev/null | wc -l)
if [ -z "$TCPDUMP_PID" ]; then
    log "note: tcpdump not found: its own classic pcap is not tried (editcap -F pcap was)"
elif [ "$tlost" != 0 ]; then
    log "note: tcpdump lost packets ($(grep 'dropped' "$WORK/tcpdump.out" | tr '\n' ' ')): its pcap is not compared"
elif [ -n "$TCPDUMP_PID" ]; then
    read_har "$WORK/tcpdump.pcap" "$WORK/t.har" --keylog "$WORK/keys.log"
    if [ $READ_RC -ne 0 ]; then
        problem "(a3) mitmrec -r tcpdump.pcap exited $READ_RC: $(cat "$READ_ERR")"
    else
        # A capture of its own: its frame numbers may differ by a packet or two.
        same_entries "$WORK/a.har" "$WORK/t.har" --ignore _pcapng "(a3) tcpdump's pcap vs dumpcap's pcapng"
    fi
fi
# Without secrets the plain HTTP exchanges are still there, and nothing made up for TLS ones.
read_har "$WORK/cap.pcap" "$WORK/nokeys.har"
if [ $READ_RC -ne 0 ]; then
    problem "(a3) mitmrec -r cap.pcap with no secrets exited $READ_RC: $(cat "$READ_ERR")"
else
    har_filter "$WORK/a.har" "$WORK/a-plain.har" 'e["request"]["url"].startswith("http://")'
    har_filter "$WORK/nokeys.har" "$WORK/nokeys-ok.har" '"_error" not in e and "_error" not in e["response"]'
    same_entries "$WORK/a-plain.har" "$WORK/nokeys-ok.har" "(a3) no secrets: the plain HTTP entries (and no others without _error)"
fi
log "(a) done"

# =============================================================================================
# (b) -f and -o
read_har "$WORK/capk.pcapng" "$WORK/f.har" -f "tcp port $ORIGIN_H2PORT" -o "$WORK/copy.pcapng"
if [ $READ_RC -ne 0 ]; then
    problem "(b) mitmrec -r capk.pcapng -f 'tcp port $ORIGIN_H2PORT' -o copy.pcapng exited $READ_RC: $(cat "$READ_ERR")"
else
    har_validate "$WORK/f.har"
    har_filter "$WORK/b.har" "$WORK/b-h2.har" "\":$ORIGIN_H2PORT/\" in e[\"request\"][\"url\"]"
    same_entries "$WORK/b-h2.har" "$WORK/f.har" --ignore _pcapng "(b) -f 'tcp port $ORIGIN_H2PORT': the HTTP/2 port's entries"
    # The copy: only that port, its secrets with it.
    ( tshark_ok "$WORK/copy.pcapng" ) || problem "(b) tshark does not read the -o copy cleanly"
    other=$(tshark_fields "$WORK/copy.pcapng" "not tcp.port == $ORIGIN_H2PORT" frame.number | wc -l)
    [ "$other" = 0 ] || problem "(b) the -o copy holds $other packets not of tcp port $ORIGIN_H2PORT"
    ncopy=$(tshark_fields "$WORK/copy.pcapng" frame frame.number | wc -l)
    nport=$(tshark_fields "$WORK/capk.pcapng" "tcp.port == $ORIGIN_H2PORT" frame.number | wc -l)
    [ "$ncopy" = "$nport" ] || problem "(b) the -o copy has $ncopy packets, the input $nport of tcp port $ORIGIN_H2PORT"
    "$PY" "$RECPY" http2 --pcap "$WORK/copy.pcapng" "${TSHARK_DECODE_AS[@]}" >"$WORK/copy-h2.json" || true
    n=$(grep -c '"status": 200' "$WORK/copy-h2.json")
    [ "$n" = 6 ] || problem "(b) tshark decrypts $n HTTP/2 exchanges with status 200 from the -o copy (no key file), expected 6"
    # The HAR written with -o goes with the copy: its _pcapng frames and streams are the copy's.
    ( check_recording "$WORK/copy.pcapng" "$WORK/f.har" --strict --no-comments \
        --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /binary.bin 200" \
        --expect "GET /1m.bin 200" --expect "GET /small.txt 200" --expect "POST /post 200" "${BODIES[@]}" ) ||
        problem "(b) -f with -o: the HAR's _pcapng {frame, stream} do not point into the -o copy (see above)"
fi
# -f without -o: the HAR points into the input file.
read_har "$WORK/capk.pcapng" "$WORK/f2.har" -f "tcp port $ORIGIN_PORT"
if [ $READ_RC -ne 0 ]; then
    problem "(b) mitmrec -r capk.pcapng -f 'tcp port $ORIGIN_PORT' exited $READ_RC: $(cat "$READ_ERR")"
else
    har_filter "$WORK/b.har" "$WORK/b-plain.har" "\":$ORIGIN_PORT/\" in e[\"request\"][\"url\"]"
    same_entries "$WORK/b-plain.har" "$WORK/f2.har" --ignore _pcapng "(b) -f 'tcp port $ORIGIN_PORT': the plain port's entries"
    ( check_recording "$WORK/capk.pcapng" "$WORK/f2.har" --no-comments \
        --contains "GET /small.txt 200" --contains "GET /data.json 200" ) ||
        problem "(b) -f without -o: the HAR's _pcapng {frame, stream} do not point into the input file (see above)"
fi
log "(b) done"

# =============================================================================================
# (c) cut and corrupt files, made from capk.pcapng (b.har is its full HAR).
"$PY" "$WORK/pcapblocks.py" "$WORK/capk.pcapng" >"$WORK/blocks.txt"
SIZE=$(stat -c %s "$WORK/capk.pcapng")
# The HTTP/2 connection (stream 3) starts once streams 0 to 2 are over.
read -r SYN3_OFF _ SYN3_LEN _ <<<"$(grep ' SYN 3$' "$WORK/blocks.txt")"
[ -n "$SYN3_OFF" ] || fail "no fourth TCP connection in capk.pcapng's blocks"
# done_before OFFSET: a Python list of the streams whose last block ends at or before OFFSET.
done_before() {
    awk -v b="$1" 'BEGIN {printf "["} $1 == "STREAM" && $4 <= b {printf "%s%d", sep, $2; sep = ", "} END {print "]"}' \
        "$WORK/blocks.txt"
}
BEFORE3=$(done_before "$SYN3_OFF")
[ "$BEFORE3" = "[0, 1, 2]" ] || log "note: when stream 3 starts, only streams $BEFORE3 are over"

# check_bad IN HAR OFFSET KEEP WHAT: mitmrec -r IN fails (non-zero) with one error line naming
# OFFSET, and HAR (valid) holds the reference HAR's entries (REF_HAR, b.har by default) for
# which the Python expression KEEP holds (e the entry), and besides them only entries of the
# reference or entries with an _error.
check_bad() {
    local in=$1 har=$2 off=$3 keep=$4 what=$5 errs
    read_har "$in" "$har"
    if [ $READ_RC -eq 0 ]; then
        problem "$what: mitmrec -r exited 0, expected a failure"
    elif [ $READ_RC -eq 124 ] || [ $READ_RC -gt 128 ]; then
        problem "$what: mitmrec -r hung or died (status $READ_RC)"
        return
    fi
    errs=$(grep -ci 'error' "$READ_ERR")
    [ "$errs" = 1 ] || problem "$what: $errs error lines on stderr, expected 1: $(cat "$READ_ERR")"
    grep -i 'error' "$READ_ERR" | grep -Eq "(^|[^0-9])$off([^0-9]|$)" ||
        problem "$what: the error does not name the byte offset $off: $(cat "$READ_ERR")"
    ( har_validate "$har" ) || { problem "$what: the HAR does not validate"; return; }
    har_filter "${REF_HAR:-$WORK/b.har}" "$har.want" "$keep"
    har_filter "$har" "$har.kept" "$keep"
    same_entries "$har.want" "$har.kept" "$what: the requests before the bad block"
    har_filter "$har" "$har.rest" "not ($keep) and \"_error\" not in e and \"_error\" not in e[\"response\"]"
    har_filter "${REF_HAR:-$WORK/b.har}" "$har.brest" "e[\"_index\"] in [x[\"_index\"] for x in json.load(open(\"$har.rest\"))[\"log\"][\"entries\"]]"
    same_entries "$har.brest" "$har.rest" "$what: the entries after it without _error"
}

# 1. Cut inside the block of the fourth connection's SYN: the first three connections are whole.
head -c $((SYN3_OFF + SYN3_LEN / 2 + 1)) "$WORK/capk.pcapng" >"$WORK/cut1.pcapng"
check_bad "$WORK/cut1.pcapng" "$WORK/cut1.har" "$SYN3_OFF" "e.get(\"_pcapng\", {}).get(\"stream\", 99) in $BEFORE3" \
    "(c) cut inside a block (at $((SYN3_OFF + SYN3_LEN / 2 + 1)) of $SIZE bytes)"
# 2. Cut at an arbitrary offset (61 % of the file): the connections that ended before the block
#    holding that offset must be there.
CUT=$((SIZE * 61 / 100 + 3))
# (not on a block boundary: the file would then just be shorter, and valid)
while awk -v c="$CUT" '$1 == c {f = 1} END {exit !f}' "$WORK/blocks.txt"; do CUT=$((CUT + 1)); done
read -r CUT_BLOCK <<<"$(awk -v c="$CUT" '$1 ~ /^[0-9]+$/ && $1 <= c && c < $1 + $3 {print $1}' "$WORK/blocks.txt")"
DONE=$(done_before "$CUT_BLOCK")
head -c "$CUT" "$WORK/capk.pcapng" >"$WORK/cut2.pcapng"
check_bad "$WORK/cut2.pcapng" "$WORK/cut2.har" "$CUT_BLOCK" "e.get(\"_pcapng\", {}).get(\"stream\", 99) in $DONE" \
    "(c) cut at an arbitrary offset ($CUT of $SIZE bytes, in the block at $CUT_BLOCK)"
# 3. A corrupt block length: the fourth connection's SYN block says it is 2 GiB long; then one
#    whose trailing length differs from its leading one.
"$PY" - "$WORK/capk.pcapng" "$SYN3_OFF" "$SYN3_LEN" "$WORK" <<'EOF' || fail "cannot write the corrupt files"
import struct, sys
src, off, ln, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
d = bytearray(open(src, "rb").read())
a = bytearray(d)
struct.pack_into("<I", a, off + 4, 0x7FFFFFF0)
open(work + "/corrupt-len.pcapng", "wb").write(a)
b = bytearray(d)
struct.pack_into("<I", b, off + ln - 4, ln + 64)
open(work + "/corrupt-trail.pcapng", "wb").write(b)
EOF
check_bad "$WORK/corrupt-len.pcapng" "$WORK/corrupt-len.har" "$SYN3_OFF" "e.get(\"_pcapng\", {}).get(\"stream\", 99) in $BEFORE3" \
    "(c) a block length of 0x7ffffff0 at $SYN3_OFF"
check_bad "$WORK/corrupt-trail.pcapng" "$WORK/corrupt-trail.har" "$SYN3_OFF" "e.get(\"_pcapng\", {}).get(\"stream\", 99) in $BEFORE3" \
    "(c) a trailing block length that differs, at $SYN3_OFF"

# 4. Input that is no capture at all (text, empty, 2 bytes, gzipped text, text on stdin): one
#    line naming the problem, exit 1, and the --har and -o files of an earlier run are kept
#    byte for byte (they used to be emptied before the first block was read).
printf 'GET / HTTP/1.1\r\n\r\n' >"$WORK/text.pcapng"
: >"$WORK/empty.pcapng"
printf '\n\r' >"$WORK/two.pcapng"
gzip -c "$WORK/text.pcapng" >"$WORK/text.pcapng.gz"
cp "$WORK/b.har" "$WORK/keep.har"
cp "$WORK/capk.pcapng" "$WORK/keep.pcapng"
for in in text.pcapng empty.pcapng two.pcapng text.pcapng.gz stdin; do
    case $in in
    text.pcapng*) want="not a pcap or pcapng file (magic 47455420)" ;;
    empty.pcapng) want="empty input: not a pcap or pcapng file" ;;
    two.pcapng) want="the file ends inside a block header (2 bytes)" ;;
    esac
    if [ "$in" = stdin ]; then
        timeout 60 "$MITMREC" -r - --har "$WORK/keep.har" -o "$WORK/keep.pcapng" \
            <"$WORK/text.pcapng" >/dev/null 2>"$WORK/nocap.err"
        rc=$? name=-
    else
        timeout 60 "$MITMREC" -r "$WORK/$in" --har "$WORK/keep.har" -o "$WORK/keep.pcapng" \
            >/dev/null 2>"$WORK/nocap.err"
        rc=$? name=$WORK/$in
    fi
    [ $rc = 1 ] && [ "$(cat "$WORK/nocap.err")" = "mitmrec: error: $name: $want" ] ||
        problem "(c) -r $in: expected exit 1 and the one line 'mitmrec: error: $name: $want', got $rc: $(cat "$WORK/nocap.err")"
    cmp -s "$WORK/keep.har" "$WORK/b.har" || problem "(c) -r $in emptied or changed the existing --har file"
    cmp -s "$WORK/keep.pcapng" "$WORK/capk.pcapng" || problem "(c) -r $in emptied or changed the existing -o file"
done
log "(c) done"

# =============================================================================================
# (d) the invariant, on a live recording through the explicit proxy (HTTP/1.1 and h2c).
start_mitmrec -o "$WORK/live.pcapng" --cacert "$TEST_CA"
(
    set -e
    pcurl --tlsv1.2 --tls-max 1.2 -o dl/l-small12.txt "$T/small.txt"
    pcurl --tlsv1.3 --compressed -o dl/l-small.txt "$TL/small.txt" -o dl/l-data.json "$TL/data.json" \
        -o dl/l-binary.bin "$TL/binary.bin" -o dl/l-1m.bin "$TL/1m.bin" -o /dev/null "$TL/nothere"
    pcurl -I -o /dev/null "$TL/small.txt"
    pcurl --data-binary @"$WORK/form.txt" -H 'Content-Type: application/x-www-form-urlencoded' \
        -o dl/l-post.txt "$TL/post"
    pcurl --data-binary @"$WORK/post.bin" -H 'Content-Type: application/octet-stream' -o /dev/null "$T/post"
    pcurl -o /dev/null "$TL/empty" -o /dev/null "$TL/redirect"
    pcurl --compressed -o dl/l-plain.json "$P/data.json" --next -x "http://127.0.0.1:$MITM_PORT" \
        --data-binary @"$WORK/form.txt" -o /dev/null "$P/post"
    pcurl -p --http2-prior-knowledge -o dl/l-h2c.txt "http://127.0.0.1:$ORIGIN_H2CPORT/small.txt"
) || fail "(d) a curl run through the proxy failed"
"$PY" - "$MITM_PORT" "$MITM_CA" "$ORIGIN_TLSPORT" >"$WORK/py.out" 2>&1 <<'EOF' || fail "(d) python urllib through the proxy: $(cat "$WORK/py.out")"
import ssl, sys, urllib.error, urllib.request
proxy, cafile, port = sys.argv[1:4]
o = urllib.request.build_opener(
    urllib.request.ProxyHandler({"https": "http://127.0.0.1:" + proxy}),
    urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=cafile)))
with o.open("https://localhost:%s/small.txt" % port, timeout=20) as r:
    etag = r.headers["ETag"]
try:
    o.open(urllib.request.Request("https://localhost:%s/small.txt" % port,
                                  headers={"If-None-Match": etag}), timeout=20)
    sys.exit("no 304")
except urllib.error.HTTPError as e:
    assert e.code == 304, e.code
EOF
stop_mitmrec
same_file dl/l-1m.bin "$WWW/1m.bin" "(d) 1 MiB through the proxy"
( check_recording "$MITM_PCAP" "$MITM_HAR" --strict --contains "GET /1m.bin 200" \
    --contains "POST /post 200" --contains "GET /small.txt 304" --contains "GET /nothere 404" \
    --contains "HEAD /small.txt 200" --contains "GET /empty 204" --contains "GET /redirect 302" \
    "${BODIES[@]}" ) || problem "(d) the live recording does not pass check_recording (see above)"
( check_same_entries "$MITM_PCAP" "$MITM_HAR" ) ||
    problem "(d) mitmrec -r live.pcapng does not give the live HAR's entries (see above)"
# A live recording cut at an arbitrary offset (47 %): as in (c).
"$PY" "$WORK/pcapblocks.py" "$MITM_PCAP" >"$WORK/live-blocks.txt"
LSIZE=$(stat -c %s "$MITM_PCAP")
LCUT=$((LSIZE * 47 / 100 + 1))
while awk -v c="$LCUT" '$1 == c {f = 1} END {exit !f}' "$WORK/live-blocks.txt"; do LCUT=$((LCUT + 1)); done
LBLOCK=$(awk -v c="$LCUT" '$1 ~ /^[0-9]+$/ && $1 <= c && c < $1 + $3 {print $1}' "$WORK/live-blocks.txt")
LDONE=$(awk -v b="$LBLOCK" 'BEGIN {printf "["} $1 == "STREAM" && $4 <= b {printf "%s%d", sep, $2; sep = ", "} END {print "]"}' \
    "$WORK/live-blocks.txt")
head -c "$LCUT" "$MITM_PCAP" >"$WORK/live-cut.pcapng"
REF_HAR=$MITM_HAR check_bad "$WORK/live-cut.pcapng" "$WORK/live-cut.har" "$LBLOCK" \
    "e.get(\"_pcapng\", {}).get(\"stream\", 99) in $LDONE" \
    "(d) the live recording cut at $LCUT of $LSIZE bytes (in the block at $LBLOCK; streams $LDONE whole)"
# With -o: the copy holds the same packets (so the same _pcapng) and tshark decrypts it alone.
read_har "$MITM_PCAP" "$WORK/live-again.har" -o "$WORK/live-copy.pcapng"
if [ $READ_RC -ne 0 ]; then
    problem "(d) mitmrec -r live.pcapng -o live-copy.pcapng exited $READ_RC: $(cat "$READ_ERR")"
else
    same_entries "$MITM_HAR" "$WORK/live-again.har" "(d) live HAR vs mitmrec -r live.pcapng -o copy"
    ( tshark_ok "$WORK/live-copy.pcapng" ) || problem "(d) tshark does not read the -o copy cleanly"
    n1=$(tshark_requests "$MITM_PCAP" | grep -vc '^CONNECT ')
    n2=$(tshark_requests "$WORK/live-copy.pcapng" | grep -vc '^CONNECT ')
    [ "$n1" = "$n2" ] && [ "$n2" -gt 0 ] ||
        problem "(d) tshark decrypts $n2 HTTP requests from the -o copy, $n1 from the recording"
fi
# -f on mitmrec's own recording, whose packets are raw IP (LINKTYPE_RAW, 101, which libpcap
# knows as DLT_RAW): only the plain HTTP origin's exchanges, with the input's numbering.
har_filter "$MITM_HAR" "$WORK/live-plain.want" "e['request']['url'].startswith('$P/')"
read_har "$MITM_PCAP" "$WORK/live-plain.har" -f "tcp port $ORIGIN_PORT"
nplain=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["log"]["entries"]))' "$WORK/live-plain.want")
if [ $READ_RC -ne 0 ]; then
    problem "(d) mitmrec -r live.pcapng -f 'tcp port $ORIGIN_PORT' exited $READ_RC: $(cat "$READ_ERR")"
elif [ "$nplain" -lt 2 ]; then
    problem "(d) the live HAR has $nplain plain HTTP entries, expected 2 or more"
else
    same_entries "$WORK/live-plain.want" "$WORK/live-plain.har" "(d) -f 'tcp port $ORIGIN_PORT' on the live recording"
fi
# A filter that does not parse: exit 1, one line naming it, and the HAR there is left alone.
echo kept >"$WORK/kept.har"
read_har "$MITM_PCAP" "$WORK/kept.har" -f "tcp port"
if [ $READ_RC -ne 1 ] || [ "$(wc -l <"$READ_ERR")" -ne 1 ] ||
    ! grep -q "^mitmrec: error: invalid filter 'tcp port': " "$READ_ERR" ||
    [ "$(cat "$WORK/kept.har")" != kept ]; then
    problem "(d) -f 'tcp port': expected exit 1, one 'invalid filter' line and the old HAR kept; got exit $READ_RC, $(cat "$READ_ERR"), HAR $(head -c 80 "$WORK/kept.har")"
fi
log "(d) done"

# (d2) the same for HTTP/2 over TLS through the proxy.
start_mitmrec -o "$WORK/live2.pcapng" --cacert "$TEST_CA"
out=$(pcurl --http2 -w '%{http_version} %{http_code}\n' -o dl/l2-small.txt "$H2/small.txt" \
    -o dl/l2-data.json --compressed "$H2/data.json" -o dl/l2-1m.bin "$H2/1m.bin" 2>&1)
rc=$?
stop_mitmrec
if [ $rc -ne 0 ] || [ "$(printf '%s\n' "$out" | sort -u)" != "2 200" ]; then
    problem "(d2) curl --http2 through the proxy failed ($rc): $(printf '%s' "$out" | tr '\n' ' ') (the HTTP/2 failure of http2.sh)"
else
    ( check_same_entries "$MITM_PCAP" "$MITM_HAR" ) ||
        problem "(d2) mitmrec -r on an HTTP/2 live recording does not give the live HAR's entries"
fi

finish_problems
log "ok"
exit 0
