"""The ``batonflow`` command line (Typer + Rich): a thin shell over the public API.

``main`` is the console-script entry point; ``app`` is the Typer application (for tests and
for embedding: ``typer.testing.CliRunner().invoke(app, [...])``).
"""

from __future__ import annotations

from batonflow.cli import _dsl, _io  # noqa: F401 - _dsl registers the workflow-document commands
from batonflow.cli._app import app
from batonflow.cli._exit_codes import EXIT_CODES, ExitCode, exit_code_for

__all__ = ["EXIT_CODES", "ExitCode", "app", "exit_code_for", "main"]


def main() -> None:
    """Run the command line (``batonflow ...``)."""
    _io.tolerant_streams()
    app()
