#!/bin/bash
# SPDX-License-Identifier: MIT
# A protocol where the server speaks first: curl sends a mail over SMTP to Python's smtpd (the
# standard library's SMTP server, in Debian's python3.11), recorded in spawn mode. mitmrec must
# connect upstream before the client says anything and relay the server's 220 greeting, or
# curl waits for it forever. The server gets the message byte for byte; tshark's SMTP
# dissector finds the greeting as the conversation's first payload, from the server, then
# curl's commands in order. Then the server is stopped, and mitmreplay gives the same curl
# command the recorded answers, greeting first.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh" || exit 99
. "$top_srcdir/tests/integration/replay_lib.sh" || exit 99

need curl tshark "$PY"
need_replay
"$PY" -W ignore -c 'import smtpd' 2>/dev/null || skip "$PY has no smtpd module"
curl --version | grep -qw smtp || skip "curl without SMTP"
SPORT=$(free_port)
cat >"$WORK/mailsink.py" <<'EOF'
# mailsink.py PORT OUTFILE: an SMTP server that writes each message it receives to OUTFILE.
import asyncore, sys, warnings
warnings.simplefilter("ignore")
import smtpd

class Keep(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kw):
        with open(sys.argv[2], "ab") as f:
            f.write(data)
        return None

Keep(("127.0.0.1", int(sys.argv[1])), None, decode_data=False)
asyncore.loop()
EOF
start_server smtpd "$SPORT" 10 "$WORK/smtpd.log" "$PY" "$WORK/mailsink.py" "$SPORT" "$WORK/received.eml"

printf 'From: a@example.test\r\nTo: b@example.test\r\nSubject: recorded\r\n\r\nhello over SMTP,\r\nsecond line\r\n' \
    >"$WORK/mail.eml"
send() {
    timeout 20 curl -sS "smtp://127.0.0.1:$SPORT/client.example.test" \
        --mail-from a@example.test --mail-rcpt b@example.test -T "$WORK/mail.eml"
}
"$MITMREC" -o "$WORK/smtp.pcapng" -- bash -c "$(declare -f send); SPORT=$SPORT WORK=$WORK; send" \
    >"$WORK/rec.out" 2>"$WORK/rec.log" ||
    { cat "$WORK/rec.log" >&2; fail "recording: curl or mitmrec failed"; }
# smtpd hands over the lines joined with LF, without the last line end.
"$PY" -c 'import sys; a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read(); sys.exit(a[:-2].replace(b"\r\n", b"\n") != b)' \
    "$WORK/mail.eml" "$WORK/received.eml" ||
    fail "the server received other bytes: $(od -c "$WORK/received.eml" | head -5)"

# The pcapng: one conversation, the server's 220 first, then curl's commands.
TSHARK_DECODE_AS=(-d "tcp.port==$SPORT,smtp")
tshark_fields "$WORK/smtp.pcapng" 'smtp.response or smtp.req' tcp.srcport smtp.response.code \
    smtp.req.command >"$WORK/smtp.txt" || fail "tshark could not read the pcapng"
first=$(head -n 1 "$WORK/smtp.txt")
[ "$(printf '%s' "$first" | cut -f1,2)" = "$(printf '%s\t220' "$SPORT")" ] ||
    fail "the first SMTP payload is not the server's 220: $(cat "$WORK/smtp.txt")"
cmds=$(awk -F'\t' '$3 != "" {print $3}' "$WORK/smtp.txt" | tr '\n' ' ')
[ "$cmds" = "EHLO MAIL RCPT DATA QUIT " ] || fail "curl's commands in the pcapng: $cmds"
[ "$(tshark_fields "$WORK/smtp.pcapng" 'tcp.flags.syn == 1 && tcp.flags.ack == 0' tcp.stream | wc -l)" = 1 ] ||
    fail "expected one TCP conversation"
grep -Eq '^mitmrec: +curl +[0-9]+ +1 flow ' "$WORK/rec.log" || fail "curl not named: $(cat "$WORK/rec.log")"
body=$(tshark_fields "$WORK/smtp.pcapng" imf imf.subject)
[ "$body" = recorded ] || fail "tshark's IMF dissector: subject '$body'"
log "recorded: the server's 220 relayed before curl spoke; commands $cmds; the mail byte for byte"

# Replay with the server gone: curl gets the recorded answers, greeting first.
stop_server smtpd "$SPORT"
rm -f "$WORK/received.eml"
run_replay "$WORK/replay.log" "$WORK/smtp.pcapng" --report "$WORK/r.json" -- \
    bash -c "$(declare -f send); SPORT=$SPORT WORK=$WORK; send"
[ "$REPLAY_RC" = 0 ] || { cat "$WORK/replay.log" >&2; fail "replay: curl exited $REPLAY_RC"; }
grep -q '1 TCP conversation;' "$WORK/replay.log" || fail "summary: $(cat "$WORK/replay.log")"
"$PY" -c 'import json,sys; c=json.load(open(sys.argv[1]))["conversations"]; assert len(c)==1 and c[0]["matched"] and c[0]["chunks"]==c[0]["recorded_chunks"], c' "$WORK/r.json" ||
    fail "report: $(cat "$WORK/r.json")"
log "replayed with the server stopped: curl sent its mail to the recording"
exit 0
