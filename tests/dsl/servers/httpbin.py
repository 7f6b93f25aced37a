"""``httpbin.org``: the request-inspection service, the endpoints the CTK and the tests use.

``/basic-auth/{user}/{passwd}``, ``/bearer``, ``/digest-auth/auth/{user}/{passwd}``,
``/status/{code}``, ``/redirect/{n}``, ``/absolute-redirect/{n}``, ``/redirect-to``, ``/get``,
``/post``, ``/put``, ``/patch``, ``/delete``, ``/anything``, ``/headers``, ``/bytes/{n}``,
``/json``, ``/html``, ``/xml``, ``/robots.txt``, ``/response-headers``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from ._base import Request, Response

_NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"  # fixed: the tests are deterministic
_OPAQUE = "5ccc069c403ebaf9f0171e9517f40e41"
_REASONLESS_REDIRECTS = (301, 302, 303, 305, 307, 308)


def app(request: Request) -> Response:
    path = request.path
    for pattern, handler in _ROUTES:
        match = re.fullmatch(pattern, path)
        if match:
            return handler(request, *match.groups())
    return Response.text("<h1>Not Found</h1>", "text/html", 404)


def _echo(request: Request, *_: str) -> Response:
    return Response.json(echo(request))


def echo(request: Request) -> dict[str, Any]:
    """What httpbin's ``/anything`` answers: the request as it arrived."""
    body = request.body.decode(errors="replace")
    form = {}
    if request.header("content-type").startswith("application/x-www-form-urlencoded"):
        form = {k: v[0] if len(v) == 1 else v for k, v in request.form().items()}
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return {
        "method": request.method,
        "url": f"https://{request.host}{request.path}",
        "args": {k: v[0] if len(v) == 1 else v for k, v in request.query.items()},
        "headers": dict(request.headers),
        "data": body,
        "json": parsed,
        "form": form,
    }


def _basic(request: Request, user: str, passwd: str) -> Response:
    expected = base64.b64encode(f"{user}:{passwd}".encode()).decode()
    if request.header("authorization") != f"Basic {expected}":
        return Response(401, b"", [("WWW-Authenticate", 'Basic realm="Fake Realm"')])
    return Response.json({"authenticated": True, "user": user})


def _bearer(request: Request) -> Response:
    scheme, _, token = request.header("authorization").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return Response(401, b"", [("WWW-Authenticate", "Bearer")])
    return Response.json({"authenticated": True, "token": token})


def digest_challenge(realm: str) -> str:
    return (
        f'Digest realm="{realm}", qop="auth", nonce="{_NONCE}", opaque="{_OPAQUE}", algorithm=MD5'
    )


def digest_valid(request: Request, user: str, passwd: str, realm: str) -> bool:
    """Whether the request carries a valid RFC 7616 MD5/``qop=auth`` digest response."""
    header = request.header("authorization")
    if not header.lower().startswith("digest "):
        return False
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[len("digest ") :]))
    if fields.get("username") != user or fields.get("nonce") != _NONCE:
        return False

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{user}:{realm}:{passwd}")
    uri = fields.get("uri", "")
    ha2 = md5(f"{request.method}:{uri}")
    expected = md5(f"{ha1}:{_NONCE}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
    return fields.get("response") == expected


def _digest(request: Request, qop: str, user: str, passwd: str) -> Response:
    if not digest_valid(request, user, passwd, "me@kennethreitz.com"):
        return Response(401, b"", [("WWW-Authenticate", digest_challenge("me@kennethreitz.com"))])
    return Response.json({"authenticated": True, "user": user})


def _status(request: Request, code: str) -> Response:
    status = int(code)
    if status in _REASONLESS_REDIRECTS:
        return Response.redirect("/redirect/1", status)
    if status == 418:
        return Response.text("I'm a teapot", status=418)
    return Response(status)


def _redirect(request: Request, n: str) -> Response:
    count = int(n)
    return Response.redirect("/get" if count <= 1 else f"/redirect/{count - 1}")


def _absolute_redirect(request: Request, n: str) -> Response:
    count = int(n)
    target = "/get" if count <= 1 else f"/absolute-redirect/{count - 1}"
    return Response.redirect(f"http://httpbin.org{target}")


def _redirect_to(request: Request) -> Response:
    return Response.redirect(request.arg("url") or "/get", int(request.arg("status_code") or 302))


def _headers(request: Request) -> Response:
    return Response.json({"headers": dict(request.headers)})


def _bytes(request: Request, n: str) -> Response:
    return Response.of(bytes(i % 256 for i in range(int(n))), "application/octet-stream")


def _response_headers(request: Request) -> Response:
    headers = [(k, v) for k, values in request.query.items() for v in values]
    return Response(
        200, json.dumps(dict(headers)).encode(), [("Content-Type", "application/json"), *headers]
    )


_ROUTES: list[tuple[str, Any]] = [
    (r"/(?:get|post|put|patch|delete)", _echo),
    (r"/anything(?:/.*)?", _echo),
    (r"/basic-auth/([^/]+)/([^/]+)", _basic),
    (r"/bearer", _bearer),
    (r"/digest-auth/(auth)/([^/]+)/([^/]+)", _digest),
    (r"/status/(\d{3})", _status),
    (r"/redirect/(\d+)", _redirect),
    (r"/absolute-redirect/(\d+)", _absolute_redirect),
    (r"/redirect-to", _redirect_to),
    (r"/headers", _headers),
    (r"/bytes/(\d+)", _bytes),
    (r"/response-headers", _response_headers),
    (
        r"/json",
        lambda r: Response.json(
            {"slideshow": {"author": "Yours Truly", "title": "Sample Slide Show"}}
        ),
    ),
    (
        r"/html",
        lambda r: Response.text(
            "<!DOCTYPE html><html><body><h1>Herman Melville - Moby-Dick</h1></body></html>",
            "text/html; charset=utf-8",
        ),
    ),
    (
        r"/xml",
        lambda r: Response.text(
            '<?xml version="1.0"?><slideshow title="Sample"/>', "application/xml"
        ),
    ),
    (r"/robots\.txt", lambda r: Response.text("User-agent: *\nDisallow: /deny\n")),
]
