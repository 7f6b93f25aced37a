"""A :class:`~batonflow.governance._report.RunReport` as plain text (the terminal) and as one
self-contained, printable HTML document (``audit report --html`` and the console's printable
page serve the same bytes, so a printed report reads the same wherever it came from)."""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from typing import Any

from batonflow.governance._report import ReportLine, RunReport

__all__ = ["report_html", "report_text", "when"]

_PAYLOAD_CHARS = 4000


def when(at: float | None) -> str:
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shown(value: Any, *, missing: str = "nothing") -> str:
    if value is None:
        return missing
    if isinstance(value, dict) and "$withheld" in value:
        return "(personal data withheld: reading it needs the operator or admin role)"
    if isinstance(value, dict) and "$erased" in value:
        return "(erased: the data subject's key was destroyed)"
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= _PAYLOAD_CHARS else text[:_PAYLOAD_CHARS] + "\n… (cut)"


def _chain_sentence(report: RunReport) -> str:
    chain = report.chain
    if chain.last is None:
        return "No audit entries cite this run."
    span = f"the {chain.cited} entries cited (entries {chain.first} to {chain.last})"
    if chain.ok and chain.problem is None:
        return (
            f"The audit chain verifies from its start through entry {chain.verified_through}:"
            f" {span} are intact."
        )
    if chain.ok:
        return f"{span.capitalize()} are intact; later in the trail: {chain.problem}"
    return f"THE AUDIT CHAIN DOES NOT VERIFY for {span}: {chain.problem}"


def _facts(report: RunReport) -> list[tuple[str, str]]:
    totals = {k: float(v) for k, v in report.totals.items()}
    by = f" by {report.started_by}" if report.started_by else ""
    calls = (
        f"{totals.get('model_calls', 0):.0f} ({totals.get('input_tokens', 0):.0f} tokens in,"
        f" {totals.get('output_tokens', 0):.0f} out, cost {totals.get('cost', 0):.4f})"
    )
    facts = [
        ("Run", report.run_id),
        ("Workflow", report.workflow),
        ("Outcome", report.status),
        ("Started", f"{when(report.created_at)}{by}"),
        ("Last change", when(report.updated_at)),
        ("Model calls", calls),
        ("Audit chain", _chain_sentence(report)),
        ("Report made", f"{when(report.generated_at)} for {report.generated_by}"),
    ]
    for erased in report.erased:
        facts.append(
            ("Erasure", f"the data subject's key was destroyed {when(erased.get('erased_at'))}"
                        f" by {erased.get('by') or '?'}: their personal data cannot be read")
        )  # fmt: skip
    if report.personal_withheld:
        facts.append(("Personal data", "withheld from this reader (needs operator or admin)"))
    return facts


def report_text(report: RunReport) -> str:
    """The report for a terminal or a plain-text e-mail."""
    out = [f"Report on run {report.run_id}", ""]
    out += [f"{name + ':':<14}{value}" for name, value in _facts(report)]
    out += ["", "What came in:", _indent(_shown(report.received)), "", "What happened, in order:"]
    for line in report.lines:
        out.append(f"  {when(line.at)}  #{line.seq:<6} {_who(line):<16} {line.text}")
    if report.error is not None:
        out += ["", "The run's error:", _indent(_shown(report.error))]
    out += ["", "What went out:", _indent(_shown(report.sent, missing=_nothing_out(report)))]
    return "\n".join(out) + "\n"


def _nothing_out(report: RunReport) -> str:
    return f"nothing (the run is {report.status})"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _who(line: ReportLine) -> str:
    return line.actor or "-"


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#111;max-width:60rem;margin:1.5rem auto;padding:0 1rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #999}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.25rem .4rem;border-bottom:1px solid #ccc}
pre{white-space:pre-wrap;word-break:break-word;background:#f4f4f4;padding:.5rem;border:1px solid #ddd}
.broken{font-weight:700;border:2px solid #000;padding:.4rem}
@media print{body{margin:0;max-width:none;font-size:11pt}pre{background:none}a{color:inherit;text-decoration:none}
tr{break-inside:avoid}h2{break-after:avoid}.no-print{display:none}}
"""  # noqa: E501


def report_html(report: RunReport) -> str:
    """One self-contained HTML page (its CSS inline, no script), ready to print."""
    facts = "".join(f"<dt>{escape(n)}</dt><dd>{escape(v)}</dd>" for n, v in _facts(report))
    rows = "".join(
        f'<tr><td><time datetime="{escape(when(line.at))}">{escape(when(line.at))}</time></td>'
        f"<td>{line.seq}</td><td>{escape(_who(line))}</td><td>{escape(line.text)}</td></tr>"
        for line in report.lines
    )
    chain_class = "" if report.chain.ok else ' class="broken"'
    error = (
        f"<h2>The run's error</h2><pre>{escape(_shown(report.error))}</pre>"
        if report.error is not None
        else ""
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Report on run {escape(report.run_id)}</title><style>{_CSS}</style></head>"
        f'<body><main><h1>Report on run <span class="mono">{escape(report.run_id)}</span></h1>'
        f"<p{chain_class}>{escape(_chain_sentence(report))}</p>"
        f"<h2>Summary</h2><dl>{facts}</dl>"
        f"<h2>What came in</h2><pre>{escape(_shown(report.received))}</pre>"
        '<h2>What happened, in order</h2><table><caption class="no-print">Every audit entry'
        ' about this run, oldest first</caption><thead><tr><th scope="col">Time</th>'
        '<th scope="col">Entry</th><th scope="col">Actor</th><th scope="col">What'
        f"</th></tr></thead><tbody>{rows}</tbody></table>{error}"
        f"<h2>What went out</h2><pre>{escape(_shown(report.sent, missing=_nothing_out(report)))}"
        "</pre>"
        "</main></body></html>\n"
    )
