"""The README's main job, as `make demo` runs it: a real process on a fresh database, then
`batonflow audit export` telling the whole story of one e-mail, and `audit verify`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "examples" / "client-enquiries" / "run.py"
BATONFLOW = Path(sys.executable).with_name("batonflow")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATONFLOW_")}
    env["COLUMNS"] = "160"
    return env


@pytest.mark.slow
def test_the_demo_shows_where_each_email_went_and_the_trail_tells_it(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--db", str(db)],
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name, category in (
        ("1-damaged-order", "complaint"), ("3-opening-hours", "routine question"),
        ("5-newsletter", "other"), ("6-faulty-heater", "complaint"),
    ):  # fmt: skip
        assert re.search(rf"{name}\s+{category}\s+ENQ-\d+", done.stdout), done.stdout
    # the command printed for each e-mail works as printed: it names the database it needs
    runs = dict(re.findall(r"(\d-[a-z-]+)\s+(batonflow audit export .*? --run \w+)", done.stdout))
    assert len(runs) == 7
    command = shlex.split(runs["6-faulty-heater"])
    assert command[3:5] == ["--db", str(db)]

    story = subprocess.run(
        [str(BATONFLOW), *command[1:]],
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=60, check=True,
    ).stdout  # fmt: skip
    events = [json.loads(line) for line in story.splitlines()]
    kinds = [e["type"].removeprefix("batonflow.audit.") for e in events]
    for kind in ("run.created", "route.decision", "egress.call", "approval.requested",
                 "approval.decision", "email.sent", "run.completed"):  # fmt: skip
        assert kind in kinds, kinds
    created = events[kinds.index("run.created")]
    assert created["data"]["input"]["input"]["subject"].startswith("Refund for faulty heater")
    body = created["data"]["input"]["input"]["body"]
    # redacted before it was stored, by the workflow's own rules, as the example's README says
    for placeholder in ("[iban]", "[uk_ni]", "[phone]"):
        assert placeholder in body, body
    for secret in ("GB33BUKB20201555555555", "AB 12 34 56 C", "07700 900123"):
        assert secret not in story
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("demo.db*"))
    assert b"alan.reid@example.co.uk" not in raw  # the sender's data is sealed under their key

    verified = subprocess.run(
        [str(BATONFLOW), "audit", "verify", "--db", str(db)],
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("ok")
