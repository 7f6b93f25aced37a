"""Where the Serverless Workflow specification kit is (schema, examples, CTK features).

It is not part of this repository: it is found at ``$BATONFLOW_SPEC_DIR`` when set, else at
``../shared/spec/serverless-workflow`` beside the clone. When it is missing, the tests that
need it are skipped with a message saying where to put it, except in CI (``CI`` set to
anything but ``false``/``0``), where a missing kit is a failure: CI never skips them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ENV = "BATONFLOW_SPEC_DIR"
BESIDE = Path(__file__).resolve().parents[3] / "shared" / "spec" / "serverless-workflow"


def spec_dir() -> Path:
    """The kit's directory (it may not exist)."""
    named = os.environ.get(ENV)
    return Path(named).expanduser() if named else BESIDE


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def missing_message(path: Path) -> str:
    return (
        f"the Serverless Workflow spec kit is missing ({path} does not exist): put a checkout "
        f"of it (with v1.0.3/ and main-4d42471/) at {BESIDE}, or set {ENV} to its directory"
    )


def spec_path(*parts: str) -> Path:
    """A path in the kit. Missing: skip the test (or the module, when called at import), or,
    in CI, fail it."""
    path = spec_dir().joinpath(*parts)
    if not path.exists():
        if in_ci():
            pytest.fail(missing_message(path), pytrace=False)
        pytest.skip(missing_message(path), allow_module_level=True)
    return path


def spec_files(*parts: str, pattern: str = "*.yaml") -> list[Any]:
    """The kit's files for ``pytest.mark.parametrize``. Without the kit: one parameter,
    ``None``, whose test must call :func:`spec_path` first (and so skips, or fails in CI)."""
    folder = spec_dir().joinpath(*parts)
    if folder.is_dir():
        return sorted(folder.glob(pattern))
    return [pytest.param(None, id="spec-kit-missing")]
