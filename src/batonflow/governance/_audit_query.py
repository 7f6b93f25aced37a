"""Browsing the audit trail a page at a time, newest first, filtered by run, data subject,
actor, kind and time: what the console's audit page shows (and any caller of the public API).

It works on every store through the Store protocol's ``read_audit``: the chain's sequence
numbers have no gaps (``verify_chain`` names any that do), so the entries before ``seq`` are
the window ``(seq - n - 1, seq)``, read in ascending order and turned around. A filter that
matches rarely could make a page read the whole trail; ``scan`` bounds how many entries one
page reads, and the cursor says where the next page resumes, so a page always comes back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from batonflow.errors import ConfigError
from batonflow.governance._access import open_for_reading
from batonflow.governance._audit import AuditFilter, _belongs
from batonflow.governance._identity import Identity
from batonflow.store import AuditRecord, Store

__all__ = ["AuditPage", "AuditQuery", "audit_page", "head_seq", "open_export"]

_WINDOW = 1000


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries: ``run_id`` (with its child runs), ``subject`` (a data-subject reference
    as stored), ``actor`` (exact), ``kind`` (exact, or a family: ``approval`` matches
    ``approval.decision``), ``since`` (inclusive) and ``until`` (exclusive), epoch seconds."""

    run_id: str | None = None
    subject: str | None = None
    actor: str | None = None
    kind: str | None = None
    since: float | None = None
    until: float | None = None

    def matches(self, r: AuditRecord) -> bool:
        if self.run_id is not None and not _belongs(r.run_id, self.run_id):
            return False
        if self.subject is not None and self.subject not in r.subjects:
            return False
        if self.actor is not None and r.actor != self.actor:
            return False
        if self.kind is not None and r.kind != self.kind and not r.kind.startswith(self.kind + "."):
            return False
        if self.since is not None and r.at < self.since:
            return False
        return self.until is None or r.at < self.until


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Matching entries, newest first; ``next_before``: pass it as ``before`` for the next
    (older) page, None at the start of the trail."""

    items: tuple[AuditRecord, ...]
    next_before: int | None


async def head_seq(store: Store) -> int:
    """The sequence number of the trail's newest entry (0: empty), in log2(n) small reads."""
    low, high = 0, 1
    while await store.read_audit(after=high - 1, limit=1):
        low, high = high, high * 2
    # the entry ``low`` exists (or low == 0); the entry ``high`` does not
    while high - low > 1:
        middle = (low + high) // 2
        if await store.read_audit(after=middle - 1, limit=1):
            low = middle
        else:
            high = middle
    return low


async def audit_page(
    store: Store,
    query: AuditQuery = AuditQuery(),
    *,
    before: int | None = None,
    limit: int = 50,
    scan: int = 50_000,
) -> AuditPage:
    """Up to ``limit`` entries matching ``query`` with ``seq < before`` (default: all),
    newest first, reading at most about ``scan`` entries."""
    if not 1 <= limit <= 1000:
        raise ConfigError(f"limit {limit}: expected 1 to 1000 entries a page")
    if before is not None and before < 1:
        raise ConfigError(f"before {before}: expected an entry number of 1 or more")
    if query.run_id is not None:
        return await _run_page(store, query, before, limit)
    top = (await head_seq(store) + 1) if before is None else before
    found: list[AuditRecord] = []
    read = 0
    while top > 1 and len(found) < limit and read < scan:
        start = max(0, top - 1 - _WINDOW)
        window = await store.read_audit(after=start, limit=top - 1 - start)
        for r in reversed(window):
            if r.seq >= top:
                continue
            read += 1
            top = r.seq
            if query.matches(r):
                found.append(r)
            if len(found) == limit or read >= scan:
                break
        if not window:
            break
    return AuditPage(tuple(found), top if top > 1 else None)


async def _run_page(store: Store, query: AuditQuery, before: int | None, limit: int) -> AuditPage:
    # A run's entries (and its children's, at any depth) come through the run index: a run
    # has few entries next to the whole trail.
    assert query.run_id is not None
    records: list[AuditRecord] = []
    ids = [query.run_id]
    while ids:
        run_id = ids.pop()
        records += await store.read_audit(run_id=run_id, limit=1_000_000)
        ids += [r.id for r in await store.list_runs(parent_id=run_id, limit=100_000)]
    records.sort(key=lambda r: r.seq, reverse=True)
    found = [r for r in records if (before is None or r.seq < before) and query.matches(r)]
    page = found[:limit]
    return AuditPage(tuple(page), page[-1].seq if len(found) > limit else None)


async def open_export(
    store: Store,
    reader: Identity,
    where: AuditFilter,
    *,
    subject: str | None,
    what: str,
    now: float,
) -> tuple[Store, AuditFilter]:
    """What an export of ``where`` (plus the data subject ``subject``, as the workflow names
    them) reads through, and the filter with the subject as stored: personal data opens only
    for a role allowed to read it, and every export is on the trail with who made it. The
    CLI, the API and the console export through this."""
    keys = getattr(store, "keys", None)  # a sealed store: subjects are keyed references
    if subject is not None:
        ref = await keys.ref(subject) if keys is not None else subject
        where = dataclasses.replace(where, subject=ref)
    runs = [where.run_id] if where.run_id else []
    if where.subject is not None:
        runs += [r.id for r in await store.list_runs(subject=where.subject, limit=100_000)]
    view = await open_for_reading(store, reader, what=what, runs=runs, now=now, always_record=True)
    return view, where
