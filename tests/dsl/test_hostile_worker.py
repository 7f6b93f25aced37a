"""Regression tests against a live `batonflow worker` process: hostile input (never-ending
expressions, an alias bomb, deep nesting, lone surrogates) never stops it. It keeps serving other
runs and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .test_hostile_documents import HEADER, alias_bomb

BIN = Path(sys.executable).parent / "batonflow"
_LISTEN = "- w:\n    listen:\n      to:\n        one:\n          with: {%s}\n"

pytestmark = [pytest.mark.slow, pytest.mark.long]


def _document(path: Path, name: str, tasks: str) -> Path:
    path.write_text(HEADER.replace("hostile", name) + "do:\n" + tasks)
    return path


def _cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=60, input=stdin
    )


def _show(env: dict[str, str], run_id: str) -> dict[str, Any]:
    result = _cli(env, "show", run_id, "--json")
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def _wait_for(env: dict[str, str], run_id: str, status: str, limit: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = _show(env, run_id)
        if shown["status"] == status:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not become {status}: {shown}")


def test_a_live_worker_survives_hostile_input_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "batonflow.toml"
    config.write_text("[expressions]\nseconds = 1.0\nmemory_mb = 256\n")
    env = {
        **os.environ,
        "BATONFLOW_DB": str(tmp_path / "runs.db"),
        "BATONFLOW_CONFIG": str(config),
    }
    spin = _document(tmp_path / "spin.yaml", "spin", "- s:\n    set: {v: '${ def f: f; f }'}\n")
    grow = _document(tmp_path / "grow.yaml", "grow", "- g:\n    set: {v: '${ [repeat(1)] }'}\n")
    good = _document(tmp_path / "good.yaml", "good", "- a:\n    set: {v: '${ [.n, .n] | add }'}\n")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb() + HEADER + "do:\n- x:\n    set:\n      v: *a8\n")

    def detach(path: Path, data: str) -> str:
        result = _cli(env, "run", str(path), "--detach", "--input", data)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    worker = subprocess.Popen(
        [str(BIN), "worker", "--poll", "0.2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        runaway = [detach(spin, "{}") for _ in range(2)] + [detach(grow, "{}")]
        served = [detach(good, json.dumps({"n": n})) for n in range(3)]
        for n, run_id in enumerate(served):  # served while the runaways spin
            assert _wait_for(env, run_id, "completed")["output"] == {"v": 2 * n}
        for run_id in runaway:
            shown = _wait_for(env, run_id, "faulted")
            assert "ran past its time budget of 1s" in json.dumps(shown["error"])

        # refused where they enter: the worker never sees them
        refused = _cli(env, "run", str(bomb), "--detach")
        assert refused.returncode == 2
        assert "repeat more than" in refused.stderr
        nested = tmp_path / "nested.yaml"
        nested.write_text(HEADER + "do:\n- x:\n    set: {v: " + "[" * 500 + "]" * 500 + "}\n")
        refused = _cli(env, "run", str(nested), "--detach")
        assert refused.returncode == 2
        assert "nests deeper than 128 levels" in refused.stderr
        deep = "[" * 100_000 + "]" * 100_000
        refused = _cli(env, "run", str(good), "--detach", "--input", "@-", stdin=deep)
        assert refused.returncode == 2
        assert "nests deeper than" in refused.stderr
        refused = _cli(env, "run", str(good), "--detach", "--input", '{"n": "\\ud800"}')
        assert refused.returncode == 2
        assert "lone surrogate" in refused.stderr
        assert "Traceback" not in refused.stderr

        # a listen filter whose pattern backtracks for ever decides nothing, freezes nothing
        hostile = _document(tmp_path / "hear.yaml", "hear", _LISTEN % "type: '(a+)+$'")
        plain = _document(tmp_path / "ear.yaml", "ear", _LISTEN % "source: 'https://shop.example/'")
        deaf, hears = detach(hostile, "{}"), detach(plain, "{}")
        _wait_for(env, deaf, "waiting")
        _wait_for(env, hears, "waiting")
        event = {
            "id": "e1",
            "source": "https://shop.example/",
            "type": "a" * 64 + "!",
            "data": {"n": 5},
        }
        sent = _cli(env, "events", "send", "--data", json.dumps(event))
        assert sent.returncode == 0, sent.stderr
        assert _wait_for(env, hears, "completed")["output"] == [{"n": 5}]
        assert _show(env, deaf)["status"] == "waiting"

        # still serving, and every run reads back
        after = detach(good, '{"n": 21}')
        assert _wait_for(env, after, "completed")["output"] == {"v": 42}
        listed = _cli(env, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert len(json.loads(listed.stdout)) == 9
        exported = _cli(env, "audit", "export")
        assert exported.returncode == 0, exported.stderr

        # a runaway is spinning when SIGTERM comes: the worker still stops promptly
        detach(spin, "{}")
        time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _, err = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            raise
    assert worker.returncode == 0, err
    assert "Traceback" not in err
