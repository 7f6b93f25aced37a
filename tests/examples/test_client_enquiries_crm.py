"""The client-enquiries example's CRM service, started for real on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from .conftest import EXAMPLES

ENQUIRY = {
    "from": "ann@example.com",
    "subject": "Where is my order?",
    "summary": "Asks when order 1234 will arrive.",
    "category": "routine question",
    "run_id": "run-1",
}


@pytest.fixture
def http(crm: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=crm, timeout=10) as client:
        yield client


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return str(body["detail"])


def test_an_enquiry_is_logged_read_and_updated(http: httpx.Client) -> None:
    created = http.post("/enquiries", json=ENQUIRY)
    assert created.status_code == 201
    enquiry = created.json()
    assert enquiry["id"] == "ENQ-00001"
    assert enquiry["status"] == "open"
    assert {k: enquiry[k] for k in ENQUIRY} == ENQUIRY

    assert http.get(f"/enquiries/{enquiry['id']}").json() == enquiry

    patched = http.patch(
        f"/enquiries/{enquiry['id']}", json={"status": "resolved", "resolution": "Replied."}
    )
    assert patched.status_code == 200
    assert patched.json()["status"] == "resolved"
    assert patched.json()["resolution"] == "Replied."
    assert http.get(f"/enquiries/{enquiry['id']}").json()["status"] == "resolved"

    only_resolution = http.patch(f"/enquiries/{enquiry['id']}", json={"resolution": "Sent."})
    assert only_resolution.json()["status"] == "resolved"  # status left as it was
    assert only_resolution.json()["resolution"] == "Sent."


def test_enquiries_are_listed_by_status(http: httpx.Client) -> None:
    first = http.post("/enquiries", json=ENQUIRY).json()["id"]
    second = http.post("/enquiries", json={**ENQUIRY, "category": "complaint"}).json()["id"]
    http.patch(f"/enquiries/{second}", json={"status": "awaiting-approval"})

    def ids(query: str) -> list[str]:
        response = http.get(f"/enquiries{query}")
        assert response.status_code == 200
        return [e["id"] for e in response.json()["enquiries"]]

    assert ids("") == [first, second]
    assert ids("?status=open") == [first]
    assert ids("?status=awaiting-approval") == [second]
    assert ids("?status=resolved") == []
    assert "status: must be one of" in problem(http.get("/enquiries?status=done"), 400)


def test_an_idempotency_key_logs_an_enquiry_once(http: httpx.Client) -> None:
    headers = {"Idempotency-Key": "run-1:/do/1/log"}
    first = http.post("/enquiries", json=ENQUIRY, headers=headers)
    again = http.post("/enquiries", json=ENQUIRY, headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(http.get("/enquiries").json()["enquiries"]) == 1

    other = http.post("/enquiries", json=ENQUIRY, headers={"Idempotency-Key": "run-2:/do/1/log"})
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]

    reused = http.post("/enquiries", json={**ENQUIRY, "subject": "Other"}, headers=headers)
    assert "already used for a different enquiry (ENQ-00001)" in problem(reused, 409)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({k: v for k, v in ENQUIRY.items() if k != "from"}, "from: required"),
        ({**ENQUIRY, "from": "not-an-address"}, "from: 'not-an-address' is not an e-mail"),
        ({**ENQUIRY, "subject": 42}, "subject: expected a string, got int"),
        ({**ENQUIRY, "category": "  "}, "category: must not be empty"),
        ({**ENQUIRY, "colour": "red"}, "unknown field 'colour'"),
        ({**ENQUIRY, "summary": "x" * 10_001}, "summary: longer than 10000 characters"),
    ],
)
def test_a_bad_enquiry_is_refused(http: httpx.Client, body: dict[str, Any], detail: str) -> None:
    assert detail in problem(http.post("/enquiries", json=body), 400)
    assert http.get("/enquiries").json()["enquiries"] == []


def test_bad_bodies_and_updates_are_refused(http: httpx.Client) -> None:
    enquiry = http.post("/enquiries", json=ENQUIRY).json()["id"]
    path = f"/enquiries/{enquiry}"
    not_json = http.post(
        "/enquiries", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert "body is not valid JSON" in problem(not_json, 400)
    assert "body must be a JSON object" in problem(http.post("/enquiries", json=[1]), 400)
    text = http.post("/enquiries", content=b"{}", headers={"Content-Type": "text/plain"})
    assert "Content-Type must be application/json" in problem(text, 415)
    assert "status: must be one of" in problem(http.patch(path, json={"status": "done"}), 400)
    assert "'category' cannot be changed" in problem(http.patch(path, json={"category": "x"}), 400)
    assert "nothing to change" in problem(http.patch(path, json={}), 400)
    huge = http.post("/enquiries", json={**ENQUIRY, "summary": "x" * 70_000})
    assert "body over 65536 bytes" in problem(huge, 413)
    assert http.get(path).json()["status"] == "open"  # nothing was changed


def test_unknown_enquiries_and_paths_are_404(http: httpx.Client) -> None:
    assert "no enquiry ENQ-00042" in problem(http.get("/enquiries/ENQ-00042"), 404)
    assert "ids look like ENQ-00001" in problem(http.get("/enquiries/42"), 404)
    missing = http.patch("/enquiries/ENQ-00042", json={"status": "resolved"})
    assert "no enquiry ENQ-00042" in problem(missing, 404)
    assert "POST /enquiries" in problem(http.post("/tickets", json=ENQUIRY), 404)


def test_enquiries_outlive_a_restart(crm_module: ModuleType, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    url, stop = crm_module.start_crm(db)
    try:
        enquiry = httpx.post(f"{url}/enquiries", json=ENQUIRY).json()
    finally:
        stop()
    url, stop = crm_module.start_crm(db)
    try:
        assert httpx.get(f"{url}/enquiries/{enquiry['id']}").json() == enquiry
    finally:
        stop()


@pytest.mark.slow
def test_it_runs_as_a_program_and_prints_its_url(tmp_path: Path) -> None:
    command = [sys.executable, str(EXAMPLES / "client-enquiries" / "crm.py"), "--port", "0",
               "--db", str(tmp_path / "crm.db")]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as program:
        try:
            assert program.stdout is not None
            url = program.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            created = httpx.post(f"{url}/enquiries", json=ENQUIRY)
            assert created.status_code == 201
            assert httpx.get(f"{url}/enquiries/{created.json()['id']}").status_code == 200
        finally:
            program.terminate()
    assert (tmp_path / "crm.db").exists()
