"""Exit codes: every command exits through :func:`exit_code_for`, which reads the one table
shared with the HTTP API (:mod:`batonflow._problems`)."""

from __future__ import annotations

from batonflow._problems import OUTCOMES, ExitCode, exit_code_for

#: error class (or its "module:qualname") -> exit code, read from the shared table.
EXIT_CODES = {cls: row.exit for cls, row in OUTCOMES.items()}

__all__ = ["EXIT_CODES", "ExitCode", "exit_code_for"]
