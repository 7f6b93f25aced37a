"""A webhook's settings: ``[triggers.webhooks.NAME]`` or a document's
``metadata.batonflow.webhook``, and where its secrets are read from (see :mod:`._webhook`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batonflow.core import Engine
from batonflow.errors import ConfigError
from batonflow.triggers._scheduler import Target

__all__ = ["WebhookSettings", "parse_webhook", "publishing_target"]


@dataclass(frozen=True)
class WebhookSettings:
    """``secret_env``: variables holding the secrets (``whsec_...``, several per variable
    separated by spaces); ``secret_file``: a file readable by its owner only, one secret a
    line. Both are read at each delivery: rotating is adding the new secret, moving senders
    over, then removing the old one. ``signature = "none"`` accepts unsigned deliveries (only
    when configured so). ``publish = true``: the hook starts no workflow of its own; each
    CloudEvent it receives is published (to ``listen`` tasks and ``schedule.on`` documents)."""

    secret_env: tuple[str, ...] = ()
    secret_file: str | None = None
    signature: str = "standard"
    tolerance: float = 300.0
    max_body: int = 1_000_000
    alert_after: int = 5
    alert_window: float = 60.0
    publish: bool = False

    def __post_init__(self) -> None:
        if self.signature not in ("standard", "none"):
            raise ConfigError(f"signature {self.signature!r}: expected standard or none")
        has_secret = bool(self.secret_env) or self.secret_file is not None
        if self.signature == "standard" and not has_secret:
            raise ConfigError(
                "name the hook's secrets with secret_env = 'VARIABLE' (or a list) or"
                " secret_file = 'PATH'; unsigned hooks need signature = 'none'"
            )
        if self.signature == "none" and has_secret:
            raise ConfigError("signature = 'none' with secrets: remove one or the other")
        if self.tolerance <= 0 or self.max_body < 1 or self.alert_after < 1:
            raise ConfigError("tolerance, max_body and alert_after: expected positive values")

    def secrets(self) -> list[str]:
        """The secrets valid now (ConfigError when none can be read: the hook refuses all)."""
        found: list[str] = []
        for variable in self.secret_env:
            found += os.environ.get(variable, "").split()
        if self.secret_file is not None:
            found += _read_private(Path(self.secret_file)).split()
        if not found:
            where = ", ".join([f"${v}" for v in self.secret_env] + [self.secret_file or ""])
            raise ConfigError(f"no webhook secret is set ({where.strip(', ')})")
        return found


def _read_private(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfigError(f"webhook secret file {path}: cannot read it ({exc.strerror})") from None
    with os.fdopen(fd, encoding="utf-8") as file:
        mode = os.fstat(file.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"webhook secret file {path} can be read by other accounts (mode"
                f" {stat.S_IMODE(mode):04o}); make it private: chmod 600 {path}"
            )
        return file.read()


def parse_webhook(entry: Mapping[str, Any], where: str) -> WebhookSettings:
    """``[triggers.webhooks.NAME]`` (or ``metadata.batonflow.webhook``): secret_env (a name or
    a list), secret_file, signature, tolerance, max_body, alert_after, alert_window."""
    known = {"secret_env", "secret_file", "signature", "tolerance", "max_body", "alert_after",
             "alert_window", "publish", "name", "workflow", "document"}  # fmt: skip
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    env = entry.get("secret_env", ())
    env = (env,) if isinstance(env, str) else env
    if not isinstance(env, (list, tuple)) or not all(isinstance(v, str) and v for v in env):
        raise ConfigError(f"{where}.secret_env: expected a variable name or a list of them")
    options = {k: entry[k] for k in ("signature", "tolerance", "max_body", "alert_after",
                                     "alert_window", "secret_file", "publish")
               if k in entry}  # fmt: skip
    if options.get("publish") not in (None, True, False):
        raise ConfigError(f"{where}.publish: expected true or false")
    try:
        return WebhookSettings(secret_env=tuple(env), **options)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def publishing_target() -> Target:
    """What a ``publish = true`` hook names instead of a workflow (it starts none itself)."""

    async def start(engine: Engine, input: Any, run_id: str, key: str) -> str:
        raise ConfigError("a publishing hook starts no workflow of its own")

    return Target("(publishes CloudEvents)", start)
