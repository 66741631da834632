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
  - --no-comments: the pcapng is not one mitmrec wrote (a capture read with -r): its frames
    carry no "har entry N" comments, so those are not looked for;
  - --strict: no entry has "_error", and tshark's request count equals the HAR's entry count;
    without it, every entry without "_error" must still have its tshark request;
  - PATH=FILE: every 200 response to a GET of PATH has FILE's bytes as its body, in the HAR
    (content.text, base64-decoded when content.encoding is "base64") and among tshark's
    --export-objects http files (tshark exports bodies after undoing Content-Encoding);
  - every entry's startedDateTime lies within the pcapng's first and last packet times (1 s slack);
  - --tls-versions: each listed version was negotiated by some ServerHello (TLS 1.3 read from
    the supported_versions extension, TLS 1.2 from the ServerHello version).
  - --process NAME=PID (local redirect mode, repeatable): some frames carry the comment
    "process: NAME, pid PID"; they are exactly the frames of their TCP and UDP streams; tshark's
    filter 'frame.comment contains "process: NAME, pid PID"' selects that many frames, and
    'frame.comment contains "process: NAME, pid "' and 'frame.comment contains "NAME"' as many
    as all streams of processes so named have;
    the HAR has entries in those TCP streams and each has "_process" NAME, "_pid" PID and
    non-empty "_exe" and "_cmdline".
  - --only-processes: every frame names exactly one process, one of the --process ones, and every
    HAR entry's _process/_pid is one of them.
  - HTTP/2 (tshark's http2 dissector, not http) counts too: its requests (HEADERS with :method)
    join tshark's HTTP requests above, with the :status of their stream, and its reassembled
    response bodies stand in for --export-objects (tshark 4.0 exports no HTTP/2 objects).
Prints one line per problem and exits 1 if there was any.

Other uses:
  recording.py same-entries A.har B.har [--any-order] [--ignore KEY]... [--skip PYEXPR]...
      exit 0 when the two HARs hold the same entries (count; pairwise in _index order: method,
      URL, versions, status, request and response headers, bodies, postData, _pcapng, ...; see
      same_entries). Every test that records should check that "mitmrec -r REC.pcapng --har
      AGAIN.har" gives the live HAR's entries: check_same_entries in tests/lib.sh.
  recording.py http2 --pcap F [-d DECODE_AS]...
      tshark's HTTP/2 requests in F, one JSON object a line (see http2_view).
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
    "udp.stream", "dns.id", "http2.type",
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


def _one(v, default=None):
    """A tshark JSON value that --no-duplicate-keys may have made a list: its first element."""
    if isinstance(v, list):
        return v[0] if v else default
    return default if v is None else v


def _many(v):
    """A tshark JSON value that is one item or a list of them: the list."""
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _hexbytes(v):
    v = _one(v, "")
    return bytes.fromhex(v.replace(":", "")) if isinstance(v, str) else b""


def http2_view(pcap, decode_as):
    """HTTP/2 as tshark 4.0 decodes it from PCAP (with the Decryption Secrets Blocks): a dict
    with "requests", a list in frame order of dicts {frame, tcp, sid, method, path, authority,
    scheme, status (the final one, or None), request_headers, response_headers ([name, value]
    lists), request_body, response_body (bytes, Content-Encoding undone by tshark, or None when
    no DATA was seen)}, and "errors" (strings). One tshark pass with -T json --no-duplicate-keys
    (plain -T json repeats keys such as "http2.stream" in one object, which json.loads would
    drop). A body is what tshark decoded under "Content-encoded entity body" when there is a
    Content-Encoding, else the "http2.body.reassembled.data" of its END_STREAM frame when tshark
    reassembled several DATA frames, else the concatenated "http2.data.data"."""
    cmd = (["tshark", "-n", "-r", pcap] + list(decode_as)
           + ["-Y", "http2", "-T", "json", "--no-duplicate-keys", "-J", "frame tcp http2"])
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors = []
    if r.returncode != 0:
        errors.append("tshark (HTTP/2 pass) failed (%d): %s" % (
            r.returncode, " ".join(l for l in r.stderr.decode(errors="replace").splitlines()
                                   if "Running as user" not in l)))
    try:
        pkts = json.loads(r.stdout or b"[]")
    except ValueError as e:
        errors.append("tshark -T json (HTTP/2 pass) does not parse: %s" % e)
        pkts = []
    reqs = {}                      # (tcp stream, stream id) -> request dict
    order = []
    for p in pkts:
        L = p.get("_source", {}).get("layers", {})
        fr = _one(L.get("frame"), {})
        tcp = _one(L.get("tcp"), {})
        try:
            no = int(_one(fr.get("frame.number")))
            ts = int(_one(tcp.get("tcp.stream")))
        except (TypeError, ValueError):
            continue
        sport = _one(tcp.get("tcp.srcport"))
        for layer in _many(L.get("http2")):
            if not isinstance(layer, dict):
                continue
            for s in _many(layer.get("http2.stream")):
                if not isinstance(s, dict):
                    continue
                try:
                    typ = int(_one(s.get("http2.type"), -1))
                    sid = int(_one(s.get("http2.streamid"), -1))
                except (TypeError, ValueError):
                    continue
                key = (ts, sid)
                if typ == 1:
                    hdrs = [[_one(h.get("http2.header.name"), ""), _one(h.get("http2.header.value"), "")]
                            for h in _many(s.get("http2.header")) if isinstance(h, dict)]
                    pseudo = {n: v for n, v in hdrs if n.startswith(":")}
                    if ":method" in pseudo:
                        if key not in reqs:
                            reqs[key] = {"frame": no, "tcp": ts, "sid": sid, "client_port": sport,
                                         "method": pseudo[":method"], "path": pseudo.get(":path", ""),
                                         "authority": pseudo.get(":authority", ""),
                                         "scheme": pseudo.get(":scheme", ""), "status": None,
                                         "request_headers": hdrs, "response_headers": [],
                                         "request_body": None, "response_body": None}
                            order.append(key)
                    elif ":status" in pseudo and key in reqs:
                        try:
                            st = int(pseudo[":status"])
                        except ValueError:
                            continue
                        q = reqs[key]
                        if q["status"] is None or q["status"] < 200:
                            q["status"] = st
                            q["response_headers"] = hdrs
                elif typ == 0 and key in reqs:
                    q = reqs[key]
                    which = "request_body" if sport == q["client_port"] else "response_body"
                    frags = _one(s.get("http2.body.fragments"), {})
                    # tshark undoes a Content-Encoding at the body's last DATA frame, under
                    # "Content-encoded entity body (gzip): N bytes -> M bytes".
                    decoded = [v for k, v in s.items()
                               if k.startswith("Content-encoded entity body") and isinstance(v, dict)]
                    if decoded and decoded[0].get("http2.data.data") is not None:
                        q[which] = _hexbytes(decoded[0]["http2.data.data"])
                    elif isinstance(frags, dict) and frags.get("http2.body.reassembled.data") is not None:
                        q[which] = _hexbytes(frags["http2.body.reassembled.data"])
                    else:
                        q[which] = (q[which] or b"") + _hexbytes(s.get("http2.data.data"))
    out = [reqs[k] for k in order]
    out.sort(key=lambda q: q["frame"])
    return {"requests": out, "errors": errors}


def har_body(content):
    """The bytes of a HAR content or postData object's text (base64 undone), or None."""
    if not isinstance(content, dict) or content.get("text") is None:
        return None
    t = content["text"]
    # HAR 1.2 has content.encoding; mitmrec marks a base64 postData.text with "_encoding".
    if content.get("encoding") == "base64" or content.get("_encoding") == "base64":
        try:
            return base64.b64decode(t)
        except ValueError:
            return b"<bad base64>"
    return t.encode("utf-8", "surrogatepass")


def entry_digest(e, ignore=()):
    """What must be equal in two HARs made from the same traffic (see same_entries)."""
    req, resp = e.get("request", {}), e.get("response", {})
    content = resp.get("content", {})
    post = req.get("postData")
    body = har_body(content)
    d = {
        "method": req.get("method"),
        "url": req.get("url"),
        "request.httpVersion": req.get("httpVersion"),
        "request.headers": [(h.get("name"), h.get("value")) for h in req.get("headers", [])],
        "request.bodySize": req.get("bodySize"),
        "request.postData": None if post is None else {
            "mimeType": post.get("mimeType"), "body": har_body(post),
            "params": [(p.get("name"), p.get("value")) for p in post.get("params") or []]},
        "status": resp.get("status"),
        "statusText": resp.get("statusText"),
        "response.httpVersion": resp.get("httpVersion"),
        "response.headers": [(h.get("name"), h.get("value")) for h in resp.get("headers", [])],
        "response.redirectURL": resp.get("redirectURL"),
        "response.bodySize": resp.get("bodySize"),
        "response.body": None if body is None else "%d bytes sha256 %s" % (len(body), sha(body)),
        "response.content.size": content.get("size"),
        "response.content.mimeType": content.get("mimeType"),
        "response.content.compression": content.get("compression"),
        "serverIPAddress": e.get("serverIPAddress"),
        "_error": e.get("_error", resp.get("_error")),
        "_pcapng": e.get("_pcapng"),
        "_webSocketMessages": [(m.get("type"), m.get("opcode"), m.get("data"))
                               for m in e.get("_webSocketMessages") or []],
    }
    for k in ignore:
        d.pop(k, None)
    return d


def same_entries(a_path, b_path, any_order=False, ignore=(), skip=()):
    """Problems (strings) found comparing the entries of the HARs A and B, which must describe
    the same exchanges: same count; pairwise (in _index order, or matched by method, URL and
    status with any_order) the same method, URL, HTTP versions, status, request and response
    headers (names, values, order), bodies (bytes, after base64), sizes, postData, redirectURL,
    _error, _pcapng and _webSocketMessages. Timings, startedDateTime, cookies parsed from the
    headers and the log's creator are not compared. IGNORE names digest keys to leave out; SKIP
    holds Python expressions (e: an entry): entries of either HAR for which one is true are
    left out (say, live-only entries for failures that put no request on the wire)."""
    out = []
    hars = []
    for p in (a_path, b_path):
        try:
            with open(p, "rb") as f:
                hars.append(json.load(f)["log"]["entries"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            return ["HAR %s unreadable: %s" % (p, e)]
    def skipped(e):
        return any(eval(x, {"json": json}, {"e": e}) for x in skip)
    A, B = [sorted((e for e in x if not skipped(e)),
                   key=lambda e: (e.get("_index") if isinstance(e.get("_index"), int) else 1 << 60))
            for x in hars]
    if len(A) != len(B):
        out.append("%s has %d entries, %s has %d" % (a_path, len(A), b_path, len(B)))

    def label(e):
        return "%s %s %s" % (e.get("request", {}).get("method"), e.get("request", {}).get("url"),
                             e.get("response", {}).get("status"))
    if any_order:
        rest = list(B)
        pairs = []
        for e in A:
            m = next((x for x in rest if label(x) == label(e)
                      and entry_digest(x, ignore) == entry_digest(e, ignore)), None)
            if m is None:
                m = next((x for x in rest if label(x) == label(e)), None)
            if m is None:
                out.append("%s: entry %s (%s) has no counterpart in %s"
                           % (a_path, e.get("_index"), label(e), b_path))
                continue
            rest.remove(m)
            pairs.append((e, m))
        for x in rest:
            out.append("%s: entry %s (%s) has no counterpart in %s"
                       % (b_path, x.get("_index"), label(x), a_path))
    else:
        pairs = list(zip(A, B))
        for e in A[len(B):]:
            out.append("only in %s: entry %s (%s)" % (a_path, e.get("_index"), label(e)))
        for e in B[len(A):]:
            out.append("only in %s: entry %s (%s)" % (b_path, e.get("_index"), label(e)))
    for e, x in pairs:
        da, db = entry_digest(e, ignore), entry_digest(x, ignore)
        for k in da:
            if da[k] != db[k]:
                va, vb = da[k], db[k]
                if isinstance(va, list) and isinstance(vb, list):
                    sa, sb = set(map(repr, va)), set(map(repr, vb))
                    va = "... %s ..." % sorted(sa - sb) if sa != sb else va
                    vb = "... %s ..." % sorted(sb - sa) if sa != sb else vb
                out.append("entry %s (%s) vs entry %s: %s differs: %.300s  vs  %.300s"
                           % (e.get("_index"), label(e), x.get("_index"), k, va, vb))
    return out


def _cmd_same_entries(argv):
    p = argparse.ArgumentParser(prog="recording.py same-entries",
                                description="Do two HARs hold the same entries? (see same_entries)")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--any-order", action="store_true")
    p.add_argument("--ignore", action="append", default=[],
                   help="a compared key to leave out (e.g. _pcapng); repeatable")
    p.add_argument("--skip", action="append", default=[],
                   help="a Python expression on e, the entry: such entries are left out of both")
    o = p.parse_args(argv)
    errs = same_entries(o.a, o.b, o.any_order, o.ignore, o.skip)
    for e in errs:
        print("same-entries: " + e, file=sys.stderr)
    return 1 if errs else 0


def _cmd_http2(argv):
    p = argparse.ArgumentParser(prog="recording.py http2",
                                description="tshark's HTTP/2 requests in a pcapng, as JSON lines")
    p.add_argument("--pcap", required=True)
    p.add_argument("-d", action="append", default=[], dest="decode")
    o = p.parse_args(argv)
    v = http2_view(o.pcap, [a for d in o.decode for a in ("-d", d)])
    for e in v["errors"]:
        print("http2: " + e, file=sys.stderr)
    for q in v["requests"]:
        q = dict(q)
        for k in ("request_body", "response_body"):
            b = q.pop(k)
            q[k + "_sha256"] = None if b is None else sha(b)
            q[k + "_len"] = None if b is None else len(b)
        print(json.dumps(q))
    return 1 if v["errors"] else 0


if len(sys.argv) > 1 and sys.argv[1] in ("same-entries", "http2"):
    sys.exit({"same-entries": _cmd_same_entries, "http2": _cmd_http2}[sys.argv[1]](sys.argv[2:]))


ap = argparse.ArgumentParser()
ap.add_argument("--pcap", required=True)
ap.add_argument("--har", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("-d", action="append", default=[], dest="decode")
ap.add_argument("--expect", action="append", default=[])
ap.add_argument("--contains", action="append", default=[])
ap.add_argument("--tls-versions", default="")
ap.add_argument("--strict", action="store_true")
ap.add_argument("--no-comments", action="store_true")
ap.add_argument("--process", action="append", default=[])
ap.add_argument("--only-processes", action="store_true")
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
requests = []          # (frame, stream, method, uri, key)
response_code = {}     # key (HTTP/1: the request frame) -> status
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
        requests.append((no, stream, m, u, no))
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

# HTTP/2: requests, statuses and bodies from a second tshark pass (see http2_view).
h2 = None
if any(L.get("http2.type") for L in frames):
    h2 = http2_view(opts.pcap, decode_as)
    for e in h2["errors"]:
        problem(e)
    for r in h2["requests"]:
        key = ("h2", r["tcp"], r["sid"])
        requests.append((r["frame"], r["tcp"], r["method"], r["path"], key))
        if r["status"] is not None:
            response_code[key] = r["status"]
    requests.sort(key=lambda r: r[0])

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
    if want not in parts and not opts.no_comments:
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
        cand = [r for r in http_requests if r[1] == S and r[0] >= F and r[4] not in used]
        if not cand:
            problem("entry %d (%s %s): no tshark HTTP request in stream %d at or after frame %d"
                    % (pos, method, url, S, F))
            continue
        # The first request at or after F; of several in that frame (HTTP/2 streams), the one
        # with this method and path if there is one.
        f0 = min(r[0] for r in cand)
        cand = [r for r in cand if r[0] == f0]
        r = next((r for r in cand if r[2] == method and path_of(r[3]) == path_of(url or "")),
                 cand[0])
        used.add(r[4])
        if r[2] != method or path_of(r[3]) != path_of(url or ""):
            problem("entry %d (%s %s): tshark's request at frame %d in stream %d is %s %s"
                    % (pos, method, url, r[0], S, r[2], r[3]))
        st = e.get("response", {}).get("status")
        if r[4] in response_code and response_code[r[4]] != st:
            problem("entry %d: HAR status %r, tshark status %d" % (pos, st, response_code[r[4]]))

# Expected requests, both sides.
if opts.expect or opts.contains:
    got_t = collections.Counter("%s %s %s" % (m, path_of(u), response_code.get(k, "-"))
                                for no, _, m, u, k in http_requests)
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
    # tshark 4.0 exports no HTTP/2 objects: its reassembled HTTP/2 response bodies count instead.
    for r in (h2["requests"] if h2 else []):
        if r["response_body"] is not None:
            have[sha(r["response_body"])] += 1
    for h, k in need.items():
        if have[h] < k:
            names = [p for p, f in bodies.items() if sha(open(f, "rb").read()) == h]
            problem("tshark --export-objects http (and HTTP/2 bodies): %d object(s) equal to %s, "
                    "want %d (exported: %s)"
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



def process_parts(L):
    """The "process: NAME, pid N" comments of a frame."""
    return [p for c in L.get("frame.comment", []) for p in c.split("; ")
            if p.startswith("process: ")]


def udp_key(L):
    """A UDP frame's exchange: its udp.stream, and for DNS its query id. tshark makes one
    udp.stream of every datagram with the same addresses and ports, so two processes whose
    DNS queries leave from the same port at different times share a stream; a query and its
    answer share the id as well."""
    return (int(first(L, "udp.stream")), first(L, "dns.id", ""))


def streams_of(nos):
    """The TCP streams and UDP exchanges the frames NOS are in."""
    tcp, udp = set(), set()
    for no in nos:
        L = byno[no]
        if L.get("tcp.stream"):
            tcp.add(int(first(L, "tcp.stream")))
        if L.get("udp.stream"):
            udp.add(udp_key(L))
    return tcp, udp


def frames_in(tcp, udp):
    return {no for no, L in byno.items()
            if (L.get("tcp.stream") and int(first(L, "tcp.stream")) in tcp)
            or (L.get("udp.stream") and udp_key(L) in udp)}


def count_filter(filt):
    out = tshark(["-Y", filt, "-T", "fields", "-e", "frame.number"])
    return len([l for l in out.decode(errors="replace").splitlines() if l.strip()])


wanted = {}
for spec in opts.process:
    name, _, pid = spec.rpartition("=")
    if not name or not pid.isdigit():
        problem("--process %r: want NAME=PID" % spec)
        continue
    wanted[(name, int(pid))] = "process: %s, pid %s" % (name, pid)
all_named = collections.defaultdict(set)     # NAME -> frames naming a process called NAME
for no, L in byno.items():
    for p in process_parts(L):
        all_named[p[len("process: "):].rsplit(", pid ", 1)[0]].add(no)
for (name, pid), comment in sorted(wanted.items()):
    mine = {no for no, L in byno.items() if comment in process_parts(L)}
    if not mine:
        problem("no frame has the comment %r (processes named: %s)"
                % (comment, sorted({p for L in byno.values() for p in process_parts(L)})))
        continue
    tcp, udp = streams_of(mine)
    members = frames_in(tcp, udp)
    if members != mine:
        problem("%r: %d frames carry it, but its streams (tcp %s, udp %s) have %d frames; "
                "without it: %s; outside them: %s"
                % (comment, len(mine), sorted(tcp), sorted(udp), len(members),
                   sorted(members - mine)[:10], sorted(mine - members)[:10]))
    n = count_filter('frame.comment contains "%s"' % comment)
    if n != len(members):
        problem("tshark -Y 'frame.comment contains \"%s\"' selects %d frames, its streams have %d"
                % (comment, n, len(members)))
    byname = all_named[name]
    t2, u2 = streams_of(byname)
    for filt in ('frame.comment contains "process: %s, pid "' % name,
                 'frame.comment contains "%s"' % name):
        n = count_filter(filt)
        if n != len(frames_in(t2, u2)):
            problem("tshark -Y '%s' selects %d frames, the streams of processes named %s have %d"
                    % (filt, n, name, len(frames_in(t2, u2))))
    ents = [e for e in entries if isinstance(e.get("_pcapng"), dict)
            and e["_pcapng"].get("stream") in tcp and e["_pcapng"].get("interface") == 0]
    if not ents:
        problem("%r: no HAR entry in its TCP streams %s" % (comment, sorted(tcp)))
    for e in ents:
        what = "entry %s (%s %s)" % (e.get("_index"), e["request"].get("method"), e["request"].get("url"))
        if e.get("_process") != name or e.get("_pid") != pid:
            problem("%s in a stream of %r has _process %r, _pid %r"
                    % (what, comment, e.get("_process"), e.get("_pid")))
        for k in ("_exe", "_cmdline"):
            if not isinstance(e.get(k), str) or not e.get(k):
                problem("%s: %s is %r, want a non-empty string" % (what, k, e.get(k)))
if opts.only_processes:
    for no in sorted(byno):
        parts = process_parts(byno[no])
        if len(parts) != 1 or parts[0] not in wanted.values():
            problem("frame %d names processes %r, want one of %s" % (no, parts, sorted(wanted.values())))
            break
    for e in entries:
        if (e.get("_process"), e.get("_pid")) not in wanted:
            problem("entry %s (%s %s) is from %r pid %r, not one of %s"
                    % (e.get("_index"), e["request"].get("method"), e["request"].get("url"),
                       e.get("_process"), e.get("_pid"), sorted(wanted)))

sys.exit(1 if problems else 0)
