"""Keys and files: an insider holding the database file (or a dump, or another local account)
opens nothing; the keys live outside the database; old databases move their keys out."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.governance._keys import KEYS_ENV, KeyFile, MasterKeys
from batonflow.governance._sealed import KEY_KIND, SECRET_KEY, SECRET_KIND
from batonflow.governance._subjects import wrap_store
from security.conftest import Site

JANE = {"from": "jane@example.com", "name": "Jane Doe"}


@bf.step
async def greet(name: str) -> str:
    return f"Dear {name}"


@bf.workflow(subjects=lambda person: [person["from"]])
async def letter(ctx: bf.Context, person: dict[str, Any]) -> str:
    return await ctx.step(greet, person["name"])


async def write_letter(site: Site) -> str:
    async with site.engine(letter) as engine:
        handle = await engine.start(letter, JANE)
        await handle.result()
        return handle.run_id


def keys_of(site: Site) -> MasterKeys:
    provider = site.setup().key_provider(site.url)
    keys = provider.load()
    assert keys is not None
    return keys


def test_the_database_alone_opens_nothing(site: Site) -> None:
    run_id = asyncio.run(write_letter(site))
    raw = site.raw_bytes()
    assert b"Jane Doe" not in raw
    assert b"jane@example.com" not in raw
    keys = keys_of(site)
    for secret in (keys.master, keys.reference):
        assert base64.b64encode(secret) not in raw
        assert base64.urlsafe_b64encode(secret) not in raw
        assert secret not in raw

    async def records() -> list[dict[str, Any]]:
        async with site.store() as store:
            assert await store.inner.get_record(SECRET_KIND, SECRET_KEY) is None
            return [json.loads(t) for _, t in await store.inner.list_records(KEY_KIND)]

    [record] = asyncio.run(records())
    assert "key" not in record  # only wrapped under the master key
    assert set(record) >= {"kid", "wrapped", "mk"}
    shown = site.cli("show", run_id)
    assert shown.exit_code == 0, shown.output
    assert "Dear Jane Doe" in shown.stdout


def test_other_keys_are_refused(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = asyncio.run(write_letter(site))
    other = MasterKeys.generate()
    if site.is_sqlite:
        key_file = Path(f"{site.url}.key")
        key_file.unlink()
        KeyFile(key_file).create(other)
    else:
        monkeypatch.setenv(KEYS_ENV, other.to_text())
    shown = site.cli("show", run_id)
    assert shown.exit_code == 2
    assert "holds other keys (fingerprint" in shown.stderr
    assert "than the ones this database was sealed with" in shown.stderr


def test_lost_keys_are_named(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = asyncio.run(write_letter(site))
    if site.is_sqlite:
        Path(f"{site.url}.key").unlink()
    else:
        monkeypatch.delenv(KEYS_ENV)
    shown = site.cli("show", run_id)
    assert shown.exit_code == 2
    # never new keys made in their place: the message names the keys the data needs
    assert "this database was sealed with keys (fingerprint" in shown.stderr
    assert "does not hold: restore that key file (or variable) from its backup" in shown.stderr


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    KeyFile(path).create(MasterKeys.generate())
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(bf.ConfigError, match=r"can be read by other accounts \(mode 0644\)"):
        KeyFile(path).load()
    with pytest.raises(bf.ConfigError, match="already exists; it is never overwritten"):
        KeyFile(path).create(MasterKeys.generate())


async def write_legacy_letter(site: Site) -> str:
    """A database made before keys moved out: keys inside it."""
    store = wrap_store(bf.open_store(site.url))
    async with bf.Engine(store, clock=site.clock, workflows=[letter]) as engine:
        handle = await engine.start(letter, JANE)
        await handle.result()
        return handle.run_id


def test_keys_inside_an_old_database_move_out(site: Site, tmp_path: Path) -> None:
    run_id = asyncio.run(write_legacy_letter(site))
    if not site.is_sqlite:  # the keys move to a file (an environment variable cannot be written)
        site.configure({"governance": {"keys": {"file": str(tmp_path / "site.key")}}})

    async def legacy_secret() -> str | None:
        async with site.store() as store:
            return await store.inner.get_record(SECRET_KIND, SECRET_KEY)

    secret = json.loads(asyncio.run(legacy_secret()) or "{}")["secret"]
    assert secret.encode() in site.raw_bytes()
    refused = site.cli("show", run_id)
    assert refused.exit_code == 2
    assert "keeps its subject keys inside it" in refused.stderr
    assert "batonflow keys migrate" in refused.stderr
    moved = site.cli("keys", "migrate", "--json")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["wrapped"] == 1
    assert secret.encode() not in site.raw_bytes()  # deleted (and zeroed) from the database
    assert asyncio.run(legacy_secret()) is None
    shown = site.cli("show", run_id)
    assert shown.exit_code == 0, shown.output
    assert "Dear Jane Doe" in shown.stdout
    again = site.cli("keys", "migrate", "--json")
    assert json.loads(again.stdout)["outcome"] == "nothing"
    assert "keys.migrated" in site.cli("audit", "export").stdout
    assert site.cli("audit", "verify").exit_code == 0


def test_the_master_key_rotates(site: Site, tmp_path: Path) -> None:
    run_id = asyncio.run(write_letter(site))
    old = keys_of(site)
    new_file = tmp_path / "next.key"
    rotated = site.cli("keys", "rotate", "--new-key-file", str(new_file), "--json")
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.stdout)["outcome"] == "rotated"
    assert new_file.stat().st_mode & 0o777 == 0o600
    site.configure({"governance": {"keys": {"file": str(new_file)}}})
    shown = site.cli("show", run_id)
    assert shown.exit_code == 0, shown.output
    assert "Dear Jane Doe" in shown.stdout
    new = KeyFile(new_file).load()
    assert new is not None
    assert new.reference == old.reference  # references stay valid (they are in the chain)
    assert new.master != old.master
    assert base64.b64encode(old.master) not in site.raw_bytes()
    assert "keys.rotated" in site.cli("audit", "export").stdout


# -- another local account ----------------------------------------------------------------------

_NOBODY = 65534
#: A Python interpreter another account may run (the test's own may sit in a private tree).
_SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def _read_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; open(sys.argv[1], 'rb').read(); print('read')"

    def drop() -> None:
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)

    return subprocess.run(
        [_SYSTEM_PYTHON, "-c", code, str(path)],
        preexec_fn=drop,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to another account"
)
def test_another_local_account_cannot_read_the_database_or_its_keys() -> None:
    shared = Path(tempfile.mkdtemp(prefix="bf-insider-"))
    try:
        shared.chmod(0o755)  # a directory other accounts may enter, as a home or /srv often is
        db = shared / "runs.db"
        site = Site(str(db), shared / "batonflow.toml", bf.testing.FakeClock())
        site.configure({})
        asyncio.run(write_letter(site))

        async def hold_open() -> list[Path]:
            # while an engine runs, the WAL, shared-memory and engine-lock files exist too
            async with site.engine(letter) as engine:
                await engine.store.get_run("x")
                return await asyncio.to_thread(lambda: [p for p in shared.iterdir() if p.is_file()])

        files = [p for p in asyncio.run(hold_open()) if p.name.startswith("runs.db")]
        names = {p.name for p in files}
        assert {
            "runs.db",
            "runs.db.key",
            "runs.db-wal",
            "runs.db-shm",
            "runs.db.engine-lock",
        } <= names
        export = shared / "trail.jsonl"
        assert site.cli("audit", "export", "--out", str(export)).exit_code == 0
        files.append(export)
        control = shared / "public.txt"
        control.write_text("anyone")
        control.chmod(0o644)
        assert _read_as_nobody(control).stdout.strip() == "read"  # the test can fail
        for path in files:
            if path.exists() and path != control:
                assert path.stat().st_mode & 0o077 == 0, path
                result = _read_as_nobody(path)
                assert "PermissionError" in result.stderr, (path, result.stdout, result.stderr)
    finally:
        shutil.rmtree(shared)
