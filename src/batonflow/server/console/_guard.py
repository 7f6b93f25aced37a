"""Who may see a console page or send a form: the same role table as the API and the command
line (:func:`batonflow.governance._identity.authorize`), checked through the API's own audited
:func:`batonflow.server._auth.require`, so no rule lives only in the console.

``Depends(signed_in("run.cancel"))`` gives a route the signed-in :class:`Identity` once its
roles allow the action. Without a session a page redirects to the sign-in page; without the
role it gets the refusal page (403), and the refusal is on the audit trail (``api.refused``).
``await posted(request)`` gives a route its form once the CSRF token checks out.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request

import batonflow as bf
from batonflow.governance._identity import Identity
from batonflow.server._auth import require, service_of
from batonflow.server.console._session import BadForm, Session, checked_form, find_session

__all__ = ["Refused", "SignInNeeded", "current_session", "posted", "signed_in"]


class SignInNeeded(Exception):
    """No live session: the handler redirects to ``/sign-in?next=<path>``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class Refused(Exception):
    """The console refuses: the handler renders the refusal page with ``reason``."""

    def __init__(
        self, title: str, reason: str, status: int = 403, *, audited: bool = False
    ) -> None:
        super().__init__(reason)
        self.title = title
        self.reason = reason
        self.status = status
        self.audited = audited  # the page says so only when the trail really has it


async def current_session(request: Request) -> Session | None:
    """The live session of the request (cached on ``request.state``), or None."""
    if not hasattr(request.state, "session"):
        service = service_of(request)
        request.state.session = await find_session(service.store, request, service.now())
    session: Session | None = request.state.session
    return session


def signed_in(action: str = "read") -> Callable[[Request], Awaitable[Identity]]:
    """A dependency: the signed-in identity, if its roles allow ``action``."""

    async def visitor(request: Request) -> Identity:
        session = await current_session(request)
        if session is None:
            query = f"?{request.url.query}" if request.url.query else ""
            raise SignInNeeded(request.url.path + query)
        try:
            await require(request, session.identity, action)
        except bf.AccessDenied as exc:
            raise Refused("You may not do this", str(exc), audited=True) from None
        return session.identity

    return visitor


async def posted(request: Request) -> FormData:
    """The form of a POST whose CSRF token checks out; a bad one is refused and audited."""
    session = await current_session(request)
    try:
        return await checked_form(request, session)
    except BadForm as exc:
        where = {"method": request.method, "path": request.url.path, "reason": str(exc)}
        actor = session.identity.name if session else None
        await service_of(request).refusals.record(where, actor)
        raise Refused("This form was refused", str(exc), status=400, audited=True) from None


def sign_in_url(next_path: str) -> str:
    return "/sign-in?" + urllib.parse.urlencode({"next": next_path})


def form_day(text: str | None, field: str, *, end: bool = False) -> float | None:
    """A ``YYYY-MM-DD`` (UTC) from a date filter as an instant; the day after it for ``end``
    (dates are inclusive). A refusal naming the field otherwise."""
    if not text:
        return None
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise Refused(
            "This filter is not a date", f"{field}: expected a date like 2026-12-07, got {text!r}",
            status=400,
        ) from None  # fmt: skip
    return (day + dt.timedelta(days=1 if end else 0)).timestamp()


async def permitted_action(request: Request, me: Identity, form: FormData) -> str:
    """The operator action a form posts (``action``), once ``me`` may do it: the API's table
    and roles (:mod:`batonflow.server._actions`), refused in words otherwise."""
    from batonflow.server import _actions

    name = str(form.get("action", ""))
    if name not in _actions.ACTIONS:
        raise Refused("Unknown action", f"action: expected one of {', '.join(_actions.ACTIONS)},"
                      f" got {name!r}", status=400)  # fmt: skip
    try:
        await require(request, me, _actions.ACTIONS[name].permission)
    except bf.AccessDenied as exc:
        raise Refused("You may not do this", str(exc), audited=True) from None
    return name
