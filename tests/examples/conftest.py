"""Load the example programs (their directories have hyphens, so they are not packages)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from providers.fixtures import client, provider, server

__all__ = ["client", "provider", "server"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(relative: str) -> ModuleType:
    """The module at ``examples/<relative>``, imported under a unique name."""
    path = EXAMPLES / relative
    name = "example_" + relative.replace("/", "_").replace("-", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def crm_module() -> ModuleType:
    return load_example("client-enquiries/crm.py")


@pytest.fixture
def crm(crm_module: ModuleType, tmp_path: Path) -> Iterator[str]:
    """The example CRM, started for real on loopback with a fresh database: its base URL."""
    url, stop = crm_module.start_crm(tmp_path / "crm.db")
    try:
        yield url
    finally:
        stop()


@pytest.fixture(scope="session")
def run_module() -> ModuleType:
    return load_example("client-enquiries/run.py")
