# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by tests/integration/replay_*.sh, after tests/lib.sh:
#   $MITMREPLAY            the binary
#   need_replay            skip (77) without root, cgroup v2, BTF or the mitmreplay binary
#   stop_origin            stop the nginx that start_origin started (its PID only) and check
#                          that its ports are closed
#   run_replay LOG ARGS... mitmreplay ARGS, stderr into LOG; sets REPLAY_RC
#   port_closed PORT       true when nothing accepts on 127.0.0.1:PORT
#   start_server NAME PORT SECONDS LOG CMD...
#                          CMD in the background (its output into LOG, stopped at exit);
#                          fails unless PORT accepts within SECONDS. Sets SERVER_PID
#   stop_server NAME PORT  SIGTERM to SERVER_PID, reaped; fails if PORT still accepts

MITMREPLAY=${MITMREPLAY:-$top_builddir/mitmreplay}

need_replay() {
    [ -x "$MITMREPLAY" ] || skip "$MITMREPLAY not built"
    need_redirect
}

port_closed() {
    ! "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)' "$1" 2>/dev/null
}

start_server() {
    local name=$1 port=$2 secs=$3 logf=$4
    shift 4
    "$@" >"$logf" 2>&1 &
    SERVER_PID=$!
    _LIB_PIDS+=("$SERVER_PID")
    wait_port "$port" "$secs" || fail "$name did not start: $(cat "$logf")"
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    port_closed "$2" || fail "$1's port is still open"
}

stop_origin() {
    kill -TERM "$ORIGIN_PID" 2>/dev/null
    local i=0
    while kill -0 "$ORIGIN_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$ORIGIN_PID" 2>/dev/null && fail "nginx (pid $ORIGIN_PID) did not stop"
    local p
    for p in "$ORIGIN_PORT" "$ORIGIN_TLSPORT" ${ORIGIN_H2PORT:-} ${ORIGIN_H2CPORT:-}; do
        port_closed "$p" || fail "port $p still accepts connections after nginx stopped"
    done
}

run_replay() {
    local logf=$1
    shift
    REPLAY_RC=0
    timeout 60 "$MITMREPLAY" "$@" 2>"$logf" || REPLAY_RC=$?
    [ "$REPLAY_RC" = 124 ] && { cat "$logf" >&2; fail "mitmreplay $* did not finish within 60 s"; }
    return 0
}
