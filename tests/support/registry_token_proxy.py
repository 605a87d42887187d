#!/usr/bin/python3
"""Test support only: an HTTP proxy in front of a plain-HTTP docker-registry.

Started by tests/support/test_registry.cpp (TestRegistry) to give the registry
client what Debian's distribution 2.8 lacks:

  --token-auth   the Bearer dance: every /v2/ request without a valid
                 "Authorization: Bearer <token>" gets 401 with
                 WWW-Authenticate: Bearer realm="http://HOST/token",
                 service="test-registry",scope="repository:<repo>:pull,push";
                 GET /token checks Basic credentials (--user/--password) and
                 returns {"token": ..., "expires_in": 300}.
  --token-ttl S  tokens stop working S seconds after they were issued (the
                 answer still says 300): a token that dies during an upload.
  --referrers    remembers every manifest PUT with a "subject" and answers
                 GET /v2/<repo>/referrers/<digest>[?artifactType=X] with an OCI
                 index (and sets OCI-Subject on such PUT answers). Without it
                 the route goes to the registry, which answers 404.
  always         forwards everything else, streaming bodies both ways, and
                 counts the body bytes of blob GETs per digest; GET /_stats
                 returns {"requests": N, "blob_egress": {digest: bytes}}.

--tls-cert/--tls-key: HTTPS towards the clients (the registry stays plain).
Prints "listening on PORT" once it accepts connections (it binds port 0).
Request bodies must have a Content-Length (the registry client always sends
one). Standard library only; not for production use.
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import re
import secrets
import ssl
import sys
import threading
import time
import urllib.parse

CHUNK = 1 << 16
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}
REPO_RE = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags|referrers)(/|$)")

args = None
lock = threading.Lock()
tokens = {}  # token -> time issued
stats = {"requests": 0, "blob_egress": {}}
referrers = {}  # (repo, subject digest) -> [descriptor]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):  # one line per request in the fixture's log
        sys.stderr.write("proxy: " + (fmt % a) + "\n")

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authorized(self, path):
        if not args.token_auth:
            return True
        auth = self.headers.get("Authorization", "")
        issued = tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if issued is not None and (not args.token_ttl or time.time() - issued < args.token_ttl):
            return True
        self.read_body()  # keep the connection usable
        m = REPO_RE.match(path)
        scheme = "https" if args.tls_cert else "http"
        challenge = 'Bearer realm="%s://%s/token",service="test-registry"' % (scheme,
                                                                             self.headers["Host"])
        if m:
            challenge += ',scope="repository:%s:pull,push"' % m.group(1)
        if issued is not None:
            challenge += ',error="invalid_token"'
        err = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        self.reply(401, json.dumps(err).encode(), [("WWW-Authenticate", challenge),
                                                    ("Content-Type", "application/json")])
        return False

    def token(self):
        want = base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
        if self.headers.get("Authorization", "") != "Basic " + want:
            err = {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
            return self.reply(401, json.dumps(err).encode(), [("Content-Type", "application/json")])
        t = secrets.token_hex(16)
        with lock:
            tokens[t] = time.time()
        self.reply(200, json.dumps({"token": t, "expires_in": 300}).encode(),
                   [("Content-Type", "application/json")])

    def list_referrers(self, repo, subject, query):
        wanted = urllib.parse.parse_qs(query).get("artifactType", [None])[0]
        with lock:
            found = [d for d in referrers.get((repo, subject), [])
                     if wanted is None or d.get("artifactType") == wanted]
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": found}
        headers = [("Content-Type", "application/vnd.oci.image.index.v1+json")]
        if wanted is not None:
            headers.append(("OCI-Filters-Applied", "artifactType"))
        self.reply(200, json.dumps(index).encode(), headers)

    def handle_any(self):
        with lock:
            stats["requests"] += 1
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_stats":
            with lock:
                return self.reply(200, json.dumps(stats).encode())
        if url.path == "/token":
            return self.token()
        if not self.authorized(url.path):
            return
        m = re.match(r"^/v2/(.+)/referrers/(sha256:[0-9a-f]{64})$", url.path)
        if m and args.referrers and self.command == "GET":
            return self.list_referrers(m.group(1), m.group(2), url.query)
        self.forward(url)

    def forward(self, url):
        upstream = http.client.HTTPConnection("127.0.0.1", args.upstream_port, timeout=60)
        length = int(self.headers.get("Content-Length") or 0)
        m = re.match(r"^/v2/(.+)/manifests/[^/]+$", url.path)
        keep = m is not None and self.command == "PUT" and args.referrers
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP_BY_HOP and not (args.token_auth and k.lower() == "authorization"):
                upstream.putheader(k, v)
        upstream.endheaders()
        body = b""
        left = length
        while left > 0:
            data = self.rfile.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            upstream.send(data)
            if keep:
                body += data
        resp = upstream.getresponse()
        self.send_response(resp.status)
        rlength = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP:
                continue
            if k.lower() == "location":
                v = v.replace("127.0.0.1:%d" % args.upstream_port, self.headers["Host"])
            self.send_header(k, v)
        if keep and resp.status == 201:
            self.remember(m.group(1), body, self.headers.get("Content-Type", ""))
        whole = None
        if rlength is None and self.command != "HEAD":
            whole = resp.read()
            self.send_header("Content-Length", str(len(whole)))
        self.end_headers()
        blob = re.match(r"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$", url.path)
        # Counted before each write, so a client that got the bytes sees them in /_stats.
        count = blob.group(1) if blob and self.command == "GET" else None
        while self.command != "HEAD":
            data = whole if whole is not None else resp.read(CHUNK)
            if not data:
                break
            if count:
                with lock:
                    stats["blob_egress"][count] = stats["blob_egress"].get(count, 0) + len(data)
            self.wfile.write(data)
            if whole is not None:
                break
        upstream.close()

    def remember(self, repo, body, content_type):
        try:
            doc = json.loads(body)
        except ValueError:
            return
        subject = doc.get("subject") if isinstance(doc, dict) else None
        if not isinstance(subject, dict) or "digest" not in subject:
            return
        desc = {"mediaType": doc.get("mediaType") or content_type,
                "digest": "sha256:" + hashlib.sha256(body).hexdigest(), "size": len(body),
                "artifactType": doc.get("artifactType") or doc.get("config", {}).get("mediaType")}
        if doc.get("annotations"):
            desc["annotations"] = doc["annotations"]
        with lock:
            known = referrers.setdefault((repo, subject["digest"]), [])
            if desc["digest"] not in [d["digest"] for d in known]:
                known.append(desc)
        self.send_header("OCI-Subject", subject["digest"])

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--upstream-port", type=int, required=True)
    p.add_argument("--token-auth", action="store_true")
    p.add_argument("--referrers", action="store_true")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--token-ttl", type=float, default=0)
    p.add_argument("--tls-cert", default="")
    p.add_argument("--tls-key", default="")
    args = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    print("listening on %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
