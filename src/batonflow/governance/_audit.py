"""Reading the audit trail: verifying its chain, signing its head, exporting it.

The store writes the trail (``batonflow.store``: every entry is chained in the transaction of
the change it records). This module is what an auditor runs:

- :func:`verify_chain` walks every entry, recomputes each hash, and names the first entry that
  was edited, deleted, inserted or reordered; it also checks every signed head still matches.
- :func:`sign_head` signs the current head (sequence number and hash) with an Ed25519 key. A
  signed head held elsewhere (printed, e-mailed to the compliance officer, kept by an insurer)
  proves the trail up to it was not rewritten later, even by someone with write access to the
  database, who could otherwise recompute the whole chain after an edit.
- :func:`export` writes entries as CloudEvents JSON Lines or CSV, filtered by run, time range,
  workflow or data subject.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batonflow.errors import ConfigError
from batonflow.governance._binding import check_state
from batonflow.store import AuditEntry, AuditRecord, Store
from batonflow.store._audit import GENESIS, verify_records

__all__ = [
    "AuditFilter",
    "SignedHead",
    "Verification",
    "entries",
    "export",
    "generate_signing_key",
    "sign_head",
    "verify_chain",
]

_PAGE = 2000
#: Seconds a committed entry may stay unsealed before verify calls it a problem (PostgreSQL
#: seals within a pass interval; a transaction left open holds later entries back).
SEAL_LAG = 60.0
HEAD_KIND = "audit-head"


@dataclass(frozen=True, slots=True)
class SignedHead:
    """The chain's head at ``seq`` (its entry's ``hash``), signed with an Ed25519 key."""

    seq: int
    hash: str
    at: float
    signature: str  # base64
    public_key: str  # base64 of the raw 32-byte key

    def to_json(self) -> str:
        return json.dumps(
            {"seq": self.seq, "hash": self.hash, "at": self.at, "signature": self.signature,
             "public_key": self.public_key}, indent=2,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str, where: str) -> SignedHead:
        try:
            data = json.loads(text)
            return cls(
                int(data["seq"]), str(data["hash"]), float(data["at"]), str(data["signature"]),
                str(data["public_key"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{where}: not a signed audit head (expected JSON with seq, hash, at, signature,"
                f" public_key): {exc}"
            ) from None

    def message(self) -> bytes:
        return _head_message(self.seq, self.hash, self.at)

    def check_signature(self, public_key: Ed25519PublicKey | None = None) -> bool:
        """True if the signature holds (under ``public_key`` when given, which must then be the
        key the head names: a head signed by anyone else is not trusted)."""
        try:
            raw = base64.b64decode(self.public_key)
            key = Ed25519PublicKey.from_public_bytes(raw)
            if public_key is not None and public_key.public_bytes_raw() != raw:
                return False
            key.verify(base64.b64decode(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


def _head_message(seq: int, digest: str, at: float) -> bytes:
    return f"batonflow-audit-head\n{seq}\n{digest}\n{at!r}".encode()


@dataclass(frozen=True, slots=True)
class Verification:
    """What :func:`verify_chain` found: ``ok`` when the chain holds and every head matches."""

    entries: int
    head_seq: int
    head_hash: str
    problem: str | None
    heads_checked: int
    #: Every row that differs from what the trail says (the first is also ``problem``).
    state_problems: tuple[str, ...] = ()
    runs_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


async def _all(store: Store) -> AsyncIterator[AuditRecord]:
    after = 0
    while True:
        page = await store.read_audit(after=after, limit=_PAGE)
        for record in page:
            yield record
        if len(page) < _PAGE:
            return
        after = page[-1].seq


async def verify_chain(
    store: Store,
    *,
    heads: Iterable[SignedHead] = (),
    public_key: Ed25519PublicKey | None = None,
    check_rows: bool = True,
    seal_lag: float = SEAL_LAG,
) -> Verification:
    """Check every entry of the trail, then every signed head (those recorded in the store
    and ``heads`` given from elsewhere, such as an anchor file's) against it, then every row of
    the store against the state the trail describes (``check_rows``). With ``public_key``
    (the pinned key), a head signed by any other key fails. On a store that seals entries after
    commit (PostgreSQL), a committed entry still unsealed ``seal_lag`` seconds after it was
    written is a problem too. Names the first problem found."""
    hashes: dict[int, str] = {}
    wanted = {h.seq for h in heads}
    stored_heads = [
        SignedHead.from_json(text, f"stored audit head {key}")
        for key, text in await store.list_records(HEAD_KIND)
    ]
    wanted |= {h.seq for h in stored_heads}
    seq, prev, checked = 0, GENESIS, 0
    problem: str | None = None
    buffer: list[AuditRecord] = []
    verified: list[AuditRecord] = []

    def flush() -> str | None:
        nonlocal seq, prev, checked
        done, last, bad = verify_records(buffer, start=(seq, prev))
        checked += done
        verified.extend(buffer[:done])
        for r in buffer[:done]:
            if r.seq in wanted:
                hashes[r.seq] = r.hash
        if done:
            seq, prev = buffer[done - 1].seq, last
        buffer.clear()
        return bad

    async for record in _all(store):
        buffer.append(record)
        if len(buffer) >= _PAGE:
            problem = flush()
            if problem:
                break
    if problem is None:
        problem = flush()
    heads_checked = 0
    if problem is None:
        problem = await _unsealed_problem(store, seal_lag)
    if problem is None:
        for head in [*stored_heads, *heads]:
            heads_checked += 1
            if not head.check_signature(public_key):
                problem = f"the signed head at entry {head.seq} has an invalid signature"
            elif head.seq > seq:
                problem = (
                    f"the signed head at entry {head.seq} is past the end of the trail (entry "
                    f"{seq}): entries after {seq} were deleted"
                )
            elif hashes.get(head.seq) != head.hash:
                problem = (
                    f"entry {head.seq} differs from the signed head: the trail was rewritten "
                    "up to it"
                )
            if problem:
                break
    if problem is not None or not check_rows:
        return Verification(checked, seq, prev, problem, heads_checked)
    state = await check_state(store, verified)
    first = state.problems[0] if state.problems else None
    return Verification(checked, seq, prev, first, heads_checked, state.problems, state.runs)


async def _unsealed_problem(store: Store, lag: float) -> str | None:
    overdue = getattr(store, "overdue_audit", None)  # only stores that seal after commit
    if overdue is None:
        return None
    found = await overdue(lag)
    if found is None:
        return None
    return (
        f"{found.count} committed audit entries are not sealed into the chain (the oldest was "
        f"written {found.age:.1f}s ago, more than the {lag:g}s allowed; order key "
        f"{found.first_ord}): a transaction left open holds the chain back, or no process is "
        "sealing"
    )


def generate_signing_key(path: Path) -> Path:
    """Write a new Ed25519 private key (PEM, mode 0600) to ``path`` and its public key next to
    it (``.pub``); return the public key's path."""
    if path.exists():
        raise ConfigError(f"{path} exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(pem)
    public = path.with_name(path.name + ".pub")
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read an Ed25519 private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: expected an Ed25519 private key, got {type(key).__name__}")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read an Ed25519 public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: expected an Ed25519 public key, got {type(key).__name__}")
    return key


async def sign_head(
    store: Store,
    key: Ed25519PrivateKey,
    now: float,
    *,
    actor: str | None = None,
    after: int = 0,
) -> SignedHead:
    """Sign the trail's current head and keep the signed head in the store (with an
    ``audit.signed`` entry after it). Keep a copy elsewhere too: that copy is the proof.
    ``after``: a sequence number known to exist (the head is looked for past it)."""
    last: AuditRecord | None = None
    while True:
        page = await store.read_audit(after=after, limit=_PAGE)
        if page:
            last, after = page[-1], page[-1].seq
        if len(page) < _PAGE:
            break
    if last is None:
        raise ConfigError("the audit trail is empty: nothing to sign yet")
    signature = key.sign(_head_message(last.seq, last.hash, last.at))
    head = SignedHead(
        last.seq, last.hash, last.at, base64.b64encode(signature).decode(),
        base64.b64encode(key.public_key().public_bytes_raw()).decode(),
    )  # fmt: skip
    entry = AuditEntry(
        "audit.signed", json.dumps({"seq": head.seq, "hash": head.hash}), actor=actor
    )
    await store.put_record(HEAD_KIND, f"{head.seq:020d}", head.to_json(), now, audit=[entry])
    return head


# -- export ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to export. ``subject`` is a data-subject reference (as stored)."""

    run_id: str | None = None
    since: float | None = None
    until: float | None = None
    workflow: str | None = None
    subject: str | None = None


async def entries(store: Store, where: AuditFilter = AuditFilter()) -> AsyncIterator[AuditRecord]:
    """The entries matching ``where``, in chain order. A run's child runs belong to it."""
    if where.run_id is not None and where.workflow is None:
        source = _by_run(store, where.run_id)
    else:
        source = _all(store)
    workflows: dict[str, str] = {}  # run id -> workflow, learned from run.created entries
    async for r in source:
        if r.kind == "run.created" and r.run_id is not None:
            workflows[r.run_id] = _workflow_of(r)
        if where.since is not None and r.at < where.since:
            continue
        if where.until is not None and r.at >= where.until:
            continue
        if where.run_id is not None and not _belongs(r.run_id, where.run_id):
            continue
        if where.workflow is not None and workflows.get(r.run_id or "") != where.workflow:
            continue
        if where.subject is not None and where.subject not in r.subjects:
            continue
        yield r


async def _by_run(store: Store, run_id: str) -> AsyncIterator[AuditRecord]:
    # children's ids extend their parent's ("<parent>.<step>"), so a full scan finds them too;
    # a run without children is read through the index.
    children = await store.list_runs(parent_id=run_id, limit=1)
    if children:
        async for r in _all(store):
            yield r
        return
    after = 0
    while True:
        page = await store.read_audit(after=after, limit=_PAGE, run_id=run_id)
        for r in page:
            yield r
        if len(page) < _PAGE:
            return
        after = page[-1].seq


def _belongs(entry_run: str | None, run_id: str) -> bool:
    return entry_run is not None and (entry_run == run_id or entry_run.startswith(run_id + "."))


def _workflow_of(record: AuditRecord) -> str:
    try:
        value = json.loads(record.data_json).get("workflow")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


#: ``await opener(record)`` -> the entry's data decoded, sealed payloads opened where their
#: keys still exist (``SealedStore.open_json``).
Opener = Callable[[AuditRecord], Awaitable[Any]]


def _decoded(record: AuditRecord) -> Any:
    try:
        return json.loads(record.data_json)
    except ValueError:
        return record.data_json


def cloudevent(record: AuditRecord, source: str, data: Any = None) -> dict[str, Any]:
    """An entry as a CloudEvents 1.0 event; ``data``: its data decoded (default: as stored)."""
    data = _decoded(record) if data is None else data
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"{source}#{record.seq}",
        "source": source,
        "type": f"batonflow.audit.{record.kind}",
        "time": iso(record.at),
        "datacontenttype": "application/json",
        "data": data,
        "batonflowseq": record.seq,
        "batonflowhash": record.hash,
        "batonflowprevhash": record.prev_hash,
    }
    if record.run_id is not None:
        event["subject"] = record.run_id
    if record.step_id is not None:
        event["batonflowstep"] = record.step_id
    if record.actor is not None:
        event["batonflowactor"] = record.actor
    if record.subjects:
        event["batonflowsubjects"] = ",".join(record.subjects)
    return event


CSV_COLUMNS = (
    "seq", "time", "kind", "run_id", "step_id", "actor", "subjects", "data", "prev_hash", "hash",
)  # fmt: skip


async def export(
    store: Store,
    out: io.TextIOBase | Any,
    *,
    fmt: str = "jsonl",
    where: AuditFilter = AuditFilter(),
    source: str = "batonflow",
    opener: Opener | None = None,
) -> int:
    """Write the matching entries to ``out`` as CloudEvents JSON Lines (``jsonl``) or ``csv``;
    return how many were written."""
    if fmt not in ("jsonl", "csv"):
        raise ConfigError(f"unknown export format {fmt!r}: expected jsonl or csv")
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    count = 0
    async for r in entries(store, where):
        count += 1
        opened = await opener(r) if opener is not None else None
        if writer is None:
            event = cloudevent(r, source, opened)
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            continue
        data = r.data_json if opened is None else json.dumps(opened, ensure_ascii=False)
        writer.writerow(
            [r.seq, iso(r.at), r.kind, r.run_id or "", r.step_id or "", r.actor or "",
             " ".join(r.subjects), data, r.prev_hash, r.hash]
        )  # fmt: skip
    return count
