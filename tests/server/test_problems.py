"""One table for exit codes and HTTP problems, read both ways."""

from __future__ import annotations

import httpx
import pytest

import batonflow as bf
from batonflow._problems import OUTCOMES, ExitCode, exit_code_for, problem_for
from batonflow.cli import EXIT_CODES


def test_the_cli_and_the_api_read_one_table() -> None:
    assert {cls: row.exit for cls, row in OUTCOMES.items()} == EXIT_CODES
    for exc, status, code in [
        (bf.RunNotFound("no run 'x'"), 404, ExitCode.NOT_FOUND),
        (bf.WorkflowNotFound("no flow"), 404, ExitCode.USAGE),
        (bf.InvalidTransition("done"), 409, ExitCode.INVALID_TRANSITION),
        (bf.IdempotencyConflict("k"), 409, ExitCode.CONFLICT),
        (bf.EngineLocked("held"), 503, ExitCode.ENGINE_LOCKED),
        (bf.LeaseLost("gone"), 503, ExitCode.STORE_ERROR),
        (bf.AccessDenied("no"), 403, ExitCode.FORBIDDEN),
    ]:
        problem = problem_for(exc, instance="/api/v1/x")
        assert (problem["status"], exit_code_for(exc)) == (status, code)
        assert problem["detail"] == str(exc)
        assert problem["retryable"] is exc.retryable


def test_an_unexpected_error_shows_no_detail() -> None:
    problem = problem_for(KeyError("secret-token-value"))
    assert problem["status"] == 500
    assert "secret" not in problem["detail"]


@pytest.mark.parametrize(
    ("slug", "status", "error"),
    [
        ("run-not-found", 404, bf.RunNotFound),
        ("idempotency-conflict", 409, bf.IdempotencyConflict),
        ("invalid-transition", 409, bf.InvalidTransition),
        ("unauthenticated", 401, bf.AccessDenied),
        ("store-unavailable", 503, bf.StoreError),
        ("something-new", 418, bf.BatonflowError),
    ],
)
async def test_the_client_raises_the_class_the_server_did(
    slug: str, status: int, error: type[Exception]
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"type": f"https://batonflow.dev/problems/{slug}", "title": "t", "status": status,
                "detail": "what happened"}  # fmt: skip
        return httpx.Response(
            status, json=body, headers={"content-type": "application/problem+json"}
        )

    async with bf.Client(
        "http://service", token="bf_x", transport=httpx.MockTransport(answer)
    ) as c:
        with pytest.raises(error, match="what happened"):
            await c.get_run("r1")
