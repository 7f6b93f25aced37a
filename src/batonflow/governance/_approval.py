"""Approval requests and decisions: the rules, the records, and ``decide``.

An approval step (``batonflow.catalog.approval``) records its request as a governance record
(kind ``approval``, key = the approval id) and parks its run on an event wait keyed by that id.
Nothing else holds it: ten thousand waiting approvals are ten thousand rows.

:func:`decide` checks a decision against the request *before* anything reaches the run: the
identity must be one of the deciders (a listed user or a member of a listed group), must not be
the run's starter or one of its data subjects (separation of duties), must not have decided
this round already, must pick a listed option (with a comment where one is required), and the
approval must still be open. A refusal raises :class:`~batonflow.errors.ApprovalRefused` and is
written to the audit trail. An accepted decision becomes a vote record (with its
``approval.decision`` audit entry, one transaction) and then an event that wakes the run.

The run counts votes itself, in replay-safe workflow code: it counts a vote only when its record
exists (so an event forged with ``events deliver`` counts for nothing) and only once per person.
Guarantee: a person's vote counts at most once per round, whatever the races. Within one
process, :func:`decide` checks and records one decision at a time, so a second decision by the
same person is refused up front. Two decisions by the same person submitted at the same instant
from two processes may both be accepted (the store offers no insert-if-absent for records), but
the run counts the first and audits the second as ``approval.refused``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from batonflow.core import Engine
from batonflow.errors import ApprovalRefused, ConfigError, EventTimeout, RunNotFound
from batonflow.governance._identity import Identity
from batonflow.store import AuditEntry, AuditRecord, RunStatus, StepKind, StepStatus, Store
from batonflow.store._audit import GENESIS, hash_holds

__all__ = [
    "APPROVAL_KIND",
    "APPROVAL_TOPIC",
    "CLOSE_STEP",
    "COUNT_STEP",
    "ESCALATE_STEP",
    "REQUEST_STEP",
    "VOTE_KIND",
    "ApprovalExpired",
    "ApprovalRequest",
    "ApprovalState",
    "Approvers",
    "Decision",
    "approvals_of",
    "decide",
    "get_request",
    "list_pending",
    "aliases_in",
    "may_decide",
    "parse_duration",
    "parse_request",
    "tally",
    "vote_key",
    "vote_problem",
]

APPROVAL_KIND = "approval"
VOTE_KIND = "approval.vote"
APPROVAL_TOPIC = "batonflow.approval"
#: The journal names of an approval's steps (``batonflow.catalog.approval`` makes them).
REQUEST_STEP, COUNT_STEP, ESCALATE_STEP, CLOSE_STEP = (
    "approval.request", "approval.count", "approval.escalate", "approval.close",
)  # fmt: skip
_ENDED = (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.FAULTED)


class ApprovalExpired(EventTimeout):
    """An approval with ``on_expiry: fail`` was not decided in time."""


# -- the request --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Approvers:
    """Who may decide: any listed user, or any member of a listed group."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def includes(self, identity: Identity) -> bool:
        return identity.name in self.users or any(g in self.groups for g in identity.groups)

    def to_dict(self) -> dict[str, list[str]]:
        return {"users": list(self.users), "groups": list(self.groups)}

    def describe(self) -> str:
        parts = [*self.users, *(f"group {g}" for g in self.groups)]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """An approval's rules and state, as recorded. ``on_expiry`` is ``"escalate"`` (the
    default: a new round for the same approvers, the run keeps waiting, an alert is raised),
    ``{"escalate": {...}}`` (a new round for other approvers), ``"fail"``, or an outcome chosen
    explicitly (``"reject"`` or an option); ``round`` counts escalations (votes of an earlier
    round no longer count)."""

    title: str
    approvers: Approvers
    quorum: int = 1
    options: tuple[str, ...] = ("approve", "reject")
    require_comment: tuple[str, ...] = ()
    summary: str | None = None
    expires_in: float | None = None
    on_expiry: Any = "escalate"
    id: str = ""
    run_id: str = ""
    workflow: str = ""
    excluded: tuple[str, ...] = ()
    requested_at: float = 0.0
    expires_at: float | None = None
    round: int = 0
    escalated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "title": self.title,
            "summary": self.summary,
            "approvers": self.approvers.to_dict(),
            "quorum": self.quorum,
            "options": list(self.options),
            "require_comment": list(self.require_comment),
            "expires_in": self.expires_in,
            "on_expiry": self.on_expiry,
            "excluded": list(self.excluded),
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
            "round": self.round,
            "escalated": self.escalated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalRequest:
        approvers = data.get("approvers") or {}
        return cls(
            id=str(data.get("id", "")),
            run_id=str(data.get("run_id", "")),
            workflow=str(data.get("workflow", "")),
            title=str(data["title"]),
            summary=data.get("summary"),
            approvers=Approvers(
                tuple(approvers.get("users", ())), tuple(approvers.get("groups", ()))
            ),
            quorum=int(data.get("quorum", 1)),
            options=tuple(data.get("options", ("approve", "reject"))),
            require_comment=tuple(data.get("require_comment", ())),
            expires_in=data.get("expires_in"),
            on_expiry=data.get("on_expiry", "reject"),  # recorded before the default changed
            excluded=tuple(data.get("excluded", ())),
            requested_at=float(data.get("requested_at", 0.0)),
            expires_at=data.get("expires_at"),
            round=int(data.get("round", 0)),
            escalated=bool(data.get("escalated", False)),
        )

    @property
    def escalates(self) -> bool:
        """Does expiry open a new round (rather than decide or fail)?"""
        return self.on_expiry == "escalate" or isinstance(self.on_expiry, Mapping)

    def escalation(self, now: float) -> ApprovalRequest:
        """The next round after an expiry: ``{"escalate": {...}}`` names its approvers and
        rules; ``"escalate"`` asks the same approvers again for as long, and again after."""
        if self.on_expiry == "escalate":
            expires_at = None if self.expires_in is None else now + self.expires_in
            return replace(self, expires_at=expires_at, round=self.round + 1, escalated=True)
        spec = self.on_expiry["escalate"]
        expires_in = spec.get("expires_in")
        return replace(
            self,
            approvers=Approvers(tuple(spec.get("users", ())), tuple(spec.get("groups", ()))),
            quorum=int(spec.get("quorum", 1)),
            expires_in=expires_in,
            expires_at=None if expires_in is None else now + float(expires_in),
            on_expiry=spec.get("on_expiry", "escalate"),
            round=self.round + 1,
            escalated=True,
        )


def parse_request(
    *,
    title: Any,
    approvers: Any,
    quorum: Any = 1,
    options: Any = ("approve", "reject"),
    require_comment: Any = (),
    summary: Any = None,
    expires_in: Any = None,
    on_expiry: Any = "escalate",
    where: str = "approval",
) -> ApprovalRequest:
    """Check an approval's arguments; ConfigError naming the argument and what was expected."""
    if not isinstance(title, str) or not title.strip():
        raise ConfigError(f"{where}: 'title' must be a non-empty string, got {title!r}")
    if summary is not None and not isinstance(summary, str):
        raise ConfigError(f"{where}: 'summary' must be a string, got {type(summary).__name__}")
    option_names = _names(options, f"{where}: 'options'")
    if len(option_names) < 1:
        raise ConfigError(f"{where}: 'options' needs at least one option")
    needs_comment = _names(require_comment, f"{where}: 'require_comment'")
    unknown = [o for o in needs_comment if o not in option_names]
    if unknown:
        raise ConfigError(
            f"{where}: 'require_comment' names {unknown[0]!r}, which is not one of the options"
            f" ({', '.join(option_names)})"
        )
    seconds = None if expires_in is None else parse_duration(expires_in, f"{where}: 'expires_in'")
    return ApprovalRequest(
        title=title.strip(),
        summary=summary,
        approvers=_approvers(approvers, f"{where}: 'approvers'"),
        quorum=_quorum(quorum, f"{where}: 'quorum'"),
        options=option_names,
        require_comment=needs_comment,
        expires_in=seconds,
        on_expiry=_expiry(on_expiry, option_names, f"{where}: 'on_expiry'", seconds),
    )


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where} must be a list of non-empty strings, got {value!r}")
    names = tuple(v.strip() for v in value)
    if len(set(names)) != len(names):
        raise ConfigError(f"{where} lists a name twice: {list(names)}")
    return names


def _approvers(value: Any, where: str) -> Approvers:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f'{where} must be an object like {{"users": [...], "groups": [...]}}, got {value!r}'
        )
    extra = set(value) - {"users", "groups"}
    if extra:
        raise ConfigError(f"{where}: unknown key {sorted(extra)[0]!r}; expected users, groups")
    users = _names(value.get("users") or [], f"{where}.users")
    groups = _names(value.get("groups") or [], f"{where}.groups")
    if not users and not groups:
        raise ConfigError(f"{where} names nobody: give at least one user or group")
    return Approvers(users, groups)


def _quorum(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a whole number of at least 1, got {value!r}")
    return value


def _expiry(value: Any, options: tuple[str, ...], where: str, expires_in: float | None) -> Any:
    if isinstance(value, str):
        if value in ("escalate", "fail", "reject") or value in options:
            return value
        raise ConfigError(
            f"{where} must be 'escalate' (the default), 'reject', 'fail', one of the options"
            f' ({", ".join(options)}) or {{"escalate": {{...}}}}, got {value!r}'
        )
    if not isinstance(value, Mapping) or set(value) != {"escalate"}:
        raise ConfigError(f'{where} must be a string or {{"escalate": {{...}}}}, got {value!r}')
    if expires_in is None:
        raise ConfigError(f"{where}: escalating needs 'expires_in' (when to escalate)")
    spec = value["escalate"]
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}.escalate must be an object, got {spec!r}")
    extra = set(spec) - {"users", "groups", "quorum", "expires_in", "on_expiry"}
    if extra:
        raise ConfigError(
            f"{where}.escalate: unknown key {sorted(extra)[0]!r}; expected users, groups,"
            " quorum, expires_in, on_expiry"
        )
    who = _approvers({k: spec[k] for k in ("users", "groups") if k in spec}, f"{where}.escalate")
    quorum = _quorum(spec.get("quorum", 1), f"{where}.escalate.quorum")
    seconds = spec.get("expires_in")
    if seconds is not None:
        seconds = parse_duration(seconds, f"{where}.escalate.expires_in")
    then = spec.get("on_expiry", "escalate")
    then = _expiry(then, options, f"{where}.escalate.on_expiry", seconds)
    return {
        "escalate": {
            **who.to_dict(), "quorum": quorum, "expires_in": seconds, "on_expiry": then,
        }
    }  # fmt: skip


_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: Any, where: str = "duration") -> float:
    """Seconds from a positive number, a ``timedelta``, or an ISO 8601 duration such as
    ``PT4H``, ``P2D``, ``P1DT12H``, ``P1W`` (years and months are refused: not a fixed length)."""
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _ISO.match(value.strip().upper())
        if not match or value.strip().upper() in ("P", "PT") or value.strip().endswith("T"):
            raise ConfigError(
                f"{where}: {value!r} is not an ISO 8601 duration like PT30M, PT4H, P2D or"
                " P1DT12H (years and months are not fixed lengths: use days)"
            )
        units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
        seconds = sum(float(match[u] or 0) * n for u, n in units.items())
    else:
        raise ConfigError(
            f"{where}: expected seconds or an ISO 8601 duration (PT4H), got {value!r}"
        )
    if seconds <= 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")
    return seconds


# -- votes ------------------------------------------------------------------------------------


async def aliases_in(store: Store, identity: Identity) -> frozenset[str]:
    """What ``identity`` may appear as among a run's starter and subjects: its name and e-mail,
    and, on a sealed store (which keeps subjects as keyed references), their references."""
    names = identity.aliases()
    keys = getattr(store, "keys", None)
    if keys is None:
        return names
    return names | {(await keys.ref(name)).casefold() for name in names}


def may_decide(
    request: ApprovalRequest, identity: Identity, aliases: frozenset[str] | None = None
) -> str | None:
    """Why ``identity`` may not decide ``request`` (None: it may). ``aliases``: what it may
    appear as among the excluded (:func:`aliases_in`; default: its name and e-mail)."""
    if identity.disabled:
        return f"identity {identity.name!r} is disabled"
    known = identity.aliases() if aliases is None else aliases
    if known & {e.casefold() for e in request.excluded}:
        return (
            f"{identity.name} started this run or is its subject, and so may not approve it"
            " (separation of duties)"
        )
    if not request.approvers.includes(identity):
        return f"{identity.name} is not one of the deciders ({request.approvers.describe()})"
    return None


def vote_problem(
    request: ApprovalRequest,
    identity: Identity,
    option: str,
    comment: str | None,
    aliases: frozenset[str] | None = None,
) -> str | None:
    """Why this decision is refused (None: it is acceptable), identity and vote alike."""
    reason = may_decide(request, identity, aliases)
    if reason is not None:
        return reason
    if option not in request.options:
        return f"{option!r} is not an option of this approval ({', '.join(request.options)})"
    if option in request.require_comment and not (comment or "").strip():
        return f"deciding {option!r} needs a comment (--comment)"
    return None


def tally(request: ApprovalRequest, votes: Sequence[Mapping[str, Any]]) -> str | None:
    """The outcome once an option has ``quorum`` votes: the first option to get there wins.
    A person counts once: their later votes are ignored."""
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for vote in votes:
        if vote.get("by") in seen:
            continue
        seen.add(str(vote.get("by")))
        option = str(vote["option"])
        counts[option] = counts.get(option, 0) + 1
        if counts[option] >= request.quorum:
            return option
    return None


@dataclass(frozen=True, slots=True)
class Decision:
    """An accepted decision, as delivered to the run."""

    approval_id: str
    run_id: str
    round: int
    by: str
    option: str
    comment: str | None
    at: float
    event_id: int = 0
    payload: dict[str, Any] = field(default_factory=dict)


def vote_key(approval_id: str, round: int, name: str) -> str:
    return f"{approval_id}/{round}/{name}"


async def get_request(store: Store, approval_id: str) -> ApprovalRequest | None:
    text = await store.get_record(APPROVAL_KIND, approval_id)
    return None if text is None else ApprovalRequest.from_dict(json.loads(text))


async def list_pending(store: Store, *, run_id: str | None = None) -> list[ApprovalRequest]:
    """Open approvals (of ``run_id``, when given), oldest request first. An approval whose run
    ended without closing it (cancelled while waiting) is not open."""
    found = [
        ApprovalRequest.from_dict(json.loads(text))
        for _, text in await store.list_records(APPROVAL_KIND)
    ]
    if run_id is not None:
        found = [r for r in found if r.run_id == run_id]
    status: dict[str, RunStatus | None] = {}
    for r in found:
        if r.run_id not in status:
            run = await store.get_run(r.run_id)
            status[r.run_id] = None if run is None else run.status
    found = [r for r in found if status[r.run_id] not in (None, *_ENDED)]
    return sorted(found, key=lambda r: (r.requested_at, r.id))


async def _find(store: Store, run_id: str, approval_id: str | None) -> ApprovalRequest:
    """The open approval to decide: the one named, or the run's only one."""
    if approval_id is not None:
        request = await get_request(store, approval_id)
        if request is None or request.run_id != run_id:
            raise ApprovalRefused(f"run {run_id} has no open approval {approval_id!r}")
        return request
    keys = {
        s.key
        for s in await store.load_steps(run_id)
        if s.kind is StepKind.EVENT and s.topic == APPROVAL_TOPIC
        and s.status is StepStatus.PENDING and s.key
    }  # fmt: skip
    requests = [r for r in [await get_request(store, k) for k in sorted(keys)] if r is not None]
    if not requests:
        requests = await list_pending(store, run_id=run_id)  # requested, not yet waiting
    if not requests:
        raise ApprovalRefused(f"run {run_id} is not waiting for an approval")
    if len(requests) > 1:
        ids = ", ".join(r.id for r in requests)
        raise ConfigError(f"run {run_id} waits for {len(requests)} approvals ({ids}): name one")
    return requests[0]


async def decide(
    target: Store | Engine,
    run_id: str,
    identity: Identity,
    option: str,
    *,
    comment: str | None = None,
    approval_id: str | None = None,
    now: float | None = None,
) -> Decision:
    """Decide an open approval of ``run_id`` as ``identity``; see the module docstring for the
    rules. Refusals raise ApprovalRefused and are on the audit trail (``approval.refused``).

    ``target``: an engine (its clock gives ``now``, and it is woken at once) or a store (for a
    process without an engine, like the command line: a worker continues the run). With
    several open approvals in the run, ``approval_id`` says which.
    """
    store = target.store if isinstance(target, Engine) else target
    if now is None:
        now = target.clock.now() if isinstance(target, Engine) else time.time()
    comment = comment.strip() if comment and comment.strip() else None
    async with _serial(store):  # check-then-write, one decision at a time in this process
        return await _decide(target, store, run_id, identity, option, comment, approval_id, now)


async def _decide(
    target: Store | Engine,
    store: Store,
    run_id: str,
    identity: Identity,
    option: str,
    comment: str | None,
    approval_id: str | None,
    now: float,
) -> Decision:
    run = await store.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    request: ApprovalRequest | None = None
    try:
        request = await _find(store, run_id, approval_id)
        if run.status in _ENDED:
            raise ApprovalRefused(f"run {run_id} is {run.status.value}; its approval is closed")
        if request.expires_at is not None and now >= request.expires_at:
            raise ApprovalRefused(f"approval {request.id} expired; decisions are closed")
        aliases = await aliases_in(store, identity)
        problem = vote_problem(request, identity, option, comment, aliases)
        if problem is not None:
            raise ApprovalRefused(problem)
        votes = await _round_votes(store, request)
        if any(v.get("by") == identity.name for v in votes):
            raise ApprovalRefused(
                f"{identity.name} already decided this approval; one person counts once"
            )
        if tally(request, votes) is not None:
            raise ApprovalRefused(f"approval {request.id} is already decided")
    except ApprovalRefused as refused:
        named = request.id if request is not None else approval_id
        data = {"approval": named, "option": option, "reason": str(refused)}
        await store.append_audit(
            [AuditEntry("approval.refused", _json(data), run_id=run_id, actor=identity.name)], now
        )
        raise
    payload = {
        "approval": request.id, "round": request.round, "by": identity.name, "option": option,
        "comment": comment, "at": now,
    }  # fmt: skip
    audit = AuditEntry("approval.decision", _json(payload), run_id=run_id, actor=identity.name)
    # The vote record first (the run counts only votes that have one), then the wake-up.
    key = vote_key(request.id, request.round, identity.name)
    await store.put_record(VOTE_KIND, key, _json(payload), now, audit=[audit])
    event = await store.deliver_event(
        APPROVAL_TOPIC, _json(payload), now, key=request.id, run_id=run_id, actor=identity.name
    )
    if isinstance(target, Engine):
        target.poke()
    return Decision(
        request.id, run_id, request.round, identity.name, option, comment, now, event.id, payload
    )


async def _round_votes(store: Store, request: ApprovalRequest) -> list[dict[str, Any]]:
    """Decisions delivered to the run for this approval's current round, oldest first."""
    votes = []
    for event in await store.list_events(run_id=request.run_id, limit=100_000):
        if event.topic != APPROVAL_TOPIC or event.key != request.id:
            continue
        payload = json.loads(event.payload_json)
        if isinstance(payload, dict) and payload.get("round") == request.round:
            votes.append(payload)
    return votes


_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def _serial(store: Store) -> asyncio.Lock:
    """One lock per store object (a store lives on one event loop)."""
    lock = _locks.get(store)
    if lock is None:
        lock = _locks[store] = asyncio.Lock()
    return lock


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def vote_on_trail(store: Store, run_id: str, record_text: str) -> bool:
    """Is this vote record backed by its ``approval.decision`` entry, in place in the chain?

    A vote counts only through its entry: one with the record's exact content, whose hash
    recomputes and which links to the entries either side of it. A vote row written straight
    into the database has no such entry; a forged entry inserted beside it breaks a link. (One
    appended after the head, with its hash recomputed, is what signed heads and the anchor
    bound: see docs/security.md.)"""
    try:
        want = json.loads(record_text)
    except ValueError:
        return False
    for entry in await store.read_audit(run_id=run_id, limit=100_000):
        if entry.kind == "approval.decision" and _loads(entry.data_json) == want:
            return await _linked(store, entry)
    # On a store that seals after commit (PostgreSQL), an entry committed behind a transaction
    # still open is not in the chain yet: it counts as committed; the chainer seals it and
    # verify checks the seal and that it stays in place (docs/design.md decision 97).
    unsealed = getattr(store, "unsealed_audit", None)
    if unsealed is not None:
        for entry in await unsealed(run_id):
            if entry.kind == "approval.decision" and _loads(entry.data_json) == want:
                return True
    return False


async def _linked(store: Store, entry: AuditRecord) -> bool:
    if not hash_holds(entry):
        return False
    around = await store.read_audit(after=max(entry.seq - 2, 0), limit=3)
    before = [r for r in around if r.seq == entry.seq - 1]
    after = [r for r in around if r.seq == entry.seq + 1]
    prev_ok = entry.prev_hash == (before[0].hash if before else GENESIS if entry.seq == 1 else "")
    return prev_ok and all(r.prev_hash == entry.hash for r in after)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# -- reading a run's approvals ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalState:
    """One approval of a run, for people: its rules now, its status (``pending``, ``decided``,
    ``expired``), the verdict once closed, the decisions delivered and the refusals audited."""

    request: ApprovalRequest
    status: str
    result: dict[str, Any] | None
    decisions: list[dict[str, Any]]
    refusals: list[dict[str, Any]]


async def approvals_of(store: Store, run_id: str) -> list[ApprovalState]:
    """Every approval a run asked for, from its journal, events, records and audit trail."""
    if await store.get_run(run_id) is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    requests: dict[str, ApprovalRequest] = {}
    results: dict[str, dict[str, Any]] = {}
    for step in await store.load_steps(run_id):
        if step.status is not StepStatus.COMPLETED or not step.output_json:
            continue
        output = json.loads(step.output_json)
        if _unreadable(output):  # erased with its data subject, or withheld from the reader
            continue
        if step.name in (REQUEST_STEP, ESCALATE_STEP):
            request = ApprovalRequest.from_dict(output)
            requests[request.id] = request
        elif step.name == CLOSE_STEP:
            results[str(output["approval"])] = output
    for pending in await list_pending(store, run_id=run_id):
        requests[pending.id] = pending  # recorded, its step perhaps not yet
    decisions: dict[str, list[dict[str, Any]]] = {}
    for event in await store.list_events(run_id=run_id, limit=100_000):
        payload = json.loads(event.payload_json) if event.topic == APPROVAL_TOPIC else None
        if isinstance(payload, dict) and event.key is not None and not _unreadable(payload):
            decisions.setdefault(event.key, []).append(payload)
    refusals: dict[str | None, list[dict[str, Any]]] = {}
    for entry in await store.read_audit(run_id=run_id, limit=100_000):
        if entry.kind == "approval.refused":
            data = json.loads(entry.data_json)
            if _unreadable(data) or "$sealed" in data:
                data = {}
            by = entry.actor if entry.actor not in (None, "engine") else data.get("by")
            refusal = {"by": by, "reason": data.get("reason"), "at": entry.at}
            refusals.setdefault(data.get("approval"), []).append(refusal)
    states = []
    for key, request in sorted(requests.items(), key=lambda item: item[1].requested_at):
        result = results.get(key)
        status = "pending" if result is None else "expired" if result["expired"] else "decided"
        states.append(
            ApprovalState(request, status, result, decisions.get(key, []), refusals.get(key, []))
        )
    return states


def _unreadable(value: Any) -> bool:
    """A payload erased with its data subject, or withheld from the reader's role."""
    return isinstance(value, dict) and ("$erased" in value or "$withheld" in value)
