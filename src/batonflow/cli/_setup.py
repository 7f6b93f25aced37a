"""The configuration the command line runs with (``--config``, see
:mod:`batonflow.configuration`)."""

from __future__ import annotations

import batonflow as bf
from batonflow import configuration
from batonflow.configuration import CONFIG_ENV, Session, Setup

__all__ = ["CONFIG_ENV", "Session", "Setup", "acting", "choose", "current"]


async def acting(store: bf.Store, token: str | None, action: str) -> str:
    """Who does ``action`` (:func:`batonflow.configuration.acting`); the configuration in
    effect is put on the audit trail first if it changed, attributed to them."""
    name = await configuration.acting(store, token, action)
    await current().record_policy(store, name)
    return name


_CHOSEN: list[Setup] = []


def choose(path: str | None) -> None:
    """Load and check the configuration now (``--config``, else ``$BATONFLOW_CONFIG``, else
    ``./batonflow.toml``), so a mistake in it is reported before a command does anything."""
    _CHOSEN[:] = [Setup.load(path)]


def current() -> Setup:
    """The configuration this command runs with (the root callback chose it; a sub-app used
    on its own loads the default each time)."""
    return _CHOSEN[0] if _CHOSEN else Setup.load()
