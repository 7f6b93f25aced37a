"""A workflow document's `schedule` is acted upon: `every`, `cron` (with the zone and overlap
of `metadata.batonflow.schedule`) and `after` (`on`: test_schedule_on.py); what cannot be
acted upon is refused with a clear error."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.configuration import Setup
from batonflow.dsl import DslRuntime, load_document
from batonflow.testing import FakeClock
from batonflow.triggers import Overlap, TriggerHost, document_schedule, load_schedules
from conftest import EngineFactory

DOCUMENT = """
document: {dsl: '1.0.3', namespace: office, name: month-end, version: '1.0.0'}
schedule:
  cron: '0 9 1 * *'
metadata:
  batonflow:
    schedule: {zone: Europe/London, overlap: buffer_one, catchup_window: PT12H}
do:
  - note:
      set:
        month: ${ .scheduled_at[0:7] }
"""


def document(text: str = DOCUMENT) -> dict[str, object]:
    return dict(load_document("month-end.yaml", text=text).raw)


async def test_a_document_schedule_starts_its_runs(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    clock = FakeClock(dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC).timestamp())
    runtime = DslRuntime()
    trigger = document_schedule(document(), runtime)
    assert trigger is not None
    assert trigger.name == "office/month-end"
    assert trigger.spec.overlap is Overlap.BUFFER_ONE
    async with make_engine(clock=clock, workflows=[runtime.workflow]) as engine:
        triggers = TriggerHost(engine, [trigger])
        await triggers.check()
        await clock.advance(86400)
        (done,) = await triggers.check()
        await engine.settle()
        (run,) = await engine.store.list_runs(workflow="office/month-end")
    assert done["at"] == "2026-04-01T08:00:00Z"  # 09:00 BST
    assert run.status is bf.RunStatus.COMPLETED
    assert json.loads(run.output_json or "null") == {"month": "2026-04"}
    await runtime.aclose()


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("schedule: {on: {all: [{with: {type: x}}]}}", "schedule.on.all: starting a run on a set"),
        ("schedule: {on: {any: [], until: '${ true }'}}", "schedule.on.until: applies to listen"),
        ("schedule: {every: {minutes: 0}}", "positive duration"),
    ],
)
def test_unusable_document_schedules_are_refused(schedule: str, message: str) -> None:
    text = DOCUMENT.replace("schedule:\n  cron: '0 9 1 * *'", schedule)
    with pytest.raises(bf.ConfigError, match="workflow office/month-end: schedule") as err:
        document_schedule(document(text), DslRuntime())
    assert message in str(err.value)


def test_the_configuration_names_documents(tmp_path: Path) -> None:
    (tmp_path / "month-end.yaml").write_text(DOCUMENT)
    config = tmp_path / "batonflow.toml"
    config.write_text('[triggers]\ndocuments = ["month-end.yaml"]\n')
    schedules = Setup.load(str(config)).schedules(DslRuntime())
    assert [s.name for s in schedules] == ["office/month-end"]
    with pytest.raises(bf.ConfigError, match=r"\[triggers\]: unknown key\(s\) schedule"):
        load_schedules({"triggers": {"schedule": {}}}, "batonflow.toml")
