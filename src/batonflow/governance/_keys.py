"""The keys that open sealed data, kept outside the database.

Two secrets protect data subjects (``_sealed.py``): the *master key*, which wraps (AES-256-GCM)
every per-subject key stored in the database, and the *reference secret*, the HMAC key that
turns an e-mail address into a subject reference. Neither is ever written to the database: a
copy of the database file (a backup, a stolen laptop, another local account) holds only
wrapped keys and references nobody can recompute. Both come from a :class:`KeyProvider`:

* :class:`KeyFile` -- a file created with mode 0600 (``<database>.key`` beside a SQLite
  database unless ``[governance.keys] file`` names another); a key file that other accounts
  can read is refused, as ``ssh`` refuses a private key;
* :class:`EnvKeys` -- an environment variable holding the same text (a secret manager, a
  container orchestrator);
* any object with ``describe()``, ``load()`` and ``create()`` (``[governance.keys]
  provider = "module:factory"``): a cloud KMS, a hardware module.

The text form is ``bfkeys1:`` followed by the URL-safe base64 of the 64 key bytes (master
then reference secret). ``batonflow keys generate`` prints a new one.

The database holds the keys' *fingerprints* (a keyed hash, not the keys): a database opened
with another key file is refused at once instead of sealing new data under a second master.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from batonflow.errors import ConfigError

__all__ = [
    "KEYS_ENV",
    "EnvKeys",
    "KeyFile",
    "KeyProvider",
    "MasterKeys",
    "load_provider",
    "unwrap_key",
    "wrap_key",
]

#: The environment variable `batonflow` reads the keys from when configured with ``env``.
KEYS_ENV = "BATONFLOW_KEYS"
_PREFIX = "bfkeys1:"


@dataclass(frozen=True, slots=True)
class MasterKeys:
    """The master key (wraps subject keys) and the reference secret (HMAC of subject ids)."""

    master: bytes
    reference: bytes

    def __post_init__(self) -> None:
        if len(self.master) != 32 or len(self.reference) != 32:
            raise ConfigError("batonflow keys: the master key and reference secret are 32 bytes")

    def __repr__(self) -> str:  # never print key bytes
        return f"MasterKeys(fingerprint={self.fingerprint()!r})"

    @classmethod
    def generate(cls, reference: bytes | None = None) -> MasterKeys:
        """New random keys (keeping ``reference``, when given: references stay valid)."""
        return cls(secrets.token_bytes(32), reference or secrets.token_bytes(32))

    def to_text(self) -> str:
        return _PREFIX + base64.urlsafe_b64encode(self.master + self.reference).decode()

    @classmethod
    def from_text(cls, text: str, where: str) -> MasterKeys:
        value = text.strip()
        if not value.startswith(_PREFIX):
            raise ConfigError(
                f"{where}: not batonflow keys (expected a line starting {_PREFIX!r}; make one"
                " with `batonflow keys generate`)"
            )
        try:
            raw = base64.urlsafe_b64decode(value[len(_PREFIX) :].encode())
        except ValueError:
            raise ConfigError(f"{where}: the keys are not valid base64") from None
        if len(raw) != 64:
            raise ConfigError(f"{where}: expected 64 key bytes, found {len(raw)}")
        return cls(raw[:32], raw[32:])

    def fingerprint(self) -> str:
        """Names the master key without revealing it (stored in the database)."""
        return hmac.new(self.master, b"batonflow-master-fingerprint", hashlib.sha256).hexdigest()[
            :16
        ]

    def reference_fingerprint(self) -> str:
        digest = hmac.new(self.reference, b"batonflow-reference-fingerprint", hashlib.sha256)
        return digest.hexdigest()[:16]


@runtime_checkable
class KeyProvider(Protocol):
    """Where the keys live. ``load`` returns None while none were made; ``create`` stores new
    keys (or raises ConfigError saying how the operator provides them)."""

    def describe(self) -> str: ...

    def load(self) -> MasterKeys | None: ...

    def create(self, keys: MasterKeys) -> None: ...


class KeyFile:
    """Keys in a file readable by its owner only (created 0600, refused when others can read)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"key file {self.path}"

    def load(self) -> MasterKeys | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"key file {self.path}: cannot read it ({exc.strerror})") from None
        with os.fdopen(fd, encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    f"key file {self.path} can be read by other accounts (mode"
                    f" {stat.S_IMODE(mode):04o}); make it private: chmod 600 {self.path}"
                )
            return MasterKeys.from_text(file.read(), f"key file {self.path}")

    def create(self, keys: MasterKeys) -> None:
        """Write ``keys`` to a new file, mode 0600 (never over an existing one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(
                f"key file {self.path} already exists; it is never overwritten"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(keys.to_text() + "\n")
            file.flush()
            os.fsync(file.fileno())


class EnvKeys:
    """Keys in an environment variable (``bfkeys1:...``)."""

    def __init__(self, variable: str = KEYS_ENV) -> None:
        self.variable = variable

    def describe(self) -> str:
        return f"environment variable {self.variable}"

    def load(self) -> MasterKeys | None:
        text = os.environ.get(self.variable)
        if not text:
            return None
        return MasterKeys.from_text(text, f"${self.variable}")

    def create(self, keys: MasterKeys) -> None:
        raise ConfigError(
            f"${self.variable} is not set: generate keys with `batonflow keys generate` and put"
            f" the line it prints in {self.variable} (keep it with your other secrets)"
        )


def load_provider(table: Any, where: str, db: str | None) -> KeyProvider:
    """The provider ``[governance.keys]`` configures: ``file = "PATH"``, ``env = "VAR"`` or
    ``provider = "module:factory"`` (called with no arguments). Without the table: the file
    ``<database>.key`` beside a SQLite database, ``$BATONFLOW_KEYS`` for PostgreSQL."""
    if table is None:
        if db is not None and not db.startswith(("postgres://", "postgresql://")):
            path = db.removeprefix("sqlite:///")
            return KeyFile(f"{path}.key")
        return EnvKeys(KEYS_ENV)
    if not isinstance(table, dict) or len(table) != 1:
        raise ConfigError(
            f'{where}: expected one of file = "PATH", env = "VARIABLE" or provider ='
            ' "module:factory"'
        )
    ((kind, value),) = table.items()
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{kind}: expected a non-empty string, got {value!r}")
    if kind == "file":
        return KeyFile(os.path.expanduser(value))
    if kind == "env":
        return EnvKeys(value)
    if kind == "provider":
        return _import_provider(value, f"{where}.provider")
    raise ConfigError(f"{where}.{kind}: unknown key (expected file, env or provider)")


def _import_provider(reference: str, where: str) -> KeyProvider:
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{where}: expected 'module:factory', got {reference!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot import {reference!r} ({exc})") from None
    try:
        provider = factory()
    except Exception as exc:  # a plug-in's own failure, named for the operator
        raise ConfigError(f"{where}: {reference!r}() failed: {exc}") from exc
    if not isinstance(provider, KeyProvider):
        raise ConfigError(
            f"{where}: {reference!r} returned {type(provider).__name__}, which lacks"
            " describe(), load() and create()"
        )
    return provider


# -- wrapping subject keys ------------------------------------------------------------------


def wrap_key(master: bytes, key: bytes, ref: str, kid: str) -> str:
    """``key`` encrypted under ``master``, bound to its subject and key id (base64)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    sealed = AESGCM(master).encrypt(nonce, key, f"{ref}|{kid}".encode())
    return base64.b64encode(nonce + sealed).decode()


def unwrap_key(master: bytes, wrapped: str, ref: str, kid: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(wrapped, validate=True)
        return AESGCM(master).decrypt(raw[:12], raw[12:], f"{ref}|{kid}".encode())
    except (ValueError, InvalidTag):
        raise ConfigError(
            f"the key of subject {ref} does not open with this master key: the key file is"
            " not the one this database was sealed with, or the wrapped key was altered"
        ) from None
