#!/bin/bash
# SPDX-License-Identifier: MIT
# examples/ci: the committed recording still replays its test script (nothing listens on the
# API's port), with --strict and a JUnit report.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl "$PY"
need_replay
EX=$top_srcdir/examples/ci
port_closed 8443 || skip "something listens on 127.0.0.1:8443 (the example API's port)"
cd "$EX" || fail "no $EX"
run_replay "$WORK/r.log" api.pcapng --strict --report "$WORK/r.xml" -- ./test.sh >"$WORK/out"
cd "$WORK" || exit 99
[ "$REPLAY_RC" = 0 ] || { cat "$WORK/r.log" "$WORK/out" >&2; fail "example replay: status $REPLAY_RC"; }
grep -q '^ok: 2 items, pear stock 12' "$WORK/out" || fail "test.sh said: $(cat "$WORK/out")"
grep -q 'tests="2" failures="0"' "$WORK/r.xml" || fail "report: $(cat "$WORK/r.xml")"
log "examples/ci: test.sh passes against the committed recording"
exit 0
