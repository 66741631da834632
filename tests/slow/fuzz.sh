#!/bin/bash
# SPDX-License-Identifier: MIT
# libFuzzer targets (issue 7, item 5; make check-slow). Every tests/fuzz/fuzz_NAME.c there is
# is built with clang -fsanitize=fuzzer,address,undefined (UBSan findings abort) against all of
# formats/*.c (an archive, so each target takes what it needs) and the libraries from
# pkg-config (libcjson zlib libnghttp2 libbrotlidec libzstd openssl) plus -lhttp_parser, then
# run for FUZZ_SECONDS (60) each on a copy of its seed corpus fixtures/fuzz/NAME/. Any crash,
# leak, timeout or out-of-memory fails the test; the input that did it is kept in
# $top_builddir/fuzz-artifacts/ and named in the failure. Afterwards the inputs that add
# coverage over the seeds (libFuzzer -merge=1) are copied back into fixtures/fuzz/NAME/, the
# smallest first, as long as the directory stays at FUZZ_CORPUS_CAP (200) files or fewer; a run
# that found no new coverage adds nothing (FUZZ_MERGE=0: never write to fixtures/). Prints each
# target's executions and executions per second. FUZZ_JOBS targets run at once (the number of
# CPUs, at most 2); FUZZ_TARGETS="a b" runs only those.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need clang pkg-config
SECONDS_EACH=${FUZZ_SECONDS:-60}
CAP=${FUZZ_CORPUS_CAP:-200}
JOBS=${FUZZ_JOBS:-$(nproc)}
[ "$JOBS" -gt 2 ] && JOBS=2
PKGS="libcjson zlib libnghttp2 libbrotlidec libzstd openssl"
pkg-config --exists $PKGS || skip "pkg-config does not know all of: $PKGS"
ARTIFACTS=$top_builddir/fuzz-artifacts
B=$WORK/build
mkdir -p "$B/obj" "$ARTIFACTS"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# shellcheck disable=SC2086
CFLAGS_F="-g -O1 -std=gnu11 -D_GNU_SOURCE -I$top_srcdir/formats $(pkg-config --cflags $PKGS)"
# shellcheck disable=SC2086
LIBS_F="$(pkg-config --libs $PKGS) -lhttp_parser"

# Does this clang have libFuzzer (Debian: libclang-rt-14-dev)?
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$B/probe.c"
clang -fsanitize=fuzzer "$B/probe.c" -o "$B/probe" 2>"$B/probe.err" ||
    skip "clang cannot link -fsanitize=fuzzer (install libclang-rt-14-dev): $(head -n 3 "$B/probe.err")"

# formats/*.c once, instrumented for coverage and the sanitizers, into one archive.
t0=$(date +%s)
for c in "$top_srcdir"/formats/*.c; do
    o=$B/obj/$(basename "$c" .c).o
    # shellcheck disable=SC2086
    clang $CFLAGS_F $SAN -fsanitize=fuzzer-no-link -c "$c" -o "$o" 2>"$o.err" ||
        fail "cannot compile $c for fuzzing: $(head -n 20 "$o.err")"
done
ar rcs "$B/libformats-fuzz.a" "$B"/obj/*.o || fail "ar failed"

targets=()
for src in "$top_srcdir"/tests/fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    if [ -n "${FUZZ_TARGETS:-}" ]; then
        case " $FUZZ_TARGETS " in *" $name "*) ;; *) continue ;; esac
    fi
    # shellcheck disable=SC2086
    clang $CFLAGS_F $SAN -fsanitize=fuzzer "$src" "$B/libformats-fuzz.a" $LIBS_F \
        -o "$B/fuzz_$name" 2>"$B/fuzz_$name.err" ||
        fail "cannot build tests/fuzz/fuzz_$name.c: $(grep -m 10 -i 'error' "$B/fuzz_$name.err")"
    targets+=("$name")
done
[ ${#targets[@]} -gt 0 ] || skip "no tests/fuzz/fuzz_*.c"
log "built ${#targets[@]} targets in $(($(date +%s) - t0)) s: ${targets[*]}"

# run_one NAME: fuzz for SECONDS_EACH on a copy of the seeds; writes $B/NAME.status.
run_one() {
    local name=$1 seeds=$top_srcdir/fixtures/fuzz/$1 corpus=$B/corpus/$1 rc
    mkdir -p "$corpus"
    [ -d "$seeds" ] && cp "$seeds"/* "$corpus"/ 2>/dev/null
    (cd "$B" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "./fuzz_$name" -max_total_time="$SECONDS_EACH" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$name-" \
        "$corpus" >"$B/$name.log" 2>&1)
    rc=$?
    echo "$rc" >"$B/$name.status"
}

running=()
for name in "${targets[@]}"; do
    run_one "$name" &
    running+=("$!")
    _LIB_PIDS+=("$!")
    if [ ${#running[@]} -ge "$JOBS" ]; then
        wait "${running[0]}"
        running=("${running[@]:1}")
    fi
done
for p in "${running[@]}"; do wait "$p"; done

failed=()
for name in "${targets[@]}"; do
    rc=$(cat "$B/$name.status" 2>/dev/null || echo missing)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/$name.log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$B/$name.log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$B/$name.log" | tail -n 1)
    seeds=$(ls "$top_srcdir/fixtures/fuzz/$name" 2>/dev/null | wc -l)
    log "fuzz_$name: ${execs:-?} executions in ${SECONDS_EACH} s (${rate:-?}/s), ${cov:-cov: ?}, $seeds seed(s), exit $rc"
    if [ "$rc" != 0 ]; then
        art=$(grep -o "$ARTIFACTS/$name-[a-z]*-[0-9a-f]*" "$B/$name.log" | tail -n 1)
        failed+=("fuzz_$name (exit $rc${art:+, input $art}): $(grep -m 3 -E 'ERROR|SUMMARY|runtime error|deadly signal' "$B/$name.log" | tr '\n' ' ')")
        printf '%s: --- fuzz_%s log (tail) ---\n' "$TEST_NAME" "$name" >&2
        tail -n 40 "$B/$name.log" >&2
    fi
done

# Grow the corpora: what adds coverage, smallest first, up to CAP files per directory.
if [ "${FUZZ_MERGE:-1}" = 1 ] && [ ${#failed[@]} -eq 0 ]; then
    for name in "${targets[@]}"; do
        dir=$top_srcdir/fixtures/fuzz/$name m=$B/merge/$name
        mkdir -p "$m" "$dir"
        [ -n "$(ls -A "$dir")" ] && cp "$dir"/* "$m"/
        (cd "$B" && "./fuzz_$name" -merge=1 -timeout=25 -rss_limit_mb=2048 "$m" "$B/corpus/$name" \
            >"$B/$name.merge.log" 2>&1) || { log "fuzz_$name: merge failed: $(tail -n 2 "$B/$name.merge.log")"; continue; }
        have=$(ls "$dir" | wc -l) added=0
        for f in $(cd "$m" && ls -Sr); do
            [ -e "$dir/$f" ] && continue
            [ "$have" -ge "$CAP" ] && break
            cp "$m/$f" "$dir/$f" && have=$((have + 1)) added=$((added + 1))
        done
        log "fuzz_$name: $added new input(s) added to fixtures/fuzz/$name ($have files)"
    done
fi

rmdir "$ARTIFACTS" 2>/dev/null   # kept only when it holds an input that made a target fail
[ ${#failed[@]} -eq 0 ] || fail "${#failed[@]} target(s) found a problem: ${failed[*]}"
log "ok"
exit 0
