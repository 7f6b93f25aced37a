"""Reading a TOML configuration file, with errors that name it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from batonflow.errors import ConfigError

__all__ = ["read_toml"]


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed file; ConfigError naming it when it is missing, unreadable or not TOML."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
