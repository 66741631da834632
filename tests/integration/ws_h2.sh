#!/bin/bash
# SPDX-License-Identifier: MIT
# WebSocket over HTTP/2 (RFC 8441), Node's http2 on both ends: the server (test origin
# certificate) sends SETTINGS_ENABLE_CONNECT_PROTOCOL, answers an extended CONNECT with 200,
# greets, then echoes; the client reads the greeting, sends text, binary, an empty text and a
# 100 kB text (a 64-bit length), pings, closes, and prints a line for each answer.
#   Recorded in spawn mode: the client prints what it printed directly; the HAR has one
#   HTTP/2 entry (CONNECT, the wss URL from :authority and :path, 200) whose
#   _webSocketMessages are the frames both ways, the data equal to what was sent and echoed;
#   mitmrec -r gives the same entries.
#   Replayed with the server stopped, from the pcapng and from the HAR (--strict): mitmreplay's
#   HTTP/2 server offers extended CONNECT, answers 200 and plays the recorded messages in
#   turns; the client prints the same lines, the report shows one HTTP/2 request, replayed.
#   And the same recording answers python3-websockets over HTTP/1.1 (an upgrade, 101): a
#   WebSocket entry answers either version.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need node "$PY"
need_replay
TEST_CA=$TLS_FIXTURES/test-ca.pem

cat >"$WORK/server.js" <<'EOF'
// node server.js PORT CERT KEY: RFC 8441 WebSocket echo server on 127.0.0.1.
const http2 = require('http2'), fs = require('fs');
const [port, cert, key] = process.argv.slice(2);
const srv = http2.createSecureServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key),
                                      settings: {enableConnectProtocol: true}});
function frame(op, data) {
  const n = data.length, h = [0x80 | op];
  if (n < 126) h.push(n);
  else if (n < 65536) h.push(126, n >> 8, n & 255);
  else { h.push(127, 0, 0, 0, 0); for (let i = 3; i >= 0; i--) h.push((n >>> (8 * i)) & 255); }
  return Buffer.concat([Buffer.from(h), data]);
}
srv.on('stream', (st, hd) => {
  if (hd[':method'] !== 'CONNECT' || hd[':protocol'] !== 'websocket') {
    st.respond({':status': 404});
    st.end('not a WebSocket\n');
    return;
  }
  st.respond({':status': 200});
  st.write(frame(1, Buffer.from('welcome')));
  let buf = Buffer.alloc(0);
  st.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15;
      let n = buf[1] & 127, off = 2;
      if (n === 126) { if (buf.length < 4) return; n = buf.readUInt16BE(2); off = 4; }
      else if (n === 127) { if (buf.length < 10) return; n = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (!(buf[1] & 128)) { st.close(); return; }  // client frames are masked
      if (buf.length < off + 4 + n) return;
      const m = buf.subarray(off, off + 4), p = Buffer.from(buf.subarray(off + 4, off + 4 + n));
      for (let i = 0; i < n; i++) p[i] ^= m[i & 3];
      buf = buf.subarray(off + 4 + n);
      if (op === 1 || op === 2) st.write(frame(op, Buffer.concat([Buffer.from('echo:'), p])));
      else if (op === 9) st.write(frame(10, p));
      else if (op === 8) { st.end(frame(8, p.subarray(0, 2))); return; }
    }
  });
});
srv.listen(+port, '127.0.0.1', () => console.log('ready'));
EOF

cat >"$WORK/client.js" <<'EOF'
// node client.js URL: the RFC 8441 client (trusts NODE_EXTRA_CA_CERTS).
const http2 = require('http2'), crypto = require('crypto');
const url = new URL(process.argv[2]);
const s = http2.connect(url.origin);
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex').slice(0, 16);
function frame(op, data) {
  const n = data.length, mask = crypto.randomBytes(4), h = [0x80 | op];
  if (n < 126) h.push(0x80 | n);
  else if (n < 65536) h.push(0x80 | 126, n >> 8, n & 255);
  else { h.push(0x80 | 127, 0, 0, 0, 0); for (let i = 3; i >= 0; i--) h.push((n >>> (8 * i)) & 255); }
  const p = Buffer.from(data);
  for (let i = 0; i < n; i++) p[i] ^= mask[i & 3];
  return Buffer.concat([Buffer.from(h), mask, p]);
}
const timer = setTimeout(() => { console.log('timeout'); process.exit(3); }, 15000);
s.on('error', (e) => { console.log('error ' + e.message); process.exit(1); });
s.once('remoteSettings', (set) => {
  if (!set.enableConnectProtocol) { console.log('no extended CONNECT'); process.exit(2); }
  const st = s.request({':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https',
                        ':authority': url.host, ':path': url.pathname + url.search,
                        'sec-websocket-version': '13'});
  const frames = [];
  let buf = Buffer.alloc(0), waiting = null;
  const next = () => new Promise((r) => { if (frames.length) r(frames.shift()); else waiting = r; });
  st.on('response', (h) => {
    console.log('status ' + h[':status']);
    if (h[':status'] !== 200) process.exit(4);
  });
  st.on('error', (e) => { console.log('stream error ' + e.message); process.exit(1); });
  st.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      let n = buf[1] & 127, off = 2;
      if (n === 126) { if (buf.length < 4) return; n = buf.readUInt16BE(2); off = 4; }
      else if (n === 127) { if (buf.length < 10) return; n = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + n) return;
      const f = {op: buf[0] & 15, data: buf.subarray(off, off + n)};
      buf = buf.subarray(off + n);
      if (waiting) { const w = waiting; waiting = null; w(f); } else frames.push(f);
    }
  });
  (async () => {
    let f = await next();
    console.log('greeting ' + f.op + ' ' + f.data.toString());
    if (url.pathname === '/tick') {
      // the server answers "tick" with three messages, 200 ms apart: how long they take
      const t0 = Date.now(), got = [];
      st.write(frame(1, Buffer.from('tick')));
      for (let i = 0; i < 3; i++) got.push((await next()).data.toString());
      console.log(got.join(' ') + ' after ' + (Date.now() - t0) + ' ms');
      st.write(frame(8, Buffer.from([3, 232])));
      await next();
      st.end();
      st.on('close', () => { clearTimeout(timer); s.close(); });
      return;
    }
    for (const [op, m] of [[1, Buffer.from('hello')], [2, Buffer.from([0, 1, 255, 98])],
                           [1, Buffer.alloc(0)], [1, Buffer.alloc(100000, 'x')]]) {
      st.write(frame(op, m));
      f = await next();
      console.log('echo ' + f.op + ' ' + f.data.length + ' ' + sha(f.data));
    }
    st.write(frame(9, Buffer.from('p1')));
    f = await next();
    console.log('pong ' + f.op + ' ' + f.data.toString());
    st.write(frame(8, Buffer.from([3, 232])));
    f = await next();
    console.log('closed ' + f.op + ' ' + f.data.readUInt16BE(0));
    st.end();
    st.on('close', () => { clearTimeout(timer); s.close(); });
  })();
});
EOF

WP=$(free_port)
URL=https://localhost:$WP/chat?room=1
start_server "the RFC 8441 server" "$WP" 20 "$WORK/server.log" node "$WORK/server.js" "$WP" \
    "$TLS_FIXTURES/origin.pem" "$TLS_FIXTURES/origin-key.pem"
NODE_EXTRA_CA_CERTS=$TEST_CA node "$WORK/client.js" "$URL" >"$WORK/direct.txt" 2>&1 ||
    fail "direct: $(cat "$WORK/direct.txt")"
[ "$(wc -l <"$WORK/direct.txt")" = 8 ] && [ "$(head -n 1 "$WORK/direct.txt")" = "status 200" ] ||
    fail "direct, the client printed: $(cat "$WORK/direct.txt")"

# Record (spawn mode: Node trusts the mitmrec CA through NODE_EXTRA_CA_CERTS).
"$MITMREC" -q -o "$WORK/w.pcapng" --cacert "$TEST_CA" -- node "$WORK/client.js" "$URL" \
    >"$WORK/rec.txt" 2>"$WORK/rec.log" || fail "recording: $(cat "$WORK/rec.txt" "$WORK/rec.log")"
cmp -s "$WORK/direct.txt" "$WORK/rec.txt" ||
    fail "through mitmrec, the client printed: $(diff "$WORK/direct.txt" "$WORK/rec.txt" | head -5)"
har_validate "$WORK/w.har"
"$PY" - "$WORK/w.har" "$URL" <<'EOF' || fail "the HAR of the RFC 8441 WebSocket (see above)"
import base64, json, sys
har, url = sys.argv[1:3]
es = json.load(open(har))["log"]["entries"]
assert len(es) == 1, "%d entries: %s" % (len(es), [e["request"]["url"] for e in es])
e = es[0]
r = e["request"]
assert (r["method"], r["url"], r["httpVersion"], e["response"]["status"]) == \
    ("CONNECT", url, "HTTP/2", 200), (r["method"], r["url"], r["httpVersion"], e["response"]["status"])
assert {"name": ":protocol", "value": "websocket"} in r["headers"], r["headers"]
def data(m):
    return m["data"].encode() if m["opcode"] == 1 else base64.b64decode(m["data"])
got = [(m["type"], m["opcode"], data(m)) for m in e["_webSocketMessages"]]
sent = [(1, b"hello"), (2, b"\x00\x01\xffb"), (1, b""), (1, b"x" * 100000)]
want = [("receive", 1, b"welcome")]
for op, d in sent:
    want += [("send", op, d), ("receive", op, b"echo:" + d)]
want += [("send", 9, b"p1"), ("receive", 10, b"p1"), ("send", 8, b"\x03\xe8"),
         ("receive", 8, b"\x03\xe8")]
if got != want:
    print("_webSocketMessages:", [(t, o, len(d), d[:16]) for t, o, d in got], file=sys.stderr)
    print("expected:          ", [(t, o, len(d), d[:16]) for t, o, d in want], file=sys.stderr)
    sys.exit(1)
EOF
check_same_entries "$WORK/w.pcapng" "$WORK/w.har"
log "recorded: one HTTP/2 CONNECT entry, $URL, 200, every frame both ways"
stop_server "the RFC 8441 server" "$WP"

# Replay over HTTP/2, from the pcapng and from the HAR.
for from in w.pcapng w.har; do
    run_replay "$WORK/$from.log" "$WORK/$from" --strict --report "$WORK/$from.json" -- \
        node "$WORK/client.js" "$URL" >"$WORK/$from.txt"
    [ "$REPLAY_RC" = 0 ] || fail "replay from $from: status $REPLAY_RC: $(tail -n 5 "$WORK/$from.log")"
    cmp -s "$WORK/$from.txt" "$WORK/direct.txt" ||
        fail "replay from $from, the client printed: $(diff "$WORK/direct.txt" "$WORK/$from.txt" | head -5)"
    "$PY" - "$WORK/$from.json" <<'EOF' || fail "replay from $from: the report (see above)"
import json, sys
r = json.load(open(sys.argv[1]))["requests"]
assert len(r) == 1 and r[0]["matched"] and r[0]["httpVersion"] == "HTTP/2" and \
    r[0]["status"] == 200 and r[0]["process"] == "node", r
EOF
done
log "replayed over HTTP/2 (extended CONNECT) from the pcapng and the HAR"

# An unrecorded WebSocket over HTTP/2 with --unmatched passthrough: the stream is joined to an
# HTTP/1.1 upgrade of the live server (python3-websockets, which greets and echoes as
# server.js does), so the client prints what it printed directly; --record-new records that
# conversation, and it replays to the same client with the server gone.
if "$PY" -c 'import websockets' 2>/dev/null; then
    LS=$(free_port)
    start_server "the HTTP/1.1 WebSocket server" "$LS" 20 "$WORK/live.log" "$PY" \
        "$top_srcdir/tests/integration/ws_server.py" "$LS" "" "$TLS_FIXTURES/origin-chain.pem" \
        "$TLS_FIXTURES/origin-key.pem"
    LURL=https://localhost:$LS/chat?room=1
    run_replay "$WORK/pass.log" "$WORK/w.pcapng" --unmatched passthrough --cacert "$TEST_CA" \
        --record-new "$WORK/new.pcapng" -- node "$WORK/client.js" "$LURL" >"$WORK/pass.txt"
    [ "$REPLAY_RC" = 0 ] || fail "passthrough over HTTP/2: status $REPLAY_RC: $(tail -n 5 "$WORK/pass.log")"
    cmp -s "$WORK/pass.txt" "$WORK/direct.txt" ||
        fail "passthrough over HTTP/2, the client printed: $(diff "$WORK/direct.txt" "$WORK/pass.txt" | head -5)"
    grep -q "passthrough: GET $LURL (WebSocket)" "$WORK/pass.log" ||
        fail "passthrough over HTTP/2: $(grep -i passthrough "$WORK/pass.log")"
    tshark_ok "$WORK/new.pcapng"
    har_validate "$WORK/new.har"
    [ "$(har_query "$WORK/new.har" '" ".join("%s %s %d %d" % (e["request"]["url"], e["request"]["httpVersion"], e["response"]["status"], len(e.get("_webSocketMessages", []))) for e in h["log"]["entries"])')" = \
        "$LURL HTTP/1.1 101 13" ] ||
        fail "--record-new's HAR: $(har_query "$WORK/new.har" '[(e["request"]["url"], e["response"]["status"], len(e.get("_webSocketMessages", []))) for e in h["log"]["entries"]]')"
    # Ticks recorded the same way, for --realtime below.
    run_replay "$WORK/tickrec.log" "$WORK/w.pcapng" --unmatched passthrough --cacert "$TEST_CA" \
        --record-new "$WORK/tick.pcapng" -- node "$WORK/client.js" "https://localhost:$LS/tick" >"$WORK/tick.txt"
    rec=$(sed -n 's/^tick 1 tick 2 tick 3 after \([0-9]*\) ms$/\1/p' "$WORK/tick.txt")
    [ "$REPLAY_RC" = 0 ] && [ -n "$rec" ] && [ "$rec" -ge 600 ] ||
        fail "ticks through passthrough: status $REPLAY_RC, the client printed: $(cat "$WORK/tick.txt")"
    stop_server "the HTTP/1.1 WebSocket server" "$LS"
    # --realtime over HTTP/2: the server's messages keep their recorded delays.
    for rt in "" --realtime; do
        run_replay "$WORK/tick$rt.log" "$WORK/tick.pcapng" --strict $rt -- node "$WORK/client.js" \
            "https://localhost:$LS/tick" >"$WORK/tick$rt.txt"
        got=$(sed -n 's/^tick 1 tick 2 tick 3 after \([0-9]*\) ms$/\1/p' "$WORK/tick$rt.txt")
        if [ -z "$rt" ]; then
            [ "$REPLAY_RC" = 0 ] && [ -n "$got" ] && [ "$got" -lt 300 ] ||
                fail "ticks replayed over HTTP/2: status $REPLAY_RC, the client printed: $(cat "$WORK/tick$rt.txt")"
        else
            [ "$REPLAY_RC" = 0 ] && [ -n "$got" ] && [ "$got" -ge $((rec - 100)) ] && [ "$got" -lt $((rec + 1000)) ] ||
                fail "ticks replayed over HTTP/2 with --realtime: status $REPLAY_RC, the client printed: $(cat "$WORK/tick$rt.txt") (recorded: $rec ms)"
        fi
        log "ticks over HTTP/2${rt:+ with $rt}: recorded after $rec ms, replayed after $got ms"
    done
    run_replay "$WORK/again.log" "$WORK/new.pcapng" --strict -- node "$WORK/client.js" "$LURL" >"$WORK/again.txt"
    [ "$REPLAY_RC" = 0 ] || fail "replay of the passed-through one: status $REPLAY_RC: $(tail -n 5 "$WORK/again.log")"
    cmp -s "$WORK/again.txt" "$WORK/direct.txt" ||
        fail "replay of the passed-through one, the client printed: $(diff "$WORK/direct.txt" "$WORK/again.txt" | head -5)"
    # And with the server gone, passthrough answers the extended CONNECT with a 502 at once.
    run_replay "$WORK/gone.log" "$WORK/w.pcapng" --unmatched passthrough -- \
        node "$WORK/client.js" "$LURL" >"$WORK/gone.txt"
    [ "$(cat "$WORK/gone.txt")" = "status 502" ] && grep -q "cannot connect upstream" "$WORK/gone.log" ||
        fail "passthrough over HTTP/2 to a server that is gone: $(cat "$WORK/gone.txt"; grep -i passthrough "$WORK/gone.log")"
    log "an unrecorded WebSocket over HTTP/2 passed through to an HTTP/1.1 server, recorded, replayed; 502 once it is gone"
fi

# An upstream that does not switch protocols (openssl s_server -WWW answers the GET itself):
# the extended CONNECT gets a 502, and the log says what the upstream answered.
RP=$(free_port)
start_server "openssl s_server" "$RP" 20 "$WORK/sserver.log" openssl s_server -accept "127.0.0.1:$RP" \
    -cert "$TLS_FIXTURES/origin-chain.pem" -key "$TLS_FIXTURES/origin-key.pem" -WWW -quiet
run_replay "$WORK/refused.log" "$WORK/w.pcapng" --unmatched passthrough --cacert "$TEST_CA" -- \
    node "$WORK/client.js" "https://localhost:$RP/nothing" >"$WORK/refused.txt"
[ "$(cat "$WORK/refused.txt")" = "status 502" ] &&
    grep -q "passthrough to https://localhost:$RP: the upstream answered the WebSocket upgrade with [0-9]" "$WORK/refused.log" ||
    fail "passthrough over HTTP/2 to a server that does not switch: $(cat "$WORK/refused.txt"; grep -i passthrough "$WORK/refused.log")"
stop_server "openssl s_server" "$RP"
log "an upstream that does not switch protocols: 502, and the log says what it answered"

# The same recording, to an HTTP/1.1 client (python3-websockets: an upgrade, answered 101).
if "$PY" -c 'import websockets' 2>/dev/null; then
    cat >"$WORK/client.py" <<'EOF'
import asyncio, hashlib, sys, websockets
def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]
async def main(url):
    async with websockets.connect(url, max_size=None) as ws:
        g = await asyncio.wait_for(ws.recv(), 5)
        print("greeting 1", g)
        for m in ["hello", b"\x00\x01\xffb", "", "x" * 100000]:
            await ws.send(m)
            r = await asyncio.wait_for(ws.recv(), 5)
            b = r.encode() if isinstance(r, str) else r
            print("echo", 1 if isinstance(r, str) else 2, len(b), sha(b))
        await asyncio.wait_for(await ws.ping(b"p1"), 5)
        print("pong 10 p1")
    print("closed 8", ws.close_code)
asyncio.run(main(sys.argv[1]))
EOF
    run_replay "$WORK/h1.log" "$WORK/w.pcapng" --strict -- "$PY" "$WORK/client.py" \
        "wss://localhost:$WP/chat?room=1" >"$WORK/h1.txt"
    [ "$REPLAY_RC" = 0 ] || fail "replay to HTTP/1.1: status $REPLAY_RC: $(tail -n 5 "$WORK/h1.log")"
    tail -n +2 "$WORK/direct.txt" | cmp -s - "$WORK/h1.txt" ||
        fail "replay to HTTP/1.1, the client printed: $(tail -n +2 "$WORK/direct.txt" | diff - "$WORK/h1.txt" | head -5)"
    log "the HTTP/2 recording answered an HTTP/1.1 upgrade too"
else
    log "note: python3-websockets not installed: the HTTP/1.1 part is skipped"
fi
log "ok"
exit 0
