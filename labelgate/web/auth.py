"""Who may use the review app: the access token, the login form and its session cookie, the same-origin and
JSON-body rules for state changes, and the security headers of every response.

- :func:`guard` (an HTTP middleware): with a token (``app.state.token``), every request but ``/login`` and
  ``/static`` needs ``Authorization: Bearer <token>`` or the session cookie, else 401 (JSON under ``/api/``, the
  login page elsewhere); a state change (not GET/HEAD/OPTIONS) from a foreign ``Origin`` gets 403; a POST under
  ``/api/`` with a body that is not ``application/json`` gets 415. Every response gets :data:`SECURITY_HEADERS`
  (a strict Content-Security-Policy: no inline script).
- ``GET /login`` (the form) and ``POST /login`` (``token``, ``next``: sets the session cookie, an HMAC of the
  token, never the token itself, and redirects to ``next`` when it is a local path).

A cross-site form cannot send a JSON body without a CORS preflight, and a foreign ``Origin`` is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from labelgate.web import templating

#: the session cookie the login form sets
COOKIE = "labelgate_session"

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: headers every response carries (a route may set its own first)
SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter()


def session_value(token: str) -> str:
    """The cookie value proving a login: an HMAC of the token, never the token itself."""
    return hmac.new(token.encode(), b"labelgate-review-session", hashlib.sha256).hexdigest()


def authorised(request: Request, token: str) -> bool:
    """True when ``request`` carries ``Authorization: Bearer <token>`` or the session cookie of ``token``."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (no Origin header: a script, allowed)."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    if origin == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def is_json(request: Request) -> bool:
    """True for an ``application/json`` body, or no body at all."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return ctype == "application/json" or (ctype == "" and request.headers.get("content-length") in (None, "0"))


def safe_next(target: str) -> str:
    """A local path to go to after login (never another site): ``target``, or ``/``."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def guard(request: Request, call_next: Any) -> Response:
    """The app's HTTP middleware: token check, same-origin and JSON-body rules, security headers."""
    token: str | None = request.app.state.token
    path = request.url.path
    public = path == "/login" or path.startswith("/static/")
    if token and not public and not authorised(request, token):
        if path.startswith("/api/"):
            response: Response = JSONResponse(
                {"error": "authentication required: send 'Authorization: Bearer <token>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            response = HTMLResponse(
                templating.render("login.html", error=None, next=safe_next(str(request.url.path))),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin(request):
        response = JSONResponse({"error": "cross-origin request refused"}, status_code=403)
    elif request.method == "POST" and path.startswith("/api/") and not is_json(request):
        response = JSONResponse({"error": "send the request body as application/json"}, status_code=415)
    else:
        response = await call_next(request)
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(next: str = "/") -> HTMLResponse:
    return HTMLResponse(templating.render("login.html", error=None, next=safe_next(next)))


@router.post("/login")
async def login(request: Request) -> Response:
    token: str | None = request.app.state.token
    form = await request.form()
    given = str(form.get("token") or "")
    target = safe_next(str(form.get("next") or "/"))
    if not token:
        return RedirectResponse(target, status_code=303)
    if not hmac.compare_digest(given.encode(), token.encode()):
        return HTMLResponse(templating.render("login.html", error="wrong token", next=target), status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, session_value(token), httponly=True, samesite="strict", path="/")
    return response
