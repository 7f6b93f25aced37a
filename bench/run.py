"""Run the side-by-side benchmark and write docs/benchmarks.md and bench/results/latest.json.

    bench/.venv/bin/python bench/run.py [--n 2000] [--n-concurrent 3000] [--repeat 2]
    bench/.venv/bin/python bench/run.py --quick        # every part at a tiny size: a smoke run

Each system x mode runs in a fresh process (so peak RSS is that system's), on a fresh database
file in one temporary directory (one filesystem for all). A second, short pass under
``strace`` with in-process counters gives each system's costs per workflow (statements, pages
written, fsyncs, JSON encodes); a third repeats the sequential run and the counting on a store
that already holds ``--prefill`` workflows. The physical ceiling (one-row commits per second on
the same disk), the timer and HTTP benchmarks and the PostgreSQL part run in the same go.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ceiling
import pg_run
import prefill
import strace_pass
from console_section import carry_over
from machine import machine
from report import render

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MODES = ("sequential", "concurrent")
# --quick: every part at a tiny size, to check the machinery end to end (options given win).
QUICK = {
    "n": 30, "n_concurrent": 60, "repeat": 1, "warmup": 5, "strace_n": 20, "prefill": 200,
    "timer_backlog": 200, "timers": 5, "api_n": 60, "api_sse": 5, "pg_n": 96,
    "pg_n_sequential": 20, "pg_repeat": 1,
}  # fmt: skip


@dataclass(frozen=True)
class System:
    key: str
    label: str
    script: str
    db: str
    args: tuple[str, ...] = ()
    fill_args: tuple[str, ...] = ()  # how it fills a store for the --prefill pass

    @property
    def rollback_journal(self) -> bool:
        return self.args == ("--journal", "default")


_DBOS_FILL = ("--journal", "wal", "--style", "threads-call")
SYSTEMS = (
    System("batonflow", "batonflow", "bench_batonflow.py", "batonflow.db"),
    System(
        "dbos",
        "DBOS 3.4 (as shipped)",
        "bench_dbos.py",
        "dbos.sqlite",
        ("--journal", "default"),
        _DBOS_FILL,
    ),
    System(
        "dbos-wal",
        "DBOS 3.4 on WAL",
        "bench_dbos.py",
        "dbos.sqlite",
        ("--journal", "wal"),
        _DBOS_FILL,
    ),
    System("langgraph", "LangGraph + SqliteSaver", "bench_langgraph.py", "langgraph.sqlite"),
)


def options() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every part at a tiny size")
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
        "--strace-n", type=int, default=200, help="workflows in the counting pass; 0: skip"
    )
    ap.add_argument(
        "--prefill", type=int, default=100_000, help="workflows already in the store; 0: skip"
    )
    ap.add_argument("--cache", type=Path, default=prefill.CACHE, help="where filled stores stay")
    ap.add_argument("--tmp", type=Path, default=None, help="where the database files go")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--json", type=Path, default=BENCH / "results" / "latest.json")
    ap.add_argument("--from-json", type=Path, help="only re-render the report from saved results")
    ap.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL part")
    ap.add_argument("--timer-backlog", type=int, default=5000, help="new runs queued at once")
    ap.add_argument("--timers", type=int, default=50, help="sleeping runs timed; 0: skip")
    ap.add_argument("--api-n", type=int, default=2000, help="HTTP starts (bench_api.py); 0: skip")
    ap.add_argument("--api-sse", type=int, default=200, help="SSE latency samples")
    pg_run.add_options(ap)
    return ap


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = options()
    argv = sys.argv[1:] if argv is None else argv
    if "--quick" in argv:
        ap.set_defaults(**QUICK)
    return ap.parse_args(argv)


def main() -> int:
    args = parse()
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
    data: dict[str, Any] = {"settings": settings(args), "systems": labels(systems)}
    try:
        env = machine(base)
        env["loadavg_before"] = os.getloadavg()
        first_ceiling = ceiling.one_row_commits(base)
        results: dict[str, dict[str, Any]] = {s.key: {} for s in systems}
        for mode in MODES:
            n = args.n if mode == "sequential" else args.n_concurrent
            for rep in range(args.repeat):
                for system in systems:  # interleaved, so background load hits all alike
                    where = base / f"{system.key}-{mode}-{rep}"
                    out = run_one(system, mode, n, args, fresh(where, system))
                    keep(results[system.key], mode, out)
        if args.strace_n > 0:
            for system in systems:
                for mode in MODES:
                    where = base / f"strace-{system.key}-{mode}"
                    count(system, mode, args, fresh(where, system), results[system.key])
        data["ceiling"] = ceiling.best(first_ceiling, ceiling.one_row_commits(base))
        data["results"] = results
        if args.prefill > 0:
            data["prefilled"] = after_prefill(systems, args, base)
        env["loadavg_after"] = os.getloadavg()
        data["timers"] = run_timers(args)
        data["api"] = run_api(args)
        why = "skipped (--no-postgres)" if args.no_postgres else pg_run.available(args.pg_url)
        if why is None:
            pg_started = time.monotonic()
            data["postgres"] = pg_run.run_all(args)
            data["postgres"]["wall_s"] = round(time.monotonic() - pg_started, 1)
        else:
            log(f"no PostgreSQL part: {why}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    env["wall_s"] = round(time.monotonic() - started, 1)
    data["env"] = env
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
        "prefill": args.prefill,
        "quick": args.quick,
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


def fresh(where: Path, system: System) -> Path:
    """A new folder for one process; the path of its (not yet existing) database."""
    where.mkdir(parents=True)
    return where / system.db


def run_one(
    system: System, mode: str, n: int, args: argparse.Namespace, db: Path
) -> dict[str, Any]:
    cmd = command(system, mode, n, args.warmup, args, db)
    log(f"{system.key:10} {mode:10} n={n} ...")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    out = result_line(proc.stdout)
    if proc.returncode != 0 or out is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        log(f"{system.key} {mode} FAILED (exit {proc.returncode}):\n" + "\n".join(tail))
        return {"error": "\n".join(tail), "exit": proc.returncode}
    log(
        f"{system.key:10} {mode:10} {out['wf_per_s']:9.1f} wf/s  "
        f"{out['peak_rss_mb']:.0f} MB  ({time.monotonic() - t0:.0f} s)"
    )
    return out


def result_line(stdout: str) -> dict[str, Any] | None:
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    return None if line is None else dict(json.loads(line[len("RESULT ") :]))


def count(
    system: System, mode: str, args: argparse.Namespace, db: Path, slot: dict[str, Any]
) -> None:
    """The counting pass (strace_pass.py): syscalls and in-process counts per workflow."""
    log(f"{system.key:10} {mode:10} counting, n={args.strace_n} ...")
    cmd = command(system, mode, args.strace_n, 5, args, db)
    syscalls, stdout = strace_pass.run_counted(cmd, db, args.strace_n, REPO)
    out = result_line(stdout)
    target = slot.setdefault(mode, {})
    target["fsyncs"] = syscalls
    target["costs"] = (out or {}).get("costs") or {"error": "no counts from the process"}


def _fill(system: System, count: int, db: Path) -> None:
    prefill.run_fill(prefill.fill_command(system.script, system.fill_args, count, db))


def after_prefill(systems: list[System], args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """The sequential run and the counting pass again, each on a copy of a store that already
    holds ``args.prefill`` workflows."""
    results: dict[str, dict[str, Any]] = {}
    for system in systems:
        slot: dict[str, Any] = {}
        results[system.key] = slot
        try:
            store = prefill.cached(
                system.script,
                args.prefill,
                system.db,
                functools.partial(_fill, system, args.prefill),
                log,
                args.cache,
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            log(f"prefill    {system.key} FAILED: {exc}")
            slot["sequential"] = {"error": str(exc)[-2000:]}
            continue
        copy = prefill.copy_to(
            store, base / f"full-{system.key}", rollback_journal=system.rollback_journal
        )
        slot["sequential"] = run_one(system, "sequential", args.n, args, copy)
        shutil.rmtree(copy.parent, ignore_errors=True)
        if args.strace_n > 0:
            copy = prefill.copy_to(
                store, base / f"full-count-{system.key}", rollback_journal=system.rollback_journal
            )
            count(system, "sequential", args, copy, slot)
            shutil.rmtree(copy.parent, ignore_errors=True)
    return {"workflows": args.prefill, "results": results}


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


def run_api(args: argparse.Namespace) -> dict[str, Any] | None:
    """HTTP starts/s next to engine.start, and SSE latency (bench_api.py, on SQLite)."""
    if args.api_n <= 0:
        return None
    cmd = [sys.executable, str(BENCH / "bench_api.py"), "--n", str(args.api_n)]
    cmd += ["--sse", str(args.api_sse)]
    log(f"api        n={args.api_n} sse={args.api_sse} ...")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    text = proc.stdout.strip()
    try:
        result: dict[str, Any] = json.loads(text[text.index("{") :]) if "{" in text else {}
    except ValueError:
        result = {}
    if proc.returncode != 0 or not result:
        log("api FAILED:\n" + "\n".join((proc.stderr or text).strip().splitlines()[-15:]))
        return {"error": (proc.stderr or text).strip()[-2000:]}
    log(f"api        {result.get('http_start_per_s')} HTTP starts/s")
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


if __name__ == "__main__":
    sys.exit(main())
