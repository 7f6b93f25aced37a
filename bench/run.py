"""Run the side-by-side benchmark and write docs/benchmarks.md and bench/results/latest.json.

    bench/.venv/bin/python bench/run.py [--n 2000] [--n-concurrent 3000] [--repeat 2]

Each system x mode runs in a fresh process (so peak RSS is that system's), on a fresh database
file in one temporary directory (one filesystem for all). A second, short pass under
``strace`` counts the fsyncs each system makes per workflow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pg_run
from console_section import carry_over
from report import render

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MARK_START, MARK_END = "bench-mark-start", "bench-mark-end"  # as in harness.py
MODES = ("sequential", "concurrent")
PACKAGES = (
    "batonflow",
    "dbos",
    "SQLAlchemy",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "aiosqlite",
)


@dataclass(frozen=True)
class System:
    key: str
    label: str
    script: str
    db: str
    args: tuple[str, ...] = ()


SYSTEMS = (
    System("batonflow", "batonflow", "bench_batonflow.py", "batonflow.db"),
    System(
        "dbos", "DBOS 3.4 (as shipped)", "bench_dbos.py", "dbos.sqlite", ("--journal", "default")
    ),
    System("dbos-wal", "DBOS 3.4 on WAL", "bench_dbos.py", "dbos.sqlite", ("--journal", "wal")),
    System("langgraph", "LangGraph + SqliteSaver", "bench_langgraph.py", "langgraph.sqlite"),
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="timed workflows, sequential mode")
    ap.add_argument("--n-concurrent", type=int, default=3000, help="timed workflows, concurrent")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=20, help="untimed workflows before timing")
    ap.add_argument("--repeat", type=int, default=2, help="runs per system x mode; best is kept")
    ap.add_argument("--systems", default=",".join(s.key for s in SYSTEMS))
    ap.add_argument(
        "--dbos-style", default="threads-call", choices=("threads-start", "threads-call", "async")
    )
    ap.add_argument(
        "--strace-n", type=int, default=200, help="workflows in the strace pass; 0: skip"
    )
    ap.add_argument("--tmp", type=Path, default=None, help="where the database files go")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--json", type=Path, default=BENCH / "results" / "latest.json")
    ap.add_argument("--from-json", type=Path, help="only re-render the report from saved results")
    ap.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL part")
    ap.add_argument("--timer-backlog", type=int, default=5000, help="new runs queued at once")
    ap.add_argument("--timers", type=int, default=50, help="sleeping runs whose lateness is timed")
    pg_run.add_options(ap)
    args = ap.parse_args()
    if args.from_json:
        new = render(json.loads(args.from_json.read_text()))
        args.out.write_text(carry_over(args.out.read_text() if args.out.exists() else "", new))
        log(f"wrote {args.out} from {args.from_json}")
        return 0
    wanted = args.systems.split(",")
    systems = [s for s in SYSTEMS if s.key in wanted]
    if args.tmp:
        args.tmp.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="batonflow-bench-", dir=args.tmp))
    started = time.monotonic()
    try:
        env = machine(base)
        env["loadavg_before"] = os.getloadavg()
        results: dict[str, dict[str, Any]] = {s.key: {} for s in systems}
        for mode in MODES:
            n = args.n if mode == "sequential" else args.n_concurrent
            for rep in range(args.repeat):
                for system in systems:  # interleaved, so background load hits all alike
                    out = run_one(system, mode, n, args, base / f"{system.key}-{mode}-{rep}")
                    keep(results[system.key], mode, out)
        if args.strace_n > 0 and shutil.which("strace"):
            for system in systems:
                for mode in MODES:
                    counted = fsyncs(system, mode, args, base / f"strace-{system.key}-{mode}")
                    results[system.key].setdefault(mode, {})["fsyncs"] = counted
        timers = run_timers(args)
        env["loadavg_after"] = os.getloadavg()
        postgres = None
        why = "skipped (--no-postgres)" if args.no_postgres else pg_run.available(args.pg_url)
        if why is None:
            pg_started = time.monotonic()
            postgres = pg_run.run_all(args)
            postgres["wall_s"] = round(time.monotonic() - pg_started, 1)
        else:
            log(f"no PostgreSQL part: {why}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    env["wall_s"] = round(time.monotonic() - started, 1)
    data = {"env": env, "settings": settings(args), "systems": labels(systems), "results": results}
    if timers is not None:
        data["timers"] = timers
    if postgres is not None:
        data["postgres"] = postgres
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(carry_over(previous, render(data)))  # the console section stays
    log(f"wrote {args.out} and {args.json} in {env['wall_s']} s")
    failed = [f"{k}/{m}" for k, r in results.items() for m in MODES if "error" in r.get(m, {})]
    if failed:
        log(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "n_sequential": args.n,
        "n_concurrent": args.n_concurrent,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "repeat": args.repeat,
        "dbos_style": args.dbos_style,
        "strace_n": args.strace_n,
        "command": "make bench",
        "argv": sys.argv[1:],
    }


def labels(systems: list[System]) -> dict[str, str]:
    return {s.key: s.label for s in systems}


# -- running ----------------------------------------------------------------------------------
def command(
    system: System, mode: str, n: int, warmup: int, args: argparse.Namespace, db: Path
) -> list[str]:
    cmd = [sys.executable, str(BENCH / system.script), "--mode", mode, "--n", str(n)]
    cmd += ["--warmup", str(warmup), "--concurrency", str(args.concurrency), "--db", str(db)]
    cmd += list(system.args)
    if system.script == "bench_dbos.py":
        cmd += ["--style", args.dbos_style]
    return cmd


def run_one(
    system: System, mode: str, n: int, args: argparse.Namespace, where: Path
) -> dict[str, Any]:
    where.mkdir(parents=True)
    cmd = command(system, mode, n, args.warmup, args, where / system.db)
    log(f"{system.key:10} {mode:10} n={n} ...")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        log(f"{system.key} {mode} FAILED (exit {proc.returncode}):\n" + "\n".join(tail))
        return {"error": "\n".join(tail), "exit": proc.returncode}
    out: dict[str, Any] = json.loads(line[len("RESULT ") :])
    log(
        f"{system.key:10} {mode:10} {out['wf_per_s']:9.1f} wf/s  "
        f"{out['peak_rss_mb']:.0f} MB  ({time.monotonic() - t0:.0f} s)"
    )
    return out


def run_timers(args: argparse.Namespace) -> dict[str, Any] | None:
    """Timer lateness under a backlog of new runs (bench_timers.py, batonflow on SQLite)."""
    if args.timers <= 0:
        return None
    cmd = [sys.executable, str(BENCH / "bench_timers.py"), "--backlog", str(args.timer_backlog)]
    cmd += ["--timers", str(args.timers)]
    log(f"timers     backlog={args.timer_backlog} timers={args.timers} ...")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    if proc.returncode != 0:
        log("timers FAILED:\n" + "\n".join(proc.stderr.strip().splitlines()[-15:]))
        return {"error": proc.stderr.strip()[-2000:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"timers     lateness p50 {result['lateness_ms']['p50']} ms")
    return result


def keep(slot: dict[str, Any], mode: str, out: dict[str, Any]) -> None:
    """Keep the best (highest workflows/s) run of each system x mode; remember every run's."""
    previous = slot.get(mode)
    runs = [*previous.get("runs_wf_per_s", [])] if previous else []
    if "error" not in out:
        runs.append(round(out["wf_per_s"], 1))
    if (
        previous is None
        or "error" in previous
        or ("error" not in out and out["wf_per_s"] > previous["wf_per_s"])
    ):
        slot[mode] = out
    slot[mode]["runs_wf_per_s"] = runs


def fsyncs(system: System, mode: str, args: argparse.Namespace, where: Path) -> dict[str, Any]:
    """fsync/fdatasync calls per workflow inside the timed window, by file, from strace."""
    where.mkdir(parents=True)
    db = where / system.db
    trace = where / "strace.log"
    strace = ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace)]
    if (
        subprocess.run(
            ["strace", "--seccomp-bpf", "-o", "/dev/null", "true"], capture_output=True
        ).returncode
        == 0
    ):
        strace.insert(1, "--seccomp-bpf")
    cmd = strace + command(system, mode, args.strace_n, 5, args, db)
    log(f"{system.key:10} {mode:10} strace, n={args.strace_n} ...")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    if proc.returncode != 0 or not trace.exists():
        return {"error": (proc.stderr or "").strip()[-500:]}
    counts: Counter[str] = Counter()
    inside = False
    call = re.compile(r"\b(?:fsync|fdatasync)\(\d+<([^>]*)>")
    for text in trace.read_text(errors="replace").splitlines():
        m = call.search(text)
        if not m:
            continue
        path = m.group(1)
        if path.endswith(MARK_START):
            inside = True
        elif path.endswith(MARK_END):
            inside = False
        elif inside:
            counts[_kind(path, db)] += 1
    per_wf = {k: v / args.strace_n for k, v in sorted(counts.items())}
    return {"n": args.strace_n, "total_per_wf": sum(per_wf.values()), "by_file_per_wf": per_wf}


def _kind(path: str, db: Path) -> str:
    if path == str(db):
        return "database"
    if path.startswith(str(db)):
        return path[len(str(db)) :].lstrip("-.") or "database"  # wal, journal, ...
    if path == str(db.parent):
        return "directory"
    return "other"


# -- the machine ------------------------------------------------------------------------------
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


if __name__ == "__main__":
    sys.exit(main())
