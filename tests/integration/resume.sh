#!/bin/bash
# SPDX-License-Identifier: MIT
# Upstream session resumption, judged from the recording (--upstream: the server side is
# interface 1).
# 1. An origin that issues TLS 1.3 tickets (tests/nginx.conf.in with resumption on for its
#    HTTPS port): six downloads in a row through mitmrec. The first upstream handshake is
#    full, the five after it resume (ServerHello with pre_shared_key), and every flow still
#    decrypts in tshark from the secrets in the file alone: six requests on each side, the
#    bodies those served. A ticket from 127.0.0.1 is not used under another name: the
#    origin's chain under a name it lacks is still refused, and "localhost" works.
# 2. An origin without resumption (its h2 port: tickets off, no cache, yet OpenSSL still
#    sends TLS 1.3 tickets it cannot honour): one refused offer, then none over the next
#    flows.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99

need tshark
sed -e '0,/ssl_session_cache off;/{/ssl_session_cache off;/d}' \
    -e '0,/ssl_session_tickets off;/{/ssl_session_tickets off;/d}' \
    "$top_srcdir/tests/nginx.conf.in" >"$WORK/nginx.conf.in"
[ "$(grep -c 'ssl_session_tickets off' "$WORK/nginx.conf.in")" = \
  "$(($(grep -c 'ssl_session_tickets off' "$top_srcdir/tests/nginx.conf.in") - 1))" ] ||
    fail "could not turn resumption on for the origin's HTTPS port"
NGINX_CONF_IN=$WORK/nginx.conf.in start_origin
start_mitmrec -o "$WORK/out.pcapng" --upstream --cacert "$TEST_CA" -vv

# psk_count FILTER: frames matching FILTER whose TLS extensions include pre_shared_key (41);
# hello_count FILTER: frames matching FILTER.
psk_count() {
    tshark_fields "$MITM_PCAP" "$1" tls.handshake.extension.type | grep -cE '(^|,)41(,|$)'
}
hello_count() {
    tshark_fields "$MITM_PCAP" "$1" frame.number | grep -c .
}

# 1. Resumption against an origin that offers it.
for i in 1 2 3 4 5 6; do
    pcurl --http1.1 -o "$WORK/t$i.out" "https://127.0.0.1:$ORIGIN_TLSPORT/small.txt" \
        2>"$WORK/t$i.err" || fail "download $i: $(cat "$WORK/t$i.err")"
    same_file "$WORK/t$i.out" "$WWW/small.txt" "download $i"
done
pcurl -o /dev/null --connect-to "wrong.invalid:$ORIGIN_TLSPORT:127.0.0.1:$ORIGIN_TLSPORT" \
    "https://wrong.invalid:$ORIGIN_TLSPORT/small.txt" 2>"$WORK/wrongname.err"
rc=$?
[ $rc -eq 35 ] || fail "the origin under a name its certificate lacks, after resumed flows: curl exit $rc, expected 35: $(cat "$WORK/wrongname.err")"
for i in 1 2; do
    pcurl --http1.1 -o "$WORK/byname.out" \
        --connect-to "localhost:$ORIGIN_TLSPORT:127.0.0.1:$ORIGIN_TLSPORT" \
        "https://localhost:$ORIGIN_TLSPORT/small.txt" 2>"$WORK/byname.err" ||
        fail "the origin as localhost (try $i): $(cat "$WORK/byname.err")"
    same_file "$WORK/byname.out" "$WWW/small.txt" "the origin as localhost (try $i)"
done

# 2. An origin that does not resume.
for i in 1 2 3 4 5 6; do
    pcurl --http1.1 -o "$WORK/n$i.out" "https://127.0.0.1:$ORIGIN_H2PORT/small.txt" \
        2>"$WORK/n$i.err" || fail "download $i from the origin without resumption: $(cat "$WORK/n$i.err")"
    same_file "$WORK/n$i.out" "$WWW/small.txt" "download $i from the origin without resumption"
done
stop_mitmrec
tshark_ok "$MITM_PCAP"

up="frame.interface_id == 1 && tcp.port == $ORIGIN_TLSPORT"
n=$(hello_count "$up && tls.handshake.type == 2")
r=$(psk_count "$up && tls.handshake.type == 2")
# 6 downloads + the refused name (its handshake reaches the ServerHello) + 2 as localhost.
[ "$n" = 9 ] || fail "upstream ServerHellos from the resuming origin: $n, expected 9"
# Full: the first download, the wrong name's and the first localhost's; resumed: the rest.
[ "$r" = 6 ] || fail "resumed upstream handshakes (ServerHello with pre_shared_key): $r of 9, expected 6 (all but the first under each name)"
log "resuming origin: 9 upstream handshakes, 6 resumed"
got=$(tshark_fields "$MITM_PCAP" "$up && http.request" http.request.uri | grep -c '/small.txt')
[ "$got" = 8 ] || fail "decrypted upstream requests to the resuming origin: $got, expected 8"
got=$(tshark_fields "$MITM_PCAP" "frame.interface_id == 0 && http.request" \
    http.request.uri | grep -c '/small.txt')
[ "$got" = 14 ] || fail "decrypted client-side requests: $got, expected 14"
tshark_export "$MITM_PCAP" "$WORK/objects"
for f in "$WORK"/objects/small*; do
    same_file "$f" "$WWW/small.txt" "exported body $(basename "$f")"
done
[ "$(find "$WORK/objects" -name 'small*' | wc -l)" -ge 1 ] || fail "tshark exported no body"

nr="frame.interface_id == 1 && tcp.port == $ORIGIN_H2PORT"
n=$(hello_count "$nr && tls.handshake.type == 1")
o=$(psk_count "$nr && tls.handshake.type == 1")
r=$(psk_count "$nr && tls.handshake.type == 2")
[ "$n" = 6 ] || fail "upstream ClientHellos to the origin without resumption: $n, expected 6"
[ "$r" = 0 ] || fail "the origin without resumption resumed $r handshakes"
[ "$o" = 1 ] || fail "sessions offered to the origin without resumption: $o over 6 flows, expected 1 (then none for a minute)"
log "origin without resumption: 1 offer refused, none after"
