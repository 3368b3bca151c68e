#!/usr/bin/python3
"""A signature-checking HTTP proxy in front of s3rver (tests/dr).

s3rver does not verify SigV4 signatures, so this proxy does, for every
request, before forwarding it:

  - the Authorization header is AWS4-HMAC-SHA256 for the expected access
    key, region and service s3, dated as x-amz-date (within 15 minutes);
  - x-amz-content-sha256 is present, signed, and equals the SHA-256 of the
    body actually received (so a client that hashes one body and sends
    another is caught);
  - the path and every query parameter are in SigV4's canonical encoding
    (what S3 would compute from them), and every x-amz-* header is signed;
  - the signature, recomputed by botocore's S3SigV4Auth with the secret key
    from the received method, path, query, signed headers and payload hash,
    equals the one sent.

A request that fails any check gets 403 with an S3-style XML error
(SignatureDoesNotMatch) and is counted; the others go to s3rver unchanged
and its answers come back unchanged. A body cut short (the client went away
mid-upload, as when the test kills a node) is neither: it is counted as
incomplete and the connection dropped, as S3 would.

Server-side encryption, as S3 treats its headers (x-amz-server-side-encryption
and its -aws-kms-key-id): they belong to requests that create an object
(PutObject, CreateMultipartUpload); any other request carrying them (an
UploadPart, a GET) gets 400 InvalidArgument. With --require-sse (and
--require-sse-kms-key-id) the proxy also acts as a bucket policy that denies
creating an object without that encryption: 403 AccessDenied. Refusals of
either kind are counted apart from bad signatures.

GET /__sigv4_proxy/stats (unsigned, not forwarded) answers
{"accepted": N, "rejected": M, "incomplete": K, "refused": R,
 "encrypted_creates": E, "problems": [...]}: rejected counts bad signatures,
refused the encryption refusals above, encrypted_creates the accepted
requests that created an object with encryption asked for.

Uses python3-botocore from Debian: run with /usr/bin/python3.

  sigv4_proxy.py --listen PORT --target PORT --access-key K --secret S
                 [--region us-east-1] [--session-token T]
                 [--require-sse AES256|aws:kms] [--require-sse-kms-key-id KEY]
"""

import argparse
import datetime
import hashlib
import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/,]+)/(?P<date>\d{8})/(?P<region>[^/,]+)/"
    r"(?P<service>[^/,]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailers", "transfer-encoding", "upgrade", "expect",
}
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = 0
        self.rejected = 0
        self.incomplete = 0
        self.refused = 0
        self.encrypted_creates = 0
        self.problems = []

    def count(self, problem):
        with self.lock:
            if problem is None:
                self.accepted += 1
            else:
                self.rejected += 1
                if len(self.problems) < 20:
                    self.problems.append(problem)

    def refuse(self, problem):
        with self.lock:
            self.refused += 1
            if len(self.problems) < 20:
                self.problems.append(problem)

    def encrypted_create(self):
        with self.lock:
            self.encrypted_creates += 1

    def cut_short(self):
        with self.lock:
            self.incomplete += 1

    def as_json(self):
        with self.lock:
            return json.dumps(
                {"accepted": self.accepted, "rejected": self.rejected,
                 "incomplete": self.incomplete, "refused": self.refused,
                 "encrypted_creates": self.encrypted_creates, "problems": self.problems}
            )


def canonical(s, safe):
    """True when s is percent-encoded exactly as SigV4 wants (once, upper-case hex)."""
    return urllib.parse.quote(urllib.parse.unquote(s), safe=safe) == s


def check(args, method, target, headers, body):
    """Returns None when the request is correctly signed, else why not."""
    auth = headers.get("Authorization")
    if auth is None:
        return "no Authorization header"
    m = AUTH_RE.match(auth)
    if m is None:
        return "Authorization is not AWS4-HMAC-SHA256: %r" % auth[:60]
    if m["key"] != args.access_key:
        return "unknown access key %r" % m["key"]
    amz_date = headers.get("x-amz-date")
    if amz_date is None:
        return "no x-amz-date"
    if m["date"] != amz_date[:8]:
        return "credential date %s but x-amz-date %s" % (m["date"], amz_date)
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return "bad x-amz-date %r" % amz_date
    if abs(datetime.datetime.utcnow() - when) > MAX_CLOCK_SKEW:
        return "x-amz-date %s is too far from now" % amz_date
    if m["region"] != args.region or m["service"] != "s3":
        return "scope %s/%s, want %s/s3" % (m["region"], m["service"], args.region)

    signed = m["signed"].split(";")
    if signed != sorted(set(signed)):
        return "SignedHeaders not sorted or repeated: %s" % m["signed"]
    for need in ("host", "x-amz-content-sha256", "x-amz-date"):
        if need not in signed:
            return "%s is not signed" % need
    for name in headers.keys():
        if name.lower().startswith("x-amz-") and name.lower() not in signed:
            return "%s is sent but not signed" % name.lower()
    for name in signed:
        if headers.get(name) is None:
            return "signed header %s was not sent" % name

    payload_hash = headers.get("x-amz-content-sha256")
    actual = hashlib.sha256(body).hexdigest()
    if payload_hash != actual:
        return "x-amz-content-sha256 %s but the body's SHA-256 is %s (%d bytes)" % (
            payload_hash, actual, len(body))
    if args.session_token is not None and headers.get("x-amz-security-token") != args.session_token:
        return "x-amz-security-token missing or wrong"

    path, _, query = target.partition("?")
    if not canonical(path, "/~"):
        return "path %r is not in canonical encoding" % path
    if query:
        for pair in query.split("&"):
            if "=" not in pair:
                return "query parameter %r has no '=' (canonical form is %s=)" % (pair, pair)
            k, _, v = pair.partition("=")
            if not canonical(k, "-_.~") or not canonical(v, "-_.~"):
                return "query parameter %r is not in canonical encoding" % pair

    # Recompute the signature from what was received, with exactly the
    # headers the client said it signed.
    to_sign = {}
    for name in signed:
        to_sign[name] = ",".join(headers.get_all(name))
    request = AWSRequest(method=method, url="http://%s%s" % (headers["host"], target),
                         headers=to_sign, data=body)
    request.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(args.access_key, args.secret), "s3", args.region)
    if signer.signed_headers(signer.headers_to_sign(request)) != m["signed"]:
        return "botocore would sign headers %s, the client signed %s" % (
            signer.signed_headers(signer.headers_to_sign(request)), m["signed"])
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    want = signer.signature(string_to_sign, request)
    if want != m["sig"]:
        token = headers.get("x-amz-security-token")
        if token:
            canonical_request = canonical_request.replace(token, "<session token>")
        return "signature mismatch (with the secret given to the proxy); the canonical " \
            "request, as botocore builds it from what was received:\n%s" % canonical_request
    return None


SSE = "x-amz-server-side-encryption"
SSE_KEY = "x-amz-server-side-encryption-aws-kms-key-id"


def encryption(args, method, target, headers):
    """(None, created) when the request's encryption headers are as S3 and the policy want,
    else ((status, code, why), created)."""
    _, _, query = target.partition("?")
    params = {p.partition("=")[0] for p in query.split("&") if p}
    creates = (method == "PUT" and "partNumber" not in params) or \
        (method == "POST" and "uploads" in params)
    sse, key = headers.get(SSE), headers.get(SSE_KEY)
    if not creates and (sse is not None or key is not None):
        return (400, "InvalidArgument", "%s %s: the encryption headers belong to PutObject and "
                "CreateMultipartUpload only" % (method, target)), False
    if creates and args.require_sse is not None and sse != args.require_sse:
        return (403, "AccessDenied", "%s %s: the bucket policy requires %s: %s, got %r" %
                (method, target, SSE, args.require_sse, sse)), True
    if creates and args.require_sse_kms_key_id is not None and key != args.require_sse_kms_key_id:
        return (403, "AccessDenied", "%s %s: the bucket policy requires %s: %s, got %r" %
                (method, target, SSE_KEY, args.require_sse_kms_key_id, key)), True
    return None, creates and sse is not None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None

    def log_message(self, fmt, *a):
        if self.server.args.verbose:
            sys.stderr.write("sigv4_proxy: " + (fmt % a) + "\n")

    def reply(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        args = self.server.args
        stats = self.server.stats
        if self.path == "/__sigv4_proxy/stats":
            self.reply(200, stats.as_json().encode(), "application/json")
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            problem = "chunked bodies are not supported here"
            body = b""
            self.close_connection = True
        else:
            declared = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(declared)
            if len(body) < declared:
                # The sender is gone: nothing to check, and no one to answer.
                stats.cut_short()
                self.close_connection = True
                return
            try:
                problem = check(args, self.command, self.path, self.headers, body)
            except Exception as e:  # a bug here must fail the test, not pass it
                problem = "checker error: %r" % e
        if problem is None:
            refusal, encrypted = encryption(args, self.command, self.path, self.headers)
            if refusal is not None:
                status, code, why = refusal
                stats.refuse(why)
                sys.stderr.write("sigv4_proxy: REFUSED %s\n" % why)
                xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                       "<Message>%s</Message></Error>" %
                       (code, why.replace("&", "&amp;").replace("<", "&lt;")))
                self.reply(status, xml.encode(), "application/xml")
                return
            if encrypted:
                stats.encrypted_create()
        stats.count(problem)
        if problem is not None:
            sys.stderr.write("sigv4_proxy: REJECTED %s %s: %s\n" % (self.command, self.path, problem))
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>'
                "<Message>The request signature we calculated does not match the signature you "
                "provided (sigv4_proxy: %s)</Message></Error>"
                % problem.split("\n")[0].replace("&", "&amp;").replace("<", "&lt;")
            )
            self.reply(403, xml.encode(), "application/xml")
            return
        self.forward(body)

    def forward(self, body):
        args = self.server.args
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        for attempt in (0, 1):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection("127.0.0.1", args.target, timeout=60)
            try:
                self.upstream.request(self.command, self.path, body=body, headers=headers)
                resp = self.upstream.getresponse()
                data = resp.read()
                break
            except (OSError, http.client.HTTPException) as e:
                self.upstream.close()
                self.upstream = None
                if attempt == 1:
                    self.reply(502, ("sigv4_proxy: s3rver: %s" % e).encode(), "text/plain")
                    return
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--target", type=int, required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--session-token")
    p.add_argument("--require-sse", choices=("AES256", "aws:kms"))
    p.add_argument("--require-sse-kms-key-id")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    server = Server(("127.0.0.1", args.listen), Handler)
    server.args = args
    server.stats = Stats()
    server.serve_forever()


if __name__ == "__main__":
    main()
