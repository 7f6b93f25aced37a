"""Moving keys out of a database, and rotating the master key (``batonflow keys ...``).

``migrate_keys``: a database made before keys moved out holds its reference secret and its
subject keys in the clear. The secret goes to the key provider (a new key file keeps the same
secret, so every stored reference stays valid), each subject key is wrapped under the new
master key, and the secret's record is deleted (SQLite zeroes deleted content, and the WAL is
truncated). One ``keys.migrated`` audit entry records it.

``rotate_keys``: a new master key (the reference secret cannot change: the references are
inside the hash chain) is written to a new key file, every subject key is re-wrapped under it,
and ``keys.rotated`` is recorded. A rotation cut short is finished by running it again with
the same new key file: keys already under the new master are skipped. Then point
``[governance.keys] file`` at the new file and destroy the old one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from batonflow.errors import ConfigError
from batonflow.governance._keys import KeyProvider, MasterKeys, unwrap_key, wrap_key
from batonflow.governance._sealed import (
    FINGERPRINT_KEY,
    KEY_KIND,
    SECRET_KEY,
    SECRET_KIND,
    _unb64,
    check_fingerprint,
)
from batonflow.store import AuditEntry, Store

__all__ = ["KeyChange", "migrate_keys", "rotate_keys"]


@dataclass(frozen=True, slots=True)
class KeyChange:
    """What a key command did: ``outcome`` is ``migrated``, ``rotated`` or ``nothing``."""

    outcome: str
    provider: str
    wrapped: int  # subject keys (re-)wrapped
    fingerprint: str


def _fingerprints(keys: MasterKeys, provider: KeyProvider, now: float) -> str:
    return json.dumps(
        {
            "master": keys.fingerprint(),
            "reference": keys.reference_fingerprint(),
            "provider": provider.describe(),
            "at": now,
        }
    )


async def _provided(provider: KeyProvider, make: Callable[[], MasterKeys]) -> MasterKeys:
    keys = provider.load()
    if keys is None:
        provider.create(make())
        keys = provider.load()
        if keys is None:
            raise ConfigError(f"the {provider.describe()} vanished right after it was made")
    return keys


async def migrate_keys(store: Store, provider: KeyProvider, *, actor: str, now: float) -> KeyChange:
    """Move the keys held inside ``store`` (the runs' or the key database) to ``provider``."""
    legacy = await store.get_record(SECRET_KIND, SECRET_KEY)
    records = [(ref, json.loads(text)) for ref, text in await store.list_records(KEY_KIND)]
    plain = [(ref, data) for ref, data in records if "key" in data]
    if legacy is None:
        if plain:
            raise ConfigError(
                "this database holds unwrapped subject keys but no reference secret: it was"
                " altered; restore it from a backup"
            )
        keys = provider.load()
        fp = keys.fingerprint() if keys else "-"
        return KeyChange("nothing", provider.describe(), 0, fp)
    reference = _unb64(json.loads(legacy)["secret"], "the subject secret")
    keys = await _provided(provider, lambda: MasterKeys.generate(reference))
    if keys.reference != reference:
        raise ConfigError(
            f"the {provider.describe()} already holds another reference secret; migrate into"
            " a new key file (it is created for you)"
        )
    for ref, data in plain:
        wrapped = wrap_key(keys.master, _unb64(data["key"], f"the key of {ref}"), ref, data["kid"])
        value = {"kid": data["kid"], "created_at": data.get("created_at"), "wrapped": wrapped,
                 "mk": keys.fingerprint()}  # fmt: skip
        await store.put_record(KEY_KIND, ref, json.dumps(value), now)
    await store.put_record(SECRET_KIND, FINGERPRINT_KEY, _fingerprints(keys, provider, now), now)
    data = {"provider": provider.describe(), "wrapped": len(plain), "master": keys.fingerprint()}
    entry = AuditEntry("keys.migrated", json.dumps(data), actor=actor)
    await store.put_record(SECRET_KIND, SECRET_KEY, None, now, audit=[entry])
    await _compact(store)
    return KeyChange("migrated", provider.describe(), len(plain), keys.fingerprint())


async def rotate_keys(
    store: Store, current: KeyProvider, new: KeyProvider, *, actor: str, now: float
) -> KeyChange:
    """Re-wrap every subject key under a new master key kept by ``new``."""
    if await store.get_record(SECRET_KIND, SECRET_KEY) is not None:
        raise ConfigError("this database keeps its keys inside it: `batonflow keys migrate` first")
    old = current.load()
    if old is None:
        raise ConfigError(f"the {current.describe()} holds no keys: nothing to rotate from")
    check_fingerprint(await store.get_record(SECRET_KIND, FINGERPRINT_KEY), old, current)
    keys = await _provided(new, lambda: MasterKeys.generate(old.reference))
    if keys.reference != old.reference or keys.master == old.master:
        raise ConfigError(
            f"the {new.describe()} must hold a new master key and the same reference secret;"
            " name a file that does not exist yet (it is created for you)"
        )
    count = 0
    for ref, text in await store.list_records(KEY_KIND):
        data = json.loads(text)
        if data.get("mk") == keys.fingerprint():
            continue  # done by a rotation cut short
        key = unwrap_key(old.master, data["wrapped"], ref, data["kid"])
        value = {**data, "wrapped": wrap_key(keys.master, key, ref, data["kid"]),
                 "mk": keys.fingerprint()}  # fmt: skip
        await store.put_record(KEY_KIND, ref, json.dumps(value), now)
        count += 1
    data = {"provider": new.describe(), "wrapped": count, "master": keys.fingerprint(),
            "previous": old.fingerprint()}  # fmt: skip
    entry = AuditEntry("keys.rotated", json.dumps(data), actor=actor)
    await store.put_record(
        SECRET_KIND, FINGERPRINT_KEY, _fingerprints(keys, new, now), now, audit=[entry]
    )
    await _compact(store)
    return KeyChange("rotated", new.describe(), count, keys.fingerprint())


async def _compact(store: Store) -> None:
    compact = getattr(store, "compact", None)
    if compact is not None:
        await compact()
