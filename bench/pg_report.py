"""The PostgreSQL section of docs/benchmarks.md, from what pg_run.py collected."""

from __future__ import annotations

from typing import Any


def _num(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _get(res: dict[str, Any], system: str, key: str) -> dict[str, Any] | None:
    r = res.get(system, {}).get(key)
    return r if r and "wf_per_s" in r else None


def _ratio(res: dict[str, Any], key: str, field: str = "wf_per_s") -> str:
    ours, theirs = _get(res, "batonflow", key), _get(res, "dbos", key)
    if ours is None or theirs is None:
        return "n/a"
    if field == "wf_per_s":
        return f"{ours[field] / theirs[field]:.2f}x"
    return f"{theirs[field] / ours[field]:.2f}x"  # latency: how many times lower ours is


def render_postgres(pg: dict[str, Any]) -> str:
    st, server, names, res = pg["settings"], pg["server"], pg["systems"], pg["results"]
    out: list[str] = []
    add = out.append
    add("## PostgreSQL\n")
    add(
        "The same 3-step workflow with the same PostgreSQL server as the store for both systems: "
        "batonflow's `PostgresStore` and DBOS Transact 3.4's PostgreSQL system database, each on "
        "a fresh database. *Workers* are separate processes on that database, each running its "
        f"share of the N workflows with {st['concurrency_per_worker']} in flight (so 4 workers "
        f"have {4 * st['concurrency_per_worker']}); they start together and throughput is all "
        "workflows over the time from the first start to the last finish. *Sequential* is one "
        "worker running one workflow at a time: the latency of durable steps without "
        "contention. Every step is committed (`synchronous_commit=on`) before the next starts, "
        "in both systems.\n"
    )
    add(
        "| configuration | system | workflows/s | steps/s | p50 ms per workflow | "
        "per step ms (p50/3) | p99 ms | CPU ms per workflow | batonflow / DBOS |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    keys = ["sequential-1"] + [f"concurrent-{w}" for w in st["workers"]]
    for key in keys:
        mode, workers = key.split("-")
        title = "sequential, 1 worker" if mode == "sequential" else f"{workers} worker(s)"
        for system, label in names.items():
            r = _get(res, system, key)
            if r is None:
                add(f"| {title} | {label} | failed | | | | | | |")
                continue
            ratio = _ratio(res, key) if system == "batonflow" else ""
            add(
                f"| {title} | {label} | {_num(r['wf_per_s'])} | {_num(r['steps_per_s'], 0)} | "
                f"{_num(r['latency_p50_ms'], 2)} | {_num(r['step_latency_ms'], 2)} | "
                f"{_num(r['latency_p99_ms'], 1)} | {_num(r['cpu_ms_per_wf'], 2)} | {ratio} |"
            )
    add("")
    add(_server_side(keys, names, res))
    add(_notes(st, res, names))
    add("### Setup (PostgreSQL)\n")
    add(
        f"- Server: PostgreSQL {server['server_version']} on {server['host']} (this machine), "
        f"`synchronous_commit={server['synchronous_commit']}`, `fsync={server['fsync']}`, "
        f"`wal_sync_method={server['wal_sync_method']}`, `shared_buffers="
        f"{server['shared_buffers']}`; the workers run on the same 2 cores as the server."
    )
    add(
        f"- N: {st['n']:,} workflows per worker configuration, {st['n_sequential']:,} "
        f"sequentially; 20 warm-up workflows per worker first, not timed; {st['repeat']} run(s) "
        "per configuration, interleaved between the systems, best kept."
    )
    add(
        "- batonflow: `Engine(url)` with `engine.run(triage)` from "
        f"{st['concurrency_per_worker']} coroutines per worker; DBOS: the sync workflow "
        f"`triage()` called from {st['concurrency_per_worker']} threads per worker, each process "
        "with its own executor id (`DBOS__VMID`)."
    )
    add(f"- PostgreSQL part: {pg.get('wall_s', 'n/a')} s.\n")
    return "\n".join(out).rstrip() + "\n"


def _server_side(keys: list[str], names: dict[str, str], res: dict[str, Any]) -> str:
    """Commits per WAL flush and lock waits, per configuration and system."""
    lines = [
        "### Commits per WAL flush and lock waits\n",
        "Over each measured window: commits of the measured database "
        "(`pg_stat_database.xact_commit`, which counts read-only transactions too: the engines' "
        "polls and lease checks are in it) per WAL sync (`pg_stat_wal.wal_sync`; group commit "
        "shows as more than one), WAL records per workflow, and, sampling `pg_stat_activity` "
        "every 20 ms, the share of the database's active sessions waiting for a lock "
        "(`wait_event_type = 'Lock'`) with the lock events seen. `pg_stat_wal` counts the "
        "whole server: work of other databases on it during the window counts too.\n",
        "| configuration | system | commits / workflow | commits / WAL sync | WAL syncs / "
        "workflow | WAL records / workflow | active sessions (mean) | waiting on a lock | "
        "lock events |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        mode, workers = key.split("-")
        title = "sequential, 1 worker" if mode == "sequential" else f"{workers} worker(s)"
        for system, label in names.items():
            r = _get(res, system, key)
            srv = (r or {}).get("server")
            if not srv:
                continue
            locks = srv.get("locks", {})
            share = locks.get("lock_wait_share")
            events = ", ".join(f"{k} {v}" for k, v in locks.get("lock_events", {}).items())
            lines.append(
                f"| {title} | {label} | {_num(srv['commits_per_wf'], 2)} | "
                f"{_num(srv['commits_per_wal_sync'], 2)} | "
                f"{_num(srv.get('wal_syncs_per_wf'), 2)} | "
                f"{_num(srv['wal_records_per_wf'], 1)} | "
                f"{_num(locks.get('active_sessions_mean'), 1)} | "
                f"{'n/a' if share is None else f'{share * 100:.0f}%'} | {events or 'none'} |"
            )
    return "\n".join(lines) + "\n"


def _notes(st: dict[str, Any], res: dict[str, Any], names: dict[str, str]) -> str:
    lines = []
    seq_b, seq_d = _get(res, "batonflow", "sequential-1"), _get(res, "dbos", "sequential-1")
    if seq_b and seq_d:
        lines.append(
            f"- **Latency of a durable step:** {seq_b['step_latency_ms']:.2f} ms for batonflow, "
            f"{seq_d['step_latency_ms']:.2f} ms for DBOS, one workflow at a time "
            f"({_ratio(res, 'sequential-1', 'step_latency_ms')} lower for batonflow). A "
            "batonflow step is one transaction: the lease check, the journal entry, the attempt "
            "and the step's hash-chained audit entries, one commit. The chain's head is one row: "
            "appends serialise across all workers, so at concurrency the commit rate of the "
            "server bounds batonflow (DBOS writes no audit trail). See docs/design.md, 39."
        )
    scale = []
    for system, label in names.items():
        one = _get(res, system, "concurrent-1")
        more = [(w, _get(res, system, f"concurrent-{w}")) for w in st["workers"] if w > 1]
        if one:
            parts = [f"{r['wf_per_s'] / one['wf_per_s']:.2f}x with {w}" for w, r in more if r]
            scale.append(f"{label} " + ", ".join(parts))
    if scale:
        lines.append(
            "- **Scaling with workers** (throughput over 1 worker): "
            + "; ".join(scale)
            + ". This machine has 2 cores "
            "for the workers and the server together, so past 2 workers the processes share "
            "CPU: on separate machines each worker brings its own cores and the database's "
            "commit rate is the limit."
        )
    return "\n".join(lines) + "\n"
