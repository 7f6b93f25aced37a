"""The public surface is exactly what batonflow/__init__.py says, and importing it is light."""

from __future__ import annotations

import subprocess
import sys

import batonflow as bf

EXPECTED = {
    "TRANSITIONS", "AccessDenied", "ApprovalRefused", "AttemptRecord", "BatonflowError",
    "ChildWorkflowFailed", "Client", "Clock", "ConfigError", "ConnectorDisabled", "Context",
    "DeadlineExceeded", "EgressDenied", "Engine", "EngineLocked", "EventRecord",
    "EventTimeout", "IdempotencyConflict", "InvalidTransition", "LeaseLost",
    "NonDeterminismError", "Queue", "RateLimit", "RecordedError", "RemoteRun", "Retry",
    "RunCancelled",
    "RunFailed", "RunHandle", "RunNotFound",
    "RunRecord", "RunStatus", "RunTimeout", "SQLiteStore", "SerializationError", "Step",
    "StepInfo", "StepKind", "StepRecord", "StepStatus", "StepTimeout", "Store", "StoreError",
    "SystemClock", "Workflow", "WorkflowNotFound", "__version__", "current_step",
    "load_workflow", "make_client", "open_store", "problem_of", "step", "workflow",
    "FailedAttempt", "Hook", "RunEnded", "RunStarted", "StoreFailing", "StoreRecovered",
}  # fmt: skip


def test_all_is_pinned_and_real() -> None:
    assert set(bf.__all__) == EXPECTED
    for name in bf.__all__:
        assert hasattr(bf, name), name


def test_every_error_says_whether_it_is_retryable() -> None:
    errors = [getattr(bf, n) for n in bf.__all__ if n.endswith(("Error", "Timeout", "Failed"))]
    governance = [bf.AccessDenied, bf.ApprovalRefused, bf.ConnectorDisabled, bf.EgressDenied]
    for cls in [*errors, *governance, bf.RunNotFound, bf.RunCancelled, bf.LeaseLost,
                bf.EngineLocked]:  # fmt: skip
        assert issubclass(cls, bf.BatonflowError), cls
        assert isinstance(cls.retryable, bool), cls
    assert bf.StoreError.retryable
    assert bf.StepTimeout.retryable
    assert not bf.ConfigError.retryable
    assert not bf.EngineLocked.retryable


def test_import_is_light() -> None:
    code = (
        "import sys, batonflow; "
        "heavy = {'typer', 'rich', 'click', 'pytest', 'psycopg', 'httpx'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
