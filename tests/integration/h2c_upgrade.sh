#!/bin/bash
# SPDX-License-Identifier: MIT
# HTTP/1.1 "Upgrade: h2c", recorded in spawn mode: curl --http2 with two URLs to nghttpx
# (Debian's nghttp2-proxy, which takes the upgrade on a cleartext frontend) in front of nginx.
# The first request goes out as HTTP/1.1 and is answered on HTTP/2's stream 1, the second is
# stream 3 of the same connection. The HAR must have two entries, _index 0 and 1, with the
# files' bytes and HTTP/2 responses, and the _pcapng frame of the first must be the packet of
# the HTTP/1.1 request (tshark: a GET with "Upgrade: h2c"), the only packet whose comment names
# that entry. Before, stream 1 was announced a second time: it got index 1 and the client's
# preface as its frame, and the request's comment "har entry 0" named no entry. Then read mode
# (-r) gives the same entries, and mitmreplay answers the same command offline (it does not
# take the upgrade: curl goes on in HTTP/1.1, as a server may make it), with the same bytes.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl nghttpx tshark "$PY"
spawn_available || skip "spawn mode unavailable here: $SPAWN_WHY"
start_origin
FRONT=$(free_port)
# --conf=/dev/null: none of /etc/nghttpx's; the frontend is cleartext, the backend nginx.
start_server nghttpx "$FRONT" 10 "$WORK/nghttpx.log" nghttpx --conf=/dev/null \
    --frontend="127.0.0.1,$FRONT;no-tls" --backend="127.0.0.1,$ORIGIN_PORT" --workers=1 \
    --no-ocsp --errorlog-file="$WORK/nghttpx.err"
U=http://127.0.0.1:$FRONT

cat >"$WORK/client.sh" <<SH
#!/bin/sh
o=\$1
curl -sS --http2 -w '%{http_version} %{http_code}\n' -o "\$o/small.txt" $U/small.txt \
    -o "\$o/data.json" $U/data.json >"\$o/codes" || exit 11
SH
chmod 755 "$WORK/client.sh"
mkdir -p "$WORK/direct" "$WORK/rec" "$WORK/replay"
"$WORK/client.sh" "$WORK/direct" || fail "curl --http2 to nghttpx, direct: exit $?"
[ "$(cat "$WORK/direct/codes")" = "$(printf '2 200\n2 200')" ] ||
    fail "curl did not upgrade to h2c with nghttpx: $(tr '\n' ' ' <"$WORK/direct/codes")"

spawn_mitmrec 40 "$WORK/up.pcapng" -- "$WORK/client.sh" "$WORK/rec"
[ "$SPAWN_RC" = 0 ] || fail "recording: the client exited $SPAWN_RC"
cmp -s "$WORK/direct/codes" "$WORK/rec/codes" ||
    fail "recording: curl saw $(tr '\n' ' ' <"$WORK/rec/codes"), direct $(tr '\n' ' ' <"$WORK/direct/codes")"
same_file "$WORK/rec/small.txt" "$WWW/small.txt" "recorded small.txt"
same_file "$WORK/rec/data.json" "$WWW/data.json" "recorded data.json"
tshark_ok "$MITM_PCAP"
har_validate "$MITM_HAR"

# tshark's view: the frames that carry an entry's comment, and the HTTP/1.1 upgrade request.
tshark -n -r "$MITM_PCAP" -d "tcp.port==$FRONT,http" -T fields -E separator='|' \
    -e frame.number -e frame.comment -e http.request.method -e http.request.uri -e http.upgrade \
    >"$WORK/frames" 2>"$WORK/tshark.err" || fail "tshark: $(head -c 500 "$WORK/tshark.err")"
"$PY" - "$MITM_HAR" "$WORK/frames" "$U" "$WWW" <<'EOF' || fail "the h2c recording (see above)"
import base64, json, re, sys
har, frames, u, www = sys.argv[1:]
entries = json.load(open(har))["log"]["entries"]
bad = []
def want(c, what):
    if not c:
        bad.append(what)
want(len(entries) == 2, "%d entries, want 2" % len(entries))
names = {}
rows = {}
for line in open(frames):
    f = line.rstrip("\n").split("|")
    rows[int(f[0])] = f
    for n in re.findall(r"har entry (\d+): ", f[1]):
        names.setdefault(int(n), []).append(int(f[0]))
want(names.keys() == {0, 1} and all(len(v) == 1 for v in names.values()),
     "the comments name entries %s (frames), want 0 and 1 once each" % names)
for i, (e, path) in enumerate(zip(entries, ("/small.txt", "/data.json"))):
    r, s = e["request"], e["response"]
    want(e["_index"] == i, "entry %d: _index %s" % (i, e["_index"]))
    want(r["method"] == "GET" and r["url"] == u + path, "entry %d: %s %s" % (i, r["method"], r["url"]))
    want(s["status"] == 200 and s["httpVersion"] == "HTTP/2", "entry %d: %s %s" % (i, s["status"], s["httpVersion"]))
    c = s["content"]
    body = base64.b64decode(c["text"]) if c.get("encoding") == "base64" else c.get("text", "").encode()
    want(body == open(www + path, "rb").read(), "entry %d: the body is not %s" % (i, path))
    want(e["_pcapng"]["frame"] == names.get(i, [None])[0],
         "entry %d: _pcapng frame %s, its comment is on %s" % (i, e["_pcapng"]["frame"], names.get(i)))
want(entries[0]["request"]["httpVersion"] == "HTTP/1.1" and entries[1]["request"]["httpVersion"] == "HTTP/2",
     "request versions %s" % [e["request"]["httpVersion"] for e in entries])
f0 = rows.get(entries[0]["_pcapng"]["frame"], ["", "", "", "", ""])
want(f0[2] == "GET" and f0[3] == "/small.txt" and f0[4].lower() == "h2c",
     "entry 0's frame is not the upgrade request in tshark: %s" % f0)
for b in bad:
    print("h2c_upgrade: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
check_same_entries "$MITM_PCAP" "$MITM_HAR"
log "recorded: two entries, index 0 on the HTTP/1.1 upgrade request's frame, HTTP/2 answers, read mode the same"

stop_server nghttpx "$FRONT"
stop_origin
run_replay "$WORK/replay.log" "$MITM_PCAP" --strict -- "$WORK/client.sh" "$WORK/replay"
[ "$REPLAY_RC" = 0 ] || fail "replay: status $REPLAY_RC: $(cat "$WORK/replay.log")"
same_file "$WORK/replay/small.txt" "$WWW/small.txt" "replayed small.txt"
same_file "$WORK/replay/data.json" "$WWW/data.json" "replayed data.json"
log "replayed offline: the same bytes ($(tr '\n' ' ' <"$WORK/replay/codes"))"
log "ok"
