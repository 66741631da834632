#!/bin/bash
# SPDX-License-Identifier: MIT
# A TCP protocol that is not HTTP, replayed as a conversation: redis-cli sessions against
# Debian's redis-server (package redis-server, which brings redis-tools' redis-cli) are recorded
# in spawn mode, redis-server is stopped, and the replay gives redis-cli the same answers: after
# the client sends the bytes the recording shows, the recorded server bytes follow.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need redis-server redis-cli "$PY"
need_replay
RPORT=$(free_port)
start_server redis-server "$RPORT" 10 "$WORK/redis.log" redis-server --bind 127.0.0.1 \
    --port "$RPORT" --save '' --appendonly no --dir "$WORK" --daemonize no

cat >"$WORK/client.sh" <<SH
#!/bin/sh
o=\$1
R="redis-cli -h 127.0.0.1 -p $RPORT"
\$R SET greeting "hello from redis" >"\$o/set.txt" || exit 11
\$R GET greeting >"\$o/get.txt" || exit 12
printf 'INCR counter\nINCR counter\nLPUSH list a b c\nLRANGE list 0 -1\nPING\n' | \$R >"\$o/pipe.txt" || exit 13
\$R --raw MGET greeting counter >"\$o/mget.txt" || exit 14
SH
chmod 755 "$WORK/client.sh"
mkdir -p "$WORK/out.rec" "$WORK/out"
"$MITMREC" -q -o "$WORK/rec.pcapng" -- "$WORK/client.sh" "$WORK/out.rec" 2>"$WORK/rec.log" ||
    { cat "$WORK/rec.log" >&2; fail "recording failed"; }
grep -q 'hello from redis' "$WORK/out.rec/get.txt" || fail "recording run: GET gave $(cat "$WORK/out.rec/get.txt")"
stop_server redis-server "$RPORT"

run_replay "$WORK/replay.log" "$WORK/rec.pcapng" --report "$WORK/r.json" -v -- "$WORK/client.sh" "$WORK/out"
[ "$REPLAY_RC" = 0 ] || { cat "$WORK/replay.log" >&2; fail "replay: status $REPLAY_RC"; }
for f in set.txt get.txt pipe.txt mget.txt; do
    cmp -s "$WORK/out.rec/$f" "$WORK/out/$f" ||
        fail "replay: $f differs: $(diff "$WORK/out.rec/$f" "$WORK/out/$f" | head -5)"
done
grep -q '4 TCP conversations' "$WORK/replay.log" || fail "summary: $(cat "$WORK/replay.log")"
"$PY" -c 'import json,sys; c=json.load(open(sys.argv[1]))["conversations"]; assert len(c)==4 and all(x["matched"] and x["chunks"]==x["recorded_chunks"] for x in c), c' "$WORK/r.json" ||
    fail "report: $(cat "$WORK/r.json")"
log "redis-cli: 4 conversations replayed, outputs identical ($(cat "$WORK/out/pipe.txt" | tr '\n' ' '))"
exit 0
