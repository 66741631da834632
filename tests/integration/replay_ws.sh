#!/bin/bash
# SPDX-License-Identifier: MIT
# WebSocket replay: python3-websockets' server greets each client, then echoes; the client
# (permessage-deflate offered on one connection, not on the other) reads the greeting, sends
# text, binary, an empty text and a 100 kB text, pings, and closes. Recorded in spawn mode;
# the server is stopped; mitmreplay answers the same client from the pcapng and from the HAR
# (its _webSocketMessages): a 101 with the Sec-WebSocket-Accept for the client's own key,
# then the recorded messages in turns. The client prints the same lines; its ping gets a
# pong and its close a close.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need "$PY"
"$PY" -c 'import websockets' 2>/dev/null || skip "python3-websockets not installed"
need_replay
cat >"$WORK/server.py" <<'PY'
import asyncio, sys, websockets
async def handler(ws, path=None):
    await ws.send("welcome")
    async for m in ws:
        await ws.send(("echo:" + m) if isinstance(m, str) else (b"echo:" + m))
async def main():
    async with websockets.serve(handler, "127.0.0.1", int(sys.argv[1])):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
PY
cat >"$WORK/client.py" <<'PY'
import asyncio, hashlib, sys, websockets
async def session(port, compression):
    url = "ws://127.0.0.1:%s/chat?c=%s" % (port, compression or "none")
    async with websockets.connect(url, compression=compression, max_size=None) as ws:
        print(compression, "greeting", await asyncio.wait_for(ws.recv(), 5))
        for m in ["hello", b"\x00\x01\xffbin", "", "x" * 100000]:
            await ws.send(m)
            r = await asyncio.wait_for(ws.recv(), 5)
            print(compression, type(r).__name__, len(r), hashlib.sha256(r if isinstance(r, bytes) else r.encode()).hexdigest()[:16])
        await asyncio.wait_for(await ws.ping(b"p1"), 5)
        print(compression, "pong")
    print(compression, "closed", ws.close_code)
async def main():
    await session(sys.argv[1], "deflate")
    await session(sys.argv[1], None)
asyncio.run(main())
PY
WP=$(free_port)
start_server "the WebSocket server" "$WP" 20 "$WORK/server.log" "$PY" "$WORK/server.py" "$WP"
"$PY" "$WORK/client.py" "$WP" >"$WORK/direct.txt" 2>&1 || fail "direct: $(cat "$WORK/direct.txt")"
[ "$(wc -l <"$WORK/direct.txt")" = 14 ] || fail "direct, the client printed: $(cat "$WORK/direct.txt")"
"$MITMREC" -q -o "$WORK/w.pcapng" -- "$PY" "$WORK/client.py" "$WP" >"$WORK/rec.txt" 2>"$WORK/rec.log" ||
    fail "recording: $(cat "$WORK/rec.txt" "$WORK/rec.log")"
cmp -s "$WORK/direct.txt" "$WORK/rec.txt" || fail "through mitmrec, the client printed: $(cat "$WORK/rec.txt")"
[ "$(har_query "$WORK/w.har" '" ".join("%d:%d" % (e["response"]["status"], len([m for m in e.get("_webSocketMessages", []) if m["opcode"] in (1, 2)])) for e in h["log"]["entries"])')" = "101:9 101:9" ] ||
    fail "the HAR: $(har_query "$WORK/w.har" '[(e["response"]["status"], len(e.get("_webSocketMessages", []))) for e in h["log"]["entries"]]')"
stop_server "the WebSocket server" "$WP"

for from in w.pcapng w.har; do
    run_replay "$WORK/$from.log" "$WORK/$from" --strict -- "$PY" "$WORK/client.py" "$WP" >"$WORK/$from.txt"
    [ "$REPLAY_RC" = 0 ] || fail "replay from $from: status $REPLAY_RC: $(tail -n 5 "$WORK/$from.log")"
    cmp -s "$WORK/$from.txt" "$WORK/direct.txt" ||
        fail "replay from $from, the client printed: $(diff "$WORK/direct.txt" "$WORK/$from.txt" | head -5)"
done
log "WebSocket: greeting, text, binary, empty, 100 kB, ping, close; deflate offered and not; replayed from the pcapng and the HAR"
exit 0
