"""Erasure without remainders: after `subject erase`, nothing in the database, its WAL or any
export names the person; pages and commands cope with erased data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.catalog._approval import approval
from security.conftest import Site
from security.servers import Crm

JANE = {"from": "Jane.Doe@Example.com", "name": "Jane Doe", "body": "arrears at 14 Larch Close"}
#: Jane's address as typed, folded and URL-encoded; her name; a phrase of her enquiry.
TRACES = [b"Jane.Doe@Example.com", b"jane.doe@example.com", b"Jane.Doe%40Example.com",
          b"Jane Doe", b"Larch Close"]  # fmt: skip


@bf.step
async def look_up(crm: str, address: str) -> int:
    """A Python step calling the CRM through the step's egress-controlled client, with the
    person's address in the URL path and query (as CRMs' REST APIs do)."""
    response = await bf.current_step().http.get(f"{crm}/contacts/{address}", params={"q": address})
    return int(response.status_code)


@bf.workflow(subjects=lambda enquiry: [enquiry["from"]])
async def enquiry(ctx: bf.Context, enquiry: dict[str, Any]) -> dict[str, Any]:
    status = await ctx.step(look_up, enquiry["crm"], enquiry["from"])
    verdict = await approval(
        ctx,
        title="Refund for {name}",
        data=enquiry,
        approvers={"groups": ["finance"]},
        expires_in="P1D",
    )
    return {"status": status, "verdict": verdict}


def allow_crm(site: Site) -> None:
    site.configure({"governance": {"egress": {"allow": ["*", "127.0.0.1"]}}})


async def start_jane(site: Site, crm: Crm) -> str:
    async with site.engine(enquiry) as engine:
        handle = await engine.start(enquiry, {**JANE, "crm": crm.url})
        await engine.settle()
        return handle.run_id


def test_erasure_leaves_no_trace_in_the_files_or_exports(site: Site, tmp_path: Path) -> None:
    allow_crm(site)
    import asyncio

    with Crm() as crm:
        run_id = asyncio.run(start_jane(site, crm))
    # the call was made, with her address in the URL...
    assert crm.paths
    assert "Jane.Doe@Example.com" in crm.paths[0]
    raw = site.raw_bytes()
    # ... but the egress record holds its path sealed, never in clear, even before erasure
    assert not [t for t in TRACES if t in raw]
    trail = site.cli("audit", "export")
    calls = [json.loads(line) for line in trail.stdout.splitlines() if "egress.call" in line]
    assert calls[0]["data"]["path"] == "/contacts/[email]"  # opened: redacted, then sealed

    erased = site.cli("subject", "erase", JANE["from"], "--yes", "--json")
    assert erased.exit_code == 0, erased.output
    report = json.loads(erased.stdout)
    assert report["outcome"] == "erased"
    assert report["remainders"] == []
    # every command copes with erased data
    shown = site.cli("show", run_id)
    assert shown.exit_code == 0, shown.output
    assert "erased" in shown.stdout
    approvals = site.cli("approval", "show", run_id)
    assert approvals.exit_code == 0, approvals.output
    assert "erased" in approvals.stdout
    out = tmp_path / "trail.jsonl"
    exported = site.cli("audit", "export", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert out.stat().st_mode & 0o777 == 0o600
    subject_out = tmp_path / "jane.json"
    assert site.cli("subject", "export", JANE["from"], "--out", str(subject_out)).exit_code == 0
    for where, data in (
        ("database", site.raw_bytes()),
        ("audit export", out.read_bytes()),
        ("subject export", subject_out.read_bytes()),
        ("show", shown.stdout.encode()),
    ):
        assert not [t for t in TRACES if t in data], where
    # and the trail still verifies
    verified = site.cli("audit", "verify")
    assert verified.exit_code == 0, verified.output


@bf.workflow(subjects=lambda enquiry: [enquiry.get("from")] if enquiry.get("from") else [])
async def careless(ctx: bf.Context, enquiry: dict[str, Any]) -> str:
    return "ok"


@pytest.mark.parametrize("missing", ["refuse", "flag"])
def test_a_document_whose_subjects_are_missing_is_refused_or_flagged(
    site: Site, tmp_path: Path, missing: str
) -> None:
    document = tmp_path / "intake.yaml"
    document.write_text(
        "document:\n  dsl: '1.0.3'\n  namespace: firm\n  name: intake\n  version: '1.0.0'\n"
        "  metadata:\n    batonflow:\n      subjects: ${ [.from] }\n"
        "do:\n  - answer:\n      set: {answered: true}\n"
    )
    site.configure({"governance": {"subjects": {"missing": missing}}})
    result = site.cli("run", str(document), "--input", '{"body": "no sender, Jane Doe"}', "--json")
    if missing == "refuse":
        assert result.exit_code != 0
        assert (
            "the document declares data subjects (metadata.batonflow.subjects) but found none"
            " in this input: refused" in result.stderr
        )
        assert b"Jane Doe" not in site.raw_bytes()
    else:
        assert result.exit_code == 0, result.output
        trail = site.cli("audit", "export").stdout
        assert "subject.missing" in trail


def plant_clear_output(site: Site, run_id: str) -> None:
    """An insider (or a bug) leaves a step's output unsealed in a subject's run."""
    sql = 'UPDATE steps SET output_json = \'{"note": "Jane Doe"}\' WHERE run_id = {p}'
    if site.is_sqlite:
        import sqlite3

        with sqlite3.connect(site.url) as conn:
            conn.execute(sql.replace("{p}", "?"), (run_id,))
    else:
        import psycopg

        with psycopg.connect(site.url) as conn:
            conn.execute(sql.replace("{p}", "%s"), (run_id,))


def test_erasure_reports_what_it_could_not_erase(site: Site) -> None:
    allow_crm(site)
    import asyncio

    with Crm() as crm:
        run_id = asyncio.run(start_jane(site, crm))
    plant_clear_output(site, run_id)
    result = site.cli("subject", "erase", JANE["from"], "--yes")
    assert result.exit_code == 7, result.output
    assert f"NOT erased: run {run_id}: step 1 (look_up) output is stored unsealed" in result.stdout
