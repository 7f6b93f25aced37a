"""Reading a TOML configuration file, with errors that name it."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from batonflow.errors import ConfigError

__all__ = ["read_toml"]


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed file; ConfigError naming it when it is missing, unreadable or not TOML."""
    source = str(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{source}: not a regular file (a directory, a FIFO or a device)")
        with open(path, "rb") as file:
            return tomllib.load(file)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not valid TOML: not UTF-8 text (byte {exc.start}); is it a binary file?"
        ) from None
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
