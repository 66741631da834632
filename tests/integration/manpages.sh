#!/bin/bash
# SPDX-License-Identifier: MIT
# The manual pages (doc/mitmrec.1, doc/mitmreplay.1, made by configure from doc/*.1.in): they
# render with no groff warning, carry the version, and document exactly the options that
# --help lists, long and short, so that neither can change without the other.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need groff
for prog in mitmrec mitmreplay; do
    bin=$top_builddir/$prog
    page=$top_builddir/doc/$prog.1
    [ -x "$bin" ] || skip "$bin not built"
    [ -f "$page" ] || fail "$page missing (configure makes it from doc/$prog.1.in)"
    version=$("$bin" --version | awk '{print $2}')
    grep -q '@VERSION@' "$page" && fail "$page: @VERSION@ was not filled in"
    grep -q "^\.TH .*\"mitmrec $version\"" "$page" || fail "$page does not name version $version in .TH"
    groff -man -ww -z -Tutf8 "$page" >"$WORK/$prog.groff" 2>&1
    [ ! -s "$WORK/$prog.groff" ] || fail "groff warns about $page: $(head -n 5 "$WORK/$prog.groff")"
    # The options: "--name" and "-x" as --help prints them, and as the page's source has them
    # ("\-\-name", "\-x") in its OPTIONS section.
    "$bin" --help | grep -oE -- '(^|[ ,])--?[a-zA-Z][a-z0-9-]*' | sed 's/^[ ,]*//' | sort -u >"$WORK/$prog.help"
    sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$page" | grep -E '^\.(TP|B|BI|BR) |^\.BR? ' |
        sed 's/\\-/-/g' | grep -oE -- '(^|[ "])--?[a-zA-Z][a-z0-9-]*' | sed 's/^[ "]*//' |
        sort -u >"$WORK/$prog.man"
    [ -s "$WORK/$prog.help" ] && [ -s "$WORK/$prog.man" ] || fail "$prog: no options found in --help or the page"
    missing=$(comm -23 "$WORK/$prog.help" "$WORK/$prog.man" | tr '\n' ' ')
    [ -z "$missing" ] || fail "$prog: --help lists options the manual page does not: $missing"
    extra=$(comm -13 "$WORK/$prog.help" "$WORK/$prog.man" | tr '\n' ' ')
    [ -z "$extra" ] || fail "$prog: the manual page documents options --help does not list: $extra"
    log "$prog.1: $(wc -l <"$WORK/$prog.help") options, the same as --help"
done
log "ok"
