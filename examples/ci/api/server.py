#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The example's "remote" API: static JSON over HTTPS on 127.0.0.1 (default port 8443), with the
# test certificate from fixtures/tls (signed by fixtures/tls/test-ca.pem, names localhost).
import http.server, os, ssl, sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8443
here = os.path.dirname(os.path.abspath(__file__))
tls = os.path.join(here, "..", "..", "..", "fixtures", "tls")

class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=here, **kw)
    def guess_type(self, path):
        return "application/json"
    def translate_path(self, path):
        p = super().translate_path(path)
        return p + ".json" if os.path.exists(p + ".json") else p
    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(tls, "origin.pem"), os.path.join(tls, "origin-key.pem"))
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("api listening on https://localhost:%d/" % port, flush=True)
srv.serve_forever()
