"""The console's browser test harness: a real ``batonflow serve`` on loopback over a temporary
SQLite store, Playwright driving the system Chromium, axe-core for accessibility, and
screenshots for ``docs/console.md`` when ``BATONFLOW_SCREENSHOTS=<dir>`` is set."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import batonflow as bf
from batonflow.governance._identity import (
    create_identity,
    create_token,
    get_identity,
    local_identity,
)
from batonflow.governance._passwords import set_password
from server.harness import Server

playwright_sync = pytest.importorskip("playwright.sync_api")

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
FLOWS = Path(__file__).resolve().with_name("flows.py")
PASSWORD = "correct horse battery staple"
#: The people of the tests: name -> (roles, groups, e-mail).
PEOPLE: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "ann": (("admin",), (), "ann@firm.example"),
    "olly": (("operator",), (), "olly@firm.example"),
    "vera": (("viewer",), (), "vera@firm.example"),
    "carol": (("operator",), ("complaints",), "carol@firm.example"),
    "dave": (("viewer",), ("finance",), "dave@firm.example"),
}
VIEWPORT = {"width": 1280, "height": 800}
#: A workflow document served from the documents folder: a switch whose path the run page marks.
TRIAGE = """\
document: {dsl: '1.0.0', namespace: test, name: triage, version: '1.0.0'}
do:
  - size:
      switch:
        - big: {when: '${ .amount > 100 }', then: escalate}
        - small: {then: accept}
  - escalate:
      set: {route: escalated}
      then: end
  - accept:
      set: {route: accepted}
"""


def in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` to the end on a loop of its own thread: Playwright's sync API keeps a
    loop running on the test's thread, where ``asyncio.run`` is refused."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


async def seed_people(db: str, people: dict[str, Any] = PEOPLE) -> dict[str, str]:
    """Every person of :data:`PEOPLE` with the password :data:`PASSWORD`; API tokens of
    each, by name (to start runs as a program would)."""
    store = bf.open_store(db)
    await store.open()
    try:
        now = time.time()
        for name, (roles, groups, email) in people.items():
            admin = await get_identity(store, "ann") or local_identity()
            if await get_identity(store, name) is None:
                await create_identity(
                    store, name, actor=admin, now=now, roles=roles, groups=groups, email=email
                )
            admin = await get_identity(store, "ann") or admin
            await set_password(store, name, PASSWORD, actor=admin, now=now)
        ann = await get_identity(store, "ann")
        assert ann is not None
        return {
            name: (await create_token(store, name, actor=ann, now=now)).token for name in people
        }
    finally:
        await store.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``batonflow serve`` per test module, its people seeded before it starts."""
    where = tmp_path_factory.mktemp("console")
    db = str(where / "runs.db")
    tokens = in_thread(lambda: seed_people(db))
    (where / "workflows").mkdir()
    (where / "workflows" / "triage.yaml").write_text(TRIAGE)
    extra = ("--workflow", f"{FLOWS}:complaint", "--documents", str(where / "workflows"))
    running = Server(db, where, extra=extra).start()
    running.tokens = tokens  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module: Playwright's sync API keeps an event loop running on
    this thread while it is started, which async tests of other modules must not meet."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise AssertionError(f"{CHROMIUM} is missing: `apt-get install -y chromium`")
        pytest.skip(f"the console's browser tests need Chromium at {CHROMIUM}")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, console: Server) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the module's server, fixed size and zone."""
    context = browser.new_context(
        base_url=console.url, viewport=VIEWPORT, locale="en-GB", timezone_id="UTC",
        reduced_motion="reduce",
    )  # fmt: skip
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def sign_in_as(page: Any, name: str, password: str = PASSWORD, *, next_path: str = "/") -> None:
    """Sign in through the form, as a person would."""
    page.goto("/sign-in?" + urllib.parse.urlencode({"next": next_path}))
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@pytest.fixture
def sign_in(page: Any) -> Callable[..., None]:
    return lambda name, **kw: sign_in_as(page, name, **kw)


def check_accessibility(page: Any) -> None:
    """axe-core on the current page: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    details = "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in bad
    )
    assert not bad, f"accessibility violations on {page.url}:\n{details}"


@pytest.fixture
def axe() -> Callable[[Any], None]:
    return check_accessibility


#: Puts sample values in place of what changes from one test run to the next (run ids, instants,
#: durations), remembering the page's own text so that it can be put back after the picture.
_STEADY = r"""() => {
  const tails = new Map();
  const tail = (real) => {
    if (!tails.has(real)) tails.set(real, ((0x3fa1c000 + (tails.size + 1) * 0x9e3779) >>> 0)
      .toString(16).padStart(8, "0").slice(-8));
    return tails.get(real);
  };
  const kept = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    let text = node.nodeValue
      .replace(/\b[0-9a-f]{32}\b/g, (id) => "0193a7c2e45a7b9d2e4f6a8c" + tail(id.slice(-8)))
      .replace(/\b\d{4}-\d{2}-\d{2}([ T])\d{2}:\d{2}(:\d{2}(\.\d+)?)?/g,
               (_, sep, secs) => "2026-12-07" + sep + "09:30" + (secs ? ":00" : ""));
    if (parent && parent.closest(".mono")) {
      text = text.replace(/\b[0-9a-f]{8}\b/g, (short) => tail(short));
    }
    if (parent && parent.closest(".dur")) text = text.replace(/\d+(\.\d+)?/g, "0.4");
    if (text !== node.nodeValue) { kept.push([node, node.nodeValue]); node.nodeValue = text; }
  }
  window.__batonflowKept = kept;
}"""
_RESTORE = """() => {
  for (const [node, text] of window.__batonflowKept || []) node.nodeValue = text;
  window.__batonflowKept = [];
}"""


def save_screenshot(page: Any, name: str) -> None:
    """A full-page PNG ``<name>.png`` in ``$BATONFLOW_SCREENSHOTS`` (when set). Run ids, times
    and durations show sample values while the picture is taken, so a new run of the tests does
    not change it and a reader sees a page as it looks, not grey bars; the page gets its own
    text back afterwards, for the rest of the test."""
    folder = os.environ.get("BATONFLOW_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.evaluate(_STEADY)
    try:
        page.screenshot(
            path=str(Path(folder) / f"{name}.png"), full_page=True, animations="disabled"
        )
    finally:
        page.evaluate(_RESTORE)


@pytest.fixture
def screenshot(page: Any) -> Callable[[str], None]:
    return lambda name: save_screenshot(page, name)


def api(console: Server, name: str = "ann") -> httpx.Client:
    """The HTTP API of the module's server, as ``name`` (a program's view, to set up runs)."""
    token = console.tokens[name]  # type: ignore[attr-defined]
    return httpx.Client(
        base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=20.0
    )


def start_run(console: Server, workflow: str, data: Any, *, name: str = "ann") -> str:
    with api(console, name) as client:
        reply = client.post("/api/v1/runs", json={"workflow": workflow, "input": data})
        assert reply.status_code == 201, reply.text
        run_id: str = reply.json()["id"]
        return run_id


def wait_for_status(console: Server, run_id: str, *statuses: str, timeout: float = 20.0) -> dict:
    """Poll the API (a real process: there is no clock to inject) until the run has one of
    ``statuses``."""
    deadline = time.monotonic() + timeout
    with api(console) as client:
        while True:
            run: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
            if run["status"] in statuses:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} stayed {run['status']}, not {statuses}")
            time.sleep(0.05)


def audit_of(console: Server, kind: str) -> list[dict[str, Any]]:
    """The module's audit entries of ``kind``: ``actor``, ``run_id`` and the entry's data."""

    async def read() -> list[dict[str, Any]]:
        store = bf.open_store(console.db)
        await store.open()
        try:
            found = [e for e in await store.read_audit(limit=100_000) if e.kind == kind]
            return [
                {"actor": e.actor, "run_id": e.run_id, **json.loads(e.data_json)} for e in found
            ]
        finally:
            await store.close()

    return in_thread(read)
