# SPDX-License-Identifier: MIT
"""Checks a mitmrec recording (pcapng + HAR) against tshark's view of it.

Run by check_recording in tests/lib.sh with /usr/bin/python3:
  recording.py --pcap F --har F --work DIR [-d DECODE_AS]... [--expect "METHOD PATH STATUS"]...
               [--contains "METHOD PATH STATUS"]... [--tls-versions 0x0303,0x0304] [--strict]
               [PATH=FILE]...

What it checks:
  - tshark decrypts the HTTP requests with no key file (the pcapng's Decryption Secrets Blocks);
  - with --expect: the multiset of "METHOD PATH STATUS" is the same in tshark and in the HAR
    (CONNECT requests, if tshark shows any, are left out: they are not HTTP exchanges);
  - with --contains: that "METHOD PATH STATUS" is among them, in tshark and in the HAR;
  - the "_index" values are 0..N-1, each once (each entry's position, usually: a difference is
    only noted);
  - every entry's "_pcapng" {interface, frame, stream} names a frame on that interface and in
    that tcp.stream whose comment is (or has, among "; "-separated parts) "har entry N: METHOD
    URL" (for an entry with "_error", which may have no HTTP request on the wire, a missing
    comment is only noted); an entry without "_error" matches the first tshark HTTP request at
    or after that frame in that stream (same method, same path, same status);
  - --strict: no entry has "_error", and tshark's request count equals the HAR's entry count;
    without it, every entry without "_error" must still have its tshark request;
  - PATH=FILE: every 200 response to a GET of PATH has FILE's bytes as its body, in the HAR
    (content.text, base64-decoded when content.encoding is "base64") and among tshark's
    --export-objects http files (tshark exports bodies after undoing Content-Encoding);
  - every entry's startedDateTime lies within the pcapng's first and last packet times (1 s slack);
  - --tls-versions: each listed version was negotiated by some ServerHello (TLS 1.3 read from
    the supported_versions extension, TLS 1.2 from the ServerHello version).
Prints one line per problem and exits 1 if there was any.
"""
import argparse
import base64
import collections
import datetime
import hashlib
import json
import os
import subprocess
import sys
import urllib.parse

FIELDS = [
    "frame.number", "frame.time_epoch", "frame.interface_id", "frame.comment", "tcp.stream",
    "http.request.method", "http.request.uri", "http.response.code", "http.request_in",
    "tls.handshake.type", "tls.handshake.version", "tls.handshake.extensions.supported_version",
]

problems = []


def problem(msg):
    problems.append(msg)
    print("recording: " + msg, file=sys.stderr)


def tshark(args):
    cmd = ["tshark", "-n", "-r", opts.pcap] + decode_as + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = "\n".join(l for l in r.stderr.decode(errors="replace").splitlines()
                    if "Running as user" not in l)
    if r.returncode != 0:
        problem("tshark %s failed (%d): %s" % (" ".join(args), r.returncode, err.strip()))
    return r.stdout


def path_of(uri):
    """The path and query of an origin-form or absolute-form request target or a URL."""
    parts = urllib.parse.urlsplit(uri)
    p = parts.path or "/"
    return p + ("?" + parts.query if parts.query else "")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def first(layers, name, default=None):
    v = layers.get(name)
    return v[0] if v else default


ap = argparse.ArgumentParser()
ap.add_argument("--pcap", required=True)
ap.add_argument("--har", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("-d", action="append", default=[], dest="decode")
ap.add_argument("--expect", action="append", default=[])
ap.add_argument("--contains", action="append", default=[])
ap.add_argument("--tls-versions", default="")
ap.add_argument("--strict", action="store_true")
ap.add_argument("bodies", nargs="*")
opts = ap.parse_args()
decode_as = [a for d in opts.decode for a in ("-d", d)]
bodies = {}
for b in opts.bodies:
    p, _, f = b.partition("=")
    bodies[p] = f

# One pass over all frames.
raw = tshark(["-T", "json"] + [a for f in FIELDS for a in ("-e", f)])
try:
    frames = [f["_source"]["layers"] for f in json.loads(raw or b"[]")]
except ValueError as e:
    problem("tshark -T json output does not parse: %s" % e)
    frames = []
byno = {}
requests = []          # (frame, stream, method, uri)
response_code = {}     # request frame -> status
versions = set()
times = []
for L in frames:
    no = int(first(L, "frame.number"))
    byno[no] = L
    times.append(float(first(L, "frame.time_epoch")))
    methods = L.get("http.request.method", [])
    uris = L.get("http.request.uri", [])
    stream = int(first(L, "tcp.stream", -1))
    for m, u in zip(methods, uris):
        requests.append((no, stream, m, u))
    for code, req in zip(L.get("http.response.code", []), L.get("http.request_in", [])):
        response_code[int(req)] = int(code)
    types = L.get("tls.handshake.type", [])
    if "2" in types:
        sv = L.get("tls.handshake.extensions.supported_version", [])
        hv = L.get("tls.handshake.version", [])
        if sv:
            versions.add(int(sv[0], 16))
        elif hv:
            versions.add(int(hv[0], 16))

http_requests = [r for r in requests if r[2] != "CONNECT"]
if any(r[2] == "CONNECT" for r in requests):
    print("recording: note: tshark shows %d CONNECT request(s) in the pcapng"
          % sum(r[2] == "CONNECT" for r in requests), file=sys.stderr)

# The HAR.
try:
    with open(opts.har, "rb") as f:
        har = json.load(f)
    entries = har["log"]["entries"]
except (OSError, ValueError, KeyError, TypeError) as e:
    problem("HAR %s unreadable: %s" % (opts.har, e))
    entries = []

if not http_requests and entries:
    problem("tshark decrypted no HTTP request in %s (decode-as: %s)" % (opts.pcap, decode_as))

ok_entries = [e for e in entries if "_error" not in e and "_error" not in e.get("response", {})]
if opts.strict:
    for i, e in enumerate(entries):
        if e not in ok_entries:
            problem("entry %d has an error: %s" % (i, e.get("_error", e.get("response", {}).get("_error"))))
    if len(http_requests) != len(entries):
        problem("tshark shows %d HTTP requests, the HAR has %d entries"
                % (len(http_requests), len(entries)))

# Entries against frames.
indices = sorted(e.get("_index") for e in entries if isinstance(e.get("_index"), int))
if indices != list(range(len(indices))) or len(set(indices)) != len(indices):
    problem("the _index values are %s, want 0..%d each once" % (indices, len(entries) - 1))
used = set()
for pos, e in enumerate(entries):
    req = e.get("request", {})
    method, url = req.get("method"), req.get("url")
    idx = e.get("_index")
    if not isinstance(idx, int):
        problem("entry %d (%s %s): _index is %r, want an integer" % (pos, method, url, idx))
        idx = pos
    elif idx != pos:
        print("recording: note: entry %d has _index %d" % (pos, idx), file=sys.stderr)
    pc = e.get("_pcapng")
    if not isinstance(pc, dict) or not all(isinstance(pc.get(k), int) for k in ("interface", "frame", "stream")):
        problem("entry %d: _pcapng is %r, want {interface, frame, stream} integers" % (pos, pc))
        continue
    F, S, I = pc["frame"], pc["stream"], pc["interface"]
    L = byno.get(F)
    if L is None:
        problem("entry %d: _pcapng.frame %d is not in the pcapng (%d frames)" % (pos, F, len(byno)))
        continue
    want = "har entry %s: %s %s" % (idx, method, url)
    # A packet may carry other comments too (mitmrec joins them with "; " into one).
    comments = L.get("frame.comment", [])
    parts = [p for c in comments for p in c.split("; ")]
    if want not in parts:
        if e in ok_entries:
            problem("entry %d: frame %d comment is %r, want %r" % (pos, F, comments, want))
        else:
            print("recording: note: error entry %d: frame %d comment is %r" % (pos, F, comments),
                  file=sys.stderr)
    if int(first(L, "tcp.stream", -1)) != S:
        problem("entry %d: frame %d is in tcp.stream %s, _pcapng.stream is %d"
                % (pos, F, first(L, "tcp.stream"), S))
    if int(first(L, "frame.interface_id", 0)) != I:
        problem("entry %d: frame %d is on interface %s, _pcapng.interface is %d"
                % (pos, F, first(L, "frame.interface_id"), I))
    if e in ok_entries:
        cand = [r for r in http_requests if r[1] == S and r[0] >= F and r[0] not in used]
        if not cand:
            problem("entry %d (%s %s): no tshark HTTP request in stream %d at or after frame %d"
                    % (pos, method, url, S, F))
            continue
        r = min(cand)
        used.add(r[0])
        if r[2] != method or path_of(r[3]) != path_of(url or ""):
            problem("entry %d (%s %s): tshark's request at frame %d in stream %d is %s %s"
                    % (pos, method, url, r[0], S, r[2], r[3]))
        st = e.get("response", {}).get("status")
        if r[0] in response_code and response_code[r[0]] != st:
            problem("entry %d: HAR status %r, tshark status %d" % (pos, st, response_code[r[0]]))

# Expected requests, both sides.
if opts.expect or opts.contains:
    got_t = collections.Counter("%s %s %s" % (m, path_of(u), response_code.get(no, "-"))
                                for no, _, m, u in http_requests)
    got_h = collections.Counter("%s %s %s" % (e["request"]["method"], path_of(e["request"]["url"]),
                                              e["response"]["status"]) for e in ok_entries)
    for c in opts.contains:
        if c not in got_t:
            problem("tshark shows no request %r (has %s)" % (c, sorted(got_t.elements())))
        if c not in got_h:
            problem("the HAR has no entry %r (has %s)" % (c, sorted(got_h.elements())))
if opts.expect:
    want = collections.Counter(opts.expect)
    if got_t != want:
        problem("tshark requests %s, want %s" % (sorted(got_t.elements()), sorted(want.elements())))
    if got_h != want:
        problem("HAR requests %s, want %s" % (sorted(got_h.elements()), sorted(want.elements())))

# Bodies.
need = collections.Counter()
for pos, e in enumerate(ok_entries):
    path = path_of(e["request"]["url"])
    if e["request"]["method"] != "GET" or path not in bodies or e["response"]["status"] != 200:
        continue
    with open(bodies[path], "rb") as f:
        data = f.read()
    need[sha(data)] += 1
    c = e["response"].get("content", {})
    text = c.get("text")
    if text is None:
        problem("entry %s (%s): response content has no text" % (e.get("_index"), path))
        continue
    got = base64.b64decode(text) if c.get("encoding") == "base64" else text.encode("utf-8")
    if got != data:
        problem("entry %s (%s): HAR body %d bytes sha256 %s, want %d bytes %s"
                % (e.get("_index"), path, len(got), sha(got)[:16], len(data), sha(data)[:16]))
    if c.get("size") != len(data):
        problem("entry %s (%s): content.size %r, want %d" % (e.get("_index"), path, c.get("size"), len(data)))
if need:
    outdir = os.path.join(opts.work, "objects")
    os.makedirs(outdir, exist_ok=True)
    tshark(["-q", "--export-objects", "http," + outdir])
    have = collections.Counter()
    for name in os.listdir(outdir):
        with open(os.path.join(outdir, name), "rb") as f:
            have[sha(f.read())] += 1
    for h, k in need.items():
        if have[h] < k:
            names = [p for p, f in bodies.items() if sha(open(f, "rb").read()) == h]
            problem("tshark --export-objects http: %d object(s) equal to %s, want %d (exported: %s)"
                    % (have[h], names, k, sorted(os.listdir(outdir))))

# Times.
if times and entries:
    lo, hi = min(times), max(times)
    for pos, e in enumerate(entries):
        s = e.get("startedDateTime", "")
        try:
            t = datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
        except (ValueError, AttributeError):
            problem("entry %d: startedDateTime %r is not ISO 8601" % (pos, s))
            continue
        if not (lo - 1 <= t <= hi + 1):
            problem("entry %d: startedDateTime %s (%.3f) is outside the pcapng's %.3f .. %.3f"
                    % (pos, s, t, lo, hi))

if opts.tls_versions:
    for v in opts.tls_versions.split(","):
        if int(v, 16) not in versions:
            problem("no ServerHello negotiated TLS version %s (seen: %s)"
                    % (v, sorted("0x%04x" % x for x in versions)))

sys.exit(1 if problems else 0)
