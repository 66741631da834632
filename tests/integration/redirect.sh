#!/bin/bash
# SPDX-License-Identifier: MIT
# Local redirect mode, attach (-p SPEC --cgroup PATH): mitmrec intercepts chosen processes with
# no proxy settings. Every case makes a cgroup of its own under the cgroup v2 mount, attaches
# only there (--cgroup), starts its clients inside it (in_cgroup: a shell joins the cgroup and
# execs the client, so the pid file holds the client's real pid) and removes it at the end. Only
# processes this test started are ever in those cgroups; the machine's root cgroup is left alone.
#
# Cases: curl (HTTPS, keep-alive, plain HTTP), wget, python3 urllib and openssl s_client chosen
# by name; '!wget' (curl recorded, wget goes direct); -p PID (a waiting process, found by the
# /proc scan, next to an unchosen twin); a name longer than 15 characters (a copied curl started
# after mitmrec, a copied python3 started before it, and a decoy sharing the 15-character comm);
# a multi-threaded python3 whose connecting thread is called "Socket Thread"; and kill -9 of
# mitmrec (nothing stays attached, clients connect directly again).
# Each recording: tshark decrypts it with no key file, the process comments cover exactly the
# process's streams, the HAR validates and names the client's real pid, the bodies are right.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need curl wget openssl tshark node "$PY"
need_redirect
start_origin
T=https://127.0.0.1:$ORIGIN_TLSPORT
H=http://127.0.0.1:$ORIGIN_PORT
ACCESS_LOG=$WORK/nginx/access.log
mkdir -p "$WORK/dl" "$WORK/pids"
SECONDS=0

# begin_case NAME -p SPEC...: a fresh cgroup, and mitmrec attached to it (CG, CASE).
begin_case() {
    CASE=$1
    shift
    log "case $CASE (at ${SECONDS}s)"
    make_cgroup "$CASE"
    CG=$TEST_CGROUP
    start_redirect_mitmrec "$@" --cgroup "$CG" -o "$WORK/$CASE.pcapng" --cacert "$TEST_CA"
    grep -qF "recording processes matching the -p rules in $CG" "$MITM_LOG" ||
        fail "$CASE: mitmrec does not say it records in $CG: $(cat "$MITM_LOG")"
    local progs ids id
    progs=$(cgroup_bpf_progs "$CG")
    printf '%s\n' "$progs" | grep -q 'connect4' ||
        fail "$CASE: bpftool cgroup show $CG lists no connect4 program while mitmrec runs: $progs"
    # What is attached to our cgroup is not attached to the cgroup root.
    ids=$(printf '%s\n' "$progs" | awk '$1 ~ /^[0-9]+$/ {print $1}')
    for id in $ids; do
        bpftool cgroup show "$CGROUP2" 2>/dev/null | awk '{print $1}' | grep -qx "$id" &&
            fail "$CASE: program $id is attached to the cgroup root $CGROUP2"
    done
    CASE_PROG_IDS=$ids
}

# end_case [SIGNAL]: SIGTERM (or SIGNAL) to mitmrec (exit 0, summary line), nothing attached any
# more, cgroup removed.
end_case() {
    stop_redirect_mitmrec "${1:-TERM}"
    local progs
    for _ in $(seq 40); do
        progs=$(cgroup_bpf_progs "$CG")
        [ -z "$progs" ] && break
        sleep 0.05
    done
    [ -z "$progs" ] || fail "$CASE: after mitmrec exited, bpftool cgroup show $CG still lists: $progs"
    remove_cgroup "$CG"
}

# client PIDNAME CMD ARGS...: run CMD in the case's cgroup (20 s at most), pid in pids/PIDNAME.
client() {
    local name=$1
    shift
    rm -f "$WORK/pids/$name"
    timeout 20 "$IN_CGROUP" "$CG" "$WORK/pids/$name" "$@"
}
pid_of() { cat "$WORK/pids/$1"; }

# issuer_cn FILE: the issuer CN in curl -v's stderr; cn_of CERT: a certificate's subject CN.
# (The test CA is "mitmrec test CA", mitmrec's own "mitmrec CA".)
issuer_cn() { grep -m1 -i '^\*  *issuer:' "$1" | sed -n 's/.*CN *= *//p'; }
cn_of() { openssl x509 -in "$1" -noout -subject -nameopt sep_multiline | sed -n 's/^ *CN=//p'; }
TEST_CA_CN=$(cn_of "$TEST_CA")

# in_access_log PATH: the origin got a request for PATH (the query included) directly or not.
in_access_log() { grep -qF "\"GET $1 HTTP/1.1\" 200" "$ACCESS_LOG"; }

# ---------------------------------------------------------------------------------------------
# 1. curl by name: HTTPS (keep-alive, gzip JSON) and plain HTTP, two processes.
begin_case curl -p curl
client curl-https curl -q -sS -v --cacert "$MITM_CA" --compressed -w '%{http_code}\n' \
    -o "$WORK/dl/c1-small.txt" "$T/small.txt" -o "$WORK/dl/c1-data.json" "$T/data.json" \
    -o "$WORK/dl/c1-1m.bin" "$T/1m.bin" \
    >"$WORK/c1.out" 2>"$WORK/c1.err" || fail "curl: HTTPS through the redirect failed: $(tail -n 5 "$WORK/c1.err")"
[ "$(sort -u "$WORK/c1.out")" = 200 ] || fail "curl: HTTPS statuses $(cat "$WORK/c1.out")"
MITM_CA_CN=$(cn_of "$MITM_CA")
[ -n "$MITM_CA_CN" ] && [ "$MITM_CA_CN" != "$TEST_CA_CN" ] || fail "CA names: mitmrec '$MITM_CA_CN', test '$TEST_CA_CN'"
[ "$(issuer_cn "$WORK/c1.err")" = "$MITM_CA_CN" ] ||
    fail "curl: the certificate was not mitmrec's (issuer CN: $(issuer_cn "$WORK/c1.err")): not intercepted"
client curl-http curl -q -sS -w '%{http_code}\n' -o "$WORK/dl/c1-plain.txt" "$H/small.txt" \
    >"$WORK/c1p.out" 2>"$WORK/c1p.err" || fail "curl: plain HTTP through the redirect failed: $(cat "$WORK/c1p.err")"
[ "$(cat "$WORK/c1p.out")" = 200 ] || fail "curl: plain HTTP status $(cat "$WORK/c1p.out")"
end_case
for p in "$(pid_of curl-https)" "$(pid_of curl-http)"; do
    printf '%s\n' "$MITM_PROCTABLE" | grep -Eq "^mitmrec: +curl +$p +1 flows? " ||
        fail "curl: the summary's process table has no row for curl pid $p: $MITM_PROCTABLE"
done
same_file "$WORK/dl/c1-small.txt" "$WWW/small.txt" "curl HTTPS small.txt"
same_file "$WORK/dl/c1-data.json" "$WWW/data.json" "curl HTTPS data.json"
same_file "$WORK/dl/c1-plain.txt" "$WWW/small.txt" "curl HTTP small.txt"
same_file "$WORK/dl/c1-1m.bin" "$WWW/1m.bin" "curl HTTPS 1m.bin"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict \
    --expect "GET /small.txt 200" --expect "GET /data.json 200" --expect "GET /small.txt 200" \
    --expect "GET /1m.bin 200" /small.txt="$WWW/small.txt" /data.json="$WWW/data.json" /1m.bin="$WWW/1m.bin" \
    --process "curl=$(pid_of curl-https)" --process "curl=$(pid_of curl-http)" --only-processes
har_query "$MITM_HAR" '[e["_exe"] for e in h["log"]["entries"]]' | grep -q "$(readlink -f "$(command -v curl)")" ||
    fail "curl: HAR _exe is not $(readlink -f "$(command -v curl)"): $(har_query "$MITM_HAR" '[e["_exe"] for e in h["log"]["entries"]]')"
har_query "$MITM_HAR" '[e["_cmdline"] for e in h["log"]["entries"]]' | grep -q 'c1-data.json' ||
    fail "curl: HAR _cmdline lacks curl's arguments: $(har_query "$MITM_HAR" '[e["_cmdline"] for e in h["log"]["entries"]]')"
n=$(tshark_requests "$MITM_PCAP" | wc -l)
[ "$n" = 4 ] || fail "curl: tshark shows $n requests, expected 4: $(tshark_requests "$MITM_PCAP")"
n=$(tshark_fields "$MITM_PCAP" "ip.addr == 127.0.0.1 && tcp.port == $ORIGIN_TLSPORT && tls.handshake.type == 1" frame.number | wc -l)
[ "$n" = 1 ] || fail "curl: expected one ClientHello to the origin's own address and port, tshark finds $n"

# 2. wget by name.
begin_case wget -p wget
client wget wget -q --no-hsts --ca-certificate="$MITM_CA" -O "$WORK/dl/wget.json" "$T/data.json" \
    >"$WORK/wget.err" 2>&1 || fail "wget through the redirect failed: $(cat "$WORK/wget.err")"
end_case INT
same_file "$WORK/dl/wget.json" "$WWW/data.json" "wget data.json"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /data.json 200" \
    /data.json="$WWW/data.json" --process "wget=$(pid_of wget)" --only-processes

# 3. /usr/bin/python3 (urllib, an ssl context trusting the mitmrec CA) by name.
cat >"$WORK/fetch.py" <<'EOF'
# fetch.py CAFILE OUTDIR URL...: GET each URL (trusting only CAFILE), save the body as OUTDIR/<last
# path segment>, print the statuses.
import os, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
for url in sys.argv[3:]:
    with urllib.request.urlopen(url, context=ctx, timeout=15) as r:
        body = r.read()
        print(r.status)
    name = url.split("?")[0].rsplit("/", 1)[1]
    with open(os.path.join(sys.argv[2], name), "wb") as f:
        f.write(body)
EOF
begin_case python3 -p python3
mkdir -p "$WORK/dl/py"
client python3 /usr/bin/python3 "$WORK/fetch.py" "$MITM_CA" "$WORK/dl/py" "$T/small.txt" "$T/binary.bin" \
    >"$WORK/py.out" 2>&1 || fail "python3 urllib through the redirect failed: $(cat "$WORK/py.out")"
end_case
same_file "$WORK/dl/py/small.txt" "$WWW/small.txt" "python3 small.txt"
same_file "$WORK/dl/py/binary.bin" "$WWW/binary.bin" "python3 binary.bin"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /small.txt 200" --expect "GET /binary.bin 200" \
    /small.txt="$WWW/small.txt" /binary.bin="$WWW/binary.bin" \
    --process "python3=$(pid_of python3)" --only-processes

# 4. openssl s_client by name: a GET typed by hand, mitmrec's certificate verified.
begin_case openssl -p openssl
printf 'GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: s_client\r\nConnection: close\r\n\r\n' \
    "$ORIGIN_TLSPORT" >"$WORK/sclient.in"
client openssl openssl s_client -quiet -connect "127.0.0.1:$ORIGIN_TLSPORT" -CAfile "$MITM_CA" \
    -verify_return_error <"$WORK/sclient.in" >"$WORK/sclient.out" 2>"$WORK/sclient.err" ||
    fail "openssl s_client through the redirect failed: $(tail -n 5 "$WORK/sclient.err")"
end_case
head -n 1 "$WORK/sclient.out" | grep -q '^HTTP/1.1 200' ||
    fail "openssl s_client: expected HTTP/1.1 200, got: $(head -n 1 "$WORK/sclient.out")"
tail -c "$(stat -c %s "$WWW/small.txt")" "$WORK/sclient.out" | cmp -s - "$WWW/small.txt" ||
    fail "openssl s_client: the body is not small.txt"
grep -q "^depth=1 .*CN *= *$MITM_CA_CN\$" "$WORK/sclient.err" ||
    fail "openssl s_client: mitmrec's CA is not in the verified chain: $(head -n 5 "$WORK/sclient.err")"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /small.txt 200" \
    /small.txt="$WWW/small.txt" --process "openssl=$(pid_of openssl)" --only-processes

# 5. '!wget': everything in the cgroup but wget. curl is recorded; wget, trusting only the test
#    CA, reaches the origin itself (the origin's log has its request; mitmrec's recording not).
begin_case negation -p '!wget'
client neg-curl curl -q -sS --cacert "$MITM_CA" -o "$WORK/dl/neg-curl.txt" "$T/small.txt?who=neg-curl" \
    >"$WORK/neg-curl.err" 2>&1 || fail "!wget: curl was not intercepted: $(cat "$WORK/neg-curl.err")"
client neg-wget wget -q --no-hsts --ca-certificate="$TEST_CA" -O "$WORK/dl/neg-wget.txt" "$T/small.txt?who=neg-wget" \
    >"$WORK/neg-wget.err" 2>&1 ||
    fail "!wget: wget, trusting only the origin's CA, failed (was it intercepted?): $(cat "$WORK/neg-wget.err")"
end_case
same_file "$WORK/dl/neg-curl.txt" "$WWW/small.txt" "!wget: curl small.txt"
same_file "$WORK/dl/neg-wget.txt" "$WWW/small.txt" "!wget: wget small.txt"
in_access_log "/small.txt?who=neg-wget" || fail "!wget: the origin's access log has no request from wget"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /small.txt?who=neg-curl 200" \
    --process "curl=$(pid_of neg-curl)" --only-processes
n=$(tshark_fields "$MITM_PCAP" 'frame.comment contains "wget" || http.request.uri contains "neg-wget"' frame.number | wc -l)
[ "$n" = 0 ] || fail "!wget: $n frames of the recording mention wget"

# 6. -p PID: two identical python3 clients wait (fifo) in the cgroup from before mitmrec starts
#    (so the /proc scan decides them); only the chosen pid is intercepted.
cat >"$WORK/wait-fetch.py" <<'EOF'
# wait-fetch.py FIFO CAFILE OUT URL: wait for a line on FIFO, then GET URL trusting only CAFILE.
import ssl, sys, urllib.request
with open(sys.argv[1]) as f:
    f.readline()
ctx = ssl.create_default_context(cafile=sys.argv[2])
with urllib.request.urlopen(sys.argv[4], context=ctx, timeout=15) as r:
    body = r.read()
with open(sys.argv[3], "wb") as f:
    f.write(body)
print(r.status)
EOF
CASE=pid
make_cgroup pid-clients
CG=$TEST_CGROUP
mkfifo "$WORK/go-chosen" "$WORK/go-other"
rm -f "$WORK/pids/chosen" "$WORK/pids/other"
timeout 30 "$IN_CGROUP" "$CG" "$WORK/pids/chosen" /usr/bin/python3 "$WORK/wait-fetch.py" "$WORK/go-chosen" \
    "$HOME/.mitmrec/mitmrec-ca-cert.pem" "$WORK/dl/chosen.txt" "$T/small.txt?who=chosen" >"$WORK/chosen.out" 2>&1 &
chosen_job=$!
timeout 30 "$IN_CGROUP" "$CG" "$WORK/pids/other" /usr/bin/python3 "$WORK/wait-fetch.py" "$WORK/go-other" \
    "$TEST_CA" "$WORK/dl/other.txt" "$T/small.txt?who=other" >"$WORK/other.out" 2>&1 &
other_job=$!
chosen=$(wait_pidfile "$WORK/pids/chosen")
other=$(wait_pidfile "$WORK/pids/other")
# Both have exec'd python3 before mitmrec starts.
for p in "$chosen" "$other"; do
    for _ in $(seq 100); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = python3 ] && break; sleep 0.05; done
done
log "case pid (at ${SECONDS}s)"
start_redirect_mitmrec -p "$chosen" --cgroup "$CG" -o "$WORK/pid.pcapng" --cacert "$TEST_CA"
cgroup_bpf_progs "$CG" | grep -q connect4 || fail "pid: nothing attached to $CG"
echo go >"$WORK/go-chosen"
echo go >"$WORK/go-other"
wait "$chosen_job" || fail "pid: the chosen client (pid $chosen) failed: $(cat "$WORK/chosen.out")"
wait "$other_job" ||
    fail "pid: the other client (pid $other), trusting only the origin's CA, failed (intercepted?): $(cat "$WORK/other.out")"
end_case
same_file "$WORK/dl/chosen.txt" "$WWW/small.txt" "-p PID: chosen client's small.txt"
same_file "$WORK/dl/other.txt" "$WWW/small.txt" "-p PID: other client's small.txt"
in_access_log "/small.txt?who=other" || fail "-p PID: the origin's access log has no request from the other client"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /small.txt?who=chosen 200" \
    --process "python3=$chosen" --only-processes

# 7. A name longer than 15 characters (comm keeps "verylongclientn"): a copied curl started
#    after mitmrec (decided at exec), a copied python3 of the same name started before it
#    (decided by the /proc scan), and a decoy curl copy "verylongclientname-decoy" with the same
#    15-character comm, which must not be chosen.
LONG=verylongclientname-test
mkdir -p "$WORK/bin-curl" "$WORK/bin-py" "$WORK/bin-decoy"
cp -L "$(command -v curl)" "$WORK/bin-curl/$LONG"
cp -L /usr/bin/python3 "$WORK/bin-py/$LONG"
cp -L "$(command -v curl)" "$WORK/bin-decoy/verylongclientname-decoy"
CASE=longname
make_cgroup longname
CG=$TEST_CGROUP
mkfifo "$WORK/go-long"
rm -f "$WORK/pids/long-py"
timeout 30 "$IN_CGROUP" "$CG" "$WORK/pids/long-py" "$WORK/bin-py/$LONG" "$WORK/wait-fetch.py" "$WORK/go-long" \
    "$HOME/.mitmrec/mitmrec-ca-cert.pem" "$WORK/dl/long-py.txt" "$T/small.txt?who=long-py" >"$WORK/long-py.out" 2>&1 &
longpy_job=$!
longpy=$(wait_pidfile "$WORK/pids/long-py")
for _ in $(seq 100); do [ "$(cat "/proc/$longpy/comm" 2>/dev/null)" = verylongclientn ] && break; sleep 0.05; done
[ "$(cat "/proc/$longpy/comm")" = verylongclientn ] || fail "longname: the python copy's comm is $(cat "/proc/$longpy/comm")"
log "case longname (at ${SECONDS}s)"
start_redirect_mitmrec -p "$LONG" --cgroup "$CG" -o "$WORK/longname.pcapng" --cacert "$TEST_CA"
client long-curl "$WORK/bin-curl/$LONG" -q -sS --cacert "$MITM_CA" -o "$WORK/dl/long-curl.txt" "$T/small.txt?who=long-curl" \
    >"$WORK/long-curl.err" 2>&1 || fail "longname: the curl copy was not intercepted: $(cat "$WORK/long-curl.err")"
echo go >"$WORK/go-long"
wait "$longpy_job" || fail "longname: the python3 copy (started before mitmrec) failed: $(cat "$WORK/long-py.out")"
client decoy "$WORK/bin-decoy/verylongclientname-decoy" -q -sS --cacert "$TEST_CA" -o "$WORK/dl/decoy.txt" \
    "$T/small.txt?who=decoy" >"$WORK/decoy.err" 2>&1 ||
    fail "longname: the decoy (same comm, other name), trusting only the origin's CA, failed (intercepted?): $(cat "$WORK/decoy.err")"
end_case
same_file "$WORK/dl/long-curl.txt" "$WWW/small.txt" "longname: curl copy small.txt"
same_file "$WORK/dl/long-py.txt" "$WWW/small.txt" "longname: python3 copy small.txt"
same_file "$WORK/dl/decoy.txt" "$WWW/small.txt" "longname: decoy small.txt"
in_access_log "/small.txt?who=decoy" || fail "longname: the origin's access log has no request from the decoy"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /small.txt?who=long-curl 200" \
    --expect "GET /small.txt?who=long-py 200" \
    --process "$LONG=$(pid_of long-curl)" --process "$LONG=$longpy" --only-processes
exes=$(har_query "$MITM_HAR" 'sorted(e["_exe"] for e in h["log"]["entries"])')
[ "$exes" = "[\"$WORK/bin-curl/$LONG\", \"$WORK/bin-py/$LONG\"]" ] || fail "longname: HAR _exe values are $exes"

# 8. A multi-threaded python3 whose connecting thread is named "Socket Thread" (prctl
#    PR_SET_NAME through ctypes): judged by its process, python3.
cat >"$WORK/thread-fetch.py" <<'EOF'
# thread-fetch.py CAFILE OUT URL: GET URL from a thread named "Socket Thread".
import ctypes, ssl, sys, threading, urllib.request
result = {}
def run():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, b"Socket Thread", 0, 0, 0) != 0:   # PR_SET_NAME
        result["error"] = "prctl failed: errno %d" % ctypes.get_errno()
        return
    tid = threading.get_native_id()
    result["comm"] = open("/proc/self/task/%d/comm" % tid).read().strip()
    try:
        ctx = ssl.create_default_context(cafile=sys.argv[1])
        with urllib.request.urlopen(sys.argv[3], context=ctx, timeout=15) as r:
            result["body"], result["status"] = r.read(), r.status
    except Exception as e:
        result["error"] = repr(e)
t = threading.Thread(target=run)
t.start()
t.join()
if "error" in result:
    sys.exit(result["error"])
if result["comm"] != "Socket Thread":
    sys.exit("the thread is called %r" % result["comm"])
if open("/proc/self/comm").read().strip() != "python3":
    sys.exit("the process is called %r" % open("/proc/self/comm").read().strip())
with open(sys.argv[2], "wb") as f:
    f.write(result["body"])
print(result["status"], result["comm"])
EOF
begin_case thread -p python3
client thread /usr/bin/python3 "$WORK/thread-fetch.py" "$MITM_CA" "$WORK/dl/thread.txt" "$T/small.txt?who=thread" \
    >"$WORK/thread.out" 2>&1 || fail "thread: the client failed: $(cat "$WORK/thread.out")"
end_case
grep -q '^200 Socket Thread$' "$WORK/thread.out" || fail "thread: client said $(cat "$WORK/thread.out")"
same_file "$WORK/dl/thread.txt" "$WWW/small.txt" "thread: small.txt"
check_recording "$MITM_PCAP" "$MITM_HAR" --strict --expect "GET /small.txt?who=thread 200" \
    --process "python3=$(pid_of thread)" --only-processes
n=$(tshark_fields "$MITM_PCAP" 'frame.comment contains "Socket Thread"' frame.number | wc -l)
[ "$n" = 0 ] || fail "thread: $n frames are attributed to \"Socket Thread\""

# 9. kill -9 of mitmrec: the kernel drops the programs with mitmrec's last descriptor, nothing
#    stays attached or pinned, and the same client connects directly again.
begin_case kill9 -p curl
client k9-before curl -q -sS -v --cacert "$MITM_CA" -o "$WORK/dl/k9-before.txt" "$T/small.txt?who=k9-before" \
    >/dev/null 2>"$WORK/k9-before.err" || fail "kill9: curl before the kill failed: $(tail -n 5 "$WORK/k9-before.err")"
[ "$(issuer_cn "$WORK/k9-before.err")" = "$MITM_CA_CN" ] ||
    fail "kill9: curl before the kill was not intercepted (issuer CN $(issuer_cn "$WORK/k9-before.err"))"
kill -KILL "$MITM_PID"
wait "$MITM_PID" 2>/dev/null
progs=x
for _ in $(seq 40); do
    progs=$(cgroup_bpf_progs "$CG")
    [ -z "$progs" ] && break
    sleep 0.05
done
[ -z "$progs" ] || fail "kill9: bpftool cgroup show $CG still lists after kill -9: $progs"
for id in $CASE_PROG_IDS; do
    bpftool prog show id "$id" >/dev/null 2>&1 && fail "kill9: BPF program $id still loaded after kill -9"
done
client k9-after curl -q -sS -v --cacert "$TEST_CA" -o "$WORK/dl/k9-after.txt" "$T/small.txt?who=k9-after" \
    >/dev/null 2>"$WORK/k9-after.err" ||
    fail "kill9: curl after the kill, trusting only the origin's CA, failed: $(tail -n 5 "$WORK/k9-after.err")"
iss=$(issuer_cn "$WORK/k9-after.err")
[ "$iss" = "$TEST_CA_CN" ] ||
    fail "kill9: after the kill, curl got a certificate issued by '$iss', not the origin's ('$TEST_CA_CN')"
same_file "$WORK/dl/k9-after.txt" "$WWW/small.txt" "kill9: small.txt after the kill"
in_access_log "/small.txt?who=k9-after" || fail "kill9: the origin's access log has no request after the kill"
remove_cgroup "$CG"

log "ok (${SECONDS}s)"
exit 0
