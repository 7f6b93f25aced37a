"""Sections of docs/benchmarks.md about targets and costs: the issue's targets, the physical
ceiling, what one workflow costs each system, and how that changes in a store that already
holds many workflows."""

from __future__ import annotations

from typing import Any

import ceiling

# (label, mode, peer, at least x): workflows/s of batonflow over the peer's, from issue 17
RATIO_TARGETS = (
    ("SQLite sequential >= 10x DBOS as shipped", "sequential", "dbos", 10.0),
    ("SQLite sequential >= 5x LangGraph", "sequential", "langgraph", 5.0),
    ("SQLite concurrency 32 >= 30x DBOS as shipped", "concurrent", "dbos", 30.0),
    ("SQLite concurrency 32 >= 20x LangGraph", "concurrent", "langgraph", 20.0),
)
CEILING_TARGET = 0.70
PG_DBOS_TARGET = 10.0  # batonflow 4 workers / DBOS 4 workers
PG_SCALE_TARGET = 1.8  # batonflow 4 workers / 1 worker


def _ok(r: dict[str, Any] | None) -> bool:
    return bool(r) and "wf_per_s" in r  # type: ignore[operator]


def _num(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _verdict(value: float | None, goal: float, shown: str) -> str:
    if value is None:
        return "not measured | **NOT MET**"
    return f"{shown} | **{'MET' if value >= goal else 'NOT MET'}**"


def _wf(res: dict[str, Any], system: str, mode: str) -> float | None:
    r = res.get(system, {}).get(mode)
    return float(r["wf_per_s"]) if _ok(r) else None


def _pg_wf(data: dict[str, Any], system: str, key: str) -> float | None:
    r = data.get("postgres", {}).get("results", {}).get(system, {}).get(key)
    return float(r["wf_per_s"]) if _ok(r) else None


def ceiling_share(data: dict[str, Any]) -> dict[str, Any] | None:
    seq = data["results"].get("batonflow", {}).get("sequential", {})
    return ceiling.against(data.get("ceiling"), seq)


def render_targets(data: dict[str, Any]) -> str:
    res = data["results"]
    rows = ["| target (issue 17) | measured | verdict |", "|---|---|---|"]
    for label, mode, peer, goal in RATIO_TARGETS:
        ours, theirs = _wf(res, "batonflow", mode), _wf(res, peer, mode)
        ratio = ours / theirs if ours is not None and theirs else None
        rows.append(f"| {label} | " + _verdict(ratio, goal, f"{_num(ratio, 2)}x") + " |")
    share = ceiling_share(data)
    value: float | None = None
    shown = ""
    if share:
        value = float(share["share"])
        shown = f"{value * 100:.0f}% of {share['ceiling_wf_per_s']:,.0f} wf/s"
    rows.append(
        f"| SQLite sequential >= {CEILING_TARGET * 100:.0f}% of the physical ceiling | "
        + _verdict(value, CEILING_TARGET, shown)
        + " |"
    )
    four, dbos_four = (_pg_wf(data, s, "concurrent-4") for s in ("batonflow", "dbos"))
    one = _pg_wf(data, "batonflow", "concurrent-1")
    vs_dbos = four / dbos_four if four is not None and dbos_four else None
    scale = four / one if four is not None and one else None
    rows.append(
        f"| PostgreSQL 4 workers >= {PG_DBOS_TARGET:g}x DBOS with 4 workers | "
        + _verdict(vs_dbos, PG_DBOS_TARGET, f"{_num(vs_dbos, 2)}x")
        + " |"
    )
    rows.append(
        f"| PostgreSQL 4 workers >= {PG_SCALE_TARGET:g}x 1 worker | "
        + _verdict(scale, PG_SCALE_TARGET, f"{_num(scale, 2)}x")
        + " |"
    )
    note = (
        "Every row is measured in this one run; *not measured* (a part skipped or failed) "
        "counts as not met.\n"
    )
    return "### Targets\n\n" + note + "\n" + "\n".join(rows) + "\n"


def render_ceiling(data: dict[str, Any]) -> str:
    c = data.get("ceiling")
    if not c:
        return "## The physical ceiling\n\nNot measured in this run.\n"
    share = ceiling_share(data)
    lines = [
        "## The physical ceiling\n",
        f"One-row commits in a loop on a fresh SQLite file on the same disk, "
        f"`journal_mode={c['journal_mode']}`, `synchronous={c['synchronous']}` (every commit "
        f"fsyncs the WAL), measured before and after the systems ran "
        f"({', '.join(f'{x:,.0f}' for x in c['all_commits_per_s'])} commits/s; the higher is "
        f"used): **{c['commits_per_s']:,.0f} commits/s**, p50 {c['commit_p50_ms']:.3f} ms a "
        "commit.\n",
    ]
    if share:
        lines.append(
            f"A batonflow workflow needs {share['commits_per_wf']:.2f} commits one after another "
            "(`engine.store.commits` over the timed window), so no sequential run can exceed "
            f"**{share['ceiling_wf_per_s']:,.0f} workflows/s** here. batonflow's sequential "
            f"figure is {_wf(data['results'], 'batonflow', 'sequential'):,.1f} wf/s: "
            f"**{share['share'] * 100:.0f}% of the ceiling**.\n"
        )
    return "\n".join(lines)


def _cost_cells(r: dict[str, Any], cpu: float | None) -> list[str]:
    c, f = r.get("costs", {}), r.get("fsyncs", {})
    counted = "statements_per_wf" in c
    synced = "total_per_wf" in f
    log = f.get("log", "")
    return [
        _num(c.get("statements_per_wf"), 1) if counted else "n/a",
        _num(c.get("commits_per_wf"), 2) if counted else "n/a",
        f"{f['log_pages_per_wf']:.1f} ({log})" if synced and log != "none" else "n/a",
        _num(f.get("pages_written_per_wf", {}).get("database", 0.0), 1) if synced else "n/a",
        _num(cpu, 3),
        _num(f.get("total_per_wf"), 2) if synced else "n/a",
        _num(c.get("json_encodes_per_wf"), 1) if counted else "n/a",
    ]


COST_HEAD = (
    "| system | mode | SQL statements | commits | log pages written (WAL frames or journal "
    "pages) | database pages written | CPU ms | fsyncs | JSON encodes |"
)


def render_costs(data: dict[str, Any]) -> str:
    st, names, res = data["settings"], data["systems"], data["results"]
    lines = [
        "## What one workflow costs\n",
        "Per workflow, by system and mode. Statements, commits and JSON encodes are counted "
        "inside the process (a trace callback on every SQLite connection it opens, and "
        "`json.JSONEncoder.encode`, which every `json.dumps` ends in) and pages written and "
        "fsyncs by `strace`, over a separate run of "
        f"{st['strace_n']} workflows between the two marker fsyncs; CPU ms comes from the "
        "timed run above. Pages = bytes written to the file / (page size + the frame or record "
        "header). The peers serialise mostly without `json` (DBOS pickles, LangGraph uses "
        "msgpack), so their JSON column is not their whole serialisation cost.\n",
        COST_HEAD,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("sequential", "concurrent"):
        for key, label in names.items():
            r = res.get(key, {}).get(mode, {})
            if not r:
                continue
            cpu = r.get("cpu_ms_per_wf") if _ok(r) else None
            lines.append(f"| {label} | {mode} | " + " | ".join(_cost_cells(r, cpu)) + " |")
    lines.append("")
    kinds = []
    for key, label in names.items():
        by_kind = res.get(key, {}).get("sequential", {}).get("costs", {})
        by_kind = by_kind.get("statements_by_kind_per_wf", {})
        if by_kind:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in by_kind.items())
            kinds.append(f"- {label}: {parts}")
    if kinds:
        lines += ["Statements by kind per workflow, sequential:\n", *kinds, ""]
    return "\n".join(lines) + "\n"


def render_prefilled(data: dict[str, Any]) -> str:
    pre = data.get("prefilled")
    if not pre:
        return ""
    names, res = data["systems"], data["results"]
    n = pre["workflows"]
    lines = [
        f"## After {n:,} workflows in the store\n",
        f"The sequential run and the counting pass again, each on a copy of a store that "
        f"already holds {n:,} completed workflows (filled once by the system itself at "
        "concurrency 32 and cached under `bench/.cache`), next to the same figures on an "
        "empty store from the tables above.\n",
        "| system | store | workflows/s | " + COST_HEAD.split("| mode | ", 1)[1],
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in names.items():
        empty = res.get(key, {}).get("sequential", {})
        full = pre["results"].get(key, {}).get("sequential", {})
        for title, r in (("empty", empty), (f"{n:,} workflows", full)):
            if not r:
                continue
            if "error" in r and not _ok(r):
                lines.append(f"| {label} | {title} | failed: {r['error'][-120:]!r} |" + " |" * 7)
                continue
            cells = _cost_cells(r, r.get("cpu_ms_per_wf"))
            lines.append(
                f"| {label} | {title} | {_num(r.get('wf_per_s'))} | " + " | ".join(cells) + " |"
            )
        ratio = full["wf_per_s"] / empty["wf_per_s"] if _ok(full) and _ok(empty) else None
        if ratio is not None:
            lines.append(f"| {label} | full / empty | {ratio:.2f}x |" + " |" * 7)
    return "\n".join(lines) + "\n"
