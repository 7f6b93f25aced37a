"""A small CRM for the client-enquiries example: enquiries in SQLite behind a JSON HTTP API.

It stands in for the system of record a real deployment would call (Salesforce, HubSpot, a
ticketing tool) and behaves like a careful one: it validates what it is sent, and a POST that
carries an ``Idempotency-Key`` header creates at most one enquiry, so a workflow step retried
after a crash does not log the same e-mail twice.

    POST  /enquiries                {from, subject, summary, category, run_id?}
                                    -> 201 {id, status: "open", ...}; 200 and the same enquiry
                                       when the Idempotency-Key was seen before
    GET   /enquiries/{id}           -> 200 the enquiry, 404 when unknown
    PATCH /enquiries/{id}           {status?, resolution?} -> 200 the updated enquiry
    GET   /enquiries?status=open    -> 200 {"enquiries": [...]}

Errors are RFC 7807 problem details (``application/problem+json``) saying what was wrong.
Run it on its own (it prints its URL)::

    python examples/client-enquiries/crm.py --port 0 --db crm.db

or start it from Python: ``url, stop = start_crm("crm.db")``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sqlite3
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["STATUSES", "CrmError", "CrmStore", "start_crm"]

#: The life of an enquiry: logged (open), waiting for a person, answered, or filed away.
STATUSES = ("open", "awaiting-approval", "resolved", "filed")

_MAX_BODY = 64 * 1024
_MAX_TEXT = 10_000
_ID = re.compile(r"^ENQ-(\d{1,12})$")
_FIELDS = {"from": True, "subject": True, "summary": False, "category": True, "run_id": False}
_PATCHABLE = ("status", "resolution")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS enquiries (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    summary TEXT NOT NULL,
    category TEXT NOT NULL,
    run_id TEXT,
    status TEXT NOT NULL,
    resolution TEXT,
    idempotency_key TEXT UNIQUE,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""


class CrmError(Exception):
    """A request the CRM refuses: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class CrmStore:
    """The enquiries table. One connection shared by the server's threads, behind a lock."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, data: dict[str, Any], key: str | None) -> tuple[dict[str, Any], bool]:
        """(the enquiry, whether it is new). A known ``key`` returns the enquiry it made."""
        fields = _check_new(data)
        request = json.dumps(fields, sort_keys=True)
        now = _now()
        with self._lock:
            if key is not None:
                row = self._db.execute(
                    "SELECT * FROM enquiries WHERE idempotency_key=?", (key,)
                ).fetchone()
                if row is not None:
                    if row["request"] != request:
                        raise CrmError(
                            HTTPStatus.CONFLICT,
                            f"Idempotency-Key {key!r} was already used for a different "
                            f"enquiry ({_public_id(row['n'])}); use a new key for a new enquiry",
                        )
                    return _record(row), False
            cursor = self._db.execute(
                "INSERT INTO enquiries (sender, subject, summary, category, run_id, status,"
                " idempotency_key, request, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                (
                    fields["from"], fields["subject"], fields.get("summary", ""),
                    fields["category"], fields.get("run_id"), key, request, now, now,
                ),
            )  # fmt: skip
            return self._get(int(cursor.lastrowid or 0)), True

    def get(self, enquiry_id: str) -> dict[str, Any]:
        with self._lock:
            return self._get(_number(enquiry_id))

    def update(self, enquiry_id: str, data: dict[str, Any]) -> dict[str, Any]:
        changes = _check_patch(data)
        number = _number(enquiry_id)
        with self._lock:
            self._get(number)  # 404 before anything else
            assignments = ", ".join(f"{column}=?" for column in changes)
            self._db.execute(
                f"UPDATE enquiries SET {assignments}, updated_at=? WHERE n=?",
                (*changes.values(), _now(), number),
            )
            return self._get(number)

    def search(self, status: str | None) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise CrmError(
                HTTPStatus.BAD_REQUEST,
                f"status: must be one of {', '.join(STATUSES)}, got {status!r}",
            )
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM enquiries WHERE ? IS NULL OR status=? ORDER BY n", (status, status)
            ).fetchall()
        return [_record(row) for row in rows]

    def _get(self, number: int) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM enquiries WHERE n=?", (number,)).fetchone()
        if row is None:
            raise CrmError(HTTPStatus.NOT_FOUND, f"no enquiry {_public_id(number)}")
        return _record(row)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _public_id(number: int) -> str:
    return f"ENQ-{number:05d}"


def _number(enquiry_id: str) -> int:
    match = _ID.match(enquiry_id)
    if match is None:
        raise CrmError(HTTPStatus.NOT_FOUND, f"no enquiry {enquiry_id!r} (ids look like ENQ-00001)")
    return int(match.group(1))


def _record(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": _public_id(row["n"]),
        "from": row["sender"],
        "subject": row["subject"],
        "summary": row["summary"],
        "category": row["category"],
        "run_id": row["run_id"],
        "status": row["status"],
        "resolution": row["resolution"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _text(data: dict[str, Any], key: str, *, required: bool) -> str | None:
    if key not in data or data[key] is None:
        if required:
            raise CrmError(HTTPStatus.BAD_REQUEST, f"{key}: required")
        return None
    value = data[key]
    if not isinstance(value, str):
        raise CrmError(
            HTTPStatus.BAD_REQUEST, f"{key}: expected a string, got {type(value).__name__}"
        )
    if required and not value.strip():
        raise CrmError(HTTPStatus.BAD_REQUEST, f"{key}: must not be empty")
    if len(value) > _MAX_TEXT:
        raise CrmError(HTTPStatus.BAD_REQUEST, f"{key}: longer than {_MAX_TEXT} characters")
    return value


def _check_new(data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        known = ", ".join(_FIELDS)
        raise CrmError(HTTPStatus.BAD_REQUEST, f"unknown field {unknown[0]!r} (known: {known})")
    fields = {key: _text(data, key, required=required) for key, required in _FIELDS.items()}
    sender = fields["from"] or ""
    if "@" not in sender or sender.startswith("@") or sender.endswith("@"):
        raise CrmError(HTTPStatus.BAD_REQUEST, f"from: {sender!r} is not an e-mail address")
    return {key: value for key, value in fields.items() if value is not None}


def _check_patch(data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(_PATCHABLE))
    if unknown:
        raise CrmError(
            HTTPStatus.BAD_REQUEST,
            f"field {unknown[0]!r} cannot be changed (only {', '.join(_PATCHABLE)})",
        )
    if not data:
        raise CrmError(HTTPStatus.BAD_REQUEST, "nothing to change: give status and/or resolution")
    status = _text(data, "status", required=False)
    if status is not None and status not in STATUSES:
        raise CrmError(
            HTTPStatus.BAD_REQUEST, f"status: must be one of {', '.join(STATUSES)}, got {status!r}"
        )
    changes = {"status": status, "resolution": _text(data, "resolution", required=False)}
    return {key: value for key, value in changes.items() if key in data}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def do_PATCH(self) -> None:
        self._answer(self._patch)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _get(self) -> tuple[HTTPStatus, Any]:
        url = urlsplit(self.path)
        if url.path == "/enquiries":
            query = parse_qs(url.query)
            status = query.get("status", [None])[-1]
            return HTTPStatus.OK, {"enquiries": self.server.store.search(status)}
        return HTTPStatus.OK, self.server.store.get(self._id(url.path))

    def _post(self) -> tuple[HTTPStatus, Any]:
        if urlsplit(self.path).path != "/enquiries":
            raise CrmError(HTTPStatus.NOT_FOUND, f"cannot POST to {self.path}; POST /enquiries")
        key = self.headers.get("Idempotency-Key")
        if key is not None and not 0 < len(key) <= 255:
            raise CrmError(HTTPStatus.BAD_REQUEST, "Idempotency-Key: 1 to 255 characters")
        record, created = self.server.store.create(self._json(), key)
        return (HTTPStatus.CREATED if created else HTTPStatus.OK), record

    def _patch(self) -> tuple[HTTPStatus, Any]:
        enquiry_id = self._id(urlsplit(self.path).path)
        return HTTPStatus.OK, self.server.store.update(enquiry_id, self._json())

    def _id(self, path: str) -> str:
        prefix, _, enquiry_id = path.rpartition("/")
        if prefix != "/enquiries" or not enquiry_id:
            raise CrmError(HTTPStatus.NOT_FOUND, f"no resource {path} (see /enquiries)")
        return enquiry_id

    def _json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True  # the unread body must not be taken for a request
            raise CrmError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {_MAX_BODY} bytes")
        self._body_read = True
        raw = self.rfile.read(length)  # read before any refusal, to keep the connection usable
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise CrmError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be application/json, got {kind or 'none'!r}",
            )
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CrmError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CrmError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return data

    def _answer(self, handler: Callable[[], tuple[HTTPStatus, Any]]) -> None:
        self._body_read = False
        try:
            status, body = handler()
            kind = "application/json"
        except CrmError as error:
            if not self._body_read and self.command != "GET":
                self.close_connection = True  # its unread body must not be taken for a request
            status, kind = error.status, "application/problem+json"
            body = {"type": "about:blank", "title": status.phrase, "status": int(status),
                    "detail": error.detail}  # fmt: skip
        except ValueError:  # a Content-Length that is not a number
            status, kind = HTTPStatus.BAD_REQUEST, "application/problem+json"
            body = {"type": "about:blank", "title": status.phrase, "status": 400,
                    "detail": "bad Content-Length header"}  # fmt: skip
            self.close_connection = True
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, store: CrmStore, *, verbose: bool) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.store = store
        self.verbose = verbose


def start_crm(
    db_path: str | Path, port: int = 0, *, verbose: bool = False
) -> tuple[str, Callable[[], None]]:
    """Serve the CRM on loopback from a background thread: ``(base URL, stop)``."""
    store = CrmStore(db_path)
    server = _Server(port, store, verbose=verbose)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="crm", daemon=True
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()
        store.close()

    return f"http://127.0.0.1:{server.server_address[1]}", stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The client-enquiries example's CRM service.")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--db", default="crm.db", help="the SQLite file (created if missing)")
    args = parser.parse_args(argv)
    store = CrmStore(args.db)
    server = _Server(args.port, store, verbose=True)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()


if __name__ == "__main__":
    main()
