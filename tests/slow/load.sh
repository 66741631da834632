#!/bin/bash
# SPDX-License-Identifier: MIT
# Load (issue 7, item 4; make check-slow). Three mitmrec runs, each recording to its own files:
#   1. 2,000 concurrent intercepted TLS connections (CONNECT + TLS through mitmrec to nginx),
#      all opened and held (2 s), checked still open, then each used for a GET; RLIMIT_NOFILE
#      is raised with ulimit -n (mitmrec and nginx inherit it); mitmrec's open descriptors
#      and VmRSS are read while all are held.
#   2. 20,000 short intercepted TLS connections (4 clients, each one connection after the
#      other); VmRSS sampled at 5k, 10k and 20k. Bound: VmRSS at 20k at most RSS_GROWTH_MIB
#      (8 MiB) above VmRSS at 5k.
#   3. Odd endings, all at once, while a normal client makes an HTTPS request every 0.2 s:
#      an upstream that sends half a response and resets (SO_LINGER 0); a client that aborts
#      (RST) in the middle of a 5 MiB download; a half-closed client (FIN right after its
#      plain-HTTP request, then it reads a 1 MiB answer); a slow reader (1 MiB of a 64 MiB
#      answer at 200 kB/s, then the rest; mitmrec's VmRSS may grow by at most SLOW_GROWTH_MIB
#      (6 MiB: the relay's 512 KiB queue and TLS buffers; what the HAR keeps of the body waits
#      in the spill file past 64 KiB. Measured: 2.3-3.4 MiB; 9.9 MiB with the body in memory));
#      slowloris writers (20 plain-HTTP heads and 20 heads inside TLS tunnels, one byte a
#      second for 6 s, then FIN).
# Every flow is recorded with the right ending (from tshark's view of the pcapng, by the
# client's port): normal flows a FIN each way and no RST; the half-closed client's FIN first;
# the upstream reset an RST from the server side (and the HAR entry an _error); the client
# abort an RST from the client side (and an _error); slowloris a FIN from the client first.
# Nothing else is disturbed: the parallel client never fails nor waits more than 5 s.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark nginx
CONC=${LOAD_CONC:-2000}
SEQ=${LOAD_SEQ:-20000}
RSS_GROWTH_MIB=8
SLOW_GROWTH_MIB=6
CHECK_MEM=1
mitm_instrumented && CHECK_MEM=0

# Descriptors: mitmrec needs two per connection, nginx one, the client one.
want=$((CONC * 2 + 1000))
[ $want -lt 8192 ] && want=8192
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $want ]; then
    ulimit -Hn $want 2>/dev/null || skip "RLIMIT_NOFILE hard limit $hard is below the $want descriptors $CONC connections need, and cannot be raised"
fi
ulimit -n $want || skip "cannot raise RLIMIT_NOFILE to $want"
log "RLIMIT_NOFILE $(ulimit -n) (hard $(ulimit -Hn))"
sed -e "s/worker_connections [0-9]*;/worker_connections $want;/" \
    -e "s/^worker_processes 1;/worker_processes 1;\nworker_rlimit_nofile $want;/" \
    "$top_srcdir/tests/nginx.conf.in" >"$WORK/nginx-load.conf.in"
NGINX_CONF_IN=$WORK/nginx-load.conf.in start_origin
head -c $((64 << 20)) /dev/urandom >"$WWW/64m.bin" || fail "cannot make 64m.bin"
export SMALL_FILE=$WWW/small.txt WWW

# The load clients and the resetting origin (stdlib Python).
cat >"$WORK/load.py" <<'PYEOF'
"""Load clients for tests/slow/load.sh (stdlib only). Each prints one JSON line.

  load.py conc PROXY TLSPORT N MITM_PID     N intercepted TLS connections opened and held,
                                            then each used for a GET (asyncio)
  load.py seq PROXY TLSPORT N MITM_PID W    N short TLS connections, W at a time, sequential
                                            in each worker; VmRSS sampled at 5k, 10k, 20k
  load.py endings PROXY TLSPORT PLAIN RSTPORT MITM_PID   the odd endings, see endings()
  load.py rst-origin PORT_FILE CERT KEY     an origin that sends half a response, then RST
"""
import asyncio, json, os, socket, ssl, struct, sys, threading, time

CA = os.environ.get("MITM_CA")
SMALL = open(os.environ["SMALL_FILE"], "rb").read() if os.environ.get("SMALL_FILE") else None


def proc(pid, field):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def ctx():
    c = ssl.create_default_context(cafile=CA)
    return c


def wrap(sslctx, s):
    """TLS over s; a TCP end without close_notify raises SSLEOFError instead of reading b""."""
    return sslctx.wrap_socket(s, server_hostname="localhost", suppress_ragged_eofs=False)


def body_of(resp):
    i = resp.find(b"\r\n\r\n")
    return resp[:i], resp[i + 4:]


# ---- 2,000 held ------------------------------------------------------------------------

async def conc(proxy, tls, n, pid):
    sslctx = ctx()
    sem = asyncio.Semaphore(100)
    conns, errors = [], []

    async def open_one(i):
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", proxy), 30)
                w.write(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (tls, tls))
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
                if b" 200" not in head.split(b"\r\n")[0]:
                    raise RuntimeError("CONNECT: %r" % head[:40])
                await asyncio.wait_for(w.start_tls(sslctx, server_hostname="localhost"), 30)
                conns.append((r, w))
            except Exception as e:
                errors.append("open %d: %r" % (i, e))

    t0 = time.time()
    await asyncio.gather(*(open_one(i) for i in range(n)))
    t_open = time.time() - t0
    held = len(conns)
    await asyncio.sleep(2)
    fds, rss, hwm = nfds(pid), proc(pid, "VmRSS"), proc(pid, "VmHWM")
    # Still all open? A closed one reads EOF at once.
    alive = 0
    for r, w in conns:
        if not r.at_eof() and not w.is_closing():
            alive += 1
    ok = 0
    sem2 = asyncio.Semaphore(200)

    async def use(i, r, w):
        nonlocal ok
        async with sem2:
            try:
                w.write(b"GET /small.txt?c=%d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % i)
                data = await asyncio.wait_for(r.read(), 30)
                head, body = body_of(data)
                if head.startswith(b"HTTP/1.1 200") and (SMALL is None or body == SMALL):
                    ok += 1
                else:
                    errors.append("use %d: %r" % (i, data[:60]))
            except Exception as e:
                errors.append("use %d: %r" % (i, e))
            finally:
                w.close()

    t1 = time.time()
    await asyncio.gather(*(use(i, r, w) for i, (r, w) in enumerate(conns)))
    print(json.dumps({"wanted": n, "held": held, "alive_after_2s": alive, "used_ok": ok,
                      "open_seconds": round(t_open, 2), "use_seconds": round(time.time() - t1, 2),
                      "mitm_fds_while_held": fds, "mitm_rss_kib_while_held": rss,
                      "mitm_hwm_kib": hwm, "errors": errors[:10], "nerrors": len(errors)}))


# ---- 20,000 sequential -----------------------------------------------------------------

def one_get(proxy, tls, sslctx, q):
    s = socket.create_connection(("127.0.0.1", proxy), timeout=20)
    # As curl does: without it, Nagle holds the request behind the unacknowledged Finished
    # and a delayed ACK costs 40 ms per connection.
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (tls, tls))
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(4096)
            if not b:
                raise RuntimeError("proxy closed")
            head += b
        t = wrap(sslctx, s)
        t.sendall(b"GET /small.txt?s=%d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % q)
        data = b""
        while True:
            try:
                b = t.recv(65536)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                break
            if not b:
                break
            data += b
        t.close()
        head, body = body_of(data)
        return head.startswith(b"HTTP/1.1 200") and (SMALL is None or body == SMALL)
    finally:
        s.close()


def seq(proxy, tls, n, pid, workers):
    sslctx = ctx()
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "fail": 0, "errors": []}
    marks = sorted({m for m in (1000, 5000, 10000, 20000, n) if m <= n})
    samples = {}
    t0 = time.time()

    def work():
        while True:
            with lock:
                i = state["next"]
                if i >= n:
                    return
                state["next"] += 1
            try:
                ok = one_get(proxy, tls, sslctx, i)
            except Exception as e:
                ok = False
                with lock:
                    if len(state["errors"]) < 10:
                        state["errors"].append(repr(e))
            with lock:
                state["done"] += 1
                if not ok:
                    state["fail"] += 1
                if state["done"] in marks:
                    samples[state["done"]] = {"rss_kib": proc(pid, "VmRSS"), "fds": nfds(pid),
                                              "t": round(time.time() - t0, 1)}

    ts = [threading.Thread(target=work) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    time.sleep(1)
    after = {"rss_kib": proc(pid, "VmRSS"), "fds": nfds(pid)}
    print(json.dumps({"n": n, "ok": state["done"] - state["fail"], "failed": state["fail"],
                      "seconds": round(time.time() - t0, 1), "samples": samples,
                      "after_1s": after, "hwm_kib": proc(pid, "VmHWM"), "errors": state["errors"]}))


# ---- odd endings -----------------------------------------------------------------------

def tunnel(proxy, port, nodelay=False):
    s = socket.create_connection(("127.0.0.1", proxy), timeout=30)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            raise RuntimeError("proxy closed the CONNECT")
        head += b
    return s


def read_all(t, limit=None, rate=None):
    data, t0 = bytearray(), time.time()
    while limit is None or len(data) < limit:
        try:
            b = t.recv(16384 if rate else 65536)
        except ssl.SSLZeroReturnError:
            return bytes(data), "close_notify"
        except ssl.SSLEOFError:
            return bytes(data), "fin"
        except ConnectionResetError:
            return bytes(data), "reset"
        except OSError as e:
            return bytes(data), "error %s" % e
        if not b:
            return bytes(data), "close_notify" if isinstance(t, ssl.SSLSocket) else "fin"
        data += b
        if rate:
            # Keep the average at rate bytes/s.
            ahead = len(data) / rate - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)
    return bytes(data), "limit"


def endings(proxy, tls, plain, rstport, pid, files):
    sslctx = ctx()
    out = {}
    stop = threading.Event()

    # A normal client all along: HTTPS GET small.txt every 0.2 s.
    normal = {"ok": 0, "failed": 0, "max_seconds": 0.0, "errors": []}

    def normal_client():
        i = 0
        while not stop.is_set():
            t0 = time.time()
            try:
                ok = one_get(proxy, tls, sslctx, 100000 + i)
            except Exception as e:
                ok = False
                normal["errors"].append(repr(e))
            dt = time.time() - t0
            normal["max_seconds"] = max(normal["max_seconds"], round(dt, 3))
            normal["ok" if ok else "failed"] += 1
            i += 1
            time.sleep(0.2)

    def upstream_reset():
        s = tunnel(proxy, rstport)
        port = s.getsockname()[1]
        t = wrap(sslctx, s)
        t.sendall(b"GET /reset HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, how = read_all(t)
        out["upstream_reset"] = {"port": port, "bytes": len(data), "end": how, "server_port": rstport}
        t.close()

    def client_abort():
        s = tunnel(proxy, tls)
        port = s.getsockname()[1]
        t = wrap(sslctx, s)
        t.sendall(b"GET /5m.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, how = read_all(t, limit=300000)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t.close()
        out["client_abort"] = {"port": port, "bytes": len(data), "server_port": tls}

    def half_close():
        s = socket.create_connection(("127.0.0.1", proxy), timeout=30)
        port = s.getsockname()[1]
        # The request and the FIN leave together (corked until the shutdown): a thread switch
        # between the two calls would otherwise let the FIN go after the answer came.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(b"GET http://127.0.0.1:%d/1m.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (plain, plain))
        s.shutdown(socket.SHUT_WR)
        data, how = read_all(s)
        head, body = body_of(data)
        out["half_close"] = {"port": port, "status": head.split(b"\r\n")[0].decode(errors="replace"),
                             "body_ok": body == files["1m"], "end": how, "server_port": plain}
        s.close()

    def slow_reader():
        s = tunnel(proxy, tls)
        port = s.getsockname()[1]
        t = wrap(sslctx, s)
        t.sendall(b"GET /64m.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        rss0 = proc(pid, "VmRSS")
        first, _ = read_all(t, limit=1 << 20, rate=200000)   # about 5 s at 200 kB/s
        rss_slow = proc(pid, "VmRSS")
        rest, how = read_all(t)
        head, body = body_of(first + rest)
        out["slow_reader"] = {"port": port, "status": head.split(b"\r\n")[0].decode(errors="replace"),
                              "body_ok": body == files["64m"], "end": how, "server_port": tls,
                              "mitm_rss_kib_before": rss0, "mitm_rss_kib_while_slow": rss_slow}
        t.close()

    def slowloris():
        # 20 plain-HTTP heads and 20 heads inside TLS tunnels, one byte a second for 6 s, then
        # a close (FIN).
        socks = []
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", proxy), timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(("plain", s.getsockname()[1], s))
        for i in range(20):
            s = tunnel(proxy, tls, nodelay=True)
            port = s.getsockname()[1]
            socks.append(("tls", port, wrap(sslctx, s)))
        req = b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"s" * 100
        alive = 0
        for k in range(6):
            for kind, port, s in socks:
                try:
                    s.sendall(req[k:k + 1])
                except OSError:
                    pass
            time.sleep(1)
        ports = {"plain": [], "tls": []}
        for kind, port, s in socks:
            ports[kind].append(port)
            # Still open: nothing to read yet (a closed one reads EOF or fails).
            try:
                s.settimeout(0.01)
                if s.recv(1) == b"":
                    continue
            except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
                alive += 1
            except OSError:
                continue
        for kind, port, s in socks:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        time.sleep(0.5)
        for kind, port, s in socks:
            s.close()
        out["slowloris"] = {"connections": len(socks), "still_open_after_6s": alive,
                            "plain_ports": ports["plain"], "tls_ports": ports["tls"], "server_port": tls}

    def normal_one():
        s = tunnel(proxy, tls)
        port = s.getsockname()[1]
        t = wrap(sslctx, s)
        t.sendall(b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data, how = read_all(t)
        t.close()
        out["normal"] = {"port": port, "ok": body_of(data)[1] == SMALL, "end": how, "server_port": tls}

    nt = threading.Thread(target=normal_client)
    nt.start()
    ts = [threading.Thread(target=f) for f in (upstream_reset, client_abort, half_close, slow_reader, slowloris, normal_one)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    time.sleep(0.5)
    stop.set()
    nt.join(30)
    out["parallel_normal_client"] = normal
    print(json.dumps(out))


def rst_origin(port_file, cert, key):
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)

    def handle(c):
        try:
            t = sctx.wrap_socket(c, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                b = t.recv(4096)
                if not b:
                    return
                head += b
            body = b"r" * (2 << 20)
            t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n"
                      % len(body) + body[: len(body) // 2])
            time.sleep(0.3)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t.close()
        except (OSError, ssl.SSLError):
            pass

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "conc":
        asyncio.run(conc(int(a[0]), int(a[1]), int(a[2]), int(a[3])))
    elif cmd == "seq":
        seq(int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]))
    elif cmd == "endings":
        www = os.environ["WWW"]
        files = {"1m": open(www + "/1m.bin", "rb").read(), "64m": open(www + "/64m.bin", "rb").read()}
        endings(int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]), files)
    elif cmd == "rst-origin":
        rst_origin(*a)
PYEOF

# endings PCAP SERVERPORTS: one line per TCP stream: "STREAM CLIENTPORT EVENTS", EVENTS in frame
# order, each "c:F" / "c:R" (FIN / RST from the client) or "s:F" / "s:R" (from the other side,
# whose port is one of the comma-separated SERVERPORTS).
endings() {
    tshark -n -r "$1" --disable-protocol tls -Y 'tcp.flags.fin == 1 || tcp.flags.reset == 1' \
        -T fields -e tcp.stream -e tcp.srcport -e tcp.dstport -e tcp.flags.fin -e tcp.flags.reset 2>/dev/null |
        "$PY" -c '
import sys, collections
server = set(sys.argv[1].split(","))
ev = collections.OrderedDict()
for line in sys.stdin:
    f = line.split()
    if len(f) < 5:
        continue
    st, src, dst, fin, rst = f[0], f[1], f[2], f[3] in ("1", "True"), f[4] in ("1", "True")
    if src in server:
        port, side = dst, "s"
    else:
        port, side = src, "c"
    ev.setdefault((st, port), []).append("%s:%s" % (side, "R" if rst else "F"))
for (st, p), e in ev.items():
    print(st, p, " ".join(e))
' "$2"
}

# all_clean WHAT PCAP SERVERPORTS N: N streams, each a FIN from both sides and no RST.
all_clean() {
    local what=$1 n bad
    endings "$2" "$3" >"$WORK/$what.endings"
    n=$(wc -l <"$WORK/$what.endings")
    bad=$(awk '!(/c:F/ && /s:F/) || /:R/' "$WORK/$what.endings")
    log "$what: $n streams with an ending; $(printf '%s' "$bad" | grep -c .) not ended by a FIN each way"
    [ "$n" -ge "$4" ] || problem "$what: the pcapng shows an ending for $n streams, expected $4"
    [ -z "$bad" ] || problem "$what: $(printf '%s\n' "$bad" | grep -c .) stream(s) without a clean FIN each way, e.g. $(printf '%s\n' "$bad" | head -n 3 | tr '\n' ';')"
}

# ---- 1. 2,000 held ---------------------------------------------------------------------
start_mitmrec -o "$WORK/conc.pcapng" --cacert "$TEST_CA"
res=$(MITM_CA=$MITM_CA "$PY" "$WORK/load.py" conc "$MITM_PORT" "$ORIGIN_TLSPORT" "$CONC" "$MITM_PID") ||
    fail "concurrent client failed: $res"
log "concurrent: $res"
q() { printf '%s' "$res" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
[ "$(q 'd["held"]')" = "$CONC" ] || problem "concurrent: $(q 'd["held"]') of $CONC connections could be opened: $(q 'd["errors"]')"
[ "$(q 'd["alive_after_2s"]')" = "$CONC" ] || problem "concurrent: only $(q 'd["alive_after_2s"]') of $CONC connections were still open after being held 2 s"
[ "$(q 'd["used_ok"]')" = "$CONC" ] || problem "concurrent: $(q 'd["used_ok"]') of $CONC held connections then served a GET: $(q 'd["errors"]')"
CONC_FDS=$(q 'd["mitm_fds_while_held"]') CONC_RSS=$(q 'd["mitm_rss_kib_while_held"]')
stop_mitmrec
all_clean concurrent "$MITM_PCAP" "$ORIGIN_TLSPORT" "$CONC"

# ---- 2. 20,000 sequential --------------------------------------------------------------
start_mitmrec -o "$WORK/seq.pcapng" --cacert "$TEST_CA"
res=$(MITM_CA=$MITM_CA "$PY" "$WORK/load.py" seq "$MITM_PORT" "$ORIGIN_TLSPORT" "$SEQ" "$MITM_PID" 4) ||
    fail "sequential client failed: $res"
log "sequential: $res"
[ "$(q 'd["failed"]')" = 0 ] || problem "sequential: $(q 'd["failed"]') of $SEQ connections failed: $(q 'd["errors"]')"
R5=$(q 'd["samples"].get("5000", {}).get("rss_kib", 0)')
R10=$(q 'd["samples"].get("10000", {}).get("rss_kib", 0)')
R20=$(q 'd["samples"].get(str('"$SEQ"'), {}).get("rss_kib", 0)')
log "sequential: VmRSS ${R5} kB at 5k, ${R10} kB at 10k, ${R20} kB at $SEQ (bound: at most $RSS_GROWTH_MIB MiB above the 5k figure)"
if [ "$CHECK_MEM" = 1 ] && [ "$R5" -gt 0 ] && [ $((R20 - R5)) -gt $((RSS_GROWTH_MIB * 1024)) ]; then
    problem "sequential: VmRSS grew by $((R20 - R5)) kB from 5k to $SEQ connections, over the bound of $RSS_GROWTH_MIB MiB"
fi
stop_mitmrec
all_clean sequential "$MITM_PCAP" "$ORIGIN_TLSPORT" "$SEQ"

# ---- 3. Odd endings --------------------------------------------------------------------
"$PY" "$WORK/load.py" rst-origin "$WORK/rst.port" "$TLS_FIXTURES/origin.pem" "$TLS_FIXTURES/origin-key.pem" \
    2>"$WORK/rst.err" &
_LIB_PIDS+=("$!")
for _ in $(seq 100); do [ -s "$WORK/rst.port" ] && break; sleep 0.1; done
RST_PORT=$(cat "$WORK/rst.port") || fail "the resetting origin did not start: $(cat "$WORK/rst.err")"
start_mitmrec -o "$WORK/endings.pcapng" --cacert "$TEST_CA"
res=$(MITM_CA=$MITM_CA "$PY" "$WORK/load.py" endings "$MITM_PORT" "$ORIGIN_TLSPORT" "$ORIGIN_PORT" "$RST_PORT" "$MITM_PID") ||
    fail "endings client failed: $res"
log "endings: $res"
stop_mitmrec
endings "$MITM_PCAP" "$ORIGIN_TLSPORT,$ORIGIN_PORT,$RST_PORT,$MITM_PORT" >"$WORK/endings.endings"
ev() { awk -v p="$1" '$2 == p { $1 = ""; $2 = ""; sub(/^  /, ""); print }' "$WORK/endings.endings"; }
# expect WHAT PORT REGEX DESCRIPTION: the port's endings must match REGEX.
expect() {
    local got
    got=$(ev "$2")
    log "endings: $1 (port $2): ${got:-none}"
    printf '%s\n' "$got" | grep -Eq "$3" || problem "endings: $1 (client port $2) is recorded as '${got:-no FIN, no RST}', expected $4"
}
port() { q "d[\"$1\"][\"port\"]"; }
expect normal "$(port normal)" '^(c:F s:F|s:F c:F)$' "a FIN each way"
expect "half-closed client" "$(port half_close)" '^c:F s:F$' "the client's FIN first, then the server's"
expect "slow reader" "$(port slow_reader)" '^(c:F s:F|s:F c:F)$' "a FIN each way"
expect "upstream reset" "$(port upstream_reset)" '^(c:[FR] )?s:R' "an RST from the server side"
expect "client abort" "$(port client_abort)" '^c:R' "an RST from the client side"
bad=()
for p in $(q '" ".join(map(str, d["slowloris"]["plain_ports"] + d["slowloris"]["tls_ports"]))'); do
    ev "$p" | grep -Eq '^c:F' || bad+=("$p:$(ev "$p" | tr ' ' ,)")
done
log "endings: slowloris: $(q 'd["slowloris"]["connections"]') connections, $(q 'd["slowloris"]["still_open_after_6s"]') still open after 6 s; plain $(ev "$(q 'd["slowloris"]["plain_ports"][0]')"), in TLS $(ev "$(q 'd["slowloris"]["tls_ports"][0]')")"
[ ${#bad[@]} -eq 0 ] || problem "endings: ${#bad[@]} of $(q 'd["slowloris"]["connections"]') slowloris connections (client closed with a FIN) are recorded without the client's FIN first: ${bad[*]:0:5}"
[ "$(q 'd["half_close"]["body_ok"]')" = True ] || problem "half-closed client: the 1 MiB answer was wrong ($(q 'd["half_close"]'))"
[ "$(q 'd["slow_reader"]["body_ok"]')" = True ] || problem "slow reader: the 64 MiB answer was wrong ($(q 'd["slow_reader"]["status"]'))"
[ "$(q 'd["normal"]["ok"]')" = True ] || problem "the normal request among the odd ones failed"
g=$(( $(q 'd["slow_reader"]["mitm_rss_kib_while_slow"]') - $(q 'd["slow_reader"]["mitm_rss_kib_before"]') ))
log "slow reader: mitmrec's VmRSS grew by $g kB while 1 MiB of 64 MiB was read slowly (bound $SLOW_GROWTH_MIB MiB)"
if [ "$CHECK_MEM" = 1 ] && [ $g -gt $((SLOW_GROWTH_MIB * 1024)) ]; then
    problem "slow reader: mitmrec's VmRSS grew by $g kB, over $SLOW_GROWTH_MIB MiB: the relay does not hold back the upstream, or the body is not spilled"
fi
[ "$(q 'd["parallel_normal_client"]["failed"]')" = 0 ] ||
    problem "the parallel normal client failed $(q 'd["parallel_normal_client"]["failed"]') time(s): $(q 'd["parallel_normal_client"]["errors"][:3]')"
mx=$(q 'd["parallel_normal_client"]["max_seconds"]')
log "parallel normal client: $(q 'd["parallel_normal_client"]["ok"]') requests, slowest $mx s"
"$PY" -c "import sys; sys.exit(0 if float(sys.argv[1]) < 5 else 1)" "$mx" ||
    problem "the parallel normal client waited $mx s for one request (bound 5 s)"
# The HAR says what went wrong.
har_query "$MITM_HAR" '"\n".join("%s %s %s" % (e["request"]["url"], e["response"]["status"], e.get("_error") or e["response"].get("_error") or "-") for e in h["log"]["entries"] if "/reset" in e["request"]["url"] or "/5m.bin" in e["request"]["url"])' >"$WORK/endings.har.txt"
log "endings: HAR: $(tr '\n' ';' <"$WORK/endings.har.txt")"
grep '/reset' "$WORK/endings.har.txt" | grep -qv ' -$' || problem "upstream reset: no HAR entry with _error for /reset: $(cat "$WORK/endings.har.txt")"
grep '/5m.bin' "$WORK/endings.har.txt" | grep -qv ' -$' || problem "client abort: no HAR entry with _error for /5m.bin: $(cat "$WORK/endings.har.txt")"

log "figures: $CONC connections held at once (mitmrec had $CONC_FDS descriptors open, VmRSS $CONC_RSS kB); VmRSS $R5 / $R10 / $R20 kB after 5k / 10k / $SEQ sequential connections"
finish_problems
log "ok"
exit 0
