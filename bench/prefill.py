"""Stores that already hold many workflows (``--prefill``, 100,000 by default), to show how each
system's costs change as its store grows.

Each system fills a store once, by running its own benchmark script with that many workflows at
concurrency (its fastest way in), and the file is kept under ``bench/.cache`` (not committed),
named after the count and what would make it stale: batonflow's schema (its migrations file) or
the peer's version. Every later pass works on a copy, so the cached store never changes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
SCHEMA = REPO / "src" / "batonflow" / "store" / "_sqlite_schema.py"


def fingerprint(script: str) -> str:
    """What the cached store depends on besides its size."""
    if script == "bench_batonflow.py":
        return "schema-" + hashlib.sha256(SCHEMA.read_bytes()).hexdigest()[:12]
    package = {"bench_dbos.py": "dbos", "bench_langgraph.py": "langgraph-checkpoint-sqlite"}
    name = package.get(script, script)
    try:
        return f"{name}-{importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{name}-unknown"


def cached(
    script: str,
    count: int,
    db_name: str,
    fill: Callable[[Path], None],
    log: Callable[[str], None],
    cache: Path = CACHE,
) -> Path:
    """The cached store of ``count`` workflows for ``script``, built by ``fill(path)`` if absent."""
    stem = Path(script).stem.removeprefix("bench_")
    target = cache / f"{stem}-{count}-{fingerprint(script)}" / db_name
    if target.exists():
        return target
    building = target.parent.with_name(target.parent.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    log(f"prefill    {stem}: building a store of {count:,} workflows (once; cached) ...")
    t0 = time.monotonic()
    fill(building / db_name)
    checkpoint(building / db_name)
    shutil.rmtree(target.parent, ignore_errors=True)
    building.rename(target.parent)  # only a complete store gets the cache's name
    log(f"prefill    {stem}: built in {time.monotonic() - t0:.0f} s")
    return target


def checkpoint(db: Path) -> None:
    """Fold the WAL into the file, so that one file is the whole store."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def copy_to(source: Path, where: Path, *, rollback_journal: bool) -> Path:
    """A private copy of a cached store; ``rollback_journal`` puts it back in SQLite's default
    journal mode (a store filled in WAL keeps WAL in the file otherwise)."""
    where.mkdir(parents=True, exist_ok=True)
    db = where / source.name
    shutil.copyfile(source, db)
    if rollback_journal:
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
    return db


def fill_command(script: str, args: tuple[str, ...], count: int, db: Path) -> list[str]:
    """The benchmark script itself, at concurrency 32 with no warm-up, run ``count`` times."""
    cmd = [sys.executable, str(BENCH / script), "--mode", "concurrent", "--n", str(count)]
    cmd += ["--warmup", "0", "--concurrency", "32", "--db", str(db), *args]
    return cmd


def run_fill(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=4 * 3600, cwd=REPO)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"filling the store failed (exit {proc.returncode}):\n{tail}")
