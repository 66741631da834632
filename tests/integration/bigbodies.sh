#!/bin/bash
# SPDX-License-Identifier: MIT
# Large bodies received at once (issue 6: memory): 60 clients download the 1 MiB file at the
# same time through mitmrec, from /slow/ (nginx sends each at 1 MB/s, so all are in progress
# together). Bodies past 64 KiB wait in an unlinked file in $TMPDIR
# (formats/spill.c), not in memory:
#   1. TMPDIR is a directory of the test's: while the downloads run, mitmrec holds a file
#      there that has no name (the directory stays empty); its peak RSS stays under
#      HWM_BOUND_MIB (holding the bodies in memory took about 80 MiB); every download and every
#      HAR body is the file served, tshark reads the pcapng.
#   2. TMPDIR names no directory: one warning that the bodies stay in memory, and the
#      recording is as complete and exact as in 1.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl tshark
N=60
HWM_BOUND_MIB=48
CHECK_MEM=1
mitm_instrumented && CHECK_MEM=0
start_origin

# run_case NAME: N parallel downloads of 1m.bin through the running mitmrec; the peak RSS
# goes into HWM (kB) and the spill directory's use into SPILL_FDS.
run_case() {
    local name=$1 i cfg=$WORK/$1.curl spdir=${2:-}
    mkdir -p "$WORK/dl-$name"
    : >"$cfg"
    for i in $(seq $N); do
        printf 'url = "https://127.0.0.1:%s/slow/1m.bin"\noutput = "%s/%s/dl.%d"\n' \
            "$ORIGIN_TLSPORT" "$WORK" "dl-$name" "$i" >>"$cfg"
    done
    pcurl -f --parallel --parallel-immediate --parallel-max $N -K "$cfg" 2>"$WORK/$name.err" &
    local cpid=$! seen=0
    SPILL_FDS=0
    while kill -0 $cpid 2>/dev/null; do
        if [ -n "$spdir" ] && [ $seen = 0 ] &&
            ls -l "/proc/$MITM_PID/fd" 2>/dev/null | grep -q -- "-> $spdir/"; then
            seen=1
            SPILL_FDS=1
            # The file has no name: nothing to list, nothing left behind.
            [ -z "$(ls -A "$spdir")" ] || fail "$name: the spill directory has entries: $(ls -A "$spdir")"
        fi
        sleep 0.05
    done
    wait $cpid || fail "$name: a download failed: $(head -c 300 "$WORK/$name.err")"
    HWM=$(proc_kib "$MITM_PID" VmHWM)
    for i in $(seq $N); do
        same_file "$WORK/dl-$name/dl.$i" "$WWW/1m.bin" "$name: download $i"
    done
}

# 1. Spilled to a directory of the test's.
mkdir "$WORK/spill"
TMPDIR=$WORK/spill start_mitmrec -o "$WORK/spill.pcapng" --cacert "$TEST_CA"
run_case spill "$WORK/spill"
stop_mitmrec
[ "$SPILL_FDS" = 1 ] || fail "spill: mitmrec never held a file in $WORK/spill while $N downloads of 1 MiB ran"
[ -z "$(ls -A "$WORK/spill")" ] || fail "spill: files left in the spill directory: $(ls -A "$WORK/spill")"
if grep -q 'cannot keep large bodies' "$MITM_LOG"; then
    fail "spill: unexpected warning: $(grep 'cannot keep large bodies' "$MITM_LOG")"
fi
log "spill: $N concurrent 1 MiB downloads, peak RSS $HWM kB"
if [ "$CHECK_MEM" = 1 ] && [ "$HWM" -gt $((HWM_BOUND_MIB * 1024)) ]; then
    fail "spill: peak RSS $HWM kB with $N concurrent 1 MiB downloads, over $HWM_BOUND_MIB MiB"
fi
[ "$(har_query "$WORK/spill.har" "len([e for e in h['log']['entries'] if e['request']['url'].endswith('/1m.bin')])")" = $N ] ||
    fail "spill: the HAR does not have $N entries for /1m.bin"
check_recording "$WORK/spill.pcapng" "$WORK/spill.har" /slow/1m.bin="$WWW/1m.bin"

# 2. No such directory: a warning, and the bodies in memory.
TMPDIR=$WORK/no-such-dir start_mitmrec -o "$WORK/mem.pcapng" --cacert "$TEST_CA"
run_case mem
stop_mitmrec
[ "$(grep -c 'cannot keep large bodies in a file in' "$MITM_LOG")" = 1 ] ||
    fail "mem: expected one warning about the spill directory, stderr: $(cat "$MITM_LOG")"
grep -q "cannot keep large bodies in a file in $WORK/no-such-dir (No such file or directory): they stay in memory" "$MITM_LOG" ||
    fail "mem: the warning does not name the directory and the reason: $(grep 'large bodies' "$MITM_LOG")"
log "mem: $N concurrent 1 MiB downloads in memory, peak RSS $HWM kB"
[ "$(har_query "$WORK/mem.har" "len([e for e in h['log']['entries'] if e['request']['url'].endswith('/1m.bin')])")" = $N ] ||
    fail "mem: the HAR does not have $N entries for /1m.bin"
check_recording "$WORK/mem.pcapng" "$WORK/mem.har" /slow/1m.bin="$WWW/1m.bin"
log "ok"
