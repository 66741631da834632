#!/bin/bash
# SPDX-License-Identifier: MIT
# mitmrec on a terminal (a pty 60 columns wide), -v, in spawn mode, recording a python3 client
# that names itself "ev<ESC>[31mil<BEL>x" (prctl PR_SET_NAME: a process chooses its own name)
# and opens one HTTPS connection every 50 ms for 1.5 s, so that flow lines and the live status
# line (drawn every 250 ms) interleave. Checks:
#   1. nothing the recorded program chose reaches the terminal raw: apart from the status
#      line's own "\r ESC[K", no control character but CR and LF, and the name shows as
#      "ev\x1b[31mil\x07x" in the flow lines, the status line and the summary;
#   2. -v logs every flow: one "flow N: NAME (pid P) to ADDR:PORT" line per connection the
#      client made (it counts them);
#   3. the status line fits the terminal (at most 59 columns), and a flow line never follows
#      it on the same row (each clears it first).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need "$PY"
start_origin
spawn_available || skip "spawn mode unavailable here ($SPAWN_WHY)"

cat >"$WORK/client.py" <<'EOF'
import ctypes, ssl, sys, time, urllib.request
ctypes.CDLL(None).prctl(15, b"ev\x1b[31mil\x07x", 0, 0, 0)   # PR_SET_NAME
ctx = ssl.create_default_context(cafile=sys.argv[2])
n, t0 = 0, time.time()
while time.time() - t0 < 1.5:
    body = urllib.request.urlopen(sys.argv[1], context=ctx).read()
    assert body == open(sys.argv[3], "rb").read()
    n += 1
    time.sleep(0.05)
open(sys.argv[4], "w").write("%d\n" % n)
EOF

# The pty: mitmrec's stderr and stdout, as a terminal shows them, into tty.out.
"$PY" - "$MITMREC" "$WORK" "https://127.0.0.1:$ORIGIN_TLSPORT/small.txt" "$WWW/small.txt" \
    "$TEST_CA" <<'EOF' ||
import fcntl, os, pty, struct, sys, termios
mitm, work, url, served, origin_ca = sys.argv[1:6]
ca = os.path.expanduser("~/.mitmrec/mitmrec-ca-cert.pem")
pid, fd = pty.fork()
if pid == 0:
    os.execv(mitm, [mitm, "-v", "-o", work + "/t.pcapng", "--cacert", origin_ca, "--", sys.executable,
                    work + "/client.py", url, ca, served, work + "/count"])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
out = b""
while True:
    try:
        d = os.read(fd, 65536)
    except OSError:
        break
    if not d:
        break
    out += d
_, status = os.waitpid(pid, 0)
open(work + "/tty.out", "wb").write(out)
sys.exit(os.waitstatus_to_exitcode(status))
EOF
    fail "mitmrec on the pty failed: $(tail -c 600 "$WORK/tty.out" | cat -v)"
[ -s "$WORK/count" ] || fail "the client did not finish: $(tail -c 600 "$WORK/tty.out" | cat -v)"

"$PY" - "$WORK/tty.out" "$(cat "$WORK/count")" <<'EOF' || fail "what mitmrec wrote to the terminal (see above)"
import re, sys
out = open(sys.argv[1], "rb").read()
want = int(sys.argv[2])
name = rb"ev\\x1b\[31mil\\x07x"
bad = []
CLEAR = b"\r\x1b[K"
rest = out.replace(CLEAR, b"")
ctl = sorted({c for c in rest if (c < 0x20 and c not in b"\r\n") or c == 0x7f})
if ctl:
    bad.append("control characters reached the terminal: %s" % ", ".join("0x%02x" % c for c in ctl))
flows = re.findall(rb"mitmrec: flow (\d+): " + name + rb" \(pid (\d+)\) to 127\.0\.0\.1:\d+\r\n", out)
if len(flows) != want:
    bad.append("%d flow lines for %d connections" % (len(flows), want))
if len({p for _, p in flows}) != 1:
    bad.append("flow lines name several pids: %s" % sorted({p for _, p in flows}))
status = 0
for seg in out.split(CLEAR):
    m = re.match(rb"mitmrec: \d+ flows? \(\d+ open\), \d+ requests?, ", seg)
    if not m:
        continue
    status += 1
    line = seg.split(b"\r")[0]
    if len(line) > 59:
        bad.append("a status line of %d columns on a 60-column terminal: %r" % (len(line), line))
    if b"\n" in seg:
        bad.append("a line written after the status line, on its row: %r" % seg[:150])
    if b" | " in line and not line.split(b" | ")[1].startswith(b"ev\\x1b"):
        bad.append("the status line's process: %r" % line)
if status < 3:
    bad.append("the status line was drawn %d times in 1.5 s" % status)
if not re.search(rb"\nmitmrec:   " + name + rb" +\d+ +%d flows +%d requests" % (want, want), out):
    bad.append("no summary line for the client: %r" % out[-400:])
for b in bad:
    print(b, file=sys.stderr)
print("%d connections, %d flow lines, %d status lines" % (want, len(flows), status))
sys.exit(1 if bad else 0)
EOF
log "ok"
