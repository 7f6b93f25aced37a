"""Heads that mean something: a pinned key, heads signed by the service and appended to an
anchor outside the database; removed heads, foreign keys and truncation named by verify."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import batonflow as bf
from batonflow.cli._app import app
from batonflow.governance import _audit
from batonflow.governance._anchor import AuditHeads, read_anchor, signing
from security.conftest import Site
from security.test_state_bound import tamper


@bf.step
def greet(name: str) -> str:
    return f"hello {name}"


@bf.workflow
async def hello(ctx: bf.Context, name: str) -> str:
    return await ctx.step(greet, name)


def keys(tmp_path: Path, name: str = "audit") -> tuple[Path, Path]:
    private = tmp_path / f"{name}.key"
    return private, _audit.generate_signing_key(private)


def pin(site: Site, tmp_path: Path, **extra: Any) -> tuple[Path, Path]:
    private, public = keys(tmp_path)
    anchor = tmp_path / "anchor.jsonl"
    site.configure({"governance": {"audit": {
        "public_key": str(public), "signing_key": str(private), "anchor": str(anchor), **extra,
    }}})  # fmt: skip
    return private, anchor


async def run_some(site: Site, names: tuple[str, ...] = ("ann", "bo")) -> None:
    async with site.engine(hello) as engine:
        for name in names:
            await engine.start(hello, name)
        await engine.settle()


def verify(site: Site) -> tuple[int, dict[str, Any]]:
    result = site.cli("audit", "verify", "--json")
    return result.exit_code, json.loads(result.stdout)


async def sign_now(site: Site, at: float) -> Any:
    async with site.store() as store:
        signer = site.setup().audit_heads().signer(store)
        return await signer.maybe_sign(at)


def test_the_service_signs_every_n_entries_into_an_anchor(site: Site, tmp_path: Path) -> None:
    _, anchor = pin(site, tmp_path, sign_every=5, sign_interval=3600)
    asyncio.run(run_some(site))
    head = asyncio.run(sign_now(site, 10.0))
    assert head is not None
    assert asyncio.run(sign_now(site, 11.0)) is None  # nothing new but its own audit.signed
    assert stat.S_IMODE(anchor.stat().st_mode) == 0o600
    [anchored] = read_anchor(anchor)
    assert (anchored.seq, anchored.hash) == (head.seq, head.hash)
    code, out = verify(site)
    assert code == 0, out
    assert out["signed_heads"] == 2  # the stored copy and the anchored one


def test_the_interval_signs_fewer_entries_than_n(site: Site, tmp_path: Path) -> None:
    pin(site, tmp_path, sign_every=1000, sign_interval=60)
    asyncio.run(run_some(site, ("ann",)))

    async def over_time() -> list[Any]:
        async with site.store() as store:
            signer = site.setup().audit_heads().signer(store)
            first = await signer.maybe_sign(100.0)
            await run_some(site, ("cy",))
            return [first, await signer.maybe_sign(130.0), await signer.maybe_sign(161.0)]

    first, early, due = asyncio.run(over_time())
    assert first is not None
    assert early is None  # 30 s after the last head, 1000 entries not reached
    assert due is not None
    assert due.seq > first.seq


def test_truncation_after_an_anchored_head_is_named(site: Site, tmp_path: Path) -> None:
    pin(site, tmp_path, sign_every=1)
    asyncio.run(run_some(site))
    head = asyncio.run(sign_now(site, 5.0))
    # the insider deletes the tail of the trail and the stored heads with it
    tamper(site, "DELETE FROM audit WHERE seq >= ?", (head.seq - 2,))
    tamper(site, "DELETE FROM records WHERE kind='audit-head'")
    code, out = verify(site)
    assert code == 12
    assert f"signed head at entry {head.seq} is past the end of the trail" in out["problem"]


def test_removed_stored_heads_are_noticed(site: Site, tmp_path: Path) -> None:
    private, _ = keys(tmp_path)
    asyncio.run(run_some(site))
    signed = site.cli("audit", "sign", "--key", str(private))
    assert signed.exit_code == 0, signed.output
    tamper(site, "DELETE FROM records WHERE kind='audit-head'")
    code, out = verify(site)
    assert code == 12
    assert "was removed from the store" in out["problem"]


def test_a_head_signed_with_another_key_is_refused(site: Site, tmp_path: Path) -> None:
    pin(site, tmp_path)
    other, _ = keys(tmp_path, "mallory")
    asyncio.run(run_some(site))
    signed = site.cli("audit", "sign", "--key", str(other))
    assert signed.exit_code == 0, signed.output
    code, out = verify(site)
    assert code == 12
    assert "invalid signature" in out["problem"]


def test_a_signing_key_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    private, _ = keys(tmp_path)
    _, other_public = keys(tmp_path, "other")
    heads = AuditHeads(other_public, private, tmp_path / "a.jsonl")
    with pytest.raises(bf.ConfigError, match="not the pinned public key"):
        heads.signer(bf.SQLiteStore(tmp_path / "x.db"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"signing_key": "k"}, "signing_key needs an anchor file"),
        ({"sign_every": 0}, "sign_every: expected a whole number >= 1, got 0"),
        ({"sign_interval": "soon"}, "sign_interval: expected seconds > 0"),
        ({"anchors": "a"}, "unknown key 'anchors'"),
    ],
)
def test_bad_audit_settings_say_what_was_expected(
    table: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(bf.ConfigError, match=message):
        AuditHeads.parse(table, "batonflow.toml: governance.audit", tmp_path)


def test_a_bad_anchor_line_is_named(tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.jsonl"
    anchor.write_text('{"seq": 1}\n')
    with pytest.raises(bf.ConfigError, match=r"anchor\.jsonl, line 1: not a signed audit head"):
        read_anchor(anchor)


def test_a_service_signs_a_last_head_as_it_stops(site: Site, tmp_path: Path) -> None:
    _, anchor = pin(site, tmp_path, sign_every=1000, sign_interval=3600)

    async def serve() -> None:
        async with site.store() as store, signing(site.setup().audit_heads(), store, site.clock):
            await run_some(site)

    asyncio.run(serve())
    heads = read_anchor(anchor)
    assert heads
    code, out = verify(site)
    assert code == 0, out


@pytest.mark.slow
def test_a_worker_signs_the_head_into_the_anchor_as_it_stops(tmp_path: Path) -> None:
    """`batonflow worker` runs the signer beside its engine (the policy it records on start is
    news enough); on SIGTERM it signs a last head into the anchor."""
    import os
    import signal
    import subprocess
    import sys

    private, public = keys(tmp_path)
    (tmp_path / "batonflow.toml").write_text(
        f'[governance.audit]\npublic_key = "{public.name}"\nsigning_key = "{private.name}"\n'
        'anchor = "anchor.jsonl"\nsign_every = 1000\nsign_interval = 3600\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATONFLOW_")}
    worker = subprocess.Popen(
        [sys.executable, "-c", "from batonflow.cli import main; main()", "worker", "--db",
         "runs.db"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stderr is not None
        seen = ""
        while "executing runs on" not in seen:
            line = worker.stderr.readline()
            assert line, f"the worker exited: {seen}"
            seen += line
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert read_anchor(tmp_path / "anchor.jsonl")
    verified = CliRunner().invoke(
        app, ["--config", str(tmp_path / "batonflow.toml"), "audit", "verify", "--db",
              str(tmp_path / "runs.db"), "--json"],
    )  # fmt: skip
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["signed_heads"] == 2
