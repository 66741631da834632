#!/bin/bash
# SPDX-License-Identifier: MIT
# WebSocket through mitmrec: an echo server and client from python3-websockets, ws:// and
# wss:// (the server with the test origin certificate), with permessage-deflate (the
# websockets default) on some connections and off on others; text (ASCII, UTF-8, empty, 110 kB,
# one sent in three fragments) and binary (256 B, 70000 B: a 64-bit length, empty) messages,
# a ping, a close. Through the explicit proxy (the client opens the CONNECT tunnel itself:
# websockets 10 has no proxy support) and, when it is available, in spawn mode (the client
# connects directly and trusts the mitmrec CA through SSL_CERT_FILE).
# Checks: one HAR entry per connection (101), its _webSocketMessages hold the data messages in
# order with type send/receive, opcode and data equal to what was sent and echoed, the ping
# and pong, both closes; tshark decodes the WebSocket frames (opcodes, text, deflate undone);
# check_recording; mitmrec -r gives the same entries.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need tshark node "$PY"
"$PY" -c 'import websockets' 2>/dev/null || skip "python3-websockets not installed (apt-get install python3-websockets)"

cat >"$WORK/ws.py" <<'PYEOF'
# SPDX-License-Identifier: MIT
"""WebSocket echo server and client for tests/integration/websocket.sh (python3-websockets).

  ws.py server WSPORT WSSPORT CERT KEY        echo server on 127.0.0.1 (ws and wss), prints "ready"
  ws.py client EXPECT.json [--proxy PORT] [--cafile F] URL:COMPRESSION...
        for each URL (ws:// or wss://, COMPRESSION "deflate" or "none"), connect (through the
        explicit proxy with CONNECT when --proxy is given; else directly, trusting the default
        CA store, which spawn mode points at its bundle), send the test messages, check each
        echo, ping, close; write what the HAR should hold into EXPECT.json.
"""
import asyncio
import base64
import json
import os
import random
import socket
import ssl
import sys

import websockets

rng = random.Random(20240607)
MESSAGES = [
    ("text", "hello websocket"),
    ("text", "h\u00e9llo w\u00f6rld \u2713 \U0001f600"),
    ("text", ""),
    ("binary", bytes(range(256))),
    ("binary", rng.randbytes(70000)),       # 64-bit payload length
    ("text", "".join("line %05d: the quick brown fox jumps over the lazy dog\n" % i
                     for i in range(2000))),   # ~110 kB, compresses well
    ("binary", b""),
    ("fragments", ["frag-one ", "frag-two ", "frag-three"]),   # a text message in 3 frames
]
PING = b"mitmrec-ping"


async def echo(ws, path=None):
    async for m in ws:
        await ws.send(m)


async def serve(wsport, wssport, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    # compression="deflate" (the default) accepts permessage-deflate when the client offers it.
    async with websockets.serve(echo, "127.0.0.1", wsport, max_size=None), \
            websockets.serve(echo, "127.0.0.1", wssport, ssl=ctx, max_size=None):
        print("ready", flush=True)
        await asyncio.Future()


def har_data(kind, m):
    if kind == "binary":
        return 2, base64.b64encode(m).decode()
    return 1, m


async def client_one(url, compression, proxy, cafile):
    host_port = url.split("/")[2]
    host, port = host_port.rsplit(":", 1)
    kw = dict(compression="deflate" if compression == "deflate" else None, ping_interval=None,
              max_size=None, open_timeout=20, close_timeout=10)
    if url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
        kw["ssl"] = ctx
        kw["server_hostname"] = host
    if proxy:
        s = socket.create_connection(("127.0.0.1", int(proxy)), timeout=20)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (host_port, host_port)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(1)
            if not b:
                raise SystemExit("proxy closed during CONNECT")
            head += b
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit("CONNECT answer: %r" % head)
        s.settimeout(None)
        kw["sock"] = s
    expect = []
    async with websockets.connect(url, **kw) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        if (compression == "deflate") != ("permessage-deflate" in ext):
            raise SystemExit("%s: negotiated extensions %r, wanted compression %s" % (url, ext, compression))
        for kind, m in MESSAGES:
            if kind == "fragments":
                await ws.send(iter(m))
                m, kind = "".join(m), "text"
            else:
                await ws.send(m)
            got = await asyncio.wait_for(ws.recv(), 20)
            if got != m:
                raise SystemExit("%s: echo of a %s message of %d differs" % (url, kind, len(m)))
            op, data = har_data(kind, m)
            expect.append({"type": "send", "opcode": op, "data": data})
            expect.append({"type": "receive", "opcode": op, "data": data})
        await asyncio.wait_for(await ws.ping(PING), 20)
    return {"url": url, "compression": compression, "messages": expect,
            "ping": base64.b64encode(PING).decode()}


async def client(expect_path, proxy, cafile, specs):
    out = []
    for spec in specs:
        url, _, comp = spec.rpartition(":")
        out.append(await client_one(url, comp, proxy, cafile))
    with open(expect_path, "w") as f:
        json.dump(out, f)
    print("client ok")


def main():
    a = sys.argv[1:]
    if a[0] == "server":
        asyncio.run(serve(int(a[1]), int(a[2]), a[3], a[4]))
    elif a[0] == "client":
        expect, rest = a[1], a[2:]
        proxy = cafile = None
        while rest and rest[0].startswith("--"):
            if rest[0] == "--proxy":
                proxy = rest[1]
            elif rest[0] == "--cafile":
                cafile = rest[1]
            rest = rest[2:]
        asyncio.run(client(expect, proxy, cafile, rest))


main()
PYEOF

TEST_CA=$TLS_FIXTURES/test-ca.pem
read -r WSPORT WSSPORT <<<"$(free_ports 2 | tr '\n' ' ')"
"$PY" "$WORK/ws.py" server "$WSPORT" "$WSSPORT" "$TLS_FIXTURES/origin.pem" \
    "$TLS_FIXTURES/origin-key.pem" >"$WORK/server.out" 2>&1 &
_LIB_PIDS+=("$!")
wait_port "$WSPORT" 10 && wait_port "$WSSPORT" 10 ||
    fail "the WebSocket echo server did not start: $(cat "$WORK/server.out")"
TSHARK_DECODE_AS=(-d "tcp.port==$WSSPORT,tls" -d "tcp.port==$WSPORT,http")
CONNS=("wss://localhost:$WSSPORT/echo?deflate:deflate" "wss://localhost:$WSSPORT/echo?plain:none"
       "ws://127.0.0.1:$WSPORT/echo?deflate:deflate" "ws://127.0.0.1:$WSPORT/echo?plain:none")

# judge_ws PCAP HAR EXPECT.json: the HAR entries and tshark's frames against what the client did.
judge_ws() {
    local pcap=$1 har=$2 expect=$3
    har_validate "$har"
    tshark_fields "$pcap" websocket tcp.stream websocket.opcode websocket.payload.text \
        >"$WORK/tshark-ws.txt" || fail "tshark -Y websocket failed on $pcap"
    "$PY" - "$har" "$expect" "$WORK/tshark-ws.txt" <<'EOF' || fail "WebSocket checks of $pcap / $har failed (see above)"
import collections, json, sys, urllib.parse

har, expect, tsh = sys.argv[1:4]
entries = json.load(open(har))["log"]["entries"]
want = json.load(open(expect))
bad = []
# tshark: per tcp.stream, the opcodes of the frames and the texts it decoded.
ops, texts = collections.defaultdict(list), collections.defaultdict(list)
for line in open(tsh, encoding="utf-8", errors="replace"):
    f = line.rstrip("\n").split("\t")
    if len(f) < 2 or not f[0]:
        continue
    for op in f[1].split(","):
        ops[int(f[0])].append(int(op, 0))
    if len(f) > 2 and f[2]:
        texts[int(f[0])].append(f[2])
if len(entries) != len(want):
    bad.append("the HAR has %d entries, want %d (one per WebSocket connection): %s"
               % (len(entries), len(want), [e["request"]["url"] for e in entries]))
for w in want:
    u = urllib.parse.urlsplit(w["url"])
    alt = {"ws": "http", "wss": "https"}[u.scheme]
    cands = [e for e in entries if e["request"]["url"] in (w["url"], urllib.parse.urlunsplit(
        (alt,) + tuple(u)[1:]))]
    if len(cands) != 1:
        bad.append("%s: %d HAR entries with that URL (or its %s:// form)" % (w["url"], len(cands), alt))
        continue
    e = cands[0]
    what = "entry %s (%s, %s)" % (e.get("_index"), w["url"], w["compression"])
    if e["response"]["status"] != 101:
        bad.append("%s: status %r, want 101" % (what, e["response"]["status"]))
    rh = {h["name"].lower(): h["value"] for h in e["request"]["headers"]}
    if rh.get("upgrade", "").lower() != "websocket":
        bad.append("%s: request Upgrade header %r" % (what, rh.get("upgrade")))
    sh = {h["name"].lower(): h["value"] for h in e["response"]["headers"]}
    deflate = "permessage-deflate" in sh.get("sec-websocket-extensions", "")
    if deflate != (w["compression"] == "deflate"):
        bad.append("%s: response Sec-WebSocket-Extensions %r" % (what, sh.get("sec-websocket-extensions")))
    msgs = e.get("_webSocketMessages")
    if not isinstance(msgs, list):
        bad.append("%s: no _webSocketMessages" % what)
        continue
    for m in msgs:
        if m.get("type") not in ("send", "receive") or not isinstance(m.get("opcode"), int) \
                or not isinstance(m.get("data"), str) or not isinstance(m.get("time"), (int, float)):
            bad.append("%s: malformed message %.200r" % (what, m))
            break
    times = [m.get("time", 0) for m in msgs]
    if times != sorted(times):
        bad.append("%s: message times are not in order" % what)
    data = [{"type": m["type"], "opcode": m["opcode"], "data": m["data"]} for m in msgs
            if m.get("opcode") in (1, 2)]
    if data != w["messages"]:
        first = next((i for i, (a, b) in enumerate(zip(data, w["messages"])) if a != b),
                     min(len(data), len(w["messages"])))
        bad.append("%s: %d data messages, want %d; first difference at %d: %.200r, want %.200r" % (
            what, len(data), len(w["messages"]), first,
            data[first] if first < len(data) else None,
            w["messages"][first] if first < len(w["messages"]) else None))
    ctl = [(m["type"], m["opcode"], m["data"]) for m in msgs if m.get("opcode") not in (1, 2)]
    for c in (("send", 9, w["ping"]), ("receive", 10, w["ping"])):
        if c not in ctl:
            bad.append("%s: no %s message with opcode %d and data %s (control messages: %s)"
                       % (what, c[0], c[1], c[2], ctl))
    for t in ("send", "receive"):
        if not any(c[0] == t and c[1] == 8 for c in ctl):
            bad.append("%s: no %s close message (opcode 8): %s" % (what, t, ctl))
    # tshark, in this entry's TCP stream.
    s = e.get("_pcapng", {}).get("stream")
    o = ops.get(s, [])
    n = sum(1 for x in o if x in (1, 2))
    if n != len(w["messages"]):
        bad.append("%s: tshark shows %d text/binary frames in tcp.stream %s, want %d (opcodes %s)"
                   % (what, n, s, len(w["messages"]), o[:40]))
    for x, name in ((9, "ping"), (10, "pong")):
        if x not in o:
            bad.append("%s: tshark shows no %s frame in tcp.stream %s" % (what, name, s))
    if o.count(8) != 2:
        bad.append("%s: tshark shows %d close frames in tcp.stream %s, want 2" % (what, o.count(8), s))
    # Texts as tshark decodes them (after inflating permessage-deflate), control characters
    # escaped: compare those without any.
    for m in w["messages"]:
        if m["opcode"] == 1 and m["data"] and "\n" not in m["data"] and m["type"] == "receive":
            if m["data"] not in texts.get(s, []):
                bad.append("%s: tshark's websocket.payload.text in tcp.stream %s never is %r (has %.300r)"
                           % (what, s, m["data"], texts.get(s, [])))
for b in bad:
    print("websocket: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

# ---- 1. explicit proxy -------------------------------------------------------------------
start_mitmrec -o "$WORK/proxy.pcapng" --cacert "$TEST_CA"
timeout 60 "$PY" "$WORK/ws.py" client "$WORK/expect-proxy.json" --proxy "$MITM_PORT" --cafile "$MITM_CA" \
    "${CONNS[@]}" >"$WORK/client.out" 2>&1 || fail "WebSocket client through the proxy: $(tail -n 5 "$WORK/client.out")"
stop_mitmrec
judge_ws "$MITM_PCAP" "$MITM_HAR" "$WORK/expect-proxy.json"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
    --contains "GET /echo?deflate 101" --contains "GET /echo?plain 101"
check_same_entries "$MITM_PCAP" "$MITM_HAR"
log "explicit proxy part ok"

# ---- 2. spawn mode -------------------------------------------------------------------------
if ! spawn_available; then
    log "note: spawn mode unavailable here ($SPAWN_WHY): that part is skipped"
else
    spawn_mitmrec 60 "$WORK/spawn.pcapng" --cacert "$TEST_CA" -- \
        "$PY" "$WORK/ws.py" client "$WORK/expect-spawn.json" "${CONNS[@]}"
    [ $SPAWN_RC -eq 0 ] || fail "spawn mode: the WebSocket client exited $SPAWN_RC: $(tail -n 8 "$MITM_LOG")"
    judge_ws "$MITM_PCAP" "$MITM_HAR" "$WORK/expect-spawn.json"
    check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
        --contains "GET /echo?deflate 101" --contains "GET /echo?plain 101"
    check_same_entries "$MITM_PCAP" "$MITM_HAR"
    log "spawn mode part ok"
fi

log "ok"
exit 0
