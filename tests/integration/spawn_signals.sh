#!/bin/bash
# SPDX-License-Identifier: MIT
# The command that mitmrec or mitmreplay starts sees the signals it would see without them.
# Both ignore SIGPIPE for themselves, and an ignored signal survives exec, so the command
# used to run with SIGPIPE ignored: in `yes | head -n 1`, yes then wrote "yes: standard
# output: Broken pipe" and failed instead of dying quietly. Checked: the command's SigIgn and
# SigBlk (/proc/self/status) are those of the same command started by this shell, with
# SIGPIPE at its default and, under `trap '' PIPE`, ignored (as nohup-like wrappers leave
# it); and the pipeline says nothing. One difference is made on purpose: with the recording
# on stdout (-o -), the command's stdout is our stderr. Last, commands that end at once, run
# over and over: each run exits 0.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

spawn_available || skip "spawn mode unavailable here ($SPAWN_WHY)"
MITMREPLAY=${MITMREPLAY:-$top_builddir/mitmreplay}
[ -x "$MITMREPLAY" ] || skip "$MITMREPLAY not built"

cat >"$WORK/cmd.sh" <<'EOF'
#!/bin/sh
# cmd.sh OUT: the signal lines of this shell's status into OUT; then a pipeline whose writer
# must die of SIGPIPE when its reader is gone (errors into OUT.err).
grep -E '^Sig(Ign|Blk):' /proc/self/status >"$1"
{ yes | head -n 1 >/dev/null; } 2>>"$1.err"
exit 0
EOF
chmod 755 "$WORK/cmd.sh"

# check WHAT RUNNER...: RUNNER "$WORK/cmd.sh" OUT, compared with the same command run here.
check() {
    local what=$1
    shift
    rm -f "$WORK/want" "$WORK/want.err" "$WORK/got" "$WORK/got.err"
    "$WORK/cmd.sh" "$WORK/want"
    "$@" "$WORK/cmd.sh" "$WORK/got" >"$WORK/run.out" 2>"$WORK/run.err" ||
        fail "$what: exit $?: $(tail -n 3 "$WORK/run.err")"
    [ -s "$WORK/got" ] || fail "$what: the command did not run: $(tail -n 3 "$WORK/run.err")"
    cmp -s "$WORK/want" "$WORK/got" ||
        fail "$what: the command's signals $(tr '\n\t' '  ' <"$WORK/got"), here $(tr '\n\t' '  ' <"$WORK/want")"
    if [ -s "$WORK/want.err" ]; then   # SIGPIPE ignored here: yes complains here too
        [ -s "$WORK/got.err" ] || fail "$what: yes died quietly, but not here"
    else
        [ ! -s "$WORK/got.err" ] || fail "$what: the pipeline wrote: $(cat "$WORK/got.err")"
    fi
}

check "mitmrec" "$MITMREC" -q -o "$WORK/x.pcapng" --
check "mitmreplay" "$MITMREPLAY" -q "$WORK/x.pcapng" --
log "SIGPIPE at its default in the command, as here: $(grep SigIgn "$WORK/got" | tr '\t' ' ')"
(
    trap '' PIPE
    check "mitmrec under trap '' PIPE" "$MITMREC" -q -o "$WORK/y.pcapng" --
    check "mitmreplay under trap '' PIPE" "$MITMREPLAY" -q "$WORK/x.pcapng" --
    grep -Eq '^SigIgn:[[:space:]]*[0-9a-f]*[13579bdf][0-9a-f]{3}$' "$WORK/got" || fail "under trap '' PIPE, SIGPIPE is not ignored: $(cat "$WORK/got")"
) || exit 1
log "under trap '' PIPE, ignored in the command too"

# With the recording on stdout (-o -, --har -, mitmreplay's --record-new -), the command's
# own output goes to stderr: before, it went into the pcapng and broke it.
out_check() {
    local what=$1 file=$2
    shift 2
    "$@" -- sh -c 'echo OUTPUT-OF-THE-COMMAND' >"$WORK/$file" 2>"$WORK/$file.err" ||
        fail "$what: exit $?: $(tail -n 3 "$WORK/$file.err")"
    grep -q OUTPUT-OF-THE-COMMAND "$WORK/$file" && fail "$what: the command's output is in the recording"
    grep -qx OUTPUT-OF-THE-COMMAND "$WORK/$file.err" || fail "$what: the command's output is not on stderr: $(cat "$WORK/$file.err")"
}
out_check "mitmrec -o -" stdout.pcapng "$MITMREC" -q -o - --har "$WORK/stdout.har"
tshark_readable "$WORK/stdout.pcapng" >/dev/null
out_check "mitmrec --har -" stdout.har "$MITMREC" -q -o "$WORK/x2.pcapng" --har -
har_validate "$WORK/stdout.har"
out_check "mitmreplay --record-new -" new.pcapng "$MITMREPLAY" -q "$WORK/x.pcapng" \
    --unmatched passthrough --record-new -
tshark_readable "$WORK/new.pcapng" >/dev/null
log "-o -, --har -, --record-new -: the command's output on stderr, the recording whole"

# A command that ends before mitmrec has looked at SIGCHLD the first time (true(1) does about
# one run in fifty): each run exits 0 with the command, the files whole. mitmrec used to
# crash there (a timer started before it was initialized).
for i in $(seq 150); do
    timeout 20 "$MITMREC" -q -o "$WORK/quick.pcapng" -- true 2>"$WORK/quick.err" ||
        fail "run $i of mitmrec -- true: exit $?: $(tail -n 3 "$WORK/quick.err")"
done
tshark_readable "$WORK/quick.pcapng" >/dev/null
har_validate "$WORK/quick.har"
for i in $(seq 50); do
    timeout 20 "$MITMREPLAY" -q "$WORK/x.pcapng" -- true 2>"$WORK/quick.err" ||
        fail "run $i of mitmreplay -- true: exit $?: $(tail -n 3 "$WORK/quick.err")"
done
log "150 runs of mitmrec -- true and 50 of mitmreplay -- true: each exits 0"
exit 0
