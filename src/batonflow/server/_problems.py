"""Errors as RFC 9457 ``application/problem+json``, from the one table in
:mod:`batonflow._problems` (the table the command line's exit codes come from)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

import batonflow as bf
from batonflow._problems import PROBLEM_BASE, outcome_for, problem_for

__all__ = ["PROBLEM_BASE", "NotFound", "ProblemResponse", "TooLarge", "install", "problem_response"]

log = logging.getLogger("batonflow.server")
PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    retryable: bool = False


def _documented(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}},
    }


#: The problems any API operation may answer, documented once for the whole API.
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Invalid input"),
    401: _documented("No valid bearer token"),
    403: _documented("The caller's roles do not allow it"),
    404: _documented("Not found"),
    409: _documented("The resource's state does not allow it"),
    413: _documented("The request body is too large"),
    422: _documented("The request does not match the schema"),
    503: _documented("The store is unavailable or the request timed out; retry"),
}


class NotFound(bf.BatonflowError):
    """No such approval, identity, workflow document or other named thing (404)."""


class TooLarge(bf.BatonflowError):
    """A request body larger than the server accepts (413)."""


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_response(problem: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return ProblemResponse(problem, status_code=int(problem["status"]), headers=headers)


async def _batonflow_error(request: Request, exc: Exception) -> Any:
    problem = problem_for(exc, instance=request.url.path)
    if problem["status"] >= 500 and outcome_for(exc).slug == "internal":
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if problem["status"] == 401 else None
    if problem["status"] == 503:
        headers = {"Retry-After": "1"}
    return problem_response(problem, headers)


async def _validation_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": "/".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
    problem = {
        "type": PROBLEM_BASE + "invalid-input", "title": "Invalid input", "status": 422,
        "detail": detail, "instance": request.url.path, "retryable": False, "errors": errors,
    }  # fmt: skip
    return problem_response(problem)


async def _http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(
        exc.status_code, "http-error"
    )
    problem = {
        "type": PROBLEM_BASE + slug, "title": str(exc.detail), "status": exc.status_code,
        "detail": str(exc.detail), "instance": request.url.path, "retryable": False,
    }  # fmt: skip
    return problem_response(problem, dict(exc.headers) if exc.headers else None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(bf.BatonflowError, _batonflow_error)
    app.add_exception_handler(OSError, _batonflow_error)
    app.add_exception_handler(Exception, _batonflow_error)
