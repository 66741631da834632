#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Idle connections for bench/run.

  idle.py --target HOST:PORT [--proxy HOST:PORT] -n N --pid PID [--path /1k.bin]
      Opens N TLS connections (64 handshakes at a time), each through an HTTP proxy's CONNECT
      when --proxy is given (the target is then the origin), sends one keep-alive GET on each
      and reads the answer, then holds them all idle. One second later it reads VmRSS and
      VmHWM of PID and prints one line of JSON: {"open": ok, "failed": n, "rss_kib": ...,
      "hwm_kib": ..., "secs": seconds to open them all}. Then it closes them.

  idle.py ... --json FILE --run CMD [ARG...]
      The same, but 0.2 s after they are open it runs CMD while it holds them, and closes
      them once CMD has exited. The JSON (into FILE) adds "run_cpu_s", the CPU seconds PID
      spent while CMD ran, and "run_status", CMD's exit status. -n 0 is
      allowed: CMD alone, measured the same way. --pid ppid names idle.py's parent (as when
      it is the command that `mitmrec -- ...` starts).

Certificates are not verified: this measures the interceptor, not the trust set-up. Only
for 127.0.0.0/8 (the addresses are checked).
"""
import argparse
import asyncio
import ipaddress
import json
import os
import ssl
import time


def hostport(s):
    host, _, port = s.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise argparse.ArgumentTypeError("only loopback addresses: %s" % s)
    return host, int(port)


def proc_cpu_s(pid):
    """utime + stime of PID in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    # after the command's name: state is field 3, utime 14 and stime 15 (1-based)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_kib(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def request(a, close):
    host, port = a.target
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: mitmrec-bench\r\n%s\r\n" % (
        a.path, host, port, "Connection: close\r\n" if close else "")).encode()


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return int(v.strip())
    return None


# ---- idle -----------------------------------------------------------------------------

async def tunnel(proxy, target, ctx, server_hostname=None, limit=1 << 16):
    """A TLS connection to target (host, port) through the CONNECT of the HTTP proxy at proxy
    (host, port): (reader, writer). Also used by bench/flows.py."""
    r, w = await asyncio.open_connection(*proxy, limit=limit)
    host = target[0].encode()
    w.write(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, target[1], host, target[1]))
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if status.split(b" ")[1:2] != [b"200"]:
        raise OSError("CONNECT answered %r" % status[:80])
    await w.start_tls(ctx, server_hostname=server_hostname)
    return r, w


async def open_one(a, ctx, sem, held):
    async with sem:
        if a.proxy:
            r, w = await tunnel(a.proxy, a.target, ctx)
        else:
            r, w = await asyncio.open_connection(*a.target, ssl=ctx)
        held.append(w)
        w.write(request(a, False))
        head = await r.readuntil(b"\r\n\r\n")
        n = content_length(head)
        if not head.startswith(b"HTTP/1.1 200") or n is None:
            raise OSError("bad answer: %r" % head[:80])
        await r.readexactly(n)


async def idle(a):
    ctx = tls_context()
    sem = asyncio.Semaphore(64)
    held = []
    t0 = time.monotonic()
    results = await asyncio.gather(*(open_one(a, ctx, sem, held) for _ in range(a.n)),
                                   return_exceptions=True)
    secs = time.monotonic() - t0
    failed = [r for r in results if isinstance(r, BaseException)]
    await asyncio.sleep(0.2 if a.run else 1.0)
    out = {"open": a.n - len(failed), "failed": len(failed), "secs": round(secs, 3),
           "rss_kib": proc_kib(a.pid, "VmRSS"), "hwm_kib": proc_kib(a.pid, "VmHWM")}
    if failed:
        out["error"] = repr(failed[0])[:200]
    if a.run:
        c0 = proc_cpu_s(a.pid)
        proc = await asyncio.create_subprocess_exec(*a.run)
        out["run_status"] = await proc.wait()
        c1 = proc_cpu_s(a.pid)
        if c0 is not None and c1 is not None:
            out["run_cpu_s"] = round(c1 - c0, 3)
    # All closed at once, as when a client exits: the interceptor tears them all down in a
    # few loop turns, which is a peak of its own.
    for w in held:
        w.close()
    for w in held:
        try:
            await w.wait_closed()
        except (OSError, ssl.SSLError):
            pass
    if not a.run:
        await asyncio.sleep(1.0)
    out["hwm_end_kib"] = proc_kib(a.pid, "VmHWM")
    out["rss_end_kib"] = proc_kib(a.pid, "VmRSS")
    if a.json:
        with open(a.json, "w") as f:
            f.write(json.dumps(out) + "\n")
    else:
        print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", type=hostport, required=True)
    p.add_argument("--proxy", type=hostport)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--pid", required=True)
    p.add_argument("--path", default="/1k.bin")
    p.add_argument("--json")
    p.add_argument("--run", nargs=argparse.REMAINDER)
    a = p.parse_args()
    a.pid = os.getppid() if a.pid == "ppid" else int(a.pid)
    asyncio.run(idle(a))


if __name__ == "__main__":
    main()
