"""``batonflow worker`` processes on PostgreSQL: graceful SIGTERM, and takeover after a crash."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import batonflow as bf
from postgres.harness import Cluster, submit

pytestmark = pytest.mark.slow


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[bf.Store]:
    store = bf.open_store(pg_url)
    await store.open()
    yield store
    await store.close()


def _tags(cluster: Cluster, run_id: str) -> list[tuple[str, str]]:
    return [(e["tag"], e["ev"]) for e in cluster.effects() if e["run"] == run_id]


async def _steps(store: bf.Store, run_id: str) -> list[tuple[str, bf.StepStatus]]:
    return [(s.name, s.status) for s in await store.load_steps(run_id)]


async def test_sigterm_hands_back_the_run_in_flight(
    pg_url: str, store: bf.Store, tmp_path: Path
) -> None:
    cluster = Cluster(pg_url, tmp_path, grace=0.0)
    hold = tmp_path / "release-s2"
    try:
        first = cluster.spawn()
        (run_id,) = await submit(store, "held", [{"i": 1, "hold": str(hold)}])
        cluster.wait_for_effect("begin", "s2")

        assert cluster.terminate(first) == 0, cluster.stderr_tail()

        run = await store.get_run(run_id)
        assert run is not None
        assert (run.status, run.owner) == (bf.RunStatus.PENDING, None)  # handed back at once
        assert await _steps(store, run_id) == [("s1", bf.StepStatus.COMPLETED)]
        assert _tags(cluster, run_id) == [("s1", "begin"), ("s1", "end"), ("s2", "begin"),
                                          ("s2", "abort")]  # fmt: skip
        assert "runs in flight were handed back" in first.stderr.read_text()

        hold.touch()
        second = cluster.spawn()
        cluster.wait_for_effect("end", "s3")
        assert cluster.terminate(second) == 0, cluster.stderr_tail()
    finally:
        cluster.close()
    run = await store.get_run(run_id)
    assert run is not None
    assert run.status is bf.RunStatus.COMPLETED
    assert [t for t, ev in _tags(cluster, run_id) if ev == "begin"] == ["s1", "s2", "s2", "s3"]


async def test_sigterm_lets_steps_in_flight_finish_within_the_grace(
    pg_url: str, store: bf.Store, tmp_path: Path
) -> None:
    cluster = Cluster(pg_url, tmp_path, grace=20.0)
    try:
        worker = cluster.spawn()
        (run_id,) = await submit(store, "held", [{"i": 2, "seconds": 0.5}])
        cluster.wait_for_effect("begin", "s2")
        assert cluster.terminate(worker) == 0, cluster.stderr_tail()
    finally:
        cluster.close()
    run = await store.get_run(run_id)
    assert run is not None
    assert run.status is bf.RunStatus.COMPLETED  # it ended before the worker did
    assert [t for t, ev in _tags(cluster, run_id) if ev == "begin"] == ["s1", "s2", "s3"]
    assert json.loads(run.output_json or "[]")[2].startswith("s3:")


async def test_a_killed_workers_run_is_finished_by_another_worker(
    pg_url: str, store: bf.Store, tmp_path: Path
) -> None:
    cluster = Cluster(pg_url, tmp_path, lease=1.0, poll=0.2)
    hold = tmp_path / "release-s2"
    try:
        doomed = cluster.spawn()
        (run_id,) = await submit(store, "held", [{"i": 3, "hold": str(hold)}])
        cluster.wait_for_effect("begin", "s2")
        survivor = cluster.spawn()  # idle: every run is held by the doomed worker
        cluster.kill(doomed)
        hold.touch()
        cluster.wait_for_effect("end", "s3")  # after the lease of the dead worker expired
        assert cluster.terminate(survivor) == 0, cluster.stderr_tail()
    finally:
        cluster.close()
    run = await store.get_run(run_id)
    assert run is not None
    assert (run.status, run.activations) == (bf.RunStatus.COMPLETED, 2)
    begins = [(e["tag"], e["pid"]) for e in cluster.effects() if e["ev"] == "begin"]
    assert begins == [
        ("s1", doomed.pid), ("s2", doomed.pid), ("s2", survivor.pid), ("s3", survivor.pid)
    ]  # fmt: skip
