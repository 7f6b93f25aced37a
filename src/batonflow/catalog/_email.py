"""``email``: send a plain-text message over SMTP, as a durable step a retry cannot duplicate.

A retried or replayed step sends the same ``Message-ID`` (derived from the step's idempotency
key), so a receiving system that de-duplicates on it sees one message. The SMTP server's answer
decides whether trying again may help: a 4xx reply, a refused connection or a timeout raise
:class:`EmailDeferred` (retryable, so the kernel's ``Retry`` tries again); a 5xx reply raises
:class:`EmailRejected` (not retryable) carrying the server's reply. Addresses are checked before
any connection is made. The audit entry (``email.sent``, or ``email.failed`` with the reply
code) counts recipients and measures the subject; it never holds an address or the body (they
are personal data). The server is configured by the ``[email]`` table of a TOML file
(:func:`load_smtp_settings`); the password comes from the environment, never from the file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx

from batonflow._oauth import OAuth2, TokenSource, parse_oauth2
from batonflow._toml import read_toml
from batonflow.core import Clock, SystemClock, audit, current_step
from batonflow.errors import BatonflowError, ConfigError

__all__ = [
    "EmailDeferred",
    "EmailNotSent",
    "EmailRejected",
    "InvalidEmailAddress",
    "Mailer",
    "SmtpSettings",
    "load_smtp_settings",
    "parse_smtp_settings",
]

_MAILBOX = re.compile(
    r'^\s*(?:(?P<name>"[^"\\]*"|[^<>,;"]*?)\s*<(?P<spec>[^<>\s,;]+)>|(?P<bare>[^<>\s,;"]+))\s*$'
)
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_KNOWN_KEYS = frozenset(
    {"host", "port", "sender", "starttls", "tls", "username", "password_env", "timeout", "oauth2"}
)


class InvalidEmailAddress(ConfigError):
    """An address that is not a single valid ``local@domain`` mailbox (checked before sending)."""


class EmailNotSent(BatonflowError):
    """The SMTP server did not take the message. ``code`` is its reply code (0 when there was
    no reply: a refused connection, a timeout); ``reply`` its reply text."""

    def __init__(self, message: str, *, code: int = 0, reply: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply

    def record_state(self) -> dict[str, Any]:
        """What the journal keeps, so a replayed failure still carries the server's reply."""
        return {"code": self.code, "reply": self.reply}

    @classmethod
    def from_record(cls, message: str, state: dict[str, Any]) -> EmailNotSent:
        return cls(message, code=int(state.get("code", 0)), reply=str(state.get("reply", "")))


class EmailDeferred(EmailNotSent):
    """A transient failure (4xx reply, connection refused, timeout): trying again may work."""

    retryable = True


class EmailRejected(EmailNotSent):
    """A permanent failure (5xx reply, or the server lacks what the settings require)."""

    retryable = False


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to send. ``sender`` is the default ``From``; ``starttls`` upgrades a plain
    connection (required, not opportunistic); ``tls`` connects with TLS from the start (port
    465); the password is read from the environment variable ``password_env`` at send time."""

    host: str
    sender: str
    port: int = 25
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout: float = 30.0
    source: str = "<memory>"
    oauth2: OAuth2 | None = None

    def __post_init__(self) -> None:
        where = f"{self.source}: email"
        if not self.host:
            raise ConfigError(f"{where}.host: must not be empty")
        if not 0 < self.port < 65536:
            raise ConfigError(f"{where}.port: must be 1-65535, got {self.port}")
        if self.starttls and self.tls:
            raise ConfigError(f"{where}: starttls and tls exclude each other; choose one")
        if self.timeout <= 0:
            raise ConfigError(f"{where}.timeout: must be positive, got {self.timeout}")
        if self.oauth2 is not None:
            if self.username is None or self.password_env is not None:
                raise ConfigError(
                    f"{where}: with [email.oauth2] (XOAUTH2) give username and no password_env"
                )
        elif (self.username is None) != (self.password_env is None):
            raise ConfigError(f"{where}: username and password_env go together")
        self._check(where)

    def _check(self, where: str) -> None:
        check_address(self.sender, f"{where}.sender")

    def password(self, env: Mapping[str, str] | None = None) -> str | None:
        """The SMTP password from ``password_env``; ConfigError when the variable is unset."""
        if self.password_env is None:
            return None
        value = (os.environ if env is None else env).get(self.password_env)
        if not value:
            raise ConfigError(
                f"{self.source}: email.password_env: environment variable "
                f"{self.password_env} is not set"
            )
        return value


def load_smtp_settings(path: str | Path) -> SmtpSettings:
    """The ``[email]`` table of a TOML config file; errors name the file and the key."""
    return parse_smtp_settings(read_toml(path), str(path))


def parse_smtp_settings(data: Mapping[str, Any], source: str = "<memory>") -> SmtpSettings:
    """:class:`SmtpSettings` from a parsed config's ``email`` table."""
    table = data.get("email")
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [email] table is missing (host, port, sender, ...)")
    for key in table:
        if key not in _KNOWN_KEYS:
            known = ", ".join(sorted(_KNOWN_KEYS))
            raise ConfigError(f"{source}: email.{key}: unknown key (known: {known})")

    def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in table:
            if default is _REQUIRED:
                raise ConfigError(f"{source}: email.{key}: required")
            return default
        value = table[key]
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else "a number"
            raise ConfigError(
                f"{source}: email.{key}: expected {expected}, got {type(value).__name__}"
            )
        return value

    from batonflow.governance._alert_config import tls_mode

    get("starttls", bool, None)  # its type, said the way the other keys say it
    mode = tls_mode(table, f"{source}: email", "none")
    return SmtpSettings(
        host=get("host", str, _REQUIRED),
        sender=get("sender", str, _REQUIRED),
        port=get("port", int, 465 if mode == "implicit" else 25),
        starttls=mode == "starttls",
        tls=mode == "implicit",
        username=get("username", str, None),
        password_env=get("password_env", str, None),
        timeout=float(get("timeout", (int, float), 30.0)),
        source=source,
        oauth2=parse_oauth2(table["oauth2"], f"{source}: email.oauth2")
        if "oauth2" in table
        else None,
    )


_REQUIRED: Any = object()


def check_address(value: object, where: str) -> str:
    """``value`` as one mailbox (``"Name <a@example.org>"`` or ``"a@example.org"``); raises
    :class:`InvalidEmailAddress` naming ``where`` and the reason."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidEmailAddress(f"{where}: expected an e-mail address, got {value!r}")
    if "\r" in value or "\n" in value:
        raise InvalidEmailAddress(f"{where}: an address must not contain a line break")
    match = _MAILBOX.match(value)
    if match is None:
        raise InvalidEmailAddress(
            f"{where}: {value!r} is not one e-mail address ('a@example.org' or "
            "'Name <a@example.org>')"
        )
    name = (match["name"] or "").strip().strip('"')
    spec = match["spec"] or match["bare"]
    local, at, domain = spec.rpartition("@")
    if not at:
        raise InvalidEmailAddress(f"{where}: {value!r} has no '@'")
    if not local or not _LOCAL.match(local) or ".." in local:
        raise InvalidEmailAddress(f"{where}: {value!r} has no valid local part before '@'")
    labels = domain.split(".")
    if (len(labels) < 2 and domain != "localhost") or not all(_LABEL.match(p) for p in labels):
        raise InvalidEmailAddress(f"{where}: {value!r} has no valid domain after '@'")
    return str(Address(display_name=name, addr_spec=spec))


def _addresses(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [check_address(value, where)]
    if isinstance(value, Sequence) and value:
        return [check_address(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise InvalidEmailAddress(f"{where}: expected an address or a non-empty list of addresses")


def _text(value: object, where: str, *, one_line: bool) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    if one_line and ("\r" in value or "\n" in value):
        raise ConfigError(f"{where}: must be one line (no line breaks)")
    return value


class Mailer:
    """The ``email`` catalog function bound to an SMTP server::

        mailer = Mailer(load_smtp_settings("batonflow.toml"))
        runtime = DslRuntime(functions={**catalog.functions(), **mailer.functions()})

    In a DSL document: ``call: email`` with ``with: {to, subject, body}``. Returns
    ``{"message_id", "accepted", "refused"}``: how many recipients the server took, and the
    reply for each one it refused (the message went to the others).
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        clock: Clock | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        #: XOAUTH2 tokens (``[email.oauth2]``), fetched through ``client`` (egress-controlled)
        self.tokens = TokenSource(settings.oauth2, client) if settings.oauth2 else None

    async def send_email(
        self,
        *,
        to: str | Sequence[str],
        subject: str,
        body: str,
        cc: str | Sequence[str] | None = None,
        reply_to: str | None = None,
        sender: str | None = None,
    ) -> dict[str, Any]:
        """Send one plain-text message; see the module docstring for the errors."""
        message = self._message(to, subject, body, cc, reply_to, sender)
        recipients = len(_recipients(message))
        facts = {
            "to_count": recipients,
            "subject_len": len(subject),
            "message_id": message["Message-ID"],
            "smtp_host": self.settings.host,
        }
        try:
            refused, _ = await self._send(message)
        except EmailNotSent as error:
            audit("email.failed", {**facts, "code": error.code, "retryable": error.retryable})
            raise
        audit("email.sent", {**facts, "refused_count": len(refused)})
        return {
            "message_id": message["Message-ID"],
            "accepted": recipients - len(refused),
            "refused": {addr: f"{r.code} {r.message}" for addr, r in refused.items()},
        }

    def functions(self, prefix: str = "") -> dict[str, Callable[..., Any]]:
        """``{"email": send_email}`` (prefixed) for ``DslRuntime(functions=...)``."""
        return {f"{prefix}email": self.send_email}

    def _message(
        self,
        to: object,
        subject: object,
        body: object,
        cc: object,
        reply_to: object,
        sender: object,
    ) -> EmailMessage:
        message = EmailMessage()
        from_ = check_address(self.settings.sender if sender is None else sender, "email.sender")
        message["From"] = from_
        message["To"] = ", ".join(_addresses(to, "email.to"))
        if cc is not None:
            message["Cc"] = ", ".join(_addresses(cc, "email.cc"))
        if reply_to is not None:
            message["Reply-To"] = check_address(reply_to, "email.reply_to")
        message["Subject"] = _text(subject, "email.subject", one_line=True)
        message["Date"] = formatdate(self.clock.now(), usegmt=True)
        message["Message-ID"] = _message_id(from_.rpartition("@")[2].rstrip(">"))
        message.set_content(_text(body, "email.body", one_line=False))
        return message

    async def _send(self, message: EmailMessage) -> tuple[dict[str, Any], str]:
        s = self.settings
        try:
            if self.tokens is not None:
                return await self._send_xoauth2(message)
            return await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                start_tls=s.starttls,
                use_tls=s.tls,
                username=s.username,
                password=s.password(),
                timeout=s.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as refused:  # every recipient refused
            codes = [r.code for r in refused.recipients]
            reply = "; ".join(f"{r.code} {r.message}" for r in refused.recipients)
            kind = EmailDeferred if any(400 <= c < 500 for c in codes) else EmailRejected
            raise kind(f"the SMTP server refused every recipient: {reply}", code=max(codes),
                       reply=reply) from None  # fmt: skip
        except aiosmtplib.SMTPResponseException as answer:
            kind = EmailRejected if 500 <= answer.code < 600 else EmailDeferred
            reply = f"{answer.code} {answer.message}"
            raise kind(
                f"SMTP server {s.host}:{s.port} answered {reply}", code=answer.code, reply=reply
            ) from None
        except httpx.HTTPError as failure:  # the OAuth2 token endpoint: try again later
            raise EmailDeferred(f"cannot fetch the SMTP OAuth2 token: {failure}") from None
        except OSError as failure:  # refused, reset, timed out (aiosmtplib's are OSErrors too)
            raise EmailDeferred(
                f"cannot deliver to SMTP server {s.host}:{s.port}: {failure}"
            ) from None
        except aiosmtplib.SMTPException as mismatch:  # e.g. STARTTLS required, not offered
            hint = ""
            if s.starttls and "STARTTLS" in str(mismatch).upper():
                hint = '; for a plain relay on a trusted network set tls = "none" in [email]'
            raise EmailRejected(f"SMTP server {s.host}:{s.port}: {mismatch}{hint}") from None

    async def _send_xoauth2(self, message: EmailMessage) -> tuple[dict[str, Any], str]:
        """Sign in with an OAuth2 access token (XOAUTH2), as Microsoft 365 requires once SMTP
        basic authentication is switched off."""
        s, tokens = self.settings, self.tokens
        assert tokens is not None
        assert s.username is not None
        token = await tokens.token(self.clock.now())
        smtp = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, use_tls=s.tls, start_tls=s.starttls, timeout=s.timeout
        )
        async with smtp:
            await smtp.auth_xoauth2(s.username, token)
            return await smtp.send_message(message)


def _recipients(message: EmailMessage) -> list[str]:
    fields = message.get_all("To", []) + message.get_all("Cc", [])
    return [spec for _, spec in getaddresses([str(f) for f in fields])]


def _message_id(domain: str) -> str:
    """Stable for a step (same run, same step: same id, on every retry and replay); a fresh
    one outside a step."""
    try:
        key = current_step().idempotency_key
    except ConfigError:
        return make_msgid(domain=domain)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}.batonflow@{domain}>"
