"""Where alerts go: a webhook (a CloudEvents 1.0 structured JSON POST) and e-mail over SMTP.

A channel's ``send`` either delivers the alert or raises. The monitor retries what may succeed
later (network trouble, HTTP 5xx/408/429, SMTP 4xx) and gives up at once on what will not (a
:class:`~batonflow.errors.BatonflowError` that is not ``retryable``: a missing secret, a refused
egress, HTTP 4xx, SMTP 5xx). Secrets (an SMTP password, an ``Authorization`` header, a webhook
URL with a token in its path) come from environment variables named in the configuration, read
at each send so a rotated secret needs no restart; they appear in no repr, log line, audit entry
or error message. A channel's ``name`` shows only scheme and host for the same reason.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx

from batonflow import _serde
from batonflow.errors import ConfigError

__all__ = [
    "ALERT_KINDS",
    "Alert",
    "AlertChannel",
    "AlertKind",
    "SmtpChannel",
    "WebhookChannel",
    "cloudevent",
]

AlertKind = Literal[
    "run.faulted",
    "run.overdue",
    "step.retrying",
    "approval.expiring",
    "approval.expired",
    "trigger.failed",
    "store.failing",
    "store.recovered",
]
ALERT_KINDS: tuple[AlertKind, ...] = (
    "run.faulted",
    "run.overdue",
    "step.retrying",
    "approval.expiring",
    "approval.expired",
    "trigger.failed",
    "store.failing",
    "store.recovered",
)

#: CloudEvents ``source`` of alerts unless configured otherwise (a URI-reference).
DEFAULT_SOURCE = "/batonflow/alerts"
#: Header names whose values are credentials: configure them with ``headers_env`` instead.
_SECRET_HEADER_WORDS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "password",
    "api-key",
    "apikey",
)
#: HTTP statuses worth another try; any other non-2xx answer is final.
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator must hear about now.

    ``key`` is stable for one occurrence (``run.faulted:<run>:<finished_at>``,
    ``run.overdue:<run>``, ``step.retrying:<run>:<step>``,
    ``approval.expiring:<approval>:<expires_at>``, ``approval.expired:<approval>:<round>``):
    it is the alert record's key, so the alert is raised once however many processes see it,
    and the CloudEvent ``id``, so a receiver can drop a retried delivery. ``run_id`` and
    ``workflow`` are None for what concerns no run (a trigger that failed before starting one).
    """

    kind: AlertKind
    run_id: str | None
    workflow: str | None
    summary: str  # one line, e.g. "run 0193ab4c… (client-enquiries) faulted: KeyError: 'to'"
    at: float  # epoch seconds (the monitor's clock) when it was raised
    key: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"[batonflow] {self.summary}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "summary": self.summary,
            "at": _iso(self.at),
            "details": dict(self.details),
        }


class AlertChannel(Protocol):
    """A way to tell people. ``name`` (no secrets) labels the channel in logs and the audit."""

    @property
    def name(self) -> str: ...

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert`` or raise; a non-retryable BatonflowError means "do not retry"."""


def cloudevent(alert: Alert, source: str = DEFAULT_SOURCE) -> dict[str, Any]:
    """The alert as a CloudEvents 1.0 event in structured JSON mode (``subject``: the run)."""
    event = {
        "specversion": "1.0",
        "type": f"batonflow.alert.{alert.kind}",
        "source": source,
        "id": alert.key,
        "time": _iso(alert.at),
        "subject": alert.run_id,
        "datacontenttype": "application/json",
        "data": alert.to_dict(),
    }
    if alert.run_id is None:
        del event["subject"]
    return event


class WebhookChannel:
    """POSTs each alert as a CloudEvent to ``url`` through the shared, egress-governed client.

    ``url_env`` (instead of ``url``) and ``headers_env`` (header -> variable name) take secrets
    from the environment; ``headers`` are sent as written and must hold no credentials.
    """

    def __init__(
        self,
        url: str | None,
        headers: Mapping[str, str] | None,
        client: httpx.AsyncClient,
        *,
        url_env: str | None = None,
        headers_env: Mapping[str, str] | None = None,
        source: str = DEFAULT_SOURCE,
        env: Mapping[str, str] | None = None,
    ) -> None:
        try:
            check_webhook(url, url_env, headers or {})
        except ConfigError as exc:
            raise ConfigError(f"webhook channel: {exc}") from None
        self._url, self._url_env = url, url_env
        self._headers = dict(headers or {})
        self._headers_env = dict(headers_env or {})
        self._client = client
        self._source = source
        self._env = env if env is not None else os.environ

    @property
    def name(self) -> str:
        if self._url is None:
            return f"webhook:${self._url_env}"
        parts = urlsplit(self._url)
        return f"webhook:{parts.scheme}://{parts.hostname}"

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r})"

    async def send(self, alert: Alert) -> None:
        url = self._url or _check_url(_secret(self._env, self._url_env, self.name), self.name)
        headers = {
            **self._headers,
            **{h: _secret(self._env, var, self.name) for h, var in self._headers_env.items()},
            "Content-Type": "application/cloudevents+json; charset=utf-8",
        }
        body = _serde.dumps(cloudevent(alert, self._source), what="alert").encode()
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # network trouble: try again later
            raise ConnectionError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        if response.is_success:
            return
        reason = f"{self.name} answered HTTP {response.status_code}"
        if response.status_code in _TRANSIENT_STATUS:
            raise ConnectionError(reason)
        raise ConfigError(f"{reason}; not retrying (check the URL and credentials)")


class SmtpChannel:
    """Sends each alert as a plain-text e-mail with aiosmtplib.

    ``starttls`` upgrades a plain connection (port 587), and a server that does not offer it is
    an error (not retried: the configuration must change); ``tls`` connects with TLS at once
    (port 465); neither: a plain relay, a deliberate choice. ``password_env`` names the variable
    holding the password of ``username``; a password is never sent over an unencrypted
    connection.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        starttls: bool = True,
        username: str | None = None,
        password_env: str | None = None,
        *,
        tls: bool = False,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        try:
            check_smtp(recipients, starttls, tls, username, password_env)
        except ConfigError as exc:
            raise ConfigError(f"smtp channel: {exc}") from None
        self.host, self.port, self.sender = host, port, sender
        self.recipients = tuple(recipients)
        self._starttls, self._tls, self._timeout = starttls, tls, timeout
        self._username, self._password_env = username, password_env
        self._env = env if env is not None else os.environ

    @property
    def name(self) -> str:
        return f"smtp:{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"SmtpChannel({self.name!r}, to={list(self.recipients)!r})"

    def message(self, alert: Alert) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = alert.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = formatdate(alert.at, usegmt=True)
        mail["Message-ID"] = make_msgid("batonflow-alert", domain=_domain(self.sender))
        mail["X-Batonflow-Alert"] = alert.key
        mail.set_content(_mail_body(alert))
        return mail

    async def send(self, alert: Alert) -> None:
        import aiosmtplib  # imported on first use: only deployments that send mail need it

        password = None
        if self._password_env is not None:
            password = _secret(self._env, self._password_env, self.name)
        try:
            refused, _ = await aiosmtplib.send(
                self.message(alert),
                hostname=self.host,
                port=self.port,
                start_tls=self._starttls,
                use_tls=self._tls,
                username=self._username,
                password=password,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            who = ", ".join(sorted(e.recipient for e in exc.recipients))
            raise ConfigError(
                f"{self.name} refused every recipient ({who}); not retrying"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"{self.name} answered {exc.code} {exc.message}"
            if 400 <= exc.code < 500:
                raise ConnectionError(reason) from None
            raise ConfigError(f"{reason}; not retrying") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            if self._starttls and "STARTTLS" in str(exc).upper() and not isinstance(exc, OSError):
                raise ConfigError(
                    f"{self.name} does not offer STARTTLS, which the configuration requires;"
                    ' for a plain relay on a trusted network set tls = "none"'
                ) from None
            raise ConnectionError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        if refused:  # the others have it: sending again would duplicate their copy
            who = ", ".join(sorted(refused))
            raise ConfigError(f"{self.name} refused {who} (delivered to the other recipients)")


def check_webhook(url: str | None, url_env: str | None, headers: Mapping[str, str]) -> None:
    """Refuse a webhook configuration that would put a credential in plain configuration."""
    if (url is None) == (url_env is None):
        raise ConfigError("give exactly one of url and url_env")
    if url is not None:
        _check_url(url, "url")
    for header in headers:
        if _is_secret_header(header):
            raise ConfigError(
                f"header {header!r} carries a credential: name the environment variable that"
                " holds it in headers_env instead"
            )


def check_smtp(
    recipients: Sequence[str],
    starttls: bool,
    tls: bool,
    username: str | None,
    password_env: str | None,
) -> None:
    """Refuse an SMTP configuration that cannot work or would send a password in clear."""
    if not recipients:
        raise ConfigError("no recipients")
    if starttls and tls:
        raise ConfigError("choose starttls or tls, not both")
    if (username is None) != (password_env is None):
        raise ConfigError("username and password_env go together")
    if username is not None and not (starttls or tls):
        raise ConfigError("a password needs starttls or tls (it is never sent in clear)")


def _mail_body(alert: Alert) -> str:
    lines = [
        alert.summary,
        "",
        f"Kind:     {alert.kind}",
        f"Run:      {alert.run_id or '-'}",
        f"Workflow: {alert.workflow or '-'}",
        f"Raised:   {_iso(alert.at)}",
    ]
    if alert.details:
        lines += ["", "Details:"]
        lines += [f"  {name}: {_text(value)}" for name, value in alert.details.items()]
    lines += ["", f"Alert key: {alert.key}", "-- batonflow"]
    return "\n".join(lines) + "\n"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _serde.dumps_lenient(value)


def _iso(at: float) -> str:
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _domain(address: str) -> str:
    _, _, domain = address.rpartition("@")
    return domain.strip(" >") or "batonflow.invalid"


def _secret(env: Mapping[str, str], var: str | None, channel: str) -> str:
    value = env.get(var or "")
    if not value:
        raise ConfigError(f"{channel}: environment variable {var} is not set")
    return value


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what}: expected an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{what}: credentials in the URL; use headers_env or url_env")
    return url


def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)
