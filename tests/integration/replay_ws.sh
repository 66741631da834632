#!/bin/bash
# SPDX-License-Identifier: MIT
# WebSocket replay: python3-websockets' server greets each client, then echoes; the client
# (permessage-deflate offered on one connection, not on the other) reads the greeting, sends
# text, binary, an empty text and a 100 kB text, pings, and closes. Recorded in spawn mode;
# the server is stopped; mitmreplay answers the same client from the pcapng and from the HAR
# (its _webSocketMessages): a 101 with the Sec-WebSocket-Accept for the client's own key,
# then the recorded messages in turns. The client prints the same lines; its ping gets a
# pong and its close a close. Then --unmatched passthrough with a WebSocket the recording
# does not have (ws:// and wss://): the live servers answer, --record-new records them,
# and that recording replays with the servers gone; passthrough to a server that is gone
# answers the upgrade with a 502 that says why.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need "$PY"
"$PY" -c 'import websockets' 2>/dev/null || skip "python3-websockets not installed"
need_replay
WS_SERVER=$top_srcdir/tests/integration/ws_server.py
# client.py PORT|URL...: for each, a session with permessage-deflate offered and one without,
# to ws://127.0.0.1:PORT/chat or to URL, with ?c=deflate or ?c=none.
cat >"$WORK/client.py" <<'PY'
import asyncio, hashlib, sys, websockets
async def session(base, compression):
    url = "%s?c=%s" % (base, compression or "none")
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
    for a in sys.argv[1:]:
        base = ("ws://127.0.0.1:%s/chat" % a) if a.isdigit() else a
        await session(base, "deflate")
        await session(base, None)
asyncio.run(main())
PY
WP=$(free_port)
start_server "the WebSocket server" "$WP" 20 "$WORK/server.log" "$PY" "$WS_SERVER" "$WP"
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

# --realtime: the server's messages keep their recorded delays. The server answers "tick" with
# three messages 200 ms apart; replayed as fast as possible they come at once, with
# --realtime 600 ms after the client's message, as recorded.
cat >"$WORK/tick.py" <<'PY'
import asyncio, sys, time, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%s/tick" % sys.argv[1]) as ws:
        print("greeting", await asyncio.wait_for(ws.recv(), 5))
        t0 = time.monotonic()
        await ws.send("tick")
        got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
        print(" ".join(got), "after %d ms" % ((time.monotonic() - t0) * 1000), flush=True)
asyncio.run(main())
PY
start_server "the WebSocket server" "$WP" 20 "$WORK/server.log" "$PY" "$WS_SERVER" "$WP"
"$MITMREC" -q -o "$WORK/t.pcapng" -- "$PY" "$WORK/tick.py" "$WP" >"$WORK/t.txt" 2>"$WORK/t.log" ||
    fail "recording the ticks: $(cat "$WORK/t.txt" "$WORK/t.log")"
stop_server "the WebSocket server" "$WP"
ms() { sed -n 's/^tick 1 tick 2 tick 3 after \([0-9]*\) ms$/\1/p' "$1"; }
rec=$(ms "$WORK/t.txt")
[ -n "$rec" ] && [ "$rec" -ge 600 ] || fail "recording the ticks, the client printed: $(cat "$WORK/t.txt")"
for from in t.pcapng t.har; do
    run_replay "$WORK/fast.log" "$WORK/$from" --strict -- "$PY" "$WORK/tick.py" "$WP" >"$WORK/fast.txt"
    fast=$(ms "$WORK/fast.txt")
    [ "$REPLAY_RC" = 0 ] && [ -n "$fast" ] && [ "$fast" -lt 300 ] ||
        fail "replay of the ticks from $from: status $REPLAY_RC, the client printed: $(cat "$WORK/fast.txt")"
    run_replay "$WORK/slow.log" "$WORK/$from" --strict --realtime -- "$PY" "$WORK/tick.py" "$WP" >"$WORK/slow.txt"
    slow=$(ms "$WORK/slow.txt")
    [ "$REPLAY_RC" = 0 ] && [ -n "$slow" ] && [ "$slow" -ge $((rec - 100)) ] && [ "$slow" -lt $((rec + 1000)) ] ||
        fail "replay of the ticks from $from with --realtime: status $REPLAY_RC, the client printed: $(cat "$WORK/slow.txt") (recorded: $rec ms)"
    log "ticks from $from: recorded after $rec ms, replayed after $fast ms, with --realtime after $slow ms"
done

# --unmatched passthrough: a WebSocket the recording does not have goes to the live server,
# over ws:// and wss://, with and without permessage-deflate (negotiated end to end), and
# --record-new records it so that it replays afterwards without the server.
TEST_CA=$TLS_FIXTURES/test-ca.pem
LP=$(free_port)
start_server "the live WebSocket server" "$LP" 20 "$WORK/live.log" "$PY" "$WS_SERVER" "$LP" live
LIVE_PID=$SERVER_PID
LS=$(free_port)
start_server "the live wss server" "$LS" 20 "$WORK/lives.log" "$PY" "$WS_SERVER" "$LS" live \
    "$TLS_FIXTURES/origin-chain.pem" "$TLS_FIXTURES/origin-key.pem"
URLS=("ws://127.0.0.1:$LP/live" "wss://localhost:$LS/live")
SSL_CERT_FILE=$TEST_CA "$PY" "$WORK/client.py" "${URLS[@]}" >"$WORK/live-direct.txt" 2>&1 ||
    fail "direct to the live servers: $(cat "$WORK/live-direct.txt")"
[ "$(wc -l <"$WORK/live-direct.txt")" = 28 ] && [ "$(grep -c ' greeting live$' "$WORK/live-direct.txt")" = 4 ] ||
    fail "direct to the live servers, the client printed: $(cat "$WORK/live-direct.txt")"

# Without passthrough the replay answers (404) and the client gives up.
run_replay "$WORK/nopass.log" "$WORK/w.pcapng" -- "$PY" "$WORK/client.py" "${URLS[0]}" >"$WORK/nopass.txt"
grep -q 'rejected WebSocket connection: HTTP 404' "$WORK/nopass.log" ||
    fail "without passthrough, the client said: $(tail -n 3 "$WORK/nopass.log")"

run_replay "$WORK/pass.log" "$WORK/w.pcapng" --unmatched passthrough --cacert "$TEST_CA" \
    --record-new "$WORK/new.pcapng" -- "$PY" "$WORK/client.py" "${URLS[@]}" >"$WORK/live-pass.txt"
[ "$REPLAY_RC" = 0 ] || fail "passthrough replay: status $REPLAY_RC: $(tail -n 5 "$WORK/pass.log")"
cmp -s "$WORK/live-pass.txt" "$WORK/live-direct.txt" ||
    fail "passthrough, the client printed: $(diff "$WORK/live-direct.txt" "$WORK/live-pass.txt" | head -8)"
[ "$(grep -c "passthrough: GET .*/live.* (WebSocket)" "$WORK/pass.log")" = 4 ] ||
    fail "passthrough log: $(grep passthrough "$WORK/pass.log")"
grep -q "passthrough to\|passthrough failed" "$WORK/pass.log" && fail "passthrough log: $(grep passthrough "$WORK/pass.log")"
tshark_ok "$WORK/new.pcapng"
har_validate "$WORK/new.har"
# Each session: the greeting, 4 messages and 4 answers.
P=${URLS[0]/ws:/http:} S=${URLS[1]/wss:/https:}
[ "$(har_query "$WORK/new.har" '" ".join("%s %d:%d" % (e["request"]["url"], e["response"]["status"], len([m for m in e.get("_webSocketMessages", []) if m["opcode"] in (1, 2)])) for e in h["log"]["entries"])')" = \
    "$P?c=deflate 101:9 $P?c=none 101:9 $S?c=deflate 101:9 $S?c=none 101:9" ] ||
    fail "--record-new's HAR: $(har_query "$WORK/new.har" '[(e["request"]["url"], e["response"]["status"], len(e.get("_webSocketMessages", []))) for e in h["log"]["entries"]]')"
kill -TERM "$LIVE_PID" "$SERVER_PID" 2>/dev/null
wait "$LIVE_PID" "$SERVER_PID" 2>/dev/null
port_closed "$LP" && port_closed "$LS" || fail "the live servers' ports are still open"

# With the server gone, passthrough answers the upgrade with a 502 that says why.
run_replay "$WORK/gone.log" "$WORK/w.pcapng" --unmatched passthrough -- \
    "$PY" "$WORK/client.py" "${URLS[0]}" >"$WORK/gone.txt"
grep -q 'rejected WebSocket connection: HTTP 502' "$WORK/gone.log" &&
    grep -q "passthrough to http://127.0.0.1:$LP: cannot connect upstream: connection refused" "$WORK/gone.log" ||
    fail "passthrough to a server that is gone: $(grep -v '^  ' "$WORK/gone.log" | tail -n 4)"

# What passthrough recorded replays without the servers.
run_replay "$WORK/again.log" "$WORK/new.pcapng" --strict -- "$PY" "$WORK/client.py" "${URLS[@]}" >"$WORK/again.txt"
[ "$REPLAY_RC" = 0 ] || fail "replay of --record-new's recording: status $REPLAY_RC: $(tail -n 5 "$WORK/again.log")"
cmp -s "$WORK/again.txt" "$WORK/live-direct.txt" ||
    fail "replay of --record-new's recording, the client printed: $(diff "$WORK/live-direct.txt" "$WORK/again.txt" | head -8)"

log "WebSocket: greeting, text, binary, empty, 100 kB, ping, close; deflate offered and not; replayed from the pcapng and the HAR; an unrecorded one over ws:// and wss:// passed through, recorded, replayed"
exit 0
