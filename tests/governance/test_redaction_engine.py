"""Redaction before persistence, end to end: nothing the policy removes reaches the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.governance._redaction import RedactionPolicy
from batonflow.governance._redaction_rules import RedactionRules, Redactor
from batonflow.governance._subjects import wrap_store
from batonflow.testing import FakeClock

EMAIL, NI, CARD = "ann.smith@example.test", "JG 10 37 42 A", "4111 1111 1111 1111"


@bf.step
def read_enquiry(body: str) -> dict[str, Any]:
    return {"body": body, "card": {"number": CARD, "expiry": "12/29"}, "reply_to": EMAIL}


@bf.workflow
async def intake(ctx: bf.Context, enquiry: dict[str, Any]) -> dict[str, Any]:
    parsed = await ctx.step(read_enquiry, enquiry["body"])
    return {"seen": parsed, "from": enquiry["from"]}


def _file_bytes(folder: Path, name: str) -> bytes:
    """The database file and its -wal and -shm companions, as raw bytes."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith(name))


RULES = RedactionRules(
    persist=RedactionPolicy(fields=(".card.number",), detectors=("email", "uk_ni")),
)


async def test_nothing_redacted_reaches_the_file(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    redactor = Redactor({"intake": RULES})
    body = f"Hello, my NI number is {NI}, write to {EMAIL}."
    async with bf.Engine(db, clock=FakeClock(), redact=redactor.persist) as engine:
        handle = await engine.start(intake, {"from": EMAIL, "body": body})
        result = await handle.result()
        trail = await engine.store.read_audit(run_id=handle.run_id)
    # the flow went on with what was stored, so a replay sees the same
    assert result["seen"]["card"] == {"number": "[redacted]", "expiry": "12/29"}
    assert result["seen"]["reply_to"] == "[email]"
    assert result["from"] == "[email]"
    assert "[uk_ni]" in result["seen"]["body"]
    raw = _file_bytes(tmp_path, "r.db")
    for secret in (EMAIL, NI, CARD, "4111111111111111", "JG103742A"):
        assert secret.encode() not in raw, secret
    redactions = [json.loads(r.data_json) for r in trail if r.kind == "data.redacted"]
    assert redactions
    assert {"fields", "detectors"} <= set(redactions[0])
    assert EMAIL not in json.dumps(redactions)


async def test_other_workflows_are_untouched(tmp_path: Path) -> None:
    @bf.workflow(name="echo")
    async def echo(ctx: bf.Context, value: str) -> str:
        return value

    redactor = Redactor({"intake": RULES})
    async with bf.Engine(tmp_path / "e.db", clock=FakeClock(), redact=redactor.persist) as engine:
        assert await engine.run(echo, EMAIL) == EMAIL


DOCUMENT = """\
document:
  dsl: 1.0.3
  namespace: firm
  name: intake
  version: 1.0.0
  metadata:
    batonflow:
      subjects: ${ .from }
      redact:
        persist: {detectors: [email, iban]}
        steps:
          note: {fields: [.secret]}
do:
  - note:
      set:
        text: ${ "Refund to " + .iban + " please" }
        secret: hunter2
        from: ${ .from }
"""


async def test_a_document_redacts_by_its_own_rules(tmp_path: Path) -> None:
    from batonflow.dsl import DslRuntime, load_document

    iban = "GB82 WEST 1234 5698 7654 32"
    document = load_document("intake.yaml", text=DOCUMENT).raw
    runtime = DslRuntime()
    redactor = Redactor()  # no rules of its own: the document brings them
    db = tmp_path / "d.db"
    store = wrap_store(bf.SQLiteStore(db))
    async with bf.Engine(store, clock=FakeClock(), redact=redactor.persist) as engine:
        handle = await runtime.start(engine, document, {"from": EMAIL, "iban": iban})
        output = await handle.result()
        run = await engine.get_run(handle.run_id)
        steps = await engine.store.load_steps(handle.run_id)
        ref = await store.keys.ref(EMAIL)
    assert output == {"text": "Refund to [iban] please", "secret": "[redacted]", "from": "[email]"}
    assert run.subjects == (ref,)  # found before the input was redacted
    assert json.loads(run.input_json)["input"] == {"from": "[email]", "iban": "[iban]"}
    assert json.loads(run.input_json)["definition"] == document  # the document is left alone
    raw = _file_bytes(tmp_path, "d.db")
    assert iban.encode() not in raw
    assert all("hunter2" not in (s.output_json or "") for s in steps)  # only the document has it


def test_bad_redaction_rules_are_refused_at_load() -> None:
    from batonflow.dsl import DslValidationError, load_document

    bad = DOCUMENT.replace("[email, iban]", "[email, passport]")
    with pytest.raises(DslValidationError, match=r"intake\.yaml:\d+:.*passport"):
        load_document("intake.yaml", text=bad)
