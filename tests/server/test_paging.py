"""Every list of the API pages the same way: ``limit`` and ``cursor`` in, ``items`` and
``next_cursor`` out, against a real ``batonflow serve`` process."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import batonflow as bf
from batonflow.governance._alert_dispatch import ALERT_RECORD
from server.harness import Server, make_token, until
from server.test_resources import DOCUMENT

pytestmark = pytest.mark.slow


async def _all_pages(
    client: httpx.AsyncClient, path: str, limit: int, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, following ``next_cursor``; and how many pages that took."""
    items: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await client.get(path, params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


async def _alerts(db: str, keys: list[str]) -> None:
    store = bf.open_store(db)
    await store.open()
    try:
        for key in keys:
            data = {"kind": "run.faulted", "state": "raised", "summary": key}
            await store.put_record(ALERT_RECORD, key, json.dumps(data), time.time())
    finally:
        await store.close()


async def test_every_list_pages_with_a_cursor(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    admin = await make_token(db)
    await _alerts(db, ["c-alert", "a-alert", "b-alert"])
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "refund.yaml").write_text(DOCUMENT)
    (folder / "refund-2.yaml").write_text(DOCUMENT.replace("'1.0.0'", "'1.10.0'"))
    (folder / "refund-3.yaml").write_text(DOCUMENT.replace("'1.0.0'", "'1.9.0'"))
    server = Server(db, tmp_path, ("--documents", str(folder))).start()
    try:
        async with server.client(admin) as client:
            for name in ("erin", "bob", "dave", "carol"):
                made = await client.post("/api/v1/identities", json={"name": name})
                assert made.status_code == 201, made.text
            for label in ("one", "two", "three"):
                issued = await client.post("/api/v1/tokens", json={"label": label})
                assert issued.status_code == 201
            for name in ("smtp.example.com", "api.example.com", "crm.example.com"):
                assert (await client.post(f"/api/v1/connectors/{name}/disable")).is_success
            for i in range(3):
                started = await client.post(
                    "/api/v1/runs", json={"workflow": "office/refund", "input": {"i": i}}
                )
                assert started.status_code == 201, started.text
            await until(lambda: _pending(client, 3))
            metrics = (await client.get("/metrics")).text  # what waits, and since when
            assert 'batonflow_runs{status="waiting"} 3.0' in metrics
            assert "batonflow_alerts_open 3.0" in metrics
            oldest = re.search(r"^batonflow_oldest_waiting_approval_seconds (\S+)$", metrics, re.M)
            assert oldest is not None
            assert float(oldest[1]) > 0

            identities, pages = await _all_pages(client, "/api/v1/identities", 2)
            assert [i["name"] for i in identities] == ["admin", "bob", "carol", "dave", "erin"]
            assert pages == 3
            tokens, _ = await _all_pages(client, "/api/v1/tokens", 2, identity="admin")
            assert [t["label"] for t in tokens] == [None, "one", "two", "three"]  # oldest first
            workflows, _ = await _all_pages(client, "/api/v1/workflows", 2)
            assert [(w["name"], w["version"]) for w in workflows] == [
                ("fragile", None), ("greet", None),
                ("office/refund", "1.0.0"), ("office/refund", "1.9.0"),
                ("office/refund", "1.10.0"), ("waiting", None),
            ]  # fmt: skip
            alerts, _ = await _all_pages(client, "/api/v1/alerts", 2)
            assert [a["key"] for a in alerts] == ["a-alert", "b-alert", "c-alert"]
            connectors, _ = await _all_pages(client, "/api/v1/connectors", 1)
            assert [c["name"] for c in connectors] == [
                "api.example.com",
                "crm.example.com",
                "smtp.example.com",
            ]
            approvals, pages = await _all_pages(client, "/api/v1/approvals", 2, mine=False)
            assert len({a["approval"] for a in approvals}) == 3
            assert pages == 2
            runs, _ = await _all_pages(client, "/api/v1/runs", 2)
            assert len({r["id"] for r in runs}) == 3

            # a page that ends exactly at the last item says so
            last = (await client.get("/api/v1/alerts", params={"limit": 3})).json()
            assert (len(last["items"]), last["next_cursor"]) == (3, None)
            # items added between pages neither repeat nor shift the others
            first = (await client.get("/api/v1/identities", params={"limit": 2})).json()
            await client.post("/api/v1/identities", json={"name": "aaron"})
            rest, _ = await _all_pages(
                client, "/api/v1/identities", 10, cursor=first["next_cursor"]
            )
            assert [i["name"] for i in first["items"] + rest] == [
                "admin", "bob", "carol", "dave", "erin"
            ]  # fmt: skip

            for path in ("/api/v1/identities", "/api/v1/workflows", "/api/v1/alerts",
                         "/api/v1/approvals", "/api/v1/tokens", "/api/v1/connectors",
                         "/api/v1/runs"):  # fmt: skip
                bad = await client.get(path, params={"cursor": "not-one-of-ours"})
                assert bad.status_code == 400, (path, bad.text)
                assert "cursor" in bad.json()["detail"]
                assert (await client.get(path, params={"limit": 0})).status_code == 422
                assert (await client.get(path, params={"limit": 501})).status_code == 422
    finally:
        server.stop()


async def _pending(client: httpx.AsyncClient, count: int) -> bool:
    found = (await client.get("/api/v1/approvals", params={"mine": False})).json()["items"]
    return len(found) >= count
