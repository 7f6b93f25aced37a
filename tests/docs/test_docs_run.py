"""Every code block in README.md, docs/*.md and examples/**/README.md is executed as written.

Per page, in a fresh directory (with ``examples/`` linked in, so a page can name the repository's
examples as a reader in a checkout would, and the page's fixtures from ``fixtures/<page>/``
copied in), the blocks run in document order:

* ```python: in one Python process per page (``pyrunner.py``), blocks sharing one namespace and
  one event loop; a block may ``await`` at top level.
* ```sh / ```bash / ```console (its ``$ `` lines): each command in bash with ``.venv/bin``
  first on ``PATH``; shell variables carry over to the page's later blocks. A command must exit
  0, or the code its trailing comment names (``# exits 12``). A bare ``RUN_ID`` is the id of
  the newest run in the default database unless the page sets ``RUN_ID`` itself. A command that
  runs until stopped (``batonflow worker``) is stopped with SIGINT after a moment and must exit 0.
* ```yaml / ```json: parsed; a workflow document (or a list of tasks, put in one) must pass
  ``batonflow validate``.
* ```toml: parsed; a configuration must load with the real loader (``Setup.load``).
* an untagged block that starts with ``batonflow COMMAND`` (or ``python SCRIPT.py``): a
  synopsis, whose every ``--option`` the command must have, and which shows every long option
  the command has.

A block that cannot run says why (``<!-- not run: REASON -->``); any other block fails the test.
Every page has a loopback CRM (the example's, ``$CRM_URL``) and an SMTP catcher
(``$SMTP_HOST``/``$SMTP_PORT``) running while its blocks execute. A page whose blocks use
``$BATONFLOW_URL`` also gets a real ``batonflow serve`` in its directory, with an admin's token
in ``$BATONFLOW_TOKEN``, as its text tells the reader to set up.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from aiosmtpd.controller import Controller
from ruamel.yaml import YAML
from typer.testing import CliRunner

from batonflow.cli import app
from batonflow.configuration import Setup

from .blocks import PAGES, ROOT, Block, blocks

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
VENV_BIN = ROOT / ".venv" / "bin"
SHELLS = {"sh", "bash", "console", "shell"}
DATA = {"yaml", "yml", "json"}
RUNNABLE = {"python", "toml", *SHELLS, *DATA}
#: commands that run until they are stopped: given a moment, then SIGINT; they must exit 0
UNTIL_STOPPED = re.compile(r"^batonflow(\s+-\S+)*\s+worker\b")
EXIT_COMMENT = re.compile(r"#.*?\bexits?\s+(?:code\s+)?(?P<code>\d+)")
SYNOPSIS = re.compile(r"^(batonflow\s+[a-z]|python\s+\S+\.py\b)")
COMMAND_TIMEOUT = 60
BLOCK_TIMEOUT = 60


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def is_synopsis(block: Block) -> bool:
    return block.lang == "" and bool(SYNOPSIS.match(block.text))


def test_every_block_runs_or_says_why() -> None:
    unaccounted = [
        f"{b.where}: a ```{b.lang or '(no language)'} block that is neither run nor marked "
        "<!-- not run: REASON -->"
        for page in PAGES
        for b in blocks(page)
        if b.not_run is None and b.lang not in RUNNABLE and not is_synopsis(b)
    ]
    empty = [f"{b.where}: 'not run' needs a reason" for p in PAGES for b in blocks(p)
             if b.not_run is not None and not b.not_run.strip()]  # fmt: skip
    assert not unaccounted + empty, "\n".join(unaccounted + empty)


# -- the page's world --------------------------------------------------------------------------


class Catcher:
    """An SMTP server that accepts every message and keeps it."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bytecode cache for every process the pages start: each command would otherwise
    compile batonflow again when the environment says not to write bytecode."""
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def world(tmp_path: Path, crm_module: Any, pycache: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The page's directory and environment, with the CRM and SMTP catcher running."""
    workdir = tmp_path / "page"
    workdir.mkdir()
    (workdir / "home").mkdir()
    (workdir / "examples").symlink_to(ROOT / "examples")
    crm_url, stop_crm = crm_module.start_crm(tmp_path / "crm.db")
    smtp = Controller(Catcher(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BATONFLOW_") or key == "BATONFLOW_TEST_POSTGRES_URL"
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(workdir / "home"),
        CRM_URL=crm_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        PYTHONUNBUFFERED="1",
        PYTHONPYCACHEPREFIX=str(pycache),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        yield workdir, env
    finally:
        smtp.stop()
        stop_crm()


@pytest.fixture(scope="session")
def crm_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "docs_example_crm", ROOT / "examples" / "client-enquiries" / "crm.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- running a page ----------------------------------------------------------------------------


class PythonSession:
    """The page's Python process (``pyrunner.py``)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self._workdir, self._env = workdir, env
        self._process: subprocess.Popen[str] | None = None
        self._answers: Any = None

    def run(self, block: Block) -> None:
        if self._process is None:
            read, write = os.pipe()
            self._process = subprocess.Popen(  # the documentation's own code
                [sys.executable, str(HERE / "pyrunner.py"), str(write)],
                cwd=self._workdir,
                env=self._env,
                stdin=subprocess.PIPE,
                pass_fds=(write,),
                text=True,
            )
            os.close(write)
            self._answers = os.fdopen(read, encoding="utf-8")
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"code": block.text, "where": block.where}) + "\n")
        self._process.stdin.flush()
        ready, _, _ = select.select([self._answers], [], [], BLOCK_TIMEOUT)
        if not ready:
            self._process.kill()
            pytest.fail(f"{block.where}: the ```python block did not end in {BLOCK_TIMEOUT} s")
        line = self._answers.readline()
        if not line:
            pytest.fail(f"{block.where}: the Python process died (exit {self._process.wait()})")
        answer = json.loads(line)
        if not answer["ok"]:
            pytest.fail(f"{block.where}: the ```python block failed:\n{answer['error']}")

    def close(self) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
            try:
                self._process.wait(timeout=BLOCK_TIMEOUT)
            finally:
                self._process.kill()
                self._process.wait()
                self._answers.close()


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block, continuation lines joined; console blocks' ``$`` lines."""
    lines = block.text.splitlines()
    if block.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands: list[str] = []
    pending = ""
    for line in lines:
        if pending:
            line = pending + " " + line.strip()
            pending = ""
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1]
            continue
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


PRELUDE = """\
set +e
_bf_latest_run() {
  batonflow list --json --limit 1 | python -c \
'import json, sys; runs = json.load(sys.stdin); print(runs[0]["id"] if runs else "NO-RUN-YET")'
}
[ -f .docs-shell-state ] && source .docs-shell-state
_bf_before=$(compgen -v)
"""

EPILOGUE = """\
for _v in $(compgen -v); do
  case "$_v" in _*) continue ;; esac
  grep -qx "$_v" <<<"$_bf_before" || declare -p "$_v"
done >> .docs-shell-state 2>/dev/null
"""


def shell_script(block: Block, sets_run_id: bool) -> str:
    script = [PRELUDE]
    for command in shell_commands(block):
        match = EXIT_COMMENT.search(command)
        expected = int(match["code"]) if match else 0
        shown = command.replace("'", "'\\''")
        if not sets_run_id and re.search(r"(?<![$\w])RUN_ID\b", command):
            script.append("RUN_ID=$(_bf_latest_run)")
            command = re.sub(r"(?<![$\w])RUN_ID\b", "$RUN_ID", command)
        if UNTIL_STOPPED.match(command):
            command = f"timeout --preserve-status -s INT 3 {command}"
        script.append(command)
        script.append(
            f'_rc=$?; if [ "$_rc" -ne {expected} ]; then '
            f"echo 'docs: {block.where}: exit '$_rc' (expected {expected}): {shown}' >&2; "
            "exit 1; fi"
        )
    script.append(EPILOGUE)
    return "\n".join(script) + "\n"


def run_shell(block: Block, workdir: Path, env: dict[str, str], sets_run_id: bool) -> None:
    result = subprocess.run(
        ["bash", "-c", shell_script(block, sets_run_id)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT * max(1, len(shell_commands(block))),
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{block.where}: the ```{block.lang} block failed\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )


DOCUMENT_HEAD = {"dsl": "1.0.3", "namespace": "docs", "name": "fragment", "version": "0.1.0"}


def check_data(block: Block, workdir: Path) -> None:
    """Parse a YAML/JSON block; validate it with ``batonflow validate`` when it is a workflow
    document or a list of tasks."""
    try:
        if block.lang == "json":
            data = json.loads(block.text)
        else:
            data = YAML(typ="safe", pure=True).load(block.text)
    except Exception as exc:
        pytest.fail(f"{block.where}: the ```{block.lang} block does not parse: {exc}")
    wrapped = isinstance(data, list) and bool(data) and all(isinstance(t, dict) for t in data)
    if wrapped:
        data = {"document": DOCUMENT_HEAD, "do": data}  # a list of tasks, as in a document
    elif not (isinstance(data, dict) and isinstance(data.get("document"), dict)):
        return
    if block.file is not None and not wrapped:
        path = workdir / block.file
    else:
        path = workdir / f"docs-block-{block.line}.json"
        path.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["validate", str(path)])
    if result.exit_code != 0:
        pytest.fail(f"{block.where}: batonflow validate failed:\n{result.output}")


def check_toml(block: Block, workdir: Path, env: dict[str, str]) -> None:
    try:
        data = tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as exc:
        pytest.fail(f"{block.where}: the ```toml block does not parse: {exc}")
    path = workdir / (block.file or f"docs-block-{block.line}.toml")
    path.write_text(block.text)
    if data.keys() & {"providers", "fallback", "email", "secrets", "governance"}:
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            Setup.load(str(path))
        except Exception as exc:
            pytest.fail(f"{block.where}: the configuration does not load: {exc}")
        finally:
            os.environ.clear()
            os.environ.update(saved)


def check_synopsis(block: Block) -> None:
    """Every ``--option`` of each ``batonflow COMMAND ...`` in the block exists; for a
    ``python SCRIPT.py ...`` synopsis, every option appears in the script's ``--help``."""
    if block.text.startswith("python"):
        script = block.text.split()[1]
        helped = subprocess.run(
            [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT, check=False,
        )  # fmt: skip
        assert helped.returncode == 0, f"{block.where}: {script} --help: {helped.stderr}"
        for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", block.text):
            assert option in helped.stdout, f"{block.where}: {script} has no option {option}"
        return
    root = typer.main.get_command(app)
    for text in re.split(r"\n(?=batonflow )", block.text.strip()):
        words = text.split()[1:]
        command: Any = root
        for word in words:
            if word not in getattr(command, "commands", {}):  # typer vendors its own click
                break
            command = command.commands[word]
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        shown = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", text))
        if shown - known - {"--help"}:
            pytest.fail(f"{block.where}: `{text.split('[')[0]}`: no option {shown - known}")
        missing = {opt for opt in known if opt.startswith("--")} - shown
        if missing:  # the synopsis is the whole command
            pytest.fail(f"{block.where}: `{text.split('[')[0]}` does not show {sorted(missing)}")


@pytest.mark.timeout(600)  # a page is many commands; each is bounded on its own
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_page_runs(page: Path, world: tuple[Path, dict[str, str]]) -> None:
    workdir, env = world
    fixtures = FIXTURES / page.stem if page.parent.name == "docs" else FIXTURES / page_key(page)
    if fixtures.is_dir():
        shutil.copytree(fixtures, workdir, dirs_exist_ok=True)
    page_blocks = [b for b in blocks(page) if b.not_run is None]
    sets_run_id = any(
        re.search(r"^\s*RUN_ID=", b.text, re.M) for b in page_blocks if b.lang in SHELLS
    )
    served = contextlib.ExitStack()
    if any("$BATONFLOW_URL" in b.text for b in page_blocks):
        env = {**env, **served.enter_context(api_server(workdir, env))}
    python = PythonSession(workdir, env)
    try:
        for block in page_blocks:
            if block.file is not None and block.lang not in DATA | {"toml"}:
                (workdir / block.file).write_text(block.text)
            if block.lang == "python":
                python.run(block)
            elif block.lang in SHELLS:
                run_shell(block, workdir, env, sets_run_id)
            elif block.lang in DATA:
                if block.file is not None:
                    (workdir / block.file).write_text(block.text)
                check_data(block, workdir)
            elif block.lang == "toml":
                check_toml(block, workdir, env)
            elif is_synopsis(block):
                check_synopsis(block)
    finally:
        python.close()
        served.close()


@contextlib.contextmanager
def api_server(workdir: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``batonflow serve`` on a free loopback port in ``workdir``, as docs/api.md sets it up:
    an admin identity, its token, then the server; stopped with SIGTERM (it must drain, exit 0)."""
    batonflow = str(VENV_BIN / "batonflow")
    made = subprocess.run(
        [batonflow, "identity", "create", "ann", "--role", "admin"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=True,
    )  # fmt: skip
    token = made.stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [batonflow, "serve", "--port", str(port)], cwd=workdir, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(server, url)
        yield {"BATONFLOW_URL": url, "BATONFLOW_TOKEN": token}
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)
        assert server.returncode == 0, f"batonflow serve exited {server.returncode}:\n{out}"


def _wait_ready(server: subprocess.Popen[str], url: str) -> None:
    """Until ``/readyz`` answers 200 (the server's own start, not a guess of how long it takes)."""
    import httpx

    for _ in range(600):
        if server.poll() is not None:
            out = server.stdout.read() if server.stdout else ""
            pytest.fail(f"batonflow serve exited {server.returncode} before it was ready:\n{out}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        select.select([], [], [], 0.1)  # the process is starting: look again shortly
    pytest.fail(f"batonflow serve at {url} was not ready within a minute")


def page_key(page: Path) -> str:
    """``README`` for the top README, ``client-enquiries`` for an example's README."""
    return "README" if page.parent == ROOT else page.parent.name
