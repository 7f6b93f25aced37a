"""Deciding from an e-mail: when an approval is requested, each decider with an e-mail address
gets a message with a signed, single-use, expiring link to a confirmation page.

* The link names the approval, its round, the decider and an expiry, signed with HMAC-SHA256
  under a key derived from the store's reference secret (``governance/_keys.py``: the key file
  or environment the operator keeps), so every ``serve`` process checks links the same way and
  nothing in the database can forge one.
* Opening the link never decides: mail scanners open links. The page shows the approval and a
  form; the decision is the form's POST, made as the identity the link names (the approval's
  own rules still apply) or as whoever is signed in.
* A link is used once: its nonce is claimed by an insert-if-absent record before deciding.
* Each message is sent once across processes: an insert-if-absent record per approval, round
  and decider is claimed before sending (whoever loses the insert does not send).

Mail goes out only with ``[email]`` configured and ``[console] url`` set (the address people
reach the console at, which links are made from).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import batonflow as bf
from batonflow.governance._approval import ApprovalRequest, aliases_in, list_pending, may_decide
from batonflow.governance._identity import Identity, get_identity, list_identities
from batonflow.store import AuditEntry, AuditRecord

__all__ = ["LINK_LIFETIME", "Link", "Notifier", "make_link", "read_link", "use_link"]

log = logging.getLogger("batonflow.console")
MAILED_KIND = "console.approval_mailed"
USED_KIND = "console.link_used"
#: A link lasts until the approval's own expiry, and never longer than this (seconds).
LINK_LIFETIME = 7 * 86400.0
_CONTEXT = b"batonflow console approval link v1"


class BadLink(bf.AccessDenied):
    """A link that is forged, expired, used, or for a closed approval."""


@dataclass(frozen=True, slots=True)
class Link:
    approval: str
    round: int
    identity: str
    expires_at: float
    nonce: str


async def _key(store: bf.Store) -> bytes:
    keys = getattr(store, "keys", None)
    if keys is None:
        raise bf.ConfigError("approval links need the sealed store's keys (governance.keys)")
    secret: bytes = await keys.secret()
    return hmac.new(secret, _CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def make_link(store: bf.Store, request: ApprovalRequest, identity: str, now: float) -> str:
    """The token of a new link for ``identity`` to decide ``request``."""
    expires = now + LINK_LIFETIME
    if request.expires_at is not None:
        expires = min(expires, request.expires_at)
    body = json.dumps(
        [request.id, request.round, identity, expires, secrets.token_urlsafe(12)],
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(await _key(store), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


async def read_link(store: bf.Store, token: str, now: float) -> tuple[Link, ApprovalRequest]:
    """The link and the open approval it is for; :class:`BadLink`, in words, if not usable."""
    body_text, _, mac_text = token.partition(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
        expected = hmac.new(await _key(store), body, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise ValueError("signature")
        fields = json.loads(body)
        link = Link(
            str(fields[0]), int(fields[1]), str(fields[2]), float(fields[3]), str(fields[4])
        )
    except (ValueError, TypeError, IndexError):
        raise BadLink("this link is damaged or was not made by this batonflow") from None
    if now >= link.expires_at:
        raise BadLink("this link has expired: open the approvals page to decide")
    if await store.get_record(USED_KIND, link.nonce) is not None:
        raise BadLink("this link was already used: each link decides once")
    open_now = {r.id: r for r in await list_pending(store)}
    request = open_now.get(link.approval)
    if request is None or request.round != link.round:
        raise BadLink("this approval is closed or moved on to another round: nothing to decide")
    return link, request


async def use_link(store: bf.Store, link: Link, now: float) -> None:
    """Claim the link's single use (BadLink if another request claimed it first)."""
    data = json.dumps({"approval": link.approval, "identity": link.identity, "at": now})
    entry = AuditEntry("console.link_used", json.dumps({"approval": link.approval}),
                       actor=link.identity)  # fmt: skip
    if not await store.add_record(USED_KIND, link.nonce, data, now, audit=[entry]):
        raise BadLink("this link was already used: each link decides once")


class Notifier:
    """Sends the approval e-mails, following the change feed (``approval.requested``)."""

    def __init__(self, service: Any, mailer: Any, base_url: str) -> None:
        self.service = service
        self.mailer = mailer
        self.base_url = base_url.rstrip("/")
        self._tasks: set[asyncio.Task[None]] = set()

    def see(self, record: AuditRecord) -> None:
        if record.kind == "approval.requested" and record.run_id:
            task = asyncio.ensure_future(self._safely(record.run_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _safely(self, run_id: str) -> None:
        try:
            await self.notify(run_id)
        except Exception:  # a failed mail must not stop the feed; it is logged for operators
            log.exception("could not send approval e-mails for run %s", run_id)

    async def notify(self, run_id: str) -> None:
        store = self.service.store
        for request in await list_pending(store, run_id=run_id):
            for person in await _deciders(store, request):
                key = f"{request.id}/{request.round}/{person.name}"
                now = self.service.now()
                claim = json.dumps({"at": now})
                if not await store.add_record(MAILED_KIND, key, claim, now):
                    continue  # another process sent it
                token = await make_link(store, request, person.name, now)
                await self._send(person, request, token)

    async def _send(self, person: Identity, request: ApprovalRequest, token: str) -> None:
        url = f"{self.base_url}/approvals/link/{token}"
        body = (
            f"{request.title}\n\n{request.summary or ''}\n\n"
            f"Open this link to see the request and decide ({', '.join(request.options)}):\n"
            f"{url}\n\nOpening the link decides nothing; the page asks you to confirm. The link"
            " works once and only for you.\n"
        )
        assert person.email is not None
        await self.mailer.send_email(to=person.email, subject=f"To decide: {request.title}",
                                     body=body)  # fmt: skip
        entry = AuditEntry("console.approval_mailed", json.dumps({"approval": request.id}),
                           run_id=request.run_id, actor=person.name)  # fmt: skip
        await self.service.store.append_audit([entry], self.service.now())


async def _deciders(store: bf.Store, request: ApprovalRequest) -> list[Identity]:
    found = []
    for person in await list_identities(store):
        if person.email and may_decide(request, person, await aliases_in(store, person)) is None:
            found.append(person)
    return found


def settings(data: Mapping[str, Any], source: str) -> str | None:
    """``[console] url``: where people reach the console (links are made from it)."""
    console = data.get("console", {})
    if not isinstance(console, Mapping):
        raise bf.ConfigError(f"{source}: console: must be a table")
    url = console.get("url")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise bf.ConfigError(f"{source}: console.url: expected an http(s) URL, got {url!r}")
    return url


async def identity_of(store: bf.Store, link: Link) -> Identity:
    found = await get_identity(store, link.identity)
    if found is None or found.disabled:
        raise BadLink(f"the identity this link was made for ({link.identity}) cannot decide now")
    return found
