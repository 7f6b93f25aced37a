"""Reading personal data takes a role and leaves a trace.

Every command (and the API and console, which call the same function) that shows a run's
payloads goes through :func:`open_for_reading`:

* the reader needs the ``read`` action (``viewer`` at least);
* the sealed payloads of runs with data subjects are opened only for a role holding
  ``personal.read`` (``operator``, ``admin``); anyone else sees each of them as
  ``{"$withheld": "..."}`` -- the run's shape, statuses and times, not its data;
* a ``data.read`` audit entry names who read which runs' personal data (the subjects'
  references are its subjects, so ``subject export`` lists who read a person's data);
  bulk reads (exports) are recorded even when they open nothing sealed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any, cast

from batonflow.governance._identity import Identity, authorize, can
from batonflow.governance._sealed import is_sealed
from batonflow.store import (
    AttemptRecord,
    AuditEntry,
    AuditRecord,
    EventRecord,
    RunRecord,
    StepRecord,
    Store,
)

__all__ = ["PERSONAL_READ", "WITHHELD", "Withheld", "is_hidden", "open_for_reading"]

PERSONAL_READ = "personal.read"
WITHHELD = "$withheld"
_WITHHELD_TEXT = json.dumps(
    {WITHHELD: "personal data: reading it needs the operator or admin role"},
    separators=(",", ":"),
)


def is_hidden(value: Any) -> bool:
    """Is ``value`` a payload the reader may not see (withheld) or nobody can (erased)?"""
    return isinstance(value, dict) and (WITHHELD in value or "$erased" in value)


async def open_for_reading(
    store: Store,
    identity: Identity,
    *,
    what: str,
    runs: Iterable[str | None] = (),
    now: float,
    always_record: bool = False,
    action: str = "read",
    personal: bool | None = None,
) -> Store:
    """The store ``identity`` may read ``runs`` through, for ``what`` (``"show"``, ``"audit
    export"``...): the store itself when it may open personal data, else a view withholding
    every sealed payload. AccessDenied without ``action`` (``read``; a decider listing the
    approvals it may decide: ``approval.decide``, with ``personal=True``: it must see what it
    decides). Records ``data.read`` when the runs concern data subjects (or always, with
    ``always_record``)."""
    authorize(identity, action)
    ids = sorted({r for r in runs if r})
    refs: set[str] = set()
    subjects_of = getattr(store, "subjects_of", None)
    if subjects_of is not None:
        for run_id in ids:
            refs.update(await subjects_of(run_id))
    personal = can(identity, PERSONAL_READ) if personal is None else personal
    if refs or always_record:
        data = {"what": what, "runs": ids[:100], "count": len(ids), "personal": personal}
        entry = AuditEntry(
            "data.read",
            json.dumps(data),
            actor=identity.name,
            subjects=tuple(sorted(refs)),
        )
        await store.append_audit([entry], now)
    if personal or subjects_of is None:
        return store
    return cast(Store, Withheld(store))


def _hide(text: str | None) -> str | None:
    return _WITHHELD_TEXT if is_sealed(text) else text


class Withheld:
    """A read-only view of a sealed store's *inner* store that shows every sealed payload as
    withheld (it never holds a key)."""

    def __init__(self, sealed: Store) -> None:
        self._sealed = sealed
        self._inner: Store = getattr(sealed, "inner", sealed)
        self.url = sealed.url

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("save_", "create_", "finish_", "transition", "deliver_", "put_")):
            raise AttributeError(f"{name}: a withheld view is read-only")
        return getattr(self._inner, name)

    async def subjects_of(self, run_id: str | None) -> tuple[str, ...]:
        subjects: tuple[str, ...] = await getattr(self._sealed, "subjects_of")(run_id)  # noqa: B009
        return subjects

    async def get_run(self, run_id: str) -> RunRecord | None:
        run = await self._inner.get_run(run_id)
        return None if run is None else _run(run)

    async def list_runs(self, **options: Any) -> list[RunRecord]:
        return [_run(r) for r in await self._inner.list_runs(**options)]

    async def load_steps(self, run_id: str) -> list[StepRecord]:
        return [
            dataclasses.replace(
                s,
                input_json=_hide(s.input_json),
                output_json=_hide(s.output_json),
                error_json=_hide(s.error_json),
            )
            for s in await self._inner.load_steps(run_id)
        ]

    async def load_attempts(self, run_id: str) -> list[AttemptRecord]:
        return [
            dataclasses.replace(a, error_json=_hide(a.error_json) or a.error_json)
            for a in await self._inner.load_attempts(run_id)
        ]

    async def list_events(self, **options: Any) -> list[EventRecord]:
        return [
            dataclasses.replace(e, payload_json=_hide(e.payload_json) or e.payload_json)
            for e in await self._inner.list_events(**options)
        ]

    async def read_audit(self, **options: Any) -> list[AuditRecord]:
        return [
            dataclasses.replace(r, data_json=_hide(r.data_json) or r.data_json)
            for r in await self._inner.read_audit(**options)
        ]

    async def get_record(self, kind: str, key: str) -> str | None:
        text = await self._inner.get_record(kind, key)
        return None if text is None else _withhold_record(text)

    async def list_records(self, kind: str) -> list[tuple[str, str]]:
        return [(k, _withhold_record(t)) for k, t in await self._inner.list_records(kind)]

    async def open_json(self, text: str | None, bind: str) -> Any:
        """Like the sealed store's, with every sealed envelope inside withheld."""
        return None if text is None else _withhold_tree(json.loads(text))


def _run(run: RunRecord) -> RunRecord:
    return dataclasses.replace(
        run,
        input_json=_hide(run.input_json) or run.input_json,
        output_json=_hide(run.output_json),
        error_json=_hide(run.error_json),
    )


def _withhold_tree(value: Any) -> Any:
    if isinstance(value, dict):
        if "$sealed" in value:
            return json.loads(_WITHHELD_TEXT)
        return {k: _withhold_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_withhold_tree(v) for v in value]
    return value


def _withhold_record(text: str) -> str:
    """A record with sealed fields (an open approval's title): each shown as withheld text."""
    if '"$sealed"' not in text:
        return text
    value = json.loads(text)
    for name, field in value.items():
        if isinstance(field, dict) and "$sealed" in field:
            value[name] = [] if name == "excluded" else "[withheld]"
    return json.dumps(value, separators=(",", ":"))
