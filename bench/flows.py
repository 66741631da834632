# SPDX-License-Identifier: MIT
"""bench/flows.py: N keep-alive HTTPS connections through an HTTP proxy, all open at once.

    python3 bench/flows.py PROXY_PORT ORIGIN_PORT N K CAFILE

Each connection sends CONNECT 127.0.0.1:ORIGIN_PORT to the proxy on 127.0.0.1:PROXY_PORT and
makes its TLS handshake (CAFILE trusted, a few handshakes at a time, so that a proxy slowed
down by valgrind finishes each one in time). Once all N are open, every connection makes K
GETs of /1k.bin, one after another, all connections at the same time; then they close. Each
answer must be a 200 with 1,024 bytes. Prints "N connections x K GETs" and exits 0, or says
what went wrong and exits 1. bench/instructions uses it to count what a GET costs the proxy
with N flows open.
"""
import asyncio
import ssl
import sys

from idle import content_length, tunnel  # bench/idle.py, beside this file

HANDSHAKES_AT_ONCE = 8


async def get(reader, writer, port):
    writer.write(b"GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError("answer %r" % head.split(b"\r\n")[0])
    length = content_length(head)
    if length != 1024:
        raise RuntimeError("Content-Length %r, not 1024" % length)
    await reader.readexactly(length)


async def one(args, ctx, gate, opened, go):
    pport, oport, _, k = args
    async with gate:
        reader, writer = await tunnel(("127.0.0.1", pport), ("127.0.0.1", oport), ctx,
                                      server_hostname="127.0.0.1", limit=1 << 20)
    opened[0] += 1
    await go.wait()
    for _ in range(k):
        await get(reader, writer, oport)
    return writer


async def main(args, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    opened, go = [0], asyncio.Event()
    n = args[2]
    tasks = [asyncio.create_task(one(args, ctx, gate, opened, go)) for _ in range(n)]
    while opened[0] < n:
        done = [t for t in tasks if t.done()]
        for t in done:
            t.result()  # raises what went wrong
        await asyncio.sleep(0.05)
    go.set()
    writers = await asyncio.gather(*tasks)
    for w in writers:
        w.close()
    print("%d connections x %d GETs" % (n, args[3]))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit("usage: flows.py PROXY_PORT ORIGIN_PORT N K CAFILE")
    try:
        nums = tuple(int(a) for a in sys.argv[1:5])
    except ValueError:
        sys.exit("flows.py: PROXY_PORT ORIGIN_PORT N K must be numbers")
    try:
        asyncio.run(main(nums, sys.argv[5]))
    except (OSError, RuntimeError, ssl.SSLError, asyncio.IncompleteReadError) as e:
        sys.exit("flows.py: %s" % e)
