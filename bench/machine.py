"""The machine a benchmark ran on: cores, memory, disk and its fdatasync time, versions."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGES = (
    "batonflow",
    "dbos",
    "SQLAlchemy",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "aiosqlite",
)


def machine(base: Path) -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "filesystem": filesystem(base),
        "fdatasync_us": fsync_latency(base),
        "versions": versions,
        "git": git_revision(),
    }


def filesystem(path: Path) -> str:
    best = ("?", "?", "")
    for line in (
        Path("/proc/mounts").read_text().splitlines() if Path("/proc/mounts").exists() else []
    ):
        device, mount, kind = line.split()[:3]
        if str(path).startswith(mount.rstrip("/") + "/") and len(mount) >= len(best[2]):
            best = (device, kind, mount)
    return f"{best[1]} on {best[0]} (database files in {path.parent})"


def fsync_latency(base: Path, count: int = 300) -> float:
    """Median time of a 4 KiB overwrite + fdatasync, the unit cost of a durable SQLite commit."""
    path = base / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
        times = []
        for _ in range(count):
            t = time.perf_counter()
            os.pwrite(fd, b"x" * 4096, 0)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return round(statistics.median(times) * 1e6, 1)


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (+ uncommitted changes in src/)" if dirty else head
