"""The counting pass: one short run per system x mode under ``strace``, with the in-process
counters of ``costs.py`` switched on (``BENCH_COSTS=1``).

From the strace log, between the two marker fsyncs that bound the timed window (``harness.py``):
fsync/fdatasync calls by file, and bytes written by file, turned into pages with the database's
page size (a WAL frame is a page plus a 24-byte header; a rollback-journal record a page plus 8).
From the process itself: SQL statements, commits and JSON encodes per workflow.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MARK_START, MARK_END = "bench-mark-start", "bench-mark-end"  # as in harness.py
SYSCALLS = "fsync,fdatasync,write,pwrite64,pwritev,pwritev2"
_CALL = re.compile(r"^(\w+)\((\d+)<([^>]*)>.*\)\s+=\s+(-?\d+)")
_RESUMED = re.compile(r"^<\.\.\. \w+ resumed>(.*)$")
_HEADER = {"wal": 24, "journal": 8}  # bytes each page carries in that file besides the page


def strace_command(trace: Path) -> list[str]:
    cmd = ["strace", "-f", "-qq", "-y", "-s", "0", "-e", f"trace={SYSCALLS}", "-o", str(trace)]
    probe = ["strace", "--seccomp-bpf", "-o", "/dev/null", "true"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        cmd.insert(1, "--seccomp-bpf")
    return cmd


def run_counted(
    cmd: list[str], db: Path, n: int, cwd: Path, timeout: float = 1800
) -> tuple[dict[str, Any], str]:
    """Run ``cmd`` (a bench_<system>.py command on ``db``) under strace with the counters on.
    Returns the syscall counts per workflow and the process's stdout (its RESULT line)."""
    trace = db.parent / "strace.log"
    env = {**os.environ, "BENCH_COSTS": "1"}
    traced = shutil.which("strace") is not None
    proc = subprocess.run(
        (strace_command(trace) if traced else []) + cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout or "").strip()[-800:]}, proc.stdout
    if not traced or not trace.exists():
        return {"error": "strace is not installed: no fsyncs or pages counted"}, proc.stdout
    counted = parse(trace.read_text(errors="replace").splitlines(), db, n)
    trace.unlink()
    return counted, proc.stdout


def _calls(lines: list[str]) -> Iterator[tuple[str, str, int]]:
    """(syscall, path, return value) per finished call, joining strace's unfinished/resumed."""
    pending: dict[str, str] = {}
    for raw in lines:
        pid, _, text = raw.partition(" ")
        text = text.strip()
        if text.endswith("<unfinished ...>"):
            pending[pid] = text[: -len("<unfinished ...>")]
            continue
        resumed = _RESUMED.match(text)
        if resumed:
            text = pending.pop(pid, "") + resumed.group(1)
        m = _CALL.match(text)
        if m:
            yield m.group(1), m.group(3), int(m.group(4))


def parse(lines: list[str], db: Path, n: int) -> dict[str, Any]:
    """Syscall counts per workflow inside the marked window of an strace log."""
    fsyncs: Counter[str] = Counter()
    written: Counter[str] = Counter()
    inside = False
    for call, path, value in _calls(lines):
        if call in ("fsync", "fdatasync"):
            if path.endswith(MARK_START):
                inside = True
                continue
            if path.endswith(MARK_END):
                inside = False
                continue
            if inside:
                fsyncs[kind(path, db)] += 1
        elif inside and value > 0:
            what = kind(path, db)
            if what != "other":  # pipes, logs, the terminal
                written[what] += value
    page = page_size(db)
    pages = {k: v / (page + _HEADER.get(k, 0)) / n for k, v in sorted(written.items())}
    per_wf = {k: v / n for k, v in sorted(fsyncs.items())}
    return {
        "n": n,
        "total_per_wf": sum(per_wf.values()),
        "by_file_per_wf": per_wf,
        "page_size": page,
        "pages_written_per_wf": pages,
        "log_pages_per_wf": pages.get("wal", pages.get("journal", 0.0)),
        "log": "wal" if "wal" in pages else ("journal" if "journal" in pages else "none"),
    }


def kind(path: str, db: Path) -> str:
    if path == str(db):
        return "database"
    if path.startswith(str(db)):
        return path[len(str(db)) :].lstrip("-.") or "database"  # wal, journal, shm
    if path == str(db.parent):
        return "directory"
    return "other"


def page_size(db: Path) -> int:
    try:
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])
    except sqlite3.Error:
        return 4096
