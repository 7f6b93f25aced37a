"""Sections of docs/benchmarks.md for the benchmarks beside the kernel's: timers under a backlog
(bench_timers.py) and the HTTP API (bench_api.py)."""

from __future__ import annotations

from typing import Any

API_TARGET = 0.5  # HTTP starts/s over engine.start's, issue 11


def render_timers(t: dict[str, Any]) -> str:
    """Timer lateness under a backlog of new runs (bench_timers.py)."""
    if "error" in t:
        return f"## Timers under a backlog\n\nFailed: `{t['error'][-300:]}`\n"
    late = t["lateness_ms"]
    return (
        "## Timers under a backlog\n\n"
        f"{t['timers']} runs each sleep 0.1-1 s while {t['backlog']} new 3-step runs are queued "
        f"at once on one engine ({t['store']}, `max_concurrent_runs={t['max_concurrent_runs']}`"
        f", poll {t['poll_s']} s). Lateness = when a sleeper woke minus when it asked to. Runs "
        "already under way (due timers, delivered events) are claimed before new ones.\n\n"
        "| p50 | p90 | p99 | max | within the poll interval | backlog drained in |\n"
        "|---|---|---|---|---|---|\n"
        f"| {late['p50']} ms | {late['p90']} ms | {late['p99']} ms | {late['max']} ms | "
        f"{t['within_poll']} of {t['timers']} | {t['backlog_drained_s']} s |\n"
    )


def render_api(a: dict[str, Any]) -> str:
    """Runs started over HTTP next to engine.start in the same invocation, and SSE latency."""
    if "error" in a:
        return f"## The HTTP API\n\nFailed: `{a['error'][-300:]}`\n"
    share = a.get("http_vs_engine")
    verdict = (
        "not measured"
        if share is None
        else f"{share * 100:.0f}%: **{'MET' if share >= API_TARGET else 'NOT MET'}**"
    )
    return (
        "## The HTTP API\n\n"
        f"`bench/bench_api.py`: {a.get('n', 'n/a')} runs started through `POST /api/v1/runs` of "
        f"a real `batonflow serve` process at concurrency {a.get('concurrency', 'n/a')} "
        f"({a.get('store', 'sqlite')}), next to `engine.start` in-process in the same "
        "invocation; the load generator shares the cores with the server. SSE latency = from a "
        "start's answer to its `run.created` event on an open `/api/v1/stream`.\n\n"
        "| engine.start / s | HTTP starts / s | HTTP / in-process (target >= "
        f"{API_TARGET * 100:.0f}%) | SSE p50 | SSE p99 | SSE samples |\n"
        "|---|---|---|---|---|---|\n"
        f"| {a.get('engine_start_per_s', 'n/a')} | {a.get('http_start_per_s', 'n/a')} | "
        f"{verdict} | {a.get('sse_p50_ms', 'n/a')} ms | {a.get('sse_p99_ms', 'n/a')} ms | "
        f"{a.get('sse_samples', 'n/a')} |\n"
    )
