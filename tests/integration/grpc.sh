#!/bin/bash
# SPDX-License-Identifier: MIT
# gRPC (HTTP/2 without TLS, prior knowledge; Debian's python3-grpcio on both sides): a
# client calls a unary method (its answer carries trailing metadata), one that fails with
# NOT_FOUND and a message, and a server-streaming one, recorded in spawn mode. The server is
# stopped; mitmreplay answers the same client from the pcapng and from the HAR, and the
# client prints the same lines: gRPC's status travels in trailers, which the replay sends.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need "$PY"
"$PY" -c 'import grpc' 2>/dev/null || skip "no python3-grpcio"
need_replay
cat >"$WORK/server.py" <<'PY'
import sys, grpc
from concurrent import futures
def echo(req, ctx):
    ctx.set_trailing_metadata((("x-trailer", "t-" + req.decode()),))
    return b"echo:" + req
def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + req.decode())
def stream(req, ctx):
    for i in range(3):
        yield b"part%d:" % i + req
s = grpc.server(futures.ThreadPoolExecutor(4))
s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Svc", {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Stream": grpc.unary_stream_rpc_method_handler(stream),
}),))
s.add_insecure_port("127.0.0.1:" + sys.argv[1])
s.start()
s.wait_for_termination()
PY
cat >"$WORK/client.py" <<'PY'
import sys, grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
r, call = ch.unary_unary("/test.Svc/Echo").with_call(b"hello", timeout=10)
print("echo %r trailers %r" % (r, [(m.key, m.value) for m in call.trailing_metadata()]))
try:
    ch.unary_unary("/test.Svc/Fail")(b"x1", timeout=10)
    print("fail: it did not")
except grpc.RpcError as e:
    print("fail %s %r" % (e.code(), e.details()))
print("stream %r" % list(ch.unary_stream("/test.Svc/Stream")(b"s", timeout=10)))
PY
GP=$(free_port)
start_server "the gRPC server" "$GP" 20 "$WORK/server.log" "$PY" "$WORK/server.py" "$GP"

"$PY" "$WORK/client.py" "$GP" >"$WORK/direct.txt" 2>&1 || fail "direct: $(cat "$WORK/direct.txt")"
cat >"$WORK/want.txt" <<'TXT'
echo b'echo:hello' trailers [('x-trailer', 't-hello')]
fail StatusCode.NOT_FOUND 'no such thing: x1'
stream [b'part0:s', b'part1:s', b'part2:s']
TXT
cmp -s "$WORK/direct.txt" "$WORK/want.txt" || fail "direct, the client printed: $(cat "$WORK/direct.txt")"
"$MITMREC" -q -o "$WORK/g.pcapng" -- "$PY" "$WORK/client.py" "$GP" >"$WORK/rec.txt" 2>"$WORK/rec.log" ||
    fail "recording: $(cat "$WORK/rec.txt" "$WORK/rec.log")"
cmp -s "$WORK/rec.txt" "$WORK/want.txt" || fail "through mitmrec, the client printed: $(cat "$WORK/rec.txt")"
# grpc-status: in the trailers, or in the headers of a trailers-only answer (Fail).
[ "$(har_query "$WORK/g.har" '" ".join("%s:%s:%s" % (e["request"]["url"].rsplit("/", 1)[1], where, f["value"]) for e in h["log"]["entries"] for where in ("headers", "_trailers") for f in e["response"].get(where) or [] if f["name"] == "grpc-status")')" = \
  "Echo:_trailers:0 Fail:headers:5 Stream:_trailers:0" ] ||
    fail "the HAR's grpc-status: $(har_query "$WORK/g.har" '[(e["response"]["headers"], e["response"].get("_trailers")) for e in h["log"]["entries"]]')"
stop_server "the gRPC server" "$GP"

for from in g.pcapng g.har; do
    run_replay "$WORK/$from.log" "$WORK/$from" --strict -- "$PY" "$WORK/client.py" "$GP" >"$WORK/$from.txt"
    [ "$REPLAY_RC" = 0 ] || fail "replay from $from: status $REPLAY_RC: $(tail -n 5 "$WORK/$from.log")"
    cmp -s "$WORK/$from.txt" "$WORK/want.txt" || fail "replay from $from, the client printed: $(cat "$WORK/$from.txt")"
done
log "gRPC: unary with trailing metadata, NOT_FOUND, server streaming; replayed from the pcapng and the HAR"
exit 0
