"""The ``[governance.alerts]`` table of the configuration file.

::

    [governance.alerts]
    deadlines = { client-enquiries = "PT4H", "*" = "P1D" }   # impact tolerance per workflow
    expiring_within = "PT1H"                                # warn before an approval expires
    step_failures = 3                                       # alert when a step failed 3 times
    interval = "PT1M"                                       # how often the monitor looks

    [[governance.alerts.webhooks]]
    url = "https://ops.example.test/hooks/batonflow"        # or url_env = "ALERT_WEBHOOK_URL"
    headers = { X-Team = "operations" }
    headers_env = { Authorization = "ALERT_WEBHOOK_AUTH" }

    [governance.alerts.smtp]
    host = "smtp.example.test"
    port = 587
    sender = "batonflow@example.test"
    to = ["ops@example.test"]
    tls = "starttls"            # or "implicit" (port 465), or "none": a plain relay
    username = "batonflow"
    password_env = "ALERT_SMTP_PASSWORD"

Durations are ISO 8601 (weeks, days, hours, minutes, seconds). Secrets are named by environment
variable, never written here; errors name the file and the dotted key. ``tls = "none"`` (or the
older ``starttls = false``) sends to a plain relay without encryption, a deliberate choice for a
relay on a trusted network (no password may be sent over it); a relay that refuses STARTTLS when
``tls = "starttls"`` is an error that says so.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from batonflow.core import Clock, Engine
from batonflow.errors import ConfigError
from batonflow.governance._alert_channels import (
    DEFAULT_SOURCE,
    AlertChannel,
    SmtpChannel,
    WebhookChannel,
    check_smtp,
    check_webhook,
)
from batonflow.governance._alert_hook import AlertHook
from batonflow.governance._alerts import AlertMonitor
from batonflow.store import RunRecord, Store

__all__ = [
    "TLS_MODES",
    "AlertSettings",
    "SmtpSettings",
    "WebhookSettings",
    "parse_duration",
    "tls_mode",
]

#: How an SMTP connection is secured: not at all (a plain relay), upgraded with STARTTLS, or
#: TLS from the first byte (port 465).
TLS_MODES = ("none", "starttls", "implicit")

_DURATION = re.compile(
    r"P(?:(?P<W>\d+(?:\.\d+)?)W)?(?:(?P<D>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<H>\d+(?:\.\d+)?)H)?(?:(?P<M>\d+(?:\.\d+)?)M)?(?:(?P<S>\d+(?:\.\d+)?)S)?)?"
)
_UNIT = {"W": 604_800.0, "D": 86_400.0, "H": 3_600.0, "M": 60.0, "S": 1.0}


def parse_duration(text: Any, where: str) -> float:
    """Seconds in an ISO 8601 duration (``PT4H``, ``P1DT12H``, ``PT90S``); years and months are
    refused (their length varies). ``where`` names the setting in the error."""
    match = _DURATION.fullmatch(text.strip().upper()) if isinstance(text, str) else None
    if match is None or not any(match.groupdict().values()):
        raise ConfigError(
            f"{where}: expected an ISO 8601 duration such as PT4H or P1DT12H"
            f" (weeks, days, hours, minutes, seconds), got {text!r}"
        )
    return sum(float(v) * _UNIT[unit] for unit, v in match.groupdict().items() if v is not None)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str | None = None
    url_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    headers_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The ``[governance.alerts]`` table of the configuration file (see :meth:`parse`)."""

    webhooks: tuple[WebhookSettings, ...] = ()
    smtp: SmtpSettings | None = None
    deadlines: Mapping[str, float] = field(default_factory=dict)
    expiring_within: float = 3600.0
    interval: float = 60.0
    source: str = DEFAULT_SOURCE
    step_failures: int | None = 3

    @classmethod
    def parse(cls, table: Mapping[str, Any], where: str) -> AlertSettings:
        """Read the table; errors name ``where`` (the file) and the key, e.g.
        ``batonflow.toml: governance.alerts.smtp.port: expected an integer from 1 to 65535``."""
        read = _Reader(table, where, "governance.alerts")
        read.only(
            "webhooks",
            "smtp",
            "deadlines",
            "expiring_within",
            "interval",
            "source",
            "step_failures",
        )
        deadlines = read.table("deadlines")
        settings = cls(
            webhooks=tuple(_webhook(r) for r in read.tables("webhooks")),
            smtp=_smtp(read.table("smtp")) if "smtp" in table else None,
            deadlines={
                name: parse_duration(value, deadlines.at(name))
                for name, value in deadlines.data.items()
            },
            expiring_within=read.duration("expiring_within", "PT1H"),
            interval=read.duration("interval", "PT1M"),
            source=read.string("source", DEFAULT_SOURCE),
            step_failures=read.count("step_failures", 3),
        )
        above_zero = [(deadlines.at(n), s) for n, s in settings.deadlines.items()]
        above_zero.append((read.at("interval"), settings.interval))
        for key, seconds in above_zero:
            if seconds <= 0:
                raise ConfigError(f"{key}: expected a duration above zero")
        return settings

    def channels(
        self, client: httpx.AsyncClient, *, env: Mapping[str, str] | None = None
    ) -> list[AlertChannel]:
        """The configured channels; webhooks post through ``client`` (from ``make_client``)."""
        found: list[AlertChannel] = [
            WebhookChannel(
                w.url,
                w.headers,
                client,
                url_env=w.url_env,
                headers_env=w.headers_env,
                source=self.source,
                env=env,
            )
            for w in self.webhooks
        ]
        if self.smtp is not None:
            s = self.smtp
            found.append(
                SmtpChannel(
                    s.host,
                    s.port,
                    s.sender,
                    s.to,
                    s.starttls,
                    s.username,
                    s.password_env,
                    tls=s.tls,
                    timeout=s.timeout,
                    env=env,
                )
            )
        return found

    def hook(
        self,
        make_client: Callable[[Engine], httpx.AsyncClient],
        *,
        client: httpx.AsyncClient | None = None,
        deadlines: Mapping[str, float] | None = None,
        env: Mapping[str, str] | None = None,
        deadline_of: Callable[[RunRecord], float | None] | None = None,
    ) -> AlertHook:
        """The engine hook raising these alerts as they happen. Webhooks post through
        ``client``, else a client ``make_client(engine)`` builds when the engine opens (and
        that the hook closes with it)."""

        def channels(engine: Engine) -> tuple[list[AlertChannel], Callable[[], Any]]:
            own = client is None
            http = make_client(engine) if client is None else client

            async def release() -> None:
                if own:
                    await http.aclose()

            found = self.channels(http, env=env if env is not None else os.environ)
            return found, release

        return AlertHook(
            channels,
            deadlines={**(deadlines or {}), **self.deadlines},
            deadline_of=deadline_of,
            step_failures=self.step_failures,
            expiring_within=self.expiring_within,
        )

    def monitor(
        self,
        store: Store,
        clock: Clock,
        client: httpx.AsyncClient,
        *,
        deadlines: Mapping[str, float] | None = None,
        env: Mapping[str, str] | None = None,
        deadline_of: Callable[[RunRecord], float | None] | None = None,
    ) -> AlertMonitor:
        """A monitor with these settings. ``deadlines`` and ``deadline_of(run)`` (e.g. a
        workflow document's ``metadata.batonflow.deadline``) apply where the configuration
        names none."""
        merged = {**(deadlines or {}), **self.deadlines}
        channels = self.channels(client, env=env if env is not None else os.environ)
        return AlertMonitor(
            store, clock, channels, merged, self.expiring_within, deadline_of=deadline_of
        )


def _webhook(read: _Reader) -> WebhookSettings:
    read.only("url", "url_env", "headers", "headers_env")
    if ("url" in read.data) == ("url_env" in read.data):
        raise ConfigError(f"{read.where}: give exactly one of url and url_env")
    settings = WebhookSettings(
        url=read.string("url", None),
        url_env=read.string("url_env", None),
        headers=read.strings("headers"),
        headers_env=read.strings("headers_env"),
    )
    try:  # the channel's own checks (credentials in the URL or in plain headers)
        check_webhook(settings.url, settings.url_env, settings.headers)
    except ConfigError as exc:
        raise ConfigError(f"{read.where}: {exc}") from None
    return settings


def tls_mode(table: Mapping[str, Any], where: str, default: str) -> str:
    """``tls = "none" | "starttls" | "implicit"`` of an SMTP table; the older spellings
    ``tls = true`` (implicit) and ``starttls = true | false`` are read too."""
    tls, starttls = table.get("tls"), table.get("starttls")
    if starttls is not None and not isinstance(starttls, bool):
        raise ConfigError(f"{where}.starttls: expected true or false, got {starttls!r}")
    if isinstance(tls, str):
        if tls not in TLS_MODES:
            raise ConfigError(
                f'{where}.tls: expected "none" (a plain relay), "starttls" or "implicit"'
                f" (TLS from the start, port 465), got {tls!r}"
            )
        if starttls is not None and starttls != (tls == "starttls"):
            raise ConfigError(f"{where}: tls = {tls!r} contradicts starttls = {starttls}")
        return tls
    if tls is not None and not isinstance(tls, bool):
        raise ConfigError(f'{where}.tls: expected "none", "starttls" or "implicit", got {tls!r}')
    if tls:
        if starttls:
            raise ConfigError(f"{where}: starttls and tls exclude each other; choose one")
        return "implicit"
    if starttls is None:
        return default
    return "starttls" if starttls else "none"


def _smtp(read: _Reader) -> SmtpSettings:
    read.only(
        "host", "port", "sender", "to", "starttls", "tls", "username", "password_env", "timeout"
    )
    mode = tls_mode(read.data, read.where, "starttls")
    tls, starttls = mode == "implicit", mode == "starttls"
    settings = SmtpSettings(
        host=read.required_string("host"),
        sender=read.required_string("sender"),
        to=read.addresses("to"),
        port=read.port("port", 465 if tls else 587),
        starttls=starttls,
        tls=tls,
        username=read.string("username", None),
        password_env=read.string("password_env", None),
        timeout=read.number("timeout", 30.0),
    )
    try:
        check_smtp(settings.to, starttls, tls, settings.username, settings.password_env)
    except ConfigError as exc:
        raise ConfigError(f"{read.where}: {exc}") from None
    return settings


class _Reader:
    """Typed reads from one TOML table, with errors naming the file and the dotted key."""

    def __init__(self, data: Any, source: str, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: {path}: expected a table")
        self.data: Mapping[str, Any] = data
        self.source, self.path = source, path

    @property
    def where(self) -> str:
        return f"{self.source}: {self.path}"

    def at(self, key: str) -> str:
        name = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
        return f"{self.source}: {self.path}.{name}"

    def only(self, *keys: str) -> None:
        for key in self.data:
            if key not in keys:
                raise ConfigError(f"{self.at(key)}: unknown key (expected {', '.join(keys)})")

    def _typed(self, key: str, kind: type | tuple[type, ...], what: str, default: Any) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{self.at(key)}: expected {what}, got {value!r}")
        return value

    def string(self, key: str, default: Any) -> Any:
        value = self._typed(key, str, "a string", default)
        if key in self.data and not value.strip():
            raise ConfigError(f"{self.at(key)}: expected a non-empty string")
        return value

    def required_string(self, key: str) -> str:
        if key not in self.data:
            raise ConfigError(f"{self.at(key)}: missing (a string is required)")
        value: str = self.string(key, None)
        return value

    def count(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(
                f"{self.at(key)}: expected a whole number of at least 1, got {value!r}"
            )
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value: bool = self._typed(key, bool, "true or false", default)
        return value

    def number(self, key: str, default: float) -> float:
        value = self._typed(key, (int, float), "a number", default)
        if value <= 0:
            raise ConfigError(f"{self.at(key)}: expected a number above zero, got {value!r}")
        return float(value)

    def port(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
            raise ConfigError(f"{self.at(key)}: expected an integer from 1 to 65535, got {value!r}")
        return value

    def duration(self, key: str, default: str) -> float:
        return parse_duration(self.data.get(key, default), self.at(key))

    def addresses(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{self.at(key)}: expected a list of e-mail addresses")
        for item in value:
            if not isinstance(item, str) or "@" not in item:
                raise ConfigError(f"{self.at(key)}: {item!r} is not an e-mail address")
        return tuple(value)

    def strings(self, key: str) -> dict[str, str]:
        table = self.table(key)
        for name, value in table.data.items():
            if not isinstance(value, str):
                raise ConfigError(f"{table.at(name)}: expected a string, got {value!r}")
        return dict(table.data)

    def table(self, key: str) -> _Reader:
        return _Reader(self.data.get(key, {}), self.source, f"{self.path}.{key}")

    def tables(self, key: str) -> list[_Reader]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise ConfigError(
                f"{self.at(key)}: expected an array of tables ([[{self.path}.{key}]])"
            )
        return [
            _Reader(item, self.source, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)
        ]
