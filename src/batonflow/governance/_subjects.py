"""A store that seals the payloads of runs concerning data subjects (UK GDPR Art. 15, 17).

:class:`SealedStore` wraps any Store. A run created with ``NewRun.subjects`` (raw subject ids,
from the workflow's subjects expression) is stored with subject *references* instead, and every
payload of it is sealed before it reaches the inner store: its input, output and error, its
journal entries' input, output and error, its failed attempts' errors, the events addressed to
it, and the data of audit entries raised by its steps. Reads open them again, so the engine,
the CLI and the API see plain payloads (or ``{"$erased": true, ...}`` once a key is gone).
Runs without subjects pass through untouched, at the cost of one cached lookup per write.

What stays in clear, by necessity: workflow names, statuses, times, subject references, event
topics, correlation keys and idempotency keys (the store matches on them). Do not use personal
data as a correlation or idempotency key.

A child run concerns the data subjects of its parent as well as its own (its input comes from
the parent's data). Correlation-keyed events (no ``run_id``) are sealed for the subjects of the
runs waiting on that key when they are delivered, and for the ``subjects`` the sender names.
One delivered before any subject run waits for it, naming no subjects, cannot be sealed: the
store keeps it (and its ``event.received`` audit entry) as sent. When a subject run consumes
it, the copy in the run's journal is sealed at once; the event row goes when the run is
purged (``delete_run``). Senders of personal data by correlation key should name subjects.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, runtime_checkable

from batonflow._serde import dumps, error_to_dict
from batonflow.errors import InvalidTransition, RunCancelled
from batonflow.governance._approval import APPROVAL_KIND
from batonflow.governance._keys import KeyProvider
from batonflow.governance._scrub import Scrubber
from batonflow.governance._sealed import TOMBSTONE_KIND, SubjectKeys, is_sealed
from batonflow.store import (
    AttemptRecord,
    AuditEntry,
    AuditRecord,
    EventRecord,
    NewRun,
    QueueLimits,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    Store,
    failed_step_of,
)

__all__ = ["Compacts", "Erasure", "SealedStore", "erase_subject", "export_subject", "wrap_store"]

_CACHE_SIZE = 4096
#: Fields of an otherwise clear audit entry that hold the run's data (an outbound call's URL
#: path, query and body): sealed one by one for runs with data subjects.
RUN_DATA_FIELDS = frozenset({"path", "query", "url", "body"})
#: Fields of an open approval's record that are its run's data (sealed for subject runs).
APPROVAL_FIELDS = frozenset({"title", "summary", "excluded"})
P = ParamSpec("P")
T = TypeVar("T")


def _one_key_read(
    method: Callable[Concatenate[SealedStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[SealedStore, P], Coroutine[Any, Any, T]]:
    """Within one store call, read each subject's key once (a journal write seals several
    payloads under the same keys)."""

    @functools.wraps(method)
    async def wrapper(self: SealedStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self.keys.memo():
            return await method(self, *args, **kwargs)

    return wrapper


class SealedStore:
    """A Store that seals subject runs' payloads in ``inner`` (see the module docstring).

    ``now`` gives the time stamped on the key records it creates (use the engine's clock).
    Audit entries raised by a subject run's steps are sealed whole, except those of
    ``clear_kinds`` (kinds whose data is known to hold nothing personal, e.g. a model call's
    token counts and cost), which stay readable and are only tagged with the run's subjects.
    ``key_provider``: where the master key and reference secret live (outside the database).
    ``scrub``: masks ``$secrets`` values in everything stored, and personal data in errors.
    ``key_store``: where the subject keys live, if not in ``inner`` (see :class:`SubjectKeys`:
    a separate key store keeps keys out of the runs' database and its backups).
    Attributes it does not define (``path``, ``commits``, ``compact``, ``on_work``) are the
    inner store's, so the engine still sees the inner store's optional capabilities.
    """

    #: What an engine checks before it gives a store the data subjects of a run: a store
    #: that does not seal would keep the raw subject ids (personal data) for ever.
    seals_subjects = True

    def __init__(
        self,
        inner: Store,
        *,
        now: Callable[[], float] = time.time,
        clear_kinds: Iterable[str] = (),
        key_store: Store | None = None,
        key_provider: KeyProvider | None = None,
        scrub: Scrubber | None = None,
    ) -> None:
        self.inner = inner
        self.scrub = scrub or Scrubber()
        self.url = inner.url
        self.key_store = key_store
        self.keys = SubjectKeys(key_store or inner, now, audit=inner, provider=key_provider)
        self.clear_kinds = frozenset(clear_kinds)
        self._subjects: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set: during unpickling or a failed __init__
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- which runs concern subjects ---------------------------------------------------------
    def _remember(self, run: RunRecord) -> None:
        self._subjects[run.id] = run.subjects
        self._subjects.move_to_end(run.id)
        while len(self._subjects) > _CACHE_SIZE:
            self._subjects.popitem(last=False)

    async def subjects_of(self, run_id: str | None) -> tuple[str, ...]:
        """The subject references of a run (``()``: none, or no such run)."""
        if run_id is None:
            return ()
        cached = self._subjects.get(run_id)
        if cached is not None:
            return cached
        run = await self.inner.get_run(run_id)
        if run is None:
            return ()
        self._remember(run)
        return run.subjects

    # -- sealing and opening records ---------------------------------------------------------
    async def _open_run(self, run: RunRecord) -> RunRecord:
        self._remember(run)
        if not run.subjects:
            return run
        o = self.keys.open
        return dataclasses.replace(
            run,
            input_json=await o(run.input_json, run.id),
            output_json=await o(run.output_json, run.id),
            error_json=await o(run.error_json, run.id),
        )

    async def _seal(
        self,
        text: str | None,
        refs: Sequence[str],
        bind: str,
        *,
        error: bool = False,
        step: str | None = None,
    ) -> str | None:
        """``text`` as stored: secrets masked (and, for an error, personal data redacted),
        then sealed when the run has subjects."""
        if text is not None and not is_sealed(text):
            text = self.scrub.error(text) if error else self.scrub.text(text)
        return await self.keys.seal(text, refs, bind, step=step)

    async def _seal_step(self, step: StepRecord, refs: Sequence[str]) -> StepRecord:
        if not refs and not self.scrub:
            return step
        rid = step.run_id
        return dataclasses.replace(
            step,
            input_json=await self._seal(step.input_json, refs, rid),
            output_json=await self._seal(step.output_json, refs, rid),
            error_json=await self._seal(step.error_json, refs, rid, error=True),
        )

    async def _open_step(self, step: StepRecord) -> StepRecord:
        if not any(is_sealed(t) for t in (step.input_json, step.output_json, step.error_json)):
            return step
        o, rid = self.keys.open, step.run_id
        return dataclasses.replace(
            step,
            input_json=await o(step.input_json, rid),
            output_json=await o(step.output_json, rid),
            error_json=await o(step.error_json, rid),
        )

    async def _seal_writes(
        self,
        run_id: str,
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        audit: Sequence[AuditEntry],
    ) -> tuple[list[StepRecord], list[AttemptRecord], list[AuditEntry], tuple[str, ...]]:
        refs = await self.subjects_of(run_id)
        if not refs and not self.scrub:
            return list(steps), list(attempts), list(audit), refs
        sealed_steps = [await self._seal_step(s, refs) for s in steps]
        sealed_attempts = [
            dataclasses.replace(
                a, error_json=await self._seal(a.error_json, refs, a.run_id, error=True) or ""
            )
            for a in attempts
        ]
        return sealed_steps, sealed_attempts, await self._seal_audit(audit, refs, run_id), refs

    async def _seal_audit(
        self, entries: Sequence[AuditEntry], refs: Sequence[str], run_id: str
    ) -> list[AuditEntry]:
        """Entries raised by a subject run's steps (a model call's prompt, an approval's
        comment) carry its data: seal it, and tag the entry with the run's subjects. Entries
        of ``clear_kinds`` stay readable, but their run-data fields (an outbound call's URL
        path, query and body: :data:`RUN_DATA_FIELDS`) are sealed one by one."""
        out = []
        for e in entries:
            # Subjects an entry names itself are stored as references too, never as ids.
            subjects = tuple(sorted({*await self.keys.refs(e.subjects), *refs}))
            data = self.scrub.text(e.data_json) or e.data_json
            bind = e.run_id or run_id
            if not refs or data in ("{}", "") or is_sealed(data):
                pass
            elif e.kind not in self.clear_kinds:
                data = await self.keys.seal(data, refs, bind)
            else:
                data = await self._seal_fields(data, refs, bind)
            out.append(dataclasses.replace(e, data_json=data, subjects=subjects))
        return out

    async def _seal_fields(self, data: str, refs: Sequence[str], bind: str) -> str:
        value = json.loads(data)
        if not isinstance(value, dict) or not RUN_DATA_FIELDS & value.keys():
            return data
        for name in RUN_DATA_FIELDS & value.keys():
            if value[name] not in (None, ""):
                text = json.dumps(value[name], separators=(",", ":"))
                value[name] = json.loads(await self.keys.seal(text, refs, bind))
        return json.dumps(value, separators=(",", ":"))

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        await self.inner.open()
        if self.key_store is not None:
            try:
                await self.key_store.open()
            except BaseException:
                await self.inner.close()
                raise

    async def close(self) -> None:
        try:
            await self.inner.close()
        finally:
            if self.key_store is not None:
                await self.key_store.close()

    async def acquire_worker(self, owner: str, now: float) -> None:
        await self.inner.acquire_worker(owner, now)

    async def release_worker(self, owner: str, now: float) -> None:
        await self.inner.release_worker(owner, now)

    # -- runs --------------------------------------------------------------------------------
    @_one_key_read
    async def create_run(
        self,
        run: NewRun,
        parent_step: StepRecord | None = None,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> tuple[RunRecord, bool]:
        parent_refs = await self.subjects_of(run.parent_id)
        refs = tuple(sorted({*await self.keys.refs(run.subjects), *parent_refs}))
        for ref in refs:
            await self.keys.ensure(ref)
        stored = dataclasses.replace(
            run,
            subjects=refs,
            input_json=await self._seal(run.input_json, refs, run.id) or run.input_json,
        )
        if parent_step is not None:
            parent_step = await self._seal_step(parent_step, parent_refs)
        record, created = await self.inner.create_run(
            stored, parent_step, audit=await self._seal_audit(audit, refs, run.id)
        )
        return await self._open_run(record), created

    @_one_key_read
    async def get_run(self, run_id: str) -> RunRecord | None:
        run = await self.inner.get_run(run_id)
        return None if run is None else await self._open_run(run)

    @_one_key_read
    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        parent_id: str | None = None,
        subject: str | None = None,
        limit: int = 50,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[RunRecord]:
        """As the inner store's; ``subject`` may be a subject id or its reference."""
        ref = None if subject is None else await self.keys.ref(subject)
        runs = await self.inner.list_runs(
            status=status, workflow=workflow, parent_id=parent_id, subject=ref, limit=limit,
            since=since, until=until, text=text, before=before,
        )  # fmt: skip
        return [await self._open_run(r) for r in runs]

    async def count_runs(
        self,
        *,
        workflow: str | None = None,
        subject: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
    ) -> dict[RunStatus, int]:
        ref = None if subject is None else await self.keys.ref(subject)
        return await self.inner.count_runs(
            workflow=workflow, subject=ref, since=since, until=until, text=text
        )

    @_one_key_read
    async def transition(
        self,
        run_id: str,
        target: RunStatus,
        now: float,
        error_json: str | None = None,
        *,
        actor: str | None = None,
    ) -> RunRecord:
        refs = await self.subjects_of(run_id)
        sealed = await self._seal(error_json, refs, run_id, error=True)
        run = await self.inner.transition(run_id, target, now, sealed, actor=actor)
        return await self._open_run(run)

    async def delete_run(
        self, run_id: str, now: float, *, audit: Sequence[AuditEntry] = ()
    ) -> None:
        await self.inner.delete_run(run_id, now, audit=audit)
        self._subjects.pop(run_id, None)

    # -- execution ---------------------------------------------------------------------------
    @_one_key_read
    async def claim_runs(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        *,
        queues: Mapping[str, QueueLimits] | None = None,
        serve: Sequence[str] | None = None,
    ) -> list[RunRecord]:
        if queues or serve is not None:
            runs = await self.inner.claim_runs(
                owner, now, lease_until, limit, queues=queues, serve=serve
            )
        else:  # a store without queue support may not take the keywords
            runs = await self.inner.claim_runs(owner, now, lease_until, limit)
        return [await self._open_run(r) for r in runs]

    async def renew_leases(
        self, owner: str, run_ids: Sequence[str], lease_until: float
    ) -> set[str]:
        return await self.inner.renew_leases(owner, run_ids, lease_until)

    @_one_key_read
    async def load_steps(self, run_id: str) -> list[StepRecord]:
        return [await self._open_step(s) for s in await self.inner.load_steps(run_id)]

    @_one_key_read
    async def load_attempts(self, run_id: str) -> list[AttemptRecord]:
        return [
            dataclasses.replace(a, error_json=await self.keys.open(a.error_json, a.run_id))
            if is_sealed(a.error_json)
            else a
            for a in await self.inner.load_attempts(run_id)
        ]

    @_one_key_read
    async def save_steps(
        self,
        run_id: str,
        owner: str,
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        s, a, e, _ = await self._seal_writes(run_id, steps, attempts, audit)
        await self.inner.save_steps(run_id, owner, s, a, now, audit=e)

    @_one_key_read
    async def begin_wait(self, step: StepRecord, owner: str, now: float) -> StepRecord:
        refs = await self.subjects_of(step.run_id)
        result = await self.inner.begin_wait(await self._seal_step(step, refs), owner, now)
        if refs and result.status is StepStatus.COMPLETED and not is_sealed(result.output_json):
            # A correlation-keyed event sent before this run waited: seal the journal's copy.
            resealed = await self._seal_step(result, refs)
            await self.inner.save_steps(step.run_id, owner, [resealed], [], now)
        return await self._open_step(result) if refs else result

    @_one_key_read
    async def suspend_run(
        self,
        run_id: str,
        owner: str,
        wake_at: float | None,
        signal: int,
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> RunStatus:
        s, a, e, _ = await self._seal_writes(run_id, steps, attempts, audit)
        return await self.inner.suspend_run(run_id, owner, wake_at, signal, s, a, now, audit=e)

    async def release_run(self, run_id: str, owner: str, now: float) -> None:
        await self.inner.release_run(run_id, owner, now)

    @_one_key_read
    async def finish_run(
        self,
        run_id: str,
        owner: str,
        status: RunStatus,
        output_json: str | None,
        error_json: str | None,
        steps: Sequence[StepRecord],
        attempts: Sequence[AttemptRecord],
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        s, a, e, refs = await self._seal_writes(run_id, steps, attempts, audit)
        output = await self._seal(output_json, refs, run_id)
        error = await self._seal(
            error_json, refs, run_id, error=True, step=failed_step_of(error_json)
        )
        await self.inner.finish_run(run_id, owner, status, output, error, s, a, now, audit=e)

    async def next_wake_at(self) -> float | None:
        return await self.inner.next_wake_at()

    # -- events ------------------------------------------------------------------------------
    @_one_key_read
    async def deliver_event(
        self,
        topic: str,
        payload_json: str,
        now: float,
        *,
        key: str | None = None,
        run_id: str | None = None,
        actor: str | None = None,
        subjects: Sequence[str] = (),
    ) -> EventRecord:
        """As the inner store's. ``subjects`` (ids or references; an extension of the
        protocol): whom the event concerns, when the sender knows (a CloudEvent's subject, a
        mail's sender); it is then sealed for them too, even before any run waits for it."""
        told = await self.keys.refs(subjects)
        for ref in told:
            await self.keys.ensure(ref)
        if run_id is not None:
            found, bind = await self.subjects_of(run_id), run_id
        elif key is not None:
            found, bind = await self._waiting_subjects(topic, key), ""
        else:
            found, bind = (), ""
        refs = sorted({*found, *told})
        sealed = await self._seal(payload_json, refs, bind) or payload_json
        event = await self.inner.deliver_event(
            topic, sealed, now, key=key, run_id=run_id, actor=actor
        )
        return dataclasses.replace(event, payload_json=payload_json)

    async def _waiting_subjects(self, topic: str, key: str) -> tuple[str, ...]:
        refs: set[str] = set()
        for wait in await self.inner.list_waits(topic, limit=10_000):
            if wait.key == key:
                refs.update(await self.subjects_of(wait.run_id))
        return tuple(sorted(refs))

    @_one_key_read
    async def list_waits(self, topic: str, *, limit: int = 1000) -> list[StepRecord]:
        return [await self._open_step(s) for s in await self.inner.list_waits(topic, limit=limit)]

    @_one_key_read
    async def list_events(
        self, *, run_id: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        return [
            await self._open_event(e)
            for e in await self.inner.list_events(run_id=run_id, limit=limit)
        ]

    async def _open_event(self, event: EventRecord) -> EventRecord:
        if not is_sealed(event.payload_json):
            return event
        plain = await self.keys.open(event.payload_json, event.run_id or "")
        return dataclasses.replace(event, payload_json=plain)

    # -- audit trail and governance records (stored as they are: the chain hashes them) ------
    async def append_audit(self, entries: Sequence[AuditEntry], now: float) -> None:
        await self.inner.append_audit(entries, now)

    async def read_audit(
        self, *, after: int = 0, limit: int = 1000, run_id: str | None = None
    ) -> list[AuditRecord]:
        return await self.inner.read_audit(after=after, limit=limit, run_id=run_id)

    async def put_record(
        self,
        kind: str,
        key: str,
        data_json: str | None,
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        if kind == APPROVAL_KIND and data_json is not None:
            data_json = await self._seal_approval(data_json)
        await self.inner.put_record(kind, key, data_json, now, audit=audit)

    async def _seal_approval(self, text: str) -> str:
        """An open approval's request is listed for deciders from its record: its free text
        (title, summary) and the people it excludes are the run's data, sealed one by one."""
        value = json.loads(text)
        refs = await self.subjects_of(value.get("run_id"))
        if not refs:
            return text
        for name in APPROVAL_FIELDS & value.keys():
            plain = json.dumps(value[name], separators=(",", ":"))
            value[name] = json.loads(await self._seal(plain, refs, value["run_id"]) or plain)
        return json.dumps(value, separators=(",", ":"))

    async def add_record(
        self,
        kind: str,
        key: str,
        data_json: str,
        now: float,
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> bool:
        return await self.inner.add_record(kind, key, data_json, now, audit=audit)

    @_one_key_read
    async def get_record(self, kind: str, key: str) -> str | None:
        text = await self.inner.get_record(kind, key)
        return await self._open_record(kind, text) if text is not None else None

    @_one_key_read
    async def list_records(self, kind: str) -> list[tuple[str, str]]:
        records = await self.inner.list_records(kind)
        return [(key, await self._open_record(kind, text)) for key, text in records]

    async def _open_record(self, kind: str, text: str) -> str:
        if kind != APPROVAL_KIND or '"$sealed"' not in text:
            return text
        value = json.loads(text)
        opened = await self._open_tree(value, value.get("run_id", ""))
        return json.dumps(opened, separators=(",", ":"))

    # -- opening what an auditor reads --------------------------------------------------------
    @_one_key_read
    async def open_json(self, text: str | None, bind: str) -> Any:
        """``text`` decoded, with every sealed envelope inside it opened (audit entries embed
        stored payloads as JSON members)."""
        if text is None:
            return None
        return await self._open_tree(json.loads(text), bind)

    async def _open_tree(self, value: Any, bind: str) -> Any:
        if isinstance(value, dict):
            if "$sealed" in value:
                text = json.dumps(value, separators=(",", ":"))
                return json.loads(await self.keys.open(text, bind))
            return {k: await self._open_tree(v, bind) for k, v in value.items()}
        if isinstance(value, list):
            return [await self._open_tree(v, bind) for v in value]
        return value


def wrap_store(
    store: Store,
    *,
    now: Callable[[], float] = time.time,
    clear_kinds: Iterable[str] = (),
    key_store: Store | None = None,
    key_provider: KeyProvider | None = None,
    scrub: Scrubber | None = None,
) -> SealedStore:
    """``store`` sealing the payloads of runs with data subjects (already wrapped: itself).
    ``key_provider``: where the master key and the reference secret live (``_keys.py``)."""
    if isinstance(store, SealedStore):
        return store
    return SealedStore(
        store,
        now=now,
        clear_kinds=clear_kinds,
        key_store=key_store,
        key_provider=key_provider,
        scrub=scrub,
    )


# -- the rights of access (Art. 15) and erasure (Art. 17) ----------------------------------------

#: More runs than any one person plausibly has; list_runs needs a bound.
_ALL = 1_000_000


@runtime_checkable
class Compacts(Protocol):
    """An optional store capability: rewrite files so deleted content leaves them (SQLite:
    checkpoint and truncate the WAL)."""

    async def compact(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Erasure:
    """What ``erase_subject`` did. ``outcome``: ``erased`` (a key was destroyed now),
    ``already-erased`` (nothing held in clear since an earlier erasure), ``unknown`` (no data
    was ever held about that id)."""

    subject: str  # the reference
    outcome: str
    runs: tuple[str, ...] = ()  # runs whose payloads are now unreadable
    cancelled: tuple[str, ...] = ()  # unfinished runs stopped by the erasure
    erased_at: float | None = None
    actor: str | None = None
    #: What could not be made unreadable (a payload stored unsealed), each said in words;
    #: empty when the erasure is complete.
    remainders: tuple[str, ...] = ()


async def export_subject(
    store: SealedStore, subject_id: str, *, actor: str, now: float
) -> dict[str, Any]:
    """Everything held about a subject (Art. 15), opened, as one JSON-ready document: each of
    its runs with input, output, error, journal, failed attempts, events and audit entries.
    The export itself is audited (``subject.exported``, by ``actor``)."""
    ref = await store.keys.ref(subject_id)
    runs = await store.inner.list_runs(subject=ref, limit=_ALL)
    document: dict[str, Any] = {
        "subject": ref,
        "exported_at": now,
        "erased": await store.keys.tombstone(ref),
        "runs": [await _export_run(store, run) for run in reversed(runs)],  # oldest first
    }
    data = {"runs": [r.id for r in runs]}
    await store.append_audit(
        [AuditEntry("subject.exported", json.dumps(data), actor=actor, subjects=(ref,))], now
    )
    return document


async def _export_run(store: SealedStore, raw: RunRecord) -> dict[str, Any]:
    run = await store._open_run(raw)
    doc: dict[str, Any] = {
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status.value,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "started_by": run.started_by,
        "parent_id": run.parent_id,
        "subjects": list(run.subjects),
        "input": _loads(run.input_json),
        "output": _loads(run.output_json),
        "error": _loads(run.error_json),
        "steps": [_step_doc(s) for s in await store.load_steps(run.id)],
        "attempts": [
            {
                "step_id": a.step_id,
                "attempt": a.attempt,
                "at": a.started_at,
                "error": _loads(a.error_json),
            }
            for a in await store.load_attempts(run.id)
        ],
        "events": [
            {"id": e.id, "topic": e.topic, "at": e.created_at, "payload": _loads(e.payload_json)}
            for e in await store.list_events(run_id=run.id, limit=_ALL)
        ],
        "audit": [],
    }
    after = 0
    while batch := await store.read_audit(after=after, run_id=run.id):
        for r in batch:
            doc["audit"].append(
                {"seq": r.seq, "at": r.at, "kind": r.kind, "step_id": r.step_id,
                 "actor": r.actor, "data": await store.open_json(r.data_json, r.run_id or "")}
            )  # fmt: skip
        after = batch[-1].seq
    return doc


def _step_doc(step: StepRecord) -> dict[str, Any]:
    return {
        "step_id": step.step_id,
        "name": step.name,
        "kind": step.kind.value,
        "status": step.status.value,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "input": _loads(step.input_json),
        "output": _loads(step.output_json),
        "error": _loads(step.error_json),
    }


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


async def erase_subject(store: SealedStore, subject_id: str, *, actor: str, now: float) -> Erasure:
    """Make everything held about a subject unreadable (Art. 17) by destroying its key.

    Unfinished runs of the subject are cancelled first (processing about the person stops).
    The run records, their sealed payloads and the audit trail stay, so the chain verifies;
    what remains readable is pseudonymous metadata (workflow, times, statuses, the reference).
    Idempotent: erasing again reports ``already-erased``. A later run for the same person gets
    a new key, and is not affected by this erasure (it concerns data held now).
    """
    ref = await store.keys.ref(subject_id)
    runs = await store.inner.list_runs(subject=ref, limit=_ALL)
    key = await store.keys.get(ref)
    if key is None:
        tomb = await store.keys.tombstone(ref)
        if tomb is None:
            return Erasure(ref, "unknown")
        return Erasure(ref, "already-erased", tuple(r.id for r in runs),
                       erased_at=tomb.get("erased_at"), actor=tomb.get("actor"))  # fmt: skip
    cancelled = []
    for run in runs:
        if not run.status.is_terminal and await _cancel(store, run.id, actor, now):
            cancelled.append(run.id)
    ids = tuple(r.id for r in runs)
    data = {"runs": list(ids), "cancelled": cancelled, "kid": key.kid}
    tomb_data = {"erased_at": now, "actor": actor, "runs": len(ids)}
    await store.put_record(TOMBSTONE_KIND, ref, json.dumps(tomb_data), now)
    entry = AuditEntry("subject.erased", json.dumps(data), actor=actor, subjects=(ref,))
    await _drop_pending_approvals(store, set(ids), now)
    await store.keys.destroy(ref, now, [entry])
    for target in {id(s): s for s in (store.inner, store.keys.store)}.values():
        if isinstance(target, Compacts):
            await target.compact()
    remainders = tuple([r for run in runs for r in await _remainders(store, run.id)])
    return Erasure(ref, "erased", ids, tuple(cancelled), now, actor, remainders)


async def _drop_pending_approvals(store: SealedStore, runs: set[str], now: float) -> None:
    """An open approval's request is kept as a governance record (title, data) so deciders can
    list it; the erasure cancelled its run, so the record goes with it."""
    for key, text in await store.inner.list_records(APPROVAL_KIND):
        if json.loads(text).get("run_id") in runs:
            await store.inner.put_record(APPROVAL_KIND, key, None, now)


async def _remainders(store: SealedStore, run_id: str) -> list[str]:
    """What of ``run_id`` is still stored in clear after its key was destroyed."""
    found: list[str] = []

    def check(text: str | None, what: str) -> None:
        clear = text not in (None, "", "null", "{}") and not is_sealed(text)
        if clear and not (text or "").startswith('{"$erased"'):
            found.append(f"run {run_id}: {what} is stored unsealed")

    run = await store.inner.get_run(run_id)
    if run is not None:
        for name in ("input_json", "output_json", "error_json"):
            check(getattr(run, name), name.removesuffix("_json"))
    for step in await store.inner.load_steps(run_id):
        for name in ("input_json", "output_json", "error_json"):
            check(getattr(step, name), f"step {step.step_id} ({step.name}) {name[:-5]}")
    for attempt in await store.inner.load_attempts(run_id):
        check(attempt.error_json, f"step {attempt.step_id} attempt {attempt.attempt} error")
    for event in await store.inner.list_events(run_id=run_id, limit=_ALL):
        check(event.payload_json, f"event {event.id} ({event.topic})")
    return found


async def _cancel(store: SealedStore, run_id: str, actor: str, now: float) -> bool:
    error = dumps(
        error_to_dict(RunCancelled(f"run {run_id} was cancelled: its data subject was erased"))
    )
    try:
        await store.transition(run_id, RunStatus.CANCELLED, now, error, actor=actor)
    except InvalidTransition:  # it ended meanwhile (or was already cancelled)
        return False
    return True
