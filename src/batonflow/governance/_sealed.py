"""Sealing payloads for data subjects, so that erasing a subject is destroying one key.

Personal data cannot be deleted from an append-only, hash-chained audit trail without breaking
the chain, and it is copied into many places (the run's input, its journal, events, audit
entries). So it is never stored in the clear: every payload of a run that concerns data
subjects is encrypted (AES-256-GCM) under a key derived from those subjects' keys, and erasing
a subject deletes its key (crypto-shredding). The ciphertext stays, byte for byte, so every
audit hash still verifies; nobody can read it any more.

Subjects are stored as references, never as the identifier itself (an e-mail address is
personal data too): ``ref = "s:" + HMAC-SHA256(reference secret, normalised id)``. With a
:class:`~batonflow.governance._keys.KeyProvider` (what ``batonflow.toml`` gives), the reference
secret and the master key that wraps every subject key live outside the database
(``_keys.py``): the database alone neither opens a payload nor tells whether an address was
ever a subject. Without one (tests, embedded use), both are governance records of the store,
as databases made before keys moved out keep them until ``batonflow keys migrate``.

A payload that concerns several subjects is sealed under all of their keys together: erasing
any one of them makes it unreadable. Data about two people is erased when either asks; that
over-erasure is the safe side.

Each subject key has an id (``kid``) written into every envelope sealed with it. After an
erasure, a later run for the same person gets a new key with a new id; envelopes sealed under
the destroyed key name the old id and so open as erased, not as "tampered".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from batonflow.errors import ConfigError, StoreError
from batonflow.governance._keys import KeyProvider, MasterKeys, unwrap_key, wrap_key
from batonflow.store import AuditEntry, Store

__all__ = [
    "ERASED",
    "SEALED",
    "SECRET_KIND",
    "SubjectKey",
    "SubjectKeys",
    "erased_marker",
    "is_ref",
    "is_sealed",
    "normalise_subject",
    "open_envelope",
    "seal_payload",
]

SEALED = "$sealed"
ERASED = "$erased"
#: Governance record kinds (``Store.put_record``).
SECRET_KIND = "config"
SECRET_KEY = "subject-secret"
#: The fingerprints of the keys outside the database (never the keys).
FINGERPRINT_KEY = "master-keys"
KEY_KIND = "subject-key"
TOMBSTONE_KIND = "subject-erased"

_VERSION = 1
#: Keys read during the current store call (see SubjectKeys.memo).
_MEMO: contextvars.ContextVar[dict[str, SubjectKey | None] | None] = contextvars.ContextVar(
    "batonflow_subject_keys", default=None
)
_REF = re.compile(r"s:[0-9a-f]{64}")


def normalise_subject(subject_id: str) -> str:
    """The canonical form of a subject identifier: stripped; e-mail-like ids case-folded
    (``Jane@Example.COM`` and ``jane@example.com`` are one person)."""
    if not isinstance(subject_id, str):
        raise ConfigError(
            f"a data subject id must be a string, got {type(subject_id).__name__}: {subject_id!r}"
        )
    text = subject_id.strip()
    if not text:
        raise ConfigError("a data subject id must not be empty")
    return text.casefold() if "@" in text else text


def is_ref(text: str) -> bool:
    """Is ``text`` already a subject reference (``s:`` and 64 hex digits)?"""
    return _REF.fullmatch(text) is not None


def is_sealed(text: str | None) -> bool:
    """Does the JSON text ``text`` hold a sealed envelope? (A cheap prefix test first.)"""
    return text is not None and text.startswith('{"$sealed":')


def erased_marker(subjects: Sequence[str]) -> str:
    """What an envelope opens to once a key it needs is destroyed (JSON text)."""
    return json.dumps({ERASED: True, "subjects": list(subjects)}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SubjectKey:
    ref: str
    kid: str  # the key's id, named in each envelope sealed with it
    key: bytes  # 32 random bytes


class SubjectKeys:
    """The store secret and the per-subject keys, kept as governance records of ``store``.

    ``store`` is the runs' own database by default. Give a separate one (``audit``: the runs'
    database, whose trail records the secret's creation) so that copies of the runs' database,
    backups included, never hold a key: then an erasure reaches the backups taken before it
    too, once the key store's own backups have expired.

    Keys are read from the store on every use, never cached: a key destroyed by ``subject
    erase`` in another process is gone for this one at its next read (within one store call a
    key is read once: :meth:`memo`).
    """

    def __init__(
        self,
        store: Store,
        now: Callable[[], float],
        *,
        audit: Store | None = None,
        provider: KeyProvider | None = None,
    ) -> None:
        self.store = store
        self.audit = audit or store
        self.now = now
        self.provider = provider
        self._secret: bytes | None = None
        self._master: MasterKeys | None = None
        self._lock = asyncio.Lock()

    async def secret(self) -> bytes:
        """The reference secret, created on first use."""
        if self._secret is None:
            async with self._lock:
                if self._secret is None:
                    if self.provider is None:
                        self._secret = await self._load_or_create_secret()
                    else:
                        self._master = await self._load_master(self.provider)
                        self._secret = self._master.reference
        return self._secret

    async def master(self) -> MasterKeys:
        """The keys of the provider (ConfigError without one)."""
        if self.provider is None:
            raise ConfigError("this store keeps its subject keys inside the database")
        await self.secret()
        assert self._master is not None
        return self._master

    async def _load_master(self, provider: KeyProvider) -> MasterKeys:
        """The provider's keys, made on first use, checked against the fingerprints the
        database holds (a database opened with another key file is refused)."""
        if await self.store.get_record(SECRET_KIND, SECRET_KEY) is not None:
            raise ConfigError(
                "this database keeps its subject keys inside it (made by an earlier batonflow):"
                f" move them out to the {provider.describe()} with `batonflow keys migrate`"
            )
        record = await self.store.get_record(SECRET_KIND, FINGERPRINT_KEY)
        keys = provider.load()
        if keys is None:
            if record is not None:
                raise ConfigError(
                    f"this database was sealed with keys (fingerprint"
                    f" {json.loads(record)['master']}) that the {provider.describe()} does not"
                    " hold: restore that key file (or variable) from its backup"
                )
            try:
                provider.create(MasterKeys.generate())
            except ConfigError:
                if provider.load() is None:  # (not: another process made it just now)
                    raise
            keys = provider.load()
            if keys is None:
                raise ConfigError(f"the {provider.describe()} vanished right after it was made")
        if record is None:
            await self._record_fingerprints(keys, provider, "keys.created")
            record = await self.store.get_record(SECRET_KIND, FINGERPRINT_KEY)
        check_fingerprint(record, keys, provider)
        return keys

    async def _record_fingerprints(
        self, keys: MasterKeys, provider: KeyProvider, kind: str, actor: str = "system"
    ) -> None:
        value = {
            "master": keys.fingerprint(),
            "reference": keys.reference_fingerprint(),
            "provider": provider.describe(),
            "at": self.now(),
        }
        entries = [AuditEntry(kind, json.dumps(value), actor=actor)]
        together = self.audit is self.store
        await self.store.put_record(
            SECRET_KIND, FINGERPRINT_KEY, json.dumps(value), self.now(),
            audit=entries if together else (),
        )  # fmt: skip
        if not together:
            await self.audit.append_audit(entries, self.now())

    async def _load_or_create_secret(self) -> bytes:
        text = await self.store.get_record(SECRET_KIND, SECRET_KEY)
        if text is None:
            value = {"secret": _b64(secrets.token_bytes(32)), "created_at": self.now()}
            entries = [AuditEntry("subject.secret_created", actor="system")]
            together = self.audit is self.store
            added = await self.store.add_record(
                SECRET_KIND, SECRET_KEY, json.dumps(value), self.now(),
                audit=entries if together else (),
            )  # fmt: skip
            if added and not together:
                await self.audit.append_audit(entries, self.now())
            # Another process may have made one at the same moment: the first one stays.
            text = await self.store.get_record(SECRET_KIND, SECRET_KEY)
            if text is None:
                raise StoreError("the subject secret record vanished right after it was written")
        return _unb64(json.loads(text)["secret"], "the subject secret")

    async def ref(self, subject_id: str) -> str:
        """The stored reference of a subject id (a reference is returned unchanged)."""
        if isinstance(subject_id, str) and is_ref(subject_id):
            return subject_id
        normal = normalise_subject(subject_id)
        digest = hmac.new(await self.secret(), normal.encode(), hashlib.sha256).hexdigest()
        return f"s:{digest}"

    async def refs(self, subject_ids: Sequence[str]) -> tuple[str, ...]:
        """Sorted, de-duplicated references of ``subject_ids``."""
        return tuple(sorted({await self.ref(s) for s in subject_ids}))

    @contextlib.contextmanager
    def memo(self) -> Iterator[None]:
        """Within it (one store call), each subject's key is read from the store once."""
        token = _MEMO.set({}) if _MEMO.get() is None else None
        try:
            yield
        finally:
            if token is not None:
                _MEMO.reset(token)

    async def get(self, ref: str) -> SubjectKey | None:
        memo = _MEMO.get()
        if memo is not None and ref in memo:
            return memo[ref]
        key = await self._read(ref)
        if memo is not None:
            memo[ref] = key
        return key

    async def _read(self, ref: str) -> SubjectKey | None:
        text = await self.store.get_record(KEY_KIND, ref)
        if text is None:
            return None
        data = json.loads(text)
        if "wrapped" in data:
            master = await self.master()
            return SubjectKey(ref, data["kid"], unwrap_key(master.master, data["wrapped"], ref,
                                                           data["kid"]))  # fmt: skip
        if self.provider is not None:
            await self.master()  # names the database keeping its keys inside, if it does
            raise ConfigError(
                f"the key of subject {ref} is stored unwrapped inside the database: move it"
                " out with `batonflow keys migrate`"
            )
        return SubjectKey(ref, data["kid"], _unb64(data["key"], f"the key of subject {ref}"))

    async def key_record(self, ref: str, kid: str, key: bytes) -> str:
        """The stored form of a subject key: wrapped by the master key when there is one."""
        value: dict[str, Any] = {"kid": kid, "created_at": self.now()}
        if self.provider is None:
            value["key"] = _b64(key)
        else:
            master = await self.master()
            value.update(wrapped=wrap_key(master.master, key, ref, kid), mk=master.fingerprint())
        return json.dumps(value)

    async def ensure(self, ref: str) -> SubjectKey:
        """The subject's key, made now if it has none (first run, or first since an erasure)."""
        key = await self._read(ref)
        if key is not None:
            return key
        record = await self.key_record(ref, secrets.token_hex(8), secrets.token_bytes(32))
        # Insert-if-absent: of two runs (or processes) racing to make the first key, one wins
        # and both use its key; a key is never overwritten (that would lose data).
        await self.store.add_record(KEY_KIND, ref, record, self.now())
        key = await self._read(ref)
        if key is None:  # erased in the instant between the two statements
            raise StoreError(f"the key of subject {ref} was erased as it was made; try again")
        return key

    @overload
    async def seal(
        self, plain: str, refs: Sequence[str], bind: str, *, step: str | None = None
    ) -> str: ...
    @overload
    async def seal(
        self, plain: None, refs: Sequence[str], bind: str, *, step: str | None = None
    ) -> None: ...
    @overload
    async def seal(
        self, plain: str | None, refs: Sequence[str], bind: str, *, step: str | None = None
    ) -> str | None: ...
    async def seal(
        self, plain: str | None, refs: Sequence[str], bind: str, *, step: str | None = None
    ) -> str | None:
        """``plain`` sealed under the current keys of ``refs``; an already sealed text as is.

        A subject whose key is gone (erased while this run was in flight) gets the erased
        marker instead: new data about an erased person is dropped, never stored in clear.
        ``step``: see :func:`seal_payload`.
        """
        if plain is None or not refs or is_sealed(plain):
            return plain
        keys = [await self.get(r) for r in refs]
        present = [k for k in keys if k is not None]
        if len(present) != len(keys):
            return erased_marker(sorted(refs))
        return seal_payload(plain, present, bind, step=step)

    @overload
    async def open(self, text: str, bind: str) -> str: ...
    @overload
    async def open(self, text: None, bind: str) -> None: ...
    @overload
    async def open(self, text: str | None, bind: str) -> str | None: ...
    async def open(self, text: str | None, bind: str) -> str | None:
        """The plain text of ``text`` if sealed (the erased marker if a key is gone)."""
        if text is None or not is_sealed(text):
            return text
        envelope = parse_envelope(text)
        keys = [await self.get(r) for r in envelope["subjects"]]
        return open_envelope(text, keys, bind)

    async def tombstone(self, ref: str) -> dict[str, Any] | None:
        """When and by whom the subject was erased (a record of the runs' database)."""
        text = await self.audit.get_record(TOMBSTONE_KIND, ref)
        return None if text is None else dict(json.loads(text))

    async def destroy(self, ref: str, now: float, entries: Sequence[AuditEntry]) -> None:
        """Delete the subject's key, with ``entries`` on the runs' audit trail."""
        if self.audit is self.store:
            await self.store.put_record(KEY_KIND, ref, None, now, audit=entries)
        else:  # the key goes first: an erasure is never recorded without having happened
            await self.store.put_record(KEY_KIND, ref, None, now)
            await self.audit.append_audit(entries, now)


def check_fingerprint(record: str | None, keys: MasterKeys, provider: KeyProvider) -> None:
    """ConfigError unless ``keys`` are the ones the database's fingerprint record names."""
    data = json.loads(record) if record else {}
    if data.get("master") != keys.fingerprint() or data.get("reference") != (
        keys.reference_fingerprint()
    ):
        raise ConfigError(
            f"the {provider.describe()} holds other keys (fingerprint {keys.fingerprint()}) than"
            f" the ones this database was sealed with ({data.get('master')}): point"
            " [governance.keys] at the right key file"
        )


# -- envelopes ----------------------------------------------------------------------------------


def seal_payload(
    plain: str, keys: Sequence[SubjectKey], bind: str, *, step: str | None = None
) -> str:
    """Encrypt the JSON text ``plain`` under ``keys`` (all of them needed to open it).

    ``bind`` is authenticated with it: the id of the run the payload belongs to, ``""`` for a
    correlation-keyed event (sealed before it is known which run will consume it).
    ``step``: a faulted run's error names the position of the step that failed it (``"4"``,
    ``"3.0.1"``: no personal data) in the clear, authenticated, so that the store can find the
    step to try again when the run is resumed (it reads the ``step`` member of ``error_json``).
    """
    ordered = sorted(keys, key=lambda k: k.ref)
    refs = [k.ref for k in ordered]
    kids = [k.kid for k in ordered]
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # imported on first use

    nonce = secrets.token_bytes(12)
    aad = _aad(bind, refs, kids, step)
    ct = AESGCM(_content_key(ordered)).encrypt(nonce, plain.encode(), aad)
    envelope: dict[str, Any] = {SEALED: _VERSION, "subjects": refs, "kids": kids}
    if bind:
        envelope["run"] = bind
    if step is not None:
        envelope["step"] = step
    envelope.update(nonce=_b64(nonce), ct=_b64(ct))
    return json.dumps(envelope, separators=(",", ":"))


def open_envelope(text: str, keys: Sequence[SubjectKey | None], bind: str) -> str:
    """The plain JSON text of an envelope read in run ``bind``, or the erased marker when a
    key it needs is gone.

    ``keys``: the current key of each subject in the envelope, in its order (None: destroyed).
    An envelope may be read in the run it was sealed for, or in an ancestor of it (the store
    copies a child's result into its parent's journal; child ids extend their parent's), or
    anywhere for a keyed event. Raises StoreError when the ciphertext or its bindings were
    altered, or the envelope was moved to another run.
    """
    envelope = parse_envelope(text)
    refs, kids = envelope["subjects"], envelope["kids"]
    sealed_for = envelope.get("run", "")
    if not isinstance(sealed_for, str) or (
        sealed_for and bind != sealed_for and not sealed_for.startswith(f"{bind}.")
    ):
        raise StoreError(
            f"a sealed payload of run {sealed_for!r} was found in run {bind!r}: it was moved"
        )
    if any(k is None or k.kid != kid for k, kid in zip(keys, kids, strict=True)):
        return erased_marker(refs)
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    present = [k for k in keys if k is not None]
    step = envelope.get("step")
    aad = _aad(sealed_for, refs, kids, step if isinstance(step, str) else None)
    try:
        plain = AESGCM(_content_key(present)).decrypt(
            _unb64(envelope["nonce"], "nonce"), _unb64(envelope["ct"], "ciphertext"), aad
        )
    except InvalidTag:
        raise StoreError(
            f"a sealed payload of {sealed_for or 'an event'} failed authentication: its"
            " ciphertext or its bindings (run, subjects, keys, step) were altered"
        ) from None
    return plain.decode()


def parse_envelope(text: str) -> dict[str, Any]:
    try:
        envelope = json.loads(text)
        ok = (
            envelope.get(SEALED) == _VERSION
            and isinstance(envelope["subjects"], list)
            and isinstance(envelope["kids"], list)
            and len(envelope["subjects"]) == len(envelope["kids"]) > 0
        )
    except (ValueError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise StoreError(f"malformed sealed payload: {text[:80]!r}")
    return dict(envelope)


def _content_key(keys: Sequence[SubjectKey]) -> bytes:
    """HKDF-SHA256 over every subject key (sorted by reference): any one destroyed, gone."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"batonflow-sealed/1 " + ",".join(k.ref for k in keys).encode(),
    )
    return hkdf.derive(b"".join(k.key for k in keys))


def _aad(bind: str, refs: Sequence[str], kids: Sequence[str], step: str | None = None) -> bytes:
    bound: list[Any] = [_VERSION, bind, list(refs), list(kids)]
    if step is not None:  # envelopes without a step authenticate exactly what they always did
        bound.append(step)
    return json.dumps(bound, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise StoreError(f"{what} is not valid base64") from None


def same_subject(subject_id: str, typed: str) -> bool:
    """Is ``typed`` the same data subject as ``subject_id`` (as :func:`normalise_subject`
    compares them)? The confirmation an erasure asks a person to type."""
    try:
        return normalise_subject(subject_id) == normalise_subject(typed)
    except ConfigError:
        return False
