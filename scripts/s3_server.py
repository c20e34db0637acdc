#!/usr/bin/env python3
"""s3_server.py - the stack's S3: moto's S3 in server mode, checking SigV4 signatures and serialising requests.

    .venv/bin/python scripts/s3_server.py --host 127.0.0.1 --port 9000 \\
        --access-key cdcflow --secret-key cdcflow-secret --region us-east-1

moto alone accepts any signature from any key, so a client that signs wrongly would pass every test here
and fail on AWS.  This server verifies each request's SigV4 signature from the specification (its own
canonical request, not the client's), for exactly one key pair, and answers like S3 does:
InvalidAccessKeyId, SignatureDoesNotMatch, XAmzContentSHA256Mismatch, RequestTimeTooSkewed.

moto checks If-None-Match: * and then stores the object in two steps; under its threaded server two
racing PUTs of one key could in principle both pass the check.  One lock around every request makes the
check and the store atomic, so the conditional writes our table commits rely on are enforced as on S3.
Objects live in memory; they are gone when the server stops.
"""

import argparse
import datetime
import hashlib
import hmac
import io
import re
import sys
import threading
import urllib.parse
from xml.sax.saxutils import escape

from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                           create_backend_app)
from werkzeug.serving import run_simple

AUTH_RE = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$")
# Payload hashes that are not a hash of the body.  The streaming forms (aws-chunked bodies, what the
# AWS SDKs send over plain HTTP) sign each chunk; the seed signature over the headers is still
# checked below, the chunk signatures are left to moto, which decodes the framing.
UNSIGNED = ("UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
MAX_SKEW = datetime.timedelta(minutes=15)


def uri_encode(s, keep_slash):
    """SigV4's UriEncode: RFC 3986 unreserved characters kept, everything else %XX upper-case."""
    return urllib.parse.quote(s, safe="-_.~" + ("/" if keep_slash else ""))


def canonical_query(raw):
    pairs = []
    for part in raw.split("&") if raw else []:
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((uri_encode(urllib.parse.unquote(name), False), uri_encode(urllib.parse.unquote(value), False)))
    if any(n == "X-Amz-Signature" for n, _ in pairs):
        return None  # presigned URLs are not served here
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def header_value(environ, name):
    if name == "content-type":
        v = environ.get("CONTENT_TYPE")
    elif name == "content-length":
        v = environ.get("CONTENT_LENGTH")
    else:
        v = environ.get("HTTP_" + name.upper().replace("-", "_"))
    if v is None:
        return None
    return " ".join(v.strip().split())


def s3_error(start_response, environ, status, code, message):
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>cdcflow-s3</RequestId></Error>").encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


class SigV4Check:
    """WSGI middleware: verify the signature, then hand the request to moto under one lock."""

    def __init__(self, app, access_key, secret_key, region):
        self.app, self.access_key, self.secret_key, self.region = app, access_key, secret_key, region
        self.lock = threading.Lock()

    def refuse(self, environ, body):
        """(status, code, message) of why this request is not S3-signed by our key, or None."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if not auth:
            return "403 Forbidden", "AccessDenied", "Anonymous access is not allowed; sign requests with SigV4"
        m = AUTH_RE.match(auth.strip())
        if not m:
            return "400 Bad Request", "AuthorizationHeaderMalformed", "The authorization header is malformed"
        credential, signed, signature = m.groups()
        try:
            key_id, date, region, service, term = credential.split("/")
        except ValueError:
            return "400 Bad Request", "AuthorizationHeaderMalformed", "The credential is malformed"
        if key_id != self.access_key:
            return "403 Forbidden", "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
        if service != "s3" or term != "aws4_request":
            return "400 Bad Request", "AuthorizationHeaderMalformed", f"The credential scope names service '{service}', expecting 's3'"
        if region != self.region:
            return ("400 Bad Request", "AuthorizationHeaderMalformed",
                    f"The authorization header is malformed; the region '{region}' is wrong; expecting '{self.region}'")
        amz_date = header_value(environ, "x-amz-date") or ""
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return "403 Forbidden", "AccessDenied", "AWS authentication requires a valid x-amz-date header"
        if abs(datetime.datetime.now(datetime.timezone.utc) - when) > MAX_SKEW or not amz_date.startswith(date):
            return "403 Forbidden", "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
        names = signed.split(";")
        if "host" not in names or names != sorted(names):
            return "400 Bad Request", "AuthorizationHeaderMalformed", "SignedHeaders must be sorted and include host"
        payload = header_value(environ, "x-amz-content-sha256")
        if payload is None:
            return "400 Bad Request", "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        if payload not in UNSIGNED and payload != hashlib.sha256(body).hexdigest():
            return "400 Bad Request", "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."
        headers = []
        for n in names:
            v = header_value(environ, n)
            if v is None:
                return "403 Forbidden", "AccessDenied", f"There were headers present in the request which were not signed: {n} is signed but missing"
            headers.append(f"{n}:{v}\n")
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        raw_path, _, raw_query = raw_uri.partition("?")
        query = canonical_query(raw_query)
        if query is None:
            return "403 Forbidden", "AccessDenied", "Query-string authentication is not supported by this server"
        canonical = "\n".join([environ["REQUEST_METHOD"], uri_encode(urllib.parse.unquote(raw_path), True), query,
                               "".join(headers), signed, payload])
        scope = f"{date}/{region}/{service}/{term}"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + self.secret_key).encode()
        for part in (date, region, service, term):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, signature):
            return ("403 Forbidden", "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
        return None

    def __call__(self, environ, start_response):
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        body = stream.read(int(length)) if length else stream.read() if environ.get("wsgi.input_terminated") else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        why = self.refuse(environ, body)
        if why:
            return s3_error(start_response, environ, *why)
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: captured.setdefault("early", []).append(data)

        with self.lock:
            result = self.app(environ, capture)
            try:
                out = captured.get("early", []) + list(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        start_response(captured["status"], captured["headers"])
        return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--region", default="us-east-1")
    a = p.parse_args()
    app = SigV4Check(DomainDispatcherApplication(create_backend_app), a.access_key, a.secret_key, a.region)
    print(f"s3_server: moto S3 on http://{a.host}:{a.port} (region {a.region}, SigV4 checked)", file=sys.stderr, flush=True)
    run_simple(a.host, a.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
