"""The PostgreSQL part of the benchmark: batonflow and DBOS on the same server, 1, 2 and 4 workers.

For each system and worker count, a fresh database is created on the server and that many
``pg_worker.py`` processes are started on it (one after another, so that each system's schema
setup is not raced). Once every worker has warmed up, all are told to go at once; each runs its
share of the workflows (``--pg-concurrency`` in flight per worker) and reports its wall-clock
window and latencies. Throughput is all workflows over the union of the windows. A sequential run
(one worker, one workflow at a time) gives the latency of a durable step without contention.

Run as part of ``make bench`` (when the server answers) or alone:
``bench/.venv/bin/python bench/pg_run.py`` (which re-renders docs/benchmarks.md from the saved
SQLite results plus these).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pg_stats

BENCH = Path(__file__).resolve().parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SYSTEMS = {"batonflow": "batonflow", "dbos": "DBOS 3.4"}
WORKERS = (1, 2, 4)
# Backends report their statistics to the server at most once a second: wait that long after a
# window before reading pg_stat_wal, so the window's own WAL syncs are in the figures.
STATS_SETTLE_S = 1.1


def add_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--pg-url", default=DEFAULT_URL, help="PostgreSQL server (any database)")
    ap.add_argument("--pg-n", type=int, default=3000, help="timed workflows per configuration")
    ap.add_argument("--pg-n-sequential", type=int, default=1000)
    ap.add_argument("--pg-concurrency", type=int, default=32, help="in flight per worker")
    ap.add_argument("--pg-repeat", type=int, default=2, help="runs per configuration; best kept")
    ap.add_argument("--pg-systems", default=",".join(SYSTEMS))


def available(url: str) -> str | None:
    """None if the server answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no PostgreSQL part
        return f"{type(exc).__name__}: {exc}"


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    systems = [s for s in args.pg_systems.split(",") if s in SYSTEMS]
    configs = [("sequential", 1)] + [("concurrent", w) for w in WORKERS]
    results: dict[str, dict[str, Any]] = {s: {} for s in systems}
    for mode, workers in configs:
        for _ in range(args.pg_repeat):
            for system in systems:  # interleaved, so background load hits both alike
                out = _run(args, system, mode, workers)
                key = f"{mode}-{workers}"
                best = results[system].get(key)
                runs = [*best.get("runs_wf_per_s", [])] if best else []
                if "error" not in out:
                    runs.append(round(out["wf_per_s"], 1))
                if best is None or "error" in best or out.get("wf_per_s", 0) > best["wf_per_s"]:
                    results[system][key] = out
                results[system][key]["runs_wf_per_s"] = runs
    return {
        "settings": {
            "n": args.pg_n,
            "n_sequential": args.pg_n_sequential,
            "concurrency_per_worker": args.pg_concurrency,
            "repeat": args.pg_repeat,
            "workers": list(WORKERS),
        },
        "server": _server(args.pg_url),
        "systems": {s: SYSTEMS[s] for s in systems},
        "results": results,
    }


def _run(args: argparse.Namespace, system: str, mode: str, workers: int) -> dict[str, Any]:
    db = f"bench_{system}_{uuid.uuid4().hex[:8]}"
    _admin(args.pg_url, f"CREATE DATABASE {db}")
    url = _with_database(args.pg_url, db)
    total = args.pg_n_sequential if mode == "sequential" else args.pg_n
    shares = [total // workers + (i < total % workers) for i in range(workers)]
    procs: list[subprocess.Popen[str]] = []
    log(f"{system:10} {mode:10} workers={workers} n={total} ...")
    try:
        for share in shares:  # one after another: each system sets its schema up once
            cmd = [
                sys.executable, str(BENCH / "pg_worker.py"), "--system", system, "--url", url,
                "--mode", mode, "--n", str(share), "--concurrency", str(args.pg_concurrency),
            ]  # fmt: skip
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=BENCH
            )
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "READY":
                raise RuntimeError(f"worker did not start: {line!r}")
        before = pg_stats.snapshot(args.pg_url, db)
        parts = []
        with pg_stats.LockSampler(args.pg_url, db) as locks:
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("GO\n")
                proc.stdin.flush()
            for proc in procs:
                out, _ = proc.communicate(timeout=1800)
                line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    raise RuntimeError(f"worker failed (exit {proc.returncode})")
                parts.append(json.loads(line[len("RESULT ") :]))
        time.sleep(STATS_SETTLE_S)
        server = pg_stats.deltas(before, pg_stats.snapshot(args.pg_url, db), total)
        server["locks"] = locks.result()
        verified = _verified(url, system)
    except Exception as exc:
        log(f"{system} {mode} {workers} FAILED: {exc}")
        return {"error": str(exc)}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _admin(args.pg_url, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    result = _aggregate(parts, mode, workers, verified, total, args)
    result["server"] = server
    return result


def _aggregate(
    parts: list[dict[str, Any]],
    mode: str,
    workers: int,
    verified: int,
    total: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    elapsed = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)
    lat = sorted(x for p in parts for x in p["latencies_ms"])
    p50 = lat[len(lat) // 2]
    result = {
        "mode": mode,
        "workers": workers,
        "n": total,
        "in_flight": workers * (args.pg_concurrency if mode == "concurrent" else 1),
        "elapsed_s": elapsed,
        "wf_per_s": total / elapsed,
        "steps_per_s": total * 3 / elapsed,
        "latency_p50_ms": p50,
        "latency_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "latency_mean_ms": statistics.fmean(lat),
        "step_latency_ms": p50 / 3,
        "cpu_ms_per_wf": sum(p["cpu_s"] for p in parts) * 1000 / total,
        "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
        "verified_completed": verified,
    }
    log(
        f"  {result['wf_per_s']:8.1f} wf/s  p50 {p50:.2f} ms  "
        f"p99 {result['latency_p99_ms']:.2f} ms  ({elapsed:.1f} s)"
    )
    if verified < total:
        raise AssertionError(f"only {verified} completed workflows in the database, ran {total}")
    return result


def _verified(url: str, system: str) -> int:
    import psycopg

    query = (
        "SELECT count(*) FROM runs WHERE status='completed'"
        if system == "batonflow"
        else "SELECT count(*) FROM dbos.workflow_status WHERE status='SUCCESS'"
    )
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _server(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method",
                         "shared_buffers", "max_connections")
        }  # fmt: skip
    settings["host"] = url.split("@")[-1].split("/")[0]
    return settings


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def _with_database(url: str, db: str) -> str:
    head, _, tail = url.rpartition("/")
    query = ""
    if "?" in tail:
        query = "?" + tail.split("?", 1)[1]
    return f"{head}/{db}{query}"


def log(msg: str) -> None:
    print(f"[bench-pg] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    from report import render

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_options(ap)
    ap.add_argument("--json", type=Path, default=BENCH / "results" / "latest.json")
    ap.add_argument("--out", type=Path, default=BENCH.parent / "docs" / "benchmarks.md")
    args = ap.parse_args()
    why = available(args.pg_url)
    if why:
        log(f"PostgreSQL at {args.pg_url} is not available: {why}")
        return 1
    started = time.monotonic()
    pg = run_all(args)
    pg["wall_s"] = round(time.monotonic() - started, 1)
    data = json.loads(args.json.read_text()) if args.json.exists() else None
    if data is None:
        log(f"no SQLite results in {args.json}: run `make bench` for the whole report")
        return 1
    data["postgres"] = pg
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    args.out.write_text(render(data))
    log(f"wrote {args.out} and {args.json} in {pg['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
