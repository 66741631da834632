#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A WebSocket echo server for the tests (python3-websockets, HTTP/1.1 upgrades).

  ws_server.py PORT [NAME [CERT KEY]]

On 127.0.0.1:PORT it greets each client with "welcome" and answers each message with
"echo:" and the message (text or binary), or with NAME and "NAME:"; over TLS with CERT and
KEY. A text message "tick" is answered instead with "tick 1", "tick 2" and "tick 3", 200 ms
apart, the first 200 ms after it. Prints "ready" once it listens.
"""
import asyncio
import ssl
import sys

import websockets

NAME = sys.argv[2] if len(sys.argv) > 2 else None


async def handler(ws, path=None):
    await ws.send(NAME or "welcome")
    pre = (NAME + ":") if NAME else "echo:"
    async for m in ws:
        if m == "tick":
            for i in (1, 2, 3):
                await asyncio.sleep(0.2)
                await ws.send("tick %d" % i)
            continue
        await ws.send((pre + m) if isinstance(m, str) else (pre.encode() + m))


async def main():
    ctx = None
    if len(sys.argv) > 4:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    async with websockets.serve(handler, "127.0.0.1", int(sys.argv[1]), ssl=ctx, max_size=None):
        print("ready", flush=True)
        await asyncio.Future()


asyncio.run(main())
