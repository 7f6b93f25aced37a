"""Rendering console pages: one Jinja2 environment (autoescaped), the context every page gets
(who is signed in, the CSRF token, flash messages, the nav), and the refusal page."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

import batonflow as bf
from batonflow.core._ids import short_run_id
from batonflow.server.console._session import CSRF_COOKIE, Session, csrf_token, set_cookie

__all__ = ["FLASH_COOKIE", "NAV", "flash", "refusal", "render", "templates"]

HERE = Path(__file__).resolve().parent
FLASH_COOKIE = "bf_flash"

#: The console's areas, in nav order: (path, label). Every page module's area is here.
NAV: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/runs", "Runs"),
    ("/approvals", "Approvals"),
    ("/workflows", "Workflows"),
    ("/audit", "Audit"),
    ("/subjects", "Data subjects"),
    ("/connectors", "Connectors"),
    ("/alerts", "Alerts"),
    ("/triggers", "Triggers"),
    ("/identities", "Identities"),
)


def _when(at: float | None) -> str:
    if at is None:
        return "—"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        text: str = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.filters["pretty"] = _pretty
    env.filters["short"] = lambda run_id: short_run_id(str(run_id))
    env.filters["urlencode_query"] = lambda q: urllib.parse.urlencode(
        {k: v for k, v in q.items() if v not in (None, "")}
    )
    return env


templates = _environment()


def flash(request: Request, response: Response, message: str) -> None:
    """Show ``message`` on the next page this browser renders (after a redirect)."""
    set_cookie(request, response, FLASH_COOKIE, urllib.parse.quote(message[:500]), 120)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    """``template`` with the page context; ``request.state.session`` names who is signed in."""
    session: Session | None = getattr(request.state, "session", None)
    token = csrf_token(request, session)
    message = request.cookies.get(FLASH_COOKIE)
    page = {
        "request": request,
        "me": session.identity if session else None,
        "csrf": token,
        "flash": urllib.parse.unquote(message) if message else None,
        "nav": NAV,
        "path": request.url.path,
        "version": bf.__version__,
        **(context or {}),
    }
    response = HTMLResponse(templates.get_template(template).render(page), status_code=status)
    if message:
        response.delete_cookie(FLASH_COOKIE, path="/")
    if session is None and not request.cookies.get(CSRF_COOKIE):
        set_cookie(request, response, CSRF_COOKIE, token, 12 * 3600)
    return response


def refusal(
    request: Request, title: str, reason: str, *, status: int = 403, audited: bool = False
) -> HTMLResponse:
    """The standard refusal page: what was refused and why, in words, and what to do next."""
    context = {"title": title, "reason": reason, "audited": audited}
    return render(request, "refused.html", context, status=status)
