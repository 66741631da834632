#!/bin/bash
# SPDX-License-Identifier: MIT
# Local redirect mode, spawn (mitmrec -o F -- COMMAND): a script runs curl, wget and python3 over
# HTTPS and plain HTTP against names under origin.test, resolved by a dnsmasq of our own on a
# loopback address. The command gets its own /etc/resolv.conf (a bind mount in a private mount
# namespace made with unshare -m around mitmrec) and refuses to start unless it sees it, so the
# machine's resolver is never asked; /etc/hosts must not know origin.test, so every name comes
# from dnsmasq, whose query log must list exactly the queries the pcapng holds.
# Checks: bodies; the command's exit status (7) is mitmrec's; CA trust with no client flags
# (curl without --cacert, python3's default context, wget without --ca-certificate, and curl
# with only the system bundle, bind-mounted); DNS queries and answers in the pcapng as UDP that
# tshark decodes, with the process comment; every address in the pcapng is loopback; tshark
# decrypts the HTTPS requests; process comments and HAR fields name each client's real pid; the
# HAR validates; the spawn cgroup is gone afterwards (also with a leftover background process,
# and after kill -9 of mitmrec); -r of the pcapng gives the same HAR entries. Then exit statuses
# 0, 127 (no such command), 126 (not executable) and 128+signal, --cgroup PARENT, --ignore-hosts and -f. Last, with
# dnsmasq and nginx stopped, mitmreplay runs the same command from the pcapng: names from the
# recorded DNS answers, the served bytes, the same exit status.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl wget tshark node unshare "$PY" /usr/sbin/dnsmasq
need_redirect
grep -Eqi '(^|[[:space:]])([^[:space:]#]*\.)?origin\.test([[:space:]]|$)' /etc/hosts &&
    skip "/etc/hosts names origin.test: names would not come from our dnsmasq"
# Run as root, not as the sudo user (the command writes into $WORK, which is root's).
unset SUDO_UID SUDO_GID SUDO_USER SUDO_COMMAND
start_origin
SECONDS=0
mkdir -p "$WORK/dns" "$WORK/dl" "$WORK/pids" "$WORK/status"

# ---- dnsmasq on a free loopback address, port 53, answering *.origin.test with 127.0.0.1 ----
DNS_LOG=$WORK/dns/queries.log
DNS_ADDR=
for _ in 1 2 3 4 5; do
    addr=127.53.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
    "$PY" - "$addr" <<'EOF' || continue
import socket, sys
for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind((sys.argv[1], 53))
    s.close()
EOF
    rm -f "$WORK/dns/dnsmasq.pid"
    /usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --port=53 \
        --listen-address="$addr" --bind-interfaces --no-resolv --no-hosts --no-negcache \
        --address=/origin.test/127.0.0.1 --local=/origin.test/ --log-queries \
        --log-facility="$DNS_LOG" --pid-file="$WORK/dns/dnsmasq.pid" --user=root --group=root \
        >"$WORK/dns/stdout.log" 2>&1 &
    DNS_PID=$!
    _LIB_PIDS+=("$DNS_PID")
    # Ready when it answers (a probe name, left out of the checks below).
    if "$PY" - "$addr" <<'EOF'; then
import socket, struct, sys, time
q = struct.pack(">HHHHHH", 0x5151, 0x0100, 1, 0, 0, 0) + b"\x05probe\x06origin\x04test\x00" + struct.pack(">HH", 1, 1)
end = time.time() + 5
while time.time() < end:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        s.sendto(q, (sys.argv[1], 53))
        r = s.recv(512)
        if r[:2] == b"\x51\x51" and r.endswith(bytes([127, 0, 0, 1])):
            sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
        DNS_ADDR=$addr
        break
    fi
    kill "$DNS_PID" 2>/dev/null
    wait "$DNS_PID" 2>/dev/null
done
[ -n "$DNS_ADDR" ] || fail "dnsmasq did not start on a loopback address: $(cat "$WORK/dns/stdout.log" "$DNS_LOG" 2>/dev/null | tail -n 5)"
printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$DNS_ADDR" >"$WORK/resolv.conf"
log "dnsmasq on $DNS_ADDR:53 (at ${SECONDS}s)"

# alive PID: running (a zombie, killed but not yet reaped by whoever inherited it, is not).
alive() {
    local st
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# ---- the command ----
TP=$ORIGIN_TLSPORT
HP=$ORIGIN_PORT
cat >"$WORK/fetch.py" <<'EOF'
# fetch.py OUTDIR URL...: GET each URL with urllib's defaults (no context: the default trust
# store, which SSL_CERT_FILE points at); save as OUTDIR/<last path segment>.
import os, sys, urllib.request
for url in sys.argv[2:]:
    with urllib.request.urlopen(url, timeout=15) as r:
        body = r.read()
    with open(os.path.join(sys.argv[1], "py-" + url.rsplit("/", 1)[1]), "wb") as f:
        f.write(body)
EOF
cat >"$WORK/cmd.sh" <<EOF
#!/bin/sh
# Never resolve a name unless /etc/resolv.conf is ours.
if ! cmp -s /etc/resolv.conf "$WORK/resolv.conf"; then
    echo "the command's /etc/resolv.conf is not $WORK/resolv.conf" >"$WORK/status/guard"
    exit 99
fi
cat /proc/self/cgroup >"$WORK/cmd.cgroup"
env >"$WORK/cmd.env"
# run NAME CMD ARGS: the pid of CMD in pids/NAME, its exit status in status/NAME.
run() {
    name=\$1
    shift
    sh -c 'echo \$\$ >"\$0"; exec "\$@"' "$WORK/pids/\$name" "\$@" 2>"$WORK/status/\$name.err"
    echo \$? >"$WORK/status/\$name"
}
cd "$WORK/dl"
run curl-https curl -q -sS -o curl-small.txt -o curl-data.json --compressed \
    "https://origin.test:$TP/small.txt" "https://origin.test:$TP/data.json"
run curl-http curl -q -sS -o curl-plain.txt "http://www.origin.test:$HP/small.txt"
run wget-https wget -q --no-hsts -O wget-binary.bin "https://wget.origin.test:$TP/binary.bin"
run wget-http wget -q --no-hsts -O wget-plain.json "http://wget.origin.test:$HP/data.json"
run python3 /usr/bin/python3 "$WORK/fetch.py" . "https://py.origin.test:$TP/small.txt" \
    "http://py.origin.test:$HP/binary.bin"
# Only the bind-mounted system bundle (no CA variables).
run curl-bundle env -u SSL_CERT_FILE -u CURL_CA_BUNDLE -u REQUESTS_CA_BUNDLE curl -q -sS \
    -o bundle-small.txt "https://bundle.origin.test:$TP/small.txt?bundle"
# Left running: the cgroup must still go away.
sleep 300 &
echo \$! >"$WORK/pids/leftover"
exit 7
EOF
chmod 755 "$WORK/cmd.sh"

# spawn_run NAME [MITMREC ARGS] -- COMMAND...: mitmrec in spawn mode, inside unshare -m with
# our resolv.conf bound over /etc/resolv.conf; sets RUN_RC, RUN_PID, RUN_LOG.
# (unshare and sh exec, so RUN_PID is mitmrec's pid, the one in its cgroup's name.)
# (SPAWN_BIN=$MITMREPLAY spawn_run ...: the same for mitmreplay.)
spawn_start() {
    local name=$1
    shift
    RUN_LOG=$WORK/$name.log
    mkdir -p "$WORK/tmp-$name"
    TMPDIR=$WORK/tmp-$name unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh \
        "$WORK/resolv.conf" "${SPAWN_BIN:-$MITMREC}" "$@" >"$WORK/$name.out" 2>"$RUN_LOG" &
    RUN_PID=$!
    _LIB_PIDS+=("$RUN_PID")
}
spawn_run() {
    local i=0
    spawn_start "$@"
    while kill -0 "$RUN_PID" 2>/dev/null; do
        if [ $i -ge 400 ]; then
            kill -KILL "$RUN_PID"
            fail "mitmrec ($*) did not finish within 40 s: $(tail -n 5 "$RUN_LOG")"
        fi
        sleep 0.1
        i=$((i + 1))
    done
    wait "$RUN_PID"
    RUN_RC=$?
    # Whatever the command did, no cgroup named after this mitmrec is left (here: the default
    # parent, the cgroup root; runs with --cgroup are checked where they happen).
    local left
    left=$(find "$CGROUP2" -maxdepth 1 -name "mitmrec-$RUN_PID-*")
    [ -z "$left" ] || fail "mitmrec ($*) exited $RUN_RC and left the cgroup $left"
}

n_before=$(grep -c 'query\[' "$DNS_LOG")
log "spawn run (at ${SECONDS}s)"
MITM_PCAP=$WORK/out.pcapng MITM_HAR=$WORK/out.har MITM_LOG=$WORK/main.log
spawn_run main -o "$MITM_PCAP" --cacert "$TEST_CA" -- "$WORK/cmd.sh"
[ -e "$WORK/status/guard" ] && fail "$(cat "$WORK/status/guard")"
[ $RUN_RC -eq 7 ] || fail "mitmrec -- cmd.sh (exit 7) exited $RUN_RC: $(tail -n 5 "$RUN_LOG")"
log "spawn run done (at ${SECONDS}s)"

# clients_ok TAG: each client of cmd.sh succeeded and got the served bytes.
clients_ok() {
    local c f
    for c in curl-https curl-http wget-https wget-http python3 curl-bundle; do
        [ -f "$WORK/status/$c" ] || fail "$1: client $c did not run"
        [ "$(cat "$WORK/status/$c")" = 0 ] ||
            fail "$1: client $c exited $(cat "$WORK/status/$c"): $(head -c 500 "$WORK/status/$c.err") / $(tail -n 5 "$RUN_LOG")"
    done
    for f in curl-small.txt:small.txt curl-data.json:data.json curl-plain.txt:small.txt \
        wget-binary.bin:binary.bin wget-plain.json:data.json py-small.txt:small.txt \
        py-binary.bin:binary.bin bundle-small.txt:small.txt; do
        same_file "$WORK/dl/${f%%:*}" "$WWW/${f#*:}" "$1: ${f%%:*}"
    done
}
clients_ok spawn
# The command saw the CA variables mitmrec sets.
for v in SSL_CERT_FILE CURL_CA_BUNDLE REQUESTS_CA_BUNDLE NODE_EXTRA_CA_CERTS; do
    grep -q "^$v=" "$WORK/cmd.env" || fail "the command's environment has no $v"
done

# The spawn cgroup (cgroup root/mitmrec-PID-N) is gone, and so is what the command left running.
cg=$(sed -n 's/^0:://p' "$WORK/cmd.cgroup")
case $cg in
/mitmrec-"$RUN_PID"-*) ;;
*) fail "the command ran in cgroup '$cg', expected /mitmrec-$RUN_PID-N under the cgroup v2 root" ;;
esac
[ ! -d "$CGROUP2$cg" ] || fail "the spawn cgroup $CGROUP2$cg is still there after mitmrec exited"
leftover=$(cat "$WORK/pids/leftover")
_LIB_PIDS+=("$leftover")
for _ in $(seq 20); do alive "$leftover" || break; sleep 0.1; done
alive "$leftover" && fail "the command's background sleep (pid $leftover) outlived mitmrec"

# The summary line.
grep -Eq '^mitmrec: [0-9]+ flows?, [0-9]+ requests?, ' "$RUN_LOG" || fail "no summary line: $(cat "$RUN_LOG")"
grep -qF "$MITM_PCAP" "$RUN_LOG" || fail "the summary does not name $MITM_PCAP: $(cat "$RUN_LOG")"

# mitmrec's own temp dir (the CA bundle for the command, in TMPDIR) is gone.
[ -z "$(ls -A "$WORK/tmp-main")" ] || fail "mitmrec left in its TMPDIR: $(ls -A "$WORK/tmp-main")"

# ---- the recording ----
pid() { cat "$WORK/pids/$1"; }
TSHARK_DECODE_AS+=(-d "udp.port==53,dns")
check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
    --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /small.txt 200" \
    --expect "GET /binary.bin 200" --expect "GET /data.json 200" --expect "GET /small.txt 200" \
    --expect "GET /binary.bin 200" --expect "GET /small.txt?bundle 200" \
    /small.txt="$WWW/small.txt" /data.json="$WWW/data.json" /binary.bin="$WWW/binary.bin" \
    --process "curl=$(pid curl-https)" --process "curl=$(pid curl-http)" \
    --process "wget=$(pid wget-https)" --process "wget=$(pid wget-http)" \
    --process "python3=$(pid python3)" --process "curl=$(pid curl-bundle)" --only-processes

# The HAR's URLs carry the names the clients asked for.
urls=$(har_query "$MITM_HAR" '"\n".join(sorted(e["request"]["url"] for e in h["log"]["entries"]))')
want=$(printf '%s\n' "https://origin.test:$TP/small.txt" "https://origin.test:$TP/data.json" \
    "http://www.origin.test:$HP/small.txt" "https://wget.origin.test:$TP/binary.bin" \
    "http://wget.origin.test:$HP/data.json" "https://py.origin.test:$TP/small.txt" \
    "http://py.origin.test:$HP/binary.bin" "https://bundle.origin.test:$TP/small.txt?bundle" | sort)
[ "$urls" = "$want" ] || fail "HAR URLs:
$urls
want:
$want"
# _process/_pid per URL host.
har_query "$MITM_HAR" '"\n".join(sorted("%s %s %s" % (e["request"]["url"].split("/")[2].split(":")[0], e["_process"], e["_pid"]) for e in h["log"]["entries"]))' >"$WORK/har-procs"
sort -u >"$WORK/want-procs" <<EOF
origin.test curl $(pid curl-https)
www.origin.test curl $(pid curl-http)
wget.origin.test wget $(pid wget-https)
wget.origin.test wget $(pid wget-http)
py.origin.test python3 $(pid python3)
bundle.origin.test curl $(pid curl-bundle)
EOF
[ "$(sort -u "$WORK/har-procs")" = "$(cat "$WORK/want-procs")" ] ||
    fail "HAR hosts and processes: $(cat "$WORK/har-procs"), want $(cat "$WORK/want-procs")"

# tshark decrypts each client's HTTPS request, in a stream its process comment names.
for c in curl-https:curl wget-https:wget python3:python3 curl-bundle:curl; do
    n=$(tshark_fields "$MITM_PCAP" "http.request && tls && frame.comment contains \"process: ${c#*:}, pid $(pid "${c%%:*}")\"" frame.number | wc -l)
    [ "$n" -ge 1 ] || fail "tshark shows no decrypted HTTPS request from ${c#*:} (pid $(pid "${c%%:*}"))"
done

# DNS: queries and answers as UDP that tshark decodes, with the asking process named.
tshark_fields "$MITM_PCAP" 'dns' udp.stream dns.flags.response dns.qry.name dns.qry.type dns.a frame.comment \
    >"$WORK/dns.tsv"
[ -s "$WORK/dns.tsv" ] || fail "tshark finds no DNS in $MITM_PCAP"
n=$(tshark_fields "$MITM_PCAP" 'dns.qry.name == "origin.test"' frame.number | wc -l)
[ "$n" -ge 2 ] || fail "tshark finds $n frames with dns.qry.name == \"origin.test\", expected queries and answers"
n=$(tshark_fields "$MITM_PCAP" 'dns.qry.name == "origin.test" && !udp' frame.number | wc -l)
[ "$n" = 0 ] || fail "$n DNS frames for origin.test are not UDP"
"$PY" - "$WORK/dns.tsv" "$(pid curl-https)" "$(pid curl-http)" "$(pid wget-https)" "$(pid wget-http)" \
    "$(pid python3)" "$(pid curl-bundle)" <<'EOF' || fail "DNS in the pcapng (see above)"
import sys
pids = {"origin.test": ["curl " + sys.argv[2]], "www.origin.test": ["curl " + sys.argv[3]],
        "wget.origin.test": ["wget " + sys.argv[4], "wget " + sys.argv[5]],
        "py.origin.test": ["python3 " + sys.argv[6]], "bundle.origin.test": ["curl " + sys.argv[7]]}
bad = []
seen = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    stream, resp, name, qtype, a, comment = (f + [""] * 6)[:6]
    if not stream:
        bad.append("DNS frame not in a UDP stream: %r" % line)
    if name not in pids:
        bad.append("query for an unexpected name: %r" % line)
        continue
    if not any("process: %s, pid %s" % tuple(p.split()) in comment for p in pids[name]):
        bad.append("DNS frame for %s names %r, want one of %s" % (name, comment, pids[name]))
    seen.setdefault(name, set()).add((resp, qtype))
    if resp == "1" and qtype == "1" and a != "127.0.0.1":
        bad.append("the A answer for %s is %r, want 127.0.0.1" % (name, a))
for name in pids:
    if not {("0", "1"), ("1", "1")} <= seen.get(name, set()):
        bad.append("%s: want an A query and its answer, have %s" % (name, sorted(seen.get(name, ()))))
for b in bad:
    print("dns: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

# Every query in the pcapng reached our dnsmasq (its log lists the same queries), and nothing in
# the pcapng has an address outside loopback.
tail -n +1 "$DNS_LOG" | grep 'query\[' | tail -n +$((n_before + 1)) |
    sed -n 's/.*query\[\([A-Z0-9]*\)\] \([^ ]*\) from .*/\1 \2/p' | sort >"$WORK/dns-log-queries"
tshark_fields "$MITM_PCAP" 'dns && dns.flags.response == 0' dns.qry.type dns.qry.name |
    "$PY" -c '
import sys
names = {"1": "A", "28": "AAAA", "65": "HTTPS", "5": "CNAME"}
for l in sys.stdin:
    t, n = l.rstrip("\n").split("\t")
    print(names.get(t, "TYPE" + t), n)' | sort >"$WORK/pcap-queries"
[ -s "$WORK/pcap-queries" ] || fail "no DNS query in the pcapng"
cmp -s "$WORK/dns-log-queries" "$WORK/pcap-queries" || fail "dnsmasq's query log and the pcapng's DNS queries differ:
dnsmasq: $(tr '\n' ';' <"$WORK/dns-log-queries")
pcapng:  $(tr '\n' ';' <"$WORK/pcap-queries")"
addrs=$(tshark_fields "$MITM_PCAP" 'ip || ipv6' ip.src ip.dst ipv6.src ipv6.dst | tr '\t,' '\n\n' | sort -u | grep .)
bad=$(printf '%s\n' "$addrs" | grep -Ev '^(127\.[0-9]+\.[0-9]+\.[0-9]+|::1)$')
[ -z "$bad" ] || fail "the pcapng has non-loopback addresses: $bad"
printf '%s\n' "$addrs" | grep -qx "$DNS_ADDR" || fail "the pcapng has no packet to or from dnsmasq's $DNS_ADDR"

# -r: the same entries from the pcapng alone.
"$MITMREC" -r "$MITM_PCAP" --har "$WORK/again.har" >"$WORK/again.out" 2>"$WORK/again.err" ||
    fail "mitmrec -r $MITM_PCAP --har again.har failed: $(tail -n 5 "$WORK/again.err")"
har_validate "$WORK/again.har"
q='"\n".join(sorted("%s %s %s" % (e["request"]["method"], e["request"]["url"], e["response"]["status"]) for e in h["log"]["entries"]))'
live=$(har_query "$MITM_HAR" "$q")
again=$(har_query "$WORK/again.har" "$q")
[ "$live" = "$again" ] || fail "mitmrec -r gives other entries than the live HAR:
live:
$live
-r:
$again"
q='"\n".join(sorted("%s %s %s" % (e["request"]["url"], e.get("_process"), e.get("_pid")) for e in h["log"]["entries"]))'
[ "$(har_query "$MITM_HAR" "$q")" = "$(har_query "$WORK/again.har" "$q")" ] ||
    log "note: -r gives other _process/_pid than the live HAR: $(har_query "$WORK/again.har" "$q")"

# ---- exit statuses, --cgroup PARENT, kill -9 ----
log "exit statuses (at ${SECONDS}s)"
spawn_run zero -q -o "$WORK/zero.pcapng" -- sh -c 'exit 0'
[ $RUN_RC -eq 0 ] || fail "mitmrec -- sh -c 'exit 0' exited $RUN_RC: $(cat "$RUN_LOG")"
# A command that cannot be run leaves the files of an earlier run as they were: it is found
# out before they are opened.
cp "$WORK/zero.pcapng" "$WORK/missing.pcapng"
cp "$WORK/zero.har" "$WORK/missing.har"
spawn_run missing -o "$WORK/missing.pcapng" -- "$WORK/no-such-command"
[ $RUN_RC -eq 127 ] || fail "mitmrec -- no-such-command exited $RUN_RC, expected 127: $(cat "$RUN_LOG")"
[ "$(cat "$RUN_LOG")" = "mitmrec: error: cannot run '$WORK/no-such-command': No such file or directory" ] ||
    fail "mitmrec -- no-such-command: expected the one error line, got: $(cat "$RUN_LOG")"
cmp -s "$WORK/zero.pcapng" "$WORK/missing.pcapng" && cmp -s "$WORK/zero.har" "$WORK/missing.har" ||
    fail "mitmrec -- no-such-command changed the files already there"
spawn_run missing-path -q -o "$WORK/missing.pcapng" -- no-such-command-on-path-$$
[ $RUN_RC -eq 127 ] && grep -qx "mitmrec: error: cannot run 'no-such-command-on-path-$$': No such file or directory" "$RUN_LOG" ||
    fail "mitmrec -- a name not on PATH: status $RUN_RC, $(cat "$RUN_LOG")"
# Found but not executable: 126, as from a shell, env(1) or timeout(1).
printf 'not a program\n' >"$WORK/not-executable"
chmod 644 "$WORK/not-executable"
spawn_run noexec -q -o "$WORK/missing.pcapng" -- "$WORK/not-executable"
[ $RUN_RC -eq 126 ] || fail "mitmrec -- a file that is not executable exited $RUN_RC, expected 126: $(cat "$RUN_LOG")"
grep -qx "mitmrec: error: cannot run '$WORK/not-executable': Permission denied" "$RUN_LOG" ||
    fail "mitmrec -- a file that is not executable: $(cat "$RUN_LOG")"
cmp -s "$WORK/zero.pcapng" "$WORK/missing.pcapng" || fail "mitmrec -- not-executable changed the pcapng already there"
spawn_run signal -q -o "$WORK/signal.pcapng" -- sh -c 'kill -TERM $$'
[ $RUN_RC -eq 143 ] || fail "mitmrec -- (a command killed by SIGTERM) exited $RUN_RC, expected 143: $(cat "$RUN_LOG")"

# A --cgroup that is no cgroup v2 directory: one line naming it (no advice to use --listen,
# which is for missing privileges), exit 2, the command not run.
for cg in "$WORK/no-such-cgroup" "$WORK"; do
    case $cg in
    "$WORK") want="--cgroup $WORK: not a cgroup v2 directory (the cgroup2 mount is $CGROUP2)" ;;
    *) want="--cgroup $cg: No such file or directory" ;;
    esac
    rm -f "$WORK/ran"
    spawn_run badcg -q --cgroup "$cg" -o "$WORK/badcg.pcapng" -- touch "$WORK/ran"
    [ $RUN_RC -eq 2 ] && [ "$(cat "$RUN_LOG")" = "mitmrec: error: $want" ] ||
        fail "--cgroup $cg: expected exit 2 and 'mitmrec: error: $want', got $RUN_RC: $(cat "$RUN_LOG")"
    [ ! -e "$WORK/ran" ] || fail "--cgroup $cg: the command ran"
done

# --cgroup PARENT: the spawn cgroup is made under it and removed again.
make_cgroup parent
PARENT=$TEST_CGROUP
spawn_run parent --cgroup "$PARENT" -o "$WORK/parent.pcapng" --cacert "$TEST_CA" -- sh -c \
    'sed -n "s/^0:://p" /proc/self/cgroup >"$1"; curl -q -sS -o "$2" "https://origin.test:$3/small.txt"' \
    sh "$WORK/parent.cgroup" "$WORK/dl/parent.txt" "$TP"
[ $RUN_RC -eq 0 ] || fail "mitmrec --cgroup $PARENT -- curl exited $RUN_RC: $(tail -n 5 "$RUN_LOG")"
same_file "$WORK/dl/parent.txt" "$WWW/small.txt" "--cgroup PARENT: curl small.txt"
case $(cat "$WORK/parent.cgroup") in
"${PARENT#"$CGROUP2"}"/mitmrec-"$RUN_PID"-*) ;;
*) fail "with --cgroup $PARENT the command ran in $(cat "$WORK/parent.cgroup")" ;;
esac
[ -z "$(find "$PARENT" -mindepth 1 -type d)" ] || fail "left under $PARENT: $(find "$PARENT" -mindepth 1 -type d)"
har_query "$WORK/parent.har" '[e["request"]["url"] for e in h["log"]["entries"]]' | grep -q "origin.test:$TP/small.txt" ||
    fail "--cgroup PARENT: the HAR lacks the request"

# --ignore-hosts: flows to 127.0.0.1 are left alone. curl trusts only the origin's CA, so it
# succeeds only if it reached nginx itself, not a forged certificate; the HAR has no entry for
# it, while the DNS query (to our dnsmasq, not ignored) is still recorded.
spawn_run ignore --ignore-hosts 127.0.0.1/32 --ignore-hosts ::1 -o "$WORK/ignore.pcapng" -- \
    curl -q -sS --cacert "$TEST_CA" -o "$WORK/dl/ignore.txt" "https://origin.test:$TP/small.txt"
[ $RUN_RC -eq 0 ] || fail "mitmrec --ignore-hosts 127.0.0.1/32 -- curl --cacert TEST_CA exited $RUN_RC: $(tail -n 5 "$RUN_LOG")"
same_file "$WORK/dl/ignore.txt" "$WWW/small.txt" "--ignore-hosts: curl small.txt"
n=$(har_query "$WORK/ignore.har" 'len(h["log"]["entries"])')
[ "$n" = 0 ] || fail "--ignore-hosts 127.0.0.1/32: the HAR has $n entries, expected none"
n=$(tshark_fields "$WORK/ignore.pcapng" "dns.qry.name == \"origin.test\" && dns.flags.response == 1" frame.number | wc -l)
[ "$n" -ge 1 ] || fail "--ignore-hosts 127.0.0.1/32: the DNS answer for origin.test is not in the pcapng"
n=$(tshark_fields "$WORK/ignore.pcapng" "tcp" frame.number | wc -l)
[ "$n" = 0 ] || fail "--ignore-hosts 127.0.0.1/32: the pcapng holds $n TCP packets, expected none"

# -f in spawn mode: UDP datagrams are filtered one by one (DNS kept with 'udp port 53', left
# out with 'tcp'), TCP flows whole (filter.sh has the details).
spawn_run fudp -f 'udp port 53' -o "$WORK/fudp.pcapng" --cacert "$TEST_CA" -- \
    curl -q -sS -o "$WORK/dl/fudp.txt" "https://origin.test:$TP/small.txt"
[ $RUN_RC -eq 0 ] || fail "mitmrec -f 'udp port 53' -- curl exited $RUN_RC: $(tail -n 5 "$RUN_LOG")"
same_file "$WORK/dl/fudp.txt" "$WWW/small.txt" "-f 'udp port 53': curl small.txt"
[ "$(tshark_fields "$WORK/fudp.pcapng" 'dns.qry.name == "origin.test" && dns.flags.response == 1' frame.number | wc -l)" -ge 1 ] ||
    fail "-f 'udp port 53': the DNS answer is not in the pcapng"
[ "$(tshark_fields "$WORK/fudp.pcapng" tcp frame.number | wc -l)" = 0 ] || fail "-f 'udp port 53' recorded TCP"
[ "$(har_query "$WORK/fudp.har" 'len(h["log"]["entries"])')" = 0 ] || fail "-f 'udp port 53': the HAR has entries"
spawn_run ftcp -f tcp -o "$WORK/ftcp.pcapng" --cacert "$TEST_CA" -- \
    curl -q -sS -o "$WORK/dl/ftcp.txt" "https://origin.test:$TP/small.txt"
[ $RUN_RC -eq 0 ] || fail "mitmrec -f tcp -- curl exited $RUN_RC: $(tail -n 5 "$RUN_LOG")"
[ "$(tshark_fields "$WORK/ftcp.pcapng" udp frame.number | wc -l)" = 0 ] || fail "-f tcp recorded UDP"
har_query "$WORK/ftcp.har" '[e["request"]["url"] for e in h["log"]["entries"]]' | grep -q "origin.test:$TP/small.txt" ||
    fail "-f tcp: the HAR lacks the request"

# kill -9 of mitmrec: the cgroup and the command still go.
log "kill -9 (at ${SECONDS}s)"
rm -f "$WORK/pids/k9"
spawn_start k9 -q --cgroup "$PARENT" -o "$WORK/k9.pcapng" -- \
    sh -c 'echo $$ >"$1"; exec sleep 300' sh "$WORK/pids/k9"
k9=$RUN_PID
k9cmd=$(wait_pidfile "$WORK/pids/k9")
_LIB_PIDS+=("$k9cmd")
k9cg=$(sed -n 's/^0:://p' "/proc/$k9cmd/cgroup")
[ -n "$(cgroup_bpf_progs "$CGROUP2$k9cg")" ] || fail "kill -9: nothing attached to $CGROUP2$k9cg while mitmrec runs"
kill -KILL "$k9"
wait "$k9" 2>/dev/null
for _ in $(seq 50); do [ -d "$CGROUP2$k9cg" ] || break; sleep 0.1; done
[ ! -d "$CGROUP2$k9cg" ] || fail "kill -9 of mitmrec left its spawn cgroup $CGROUP2$k9cg"
for _ in $(seq 20); do alive "$k9cmd" || break; sleep 0.1; done
alive "$k9cmd" && fail "kill -9 of mitmrec left its command (pid $k9cmd) running: $(grep State "/proc/$k9cmd/status")"
remove_cgroup "$PARENT"

# ---- the same command, replayed offline from the pcapng ----
# dnsmasq and nginx are stopped. The command's resolv.conf still names dnsmasq's address, whose
# port 53 mitmreplay answers from the DNS the pcapng recorded; every client gets its recorded
# response, byte for byte, and the same exit status; nothing is left unmatched.
MITMREPLAY=${MITMREPLAY:-$top_builddir/mitmreplay}
if [ -x "$MITMREPLAY" ]; then
    log "replay (at ${SECONDS}s)"
    kill -TERM "$DNS_PID" 2>/dev/null
    wait "$DNS_PID" 2>/dev/null
    kill -TERM "$ORIGIN_PID" 2>/dev/null
    wait "$ORIGIN_PID" 2>/dev/null
    "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)' "$TP" \
        2>/dev/null && fail "nginx still accepts on $TP"
    rm -rf "$WORK/dl" "$WORK/status" "$WORK/pids"
    mkdir -p "$WORK/dl" "$WORK/status" "$WORK/pids"
    SPAWN_BIN=$MITMREPLAY spawn_run replay "$MITM_PCAP" -- "$WORK/cmd.sh"
    [ -e "$WORK/status/guard" ] && fail "replay: $(cat "$WORK/status/guard")"
    [ $RUN_RC -eq 7 ] || fail "mitmreplay -- cmd.sh (exit 7) exited $RUN_RC: $(tail -n 5 "$RUN_LOG")"
    clients_ok replay
    grep -Eq '^mitmreplay: 8 requests, 8 replayed, 0 unmatched; .*; ([1-9][0-9]*) DNS answers \(0 names unknown\)' \
        "$RUN_LOG" || fail "replay summary: $(grep -v '^mitmreplay:   ' "$RUN_LOG" | tail -n 3)"
    log "replay: every client got its recorded bytes, names from the recorded DNS ($(grep -o '[0-9]* DNS answers' "$RUN_LOG" | tail -n 1))"
fi

log "ok (${SECONDS}s)"
exit 0
