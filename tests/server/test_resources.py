"""Every resource group over HTTP against a real ``batonflow serve`` process (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from batonflow.governance._identity import REFUSALS_PER_MINUTE
from server.harness import Server, make_token, until

pytestmark = pytest.mark.slow

DOCUMENT = """\
document: {dsl: '1.0.3', namespace: office, name: refund, version: '1.0.0'}
do:
  - ask:
      call: approval
      with:
        title: Refund?
        approvers: {groups: [finance]}
        options: [approve, reject]
        require_comment: [reject]
  - route:
      switch:
        - approved: {when: '${ .outcome == "approve" }', then: answer}
        - otherwise: {then: end}
  - answer:
      set:
        decided: ${ .outcome }
"""


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return str(tmp_path / "runs.db")


@pytest.fixture
async def admin(sqlite_db: str) -> str:
    return await make_token(sqlite_db)


@pytest.fixture
def served(sqlite_db: str, admin: str, tmp_path: Path) -> Any:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "refund.yaml").write_text(DOCUMENT)
    running = Server(sqlite_db, tmp_path, ("--documents", str(folder))).start()
    try:
        yield running
    finally:
        running.stop()


async def test_only_health_is_open_and_refusals_are_audited(
    served: Server, sqlite_db: str, admin: str
) -> None:
    viewer = await make_token(sqlite_db, "vic", ("viewer",))
    expired = await make_token(sqlite_db, "vic", expires_in=0.001)
    async with served.client(None) as anonymous:
        assert (await anonymous.get("/healthz")).json()["status"] == "ok"
        assert (await anonymous.get("/readyz")).json()["status"] == "ready"
        refused = await anonymous.get("/api/v1/runs")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["type"].endswith("/unauthenticated")
        assert (await anonymous.get("/metrics")).status_code == 401
    async with served.client(expired) as late:
        assert "expired" in (await late.get("/api/v1/runs")).json()["detail"]
    async with served.client("bf_not-a-token") as bad:
        for _ in range(40):  # a flood: the trail records at most 20 a minute
            assert (await bad.get("/api/v1/runs")).status_code == 401
    async with served.client(viewer) as vic:
        assert (await vic.get("/api/v1/runs")).status_code == 200
        denied = await vic.post("/api/v1/runs", json={"workflow": "greet", "input": {}})
        assert denied.status_code == 403
        assert "needs the role" in denied.json()["detail"]
    async with served.client(admin) as client:
        lines = (await client.get("/api/v1/audit/export")).text.splitlines()
    events = [json.loads(line) for line in lines]
    # a refused sign-in is audited once, as auth.refused, with the request it came with
    signins = [e["data"] for e in events if e["type"] == "batonflow.audit.auth.refused"]
    assert len(signins) == REFUSALS_PER_MINUTE  # the flood is counted past the limit
    assert sum(e["type"] == "batonflow.audit.auth.refused.limited" for e in events) == 1
    assert signins[0] == {
        "method": "GET", "path": "/api/v1/runs", "action": "read", "client": "127.0.0.1",
        "reason": "no bearer token",
    }  # fmt: skip
    assert {s["path"] for s in signins} == {"/api/v1/runs", "/metrics"}
    assert {s["reason"] for s in signins} >= {"unknown token", "no bearer token"}
    assert any(s["reason"].endswith("expired") and "token" in s for s in signins)
    # a missing role is an api.refused, with who asked
    roles = [e for e in events if e["type"] == "batonflow.audit.api.refused"]
    assert [(r["data"]["path"], r["data"]["action"]) for r in roles] == [
        ("/api/v1/runs", "run.start")
    ]


async def test_workflows_documents_and_approvals(
    served: Server, sqlite_db: str, admin: str
) -> None:
    finance = await make_token(sqlite_db, "fay", ("operator",))
    async with served.client(admin) as client:
        await client.post("/api/v1/identities/fay/disable")
        listed = (await client.get("/api/v1/workflows")).json()["items"]
        assert {"name": "office/refund", "kind": "document", "version": "1.0.0"}.items() <= {
            k: v for w in listed if w["name"] == "office/refund" for k, v in w.items()
        }.items()
        assert {w["name"] for w in listed} >= {"greet", "fragile", "waiting"}
        bad = await client.post(
            "/api/v1/workflows/validate",
            content="do: [",
            headers={"content-type": "application/yaml"},
        )
        assert bad.json()["valid"] is False
        assert bad.json()["problems"][0]["line"] == 1
        newer = DOCUMENT.replace("'1.0.0'", "'1.1.0'")
        deployed = await client.post(
            "/api/v1/workflows", content=newer, headers={"content-type": "application/yaml"}
        )
        assert deployed.status_code == 201, deployed.text
        again = await client.post(
            "/api/v1/workflows", content=newer, headers={"content-type": "application/yaml"}
        )
        assert again.status_code == 400
        graph = await client.get("/api/v1/workflows/graph", params={"workflow": "office/refund"})
        assert "title: office/refund 1.1.0" in graph.text  # the latest version
        assert "flowchart TD" in graph.text
        picture = await client.get(
            "/api/v1/workflows/graph", params={"workflow": "office/refund", "format": "svg"}
        )
        assert picture.headers["content-type"] == "image/svg+xml"
        assert picture.text.startswith("<svg")
        assert picture.text.count("<rect") == 5  # start, ask, route, answer, end
        flow = await client.get("/api/v1/workflows/dataflow", params={"workflow": "office/refund"})
        assert flow.status_code == 200, flow.text
        run = (await client.post("/api/v1/runs", json={"workflow": "office/refund"})).json()
        waiting = await until(lambda: _approvals(client))
        approval = quote(waiting[0]["approval"], safe="")  # "RUN#STEP": "#" must be encoded
        assert waiting[0]["run_id"] == run["id"]
    async with served.client(finance) as fay:
        assert (await fay.get("/api/v1/runs")).status_code == 401  # disabled
    async with served.client(admin) as client:
        await client.post("/api/v1/identities/fay/enable")
        mine = (await client.get("/api/v1/approvals")).json()["items"]
        assert mine == []  # admin is not in group finance
        no_comment = await client.post(
            f"/api/v1/approvals/{approval}/decision", json={"option": "reject"}
        )
        assert no_comment.status_code == 403
    await _join_finance(sqlite_db)
    async with served.client(finance) as fay:
        decided = await fay.post(
            f"/api/v1/approvals/{approval}/decision", json={"option": "approve", "comment": "ok"}
        )
        assert decided.status_code == 200, decided.text
    async with served.client(admin) as client:
        done = await until(lambda: _ended(client, run["id"]))
        assert done["output"] == {"decided": "approve"}
        assert done["approvals"][0]["status"] == "decided"
        assert [r["data"]["case"] for r in done["routing"]] == ["approved"]
        full = (await client.get(f"/api/v1/approvals/{approval}")).json()
        assert full["decisions"][0]["by"] == "fay"


async def _approvals(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await client.get("/api/v1/approvals", params={"mine": False})
    ).json()["items"]
    return items


async def _ended(client: httpx.AsyncClient, run_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()
    return body if body["status"] in ("completed", "faulted") else None


async def _join_finance(db: str) -> None:
    import batonflow as bf

    store = bf.open_store(db)
    await store.open()
    try:
        text = await store.get_record("identity", "fay")
        assert text is not None
        data = {**json.loads(text), "groups": ["finance"]}
        await store.put_record("identity", "fay", json.dumps(data), 0.0)
    finally:
        await store.close()


async def test_audit_subjects_connectors_identities(served: Server, admin: str) -> None:
    async with served.client(admin) as client:
        verified = (await client.get("/api/v1/audit/verify")).json()
        assert verified["ok"] is True
        assert verified["entries"] > 0
        csv_text = (await client.get("/api/v1/audit/export", params={"format": "csv"})).text
        assert csv_text.startswith("seq,time,kind")
        unsigned = await client.post("/api/v1/audit/sign")
        assert unsigned.status_code == 400
        assert "--signing-key" in unsigned.json()["detail"]
        unconfirmed = await client.post("/api/v1/subjects/erase", json={"subject": "a@b.c"})
        assert unconfirmed.status_code == 422
        erased = await client.post(
            "/api/v1/subjects/erase", json={"subject": "a@b.c", "confirm": "erase"}
        )
        assert erased.status_code == 200, erased.text
        assert erased.json()["outcome"] == "unknown"
        exported = await client.post("/api/v1/subjects/export", json={"subject": "a@b.c"})
        assert exported.status_code == 200
        off = await client.post("/api/v1/connectors/crm.example.com/disable", json={"reason": "x"})
        assert off.json()["enabled"] is False
        names = [c["name"] for c in (await client.get("/api/v1/connectors")).json()["items"]]
        assert names == ["crm.example.com"]
        typo = await client.post("/api/v1/connectors/crm/disable")
        assert typo.status_code == 400
        made = await client.post(
            "/api/v1/identities", json={"name": "svc", "kind": "service", "roles": ["operator"]}
        )
        assert made.status_code == 201
        issued = (await client.post("/api/v1/tokens", json={"identity": "svc"})).json()
        assert issued["token"].startswith("bf_")
        tokens = (await client.get("/api/v1/tokens", params={"identity": "svc"})).json()["items"]
        assert [t["id"] for t in tokens] == [issued["id"]]
        revoked = await client.post(f"/api/v1/tokens/{issued['id']}/revoke")
        assert revoked.json()["revoked"] is True
        assert (await client.get("/api/v1/alerts")).json() == {"items": [], "next_cursor": None}
        missing = await client.post("/api/v1/alerts/nope/acknowledge")
        assert missing.status_code == 404
        huge = await client.post(
            "/api/v1/events", content=b"x" * 3_000_000, headers={"content-type": "application/json"}
        )
        assert huge.status_code == 413

        async def chunks() -> Any:
            for _ in range(30):
                yield b"x" * 100_000

        streamed = await client.post(
            "/api/v1/events", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        metrics = (await client.get("/metrics")).text
        assert "batonflow_runs{" in metrics
        assert "batonflow_alerts_open" in metrics
        schema = (await client.get("/openapi.json")).json()
        assert schema["openapi"].startswith("3.1")
    async with served.client(issued["token"]) as revoked_client:
        assert (await revoked_client.get("/api/v1/runs")).status_code == 401


async def test_verify_over_the_api_names_every_row_that_differs(served: Server, admin: str) -> None:
    import sqlite3

    async with served.client(admin) as client:
        started = await client.post("/api/v1/runs", json={"workflow": "greet", "input": {}})
        assert started.status_code in (200, 201, 202), started.text
        conn = sqlite3.connect(served.db)
        with conn:
            conn.execute(
                "INSERT INTO runs (id, workflow, status, input_json, created_at, updated_at)"
                " VALUES ('ghost', 'greet', 'completed', '{}', 1, 1)"
            )
        conn.close()
        verified = (await client.get("/api/v1/audit/verify")).json()
    assert verified["ok"] is False
    assert verified["problems"] == ["run ghost (greet) was inserted: no audit entry created it"]
