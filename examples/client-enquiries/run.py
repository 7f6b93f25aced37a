"""Run the client-enquiries workflow on the sample e-mails and show where each one went.

    python examples/client-enquiries/run.py                 # every e-mail in emails/
    python examples/client-enquiries/run.py emails/3-opening-hours.json --decision reject
    batonflow audit export --run RUN_ID                     # the whole story of one run

Everything runs on this machine, on the embedded default: the engine on SQLite (the same
``batonflow.db`` the ``batonflow`` command reads, or ``$BATONFLOW_DB``), the example CRM on
loopback (``crm.py``, its SQLite file beside the runs), an SMTP sink on loopback that keeps the
confirmations in memory, and the offline local model, which classifies but cannot write (so
routine questions get the template reply). ``--config batonflow.toml`` uses the providers and
the ``[email]`` SMTP server configured there instead.

The complaints wait for the client-care group's approval; for the demo, ``casey`` of
client-care decides them (``--decision``) once every run has gone as far as it can.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shlex
import socket
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller

import batonflow as bf
from batonflow.catalog import Catalog, Mailer, SmtpSettings, approval
from batonflow.configuration import Setup
from batonflow.dsl import load_document
from batonflow.errors import ConfigError
from batonflow.governance import Identity, decide, list_pending

HERE = Path(__file__).resolve().parent
WORKFLOW = HERE / "workflow.yaml"
EMAILS = HERE / "emails"
#: who decides the complaints in the demo: a member of the client-care group
DECIDER = Identity(name="casey", groups=("client-care",), email="casey@northwind.example")
#: who starts the runs: the intake service (so casey, who decides, did not start them)
INTAKE = "intake"
SENDER = "Northwind client care <care@northwind.example>"


def _load_crm() -> ModuleType:
    """``crm.py`` beside this file (the example's directory is not a package)."""
    spec = importlib.util.spec_from_file_location("client_enquiries_crm", HERE / "crm.py")
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with this one
        raise ConfigError(f"cannot load {HERE / 'crm.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the SMTP sink -------------------------------------------------------------------------------


class Outbox:
    """An aiosmtpd handler that keeps every message it receives: ``{message_id: message}``."""

    def __init__(self) -> None:
        self.messages: dict[str, Any] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages[str(message["Message-ID"])] = message
        return "250 Message accepted for delivery"


@contextmanager
def smtp_sink() -> Iterator[tuple[SmtpSettings, Outbox]]:
    """A local SMTP server on a free loopback port, and the settings that send to it."""
    outbox = Outbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(outbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpSettings(host="127.0.0.1", port=port, sender=SENDER), outbox
    finally:
        controller.stop()


# -- running the e-mails -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where one e-mail went."""

    name: str
    subject: str
    run_id: str
    status: str
    output: Mapping[str, Any] | None
    error: str | None = None


def read_emails(paths: Sequence[Path]) -> list[tuple[str, dict[str, Any]]]:
    """``(file name, e-mail)`` for each JSON file; ConfigError naming a bad one."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read a JSON e-mail: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: an e-mail is a JSON object (from, to, subject, ...)")
        found.append((path.name, data))
    return found


def example_setup(
    crm_url: str, smtp: SmtpSettings | None = None, config: Mapping[str, Any] | None = None
) -> Setup:
    """The configuration the example runs with: ``config`` (a parsed batonflow.toml: its
    providers, e-mail server, governance), plus the CRM's URL as ``$secrets.crm_url`` and, when
    it configures no e-mail server, ``smtp``."""
    data: dict[str, Any] = {**(config or {})}
    data["secrets"] = {**data.get("secrets", {}), "crm_url": {"value": crm_url}}
    # The operator's egress policy is the ceiling (a workflow's own list only narrows it):
    # the CRM runs on loopback here, which only the operator can open.
    governance = {**data.get("governance", {})}
    egress = {**governance.get("egress", {"allow": ["*"]})}
    egress["allow"] = [*egress.get("allow", []), urlsplit(crm_url).hostname]
    data["governance"] = {**governance, "egress": egress}
    if smtp is not None and "email" not in data:
        data["email"] = {"host": smtp.host, "port": smtp.port, "sender": smtp.sender}
    setup = Setup("<client-enquiries>", data)
    setup.check()
    return setup


async def process(
    emails: Sequence[tuple[str, dict[str, Any]]],
    *,
    db: str | Path,
    crm_url: str,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    setup: Setup | None = None,
    decision: str = "approve",
    decider: Identity = DECIDER,
    triage: str = "routine question",
) -> list[Outcome]:
    """Run the workflow once per e-mail on the engine at ``db``, let every run go as far as it
    can, decide the complaints' approvals as ``decider``, and report where each e-mail went.
    An e-mail the classifier was unsure of is put in the category ``triage`` by ``decider``.

    The engine is governed as ``batonflow run`` governs it: data sealed per sender, redaction
    before storage (the workflow's rules), the egress allow-list, everything audited.
    ``functions`` replace the ones the configuration gives (tests pass fake models)."""
    document = load_document(str(WORKFLOW)).raw
    setup = setup or example_setup(crm_url)
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(setup.session(str(db), functions=functions))
        engine = await stack.enter_async_context(session.engine())
        runtime = session.runtime
        handles = [
            (name, email, await runtime.start(engine, document, email, started_by=INTAKE))
            for name, email in emails
        ]
        await engine.settle()  # every run has ended or waits for its approval
        for _ in range(2):  # unsure e-mails: first the category, then (a complaint) the verdict
            for _, _, handle in handles:
                for request in await list_pending(engine.store, run_id=handle.run_id):
                    choice = decision if decision in request.options else triage
                    await decide(
                        engine, handle.run_id, decider, choice, approval_id=request.id,
                        comment=f"decided by {Path(__file__).name} for the demo",
                        now=engine.clock.now(),
                    )  # fmt: skip
            await engine.settle()
        return [await _outcome(name, email, handle) for name, email, handle in handles]


async def _outcome(name: str, email: Mapping[str, Any], handle: bf.RunHandle[Any]) -> Outcome:
    record = await handle.record()
    output = json.loads(record.output_json) if record.output_json else None
    error = None
    if record.error_json:
        error = str(json.loads(record.error_json).get("message", ""))
    subject = str(email.get("subject", ""))
    return Outcome(name, subject, handle.run_id, record.status.value, output, error)


def functions_for(providers: Mapping[str, Any], mailer: Mailer) -> dict[str, Callable[..., Any]]:
    """``call:`` functions on the given providers and mailer (what tests pass to ``process``)."""
    """What ``call:`` in workflow.yaml names: classify and llm, approval, email."""
    catalog = Catalog(providers=providers)
    return {**catalog.functions(), "approval": approval, **mailer.functions()}


# -- the command line ----------------------------------------------------------------------------


def read_config(path: Path | None) -> dict[str, Any]:
    """A parsed TOML configuration file (empty without one); checked by ``example_setup``."""
    if path is None:
        return {}
    source = str(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc


def print_table(
    outcomes: Sequence[Outcome], outbox: Outbox | None, decision: str, db: str = "batonflow.db"
) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Client enquiries", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("e-mail", "category", "CRM id", "outcome", "confirmation"):
        table.add_column(column, no_wrap=True, min_width=10 if column == "outcome" else None)
    for o in outcomes:
        out = o.output or {}
        sent = "-"
        if "confirmation" in out:  # with a real SMTP server configured, we trust its 250
            sent = "yes" if outbox is None or out["confirmation"] in outbox.messages else "lost"
        elif "confirmation_error" in out:
            sent = "failed"
        outcome = str(out.get("outcome", "")) if o.error is None else f"{o.status}: {o.error}"
        table.add_row(
            Path(o.name).stem,
            str(out.get("category", "")),
            str(out.get("crm_id", "")),
            outcome,
            sent,
        )
    console = Console()
    console.print(table)
    console.print(f"Complaints {decision}d by {DECIDER.name} of client-care.")
    triaged = [Path(o.name).stem for o in outcomes if (o.output or {}).get("triaged_by")]
    if triaged:
        unsure = ", ".join(triaged)
        console.print(f"The classifier was unsure of {unsure}: {DECIDER.name} picked the category.")
    console.print()
    console.print("The whole story of each one:")
    export = f"batonflow audit export{db_option(db)}"
    for o in outcomes:
        stem = Path(o.name).stem
        console.print(f"  {stem:<16} {export} --run {o.run_id}", soft_wrap=True)


def db_option(db: str) -> str:
    """`` --db DB`` when the ``batonflow`` command would not find ``db`` by itself (it reads
    ``$BATONFLOW_DB``, else ``./batonflow.db``); else nothing."""
    default = os.environ.get("BATONFLOW_DB", "batonflow.db")
    if "://" not in db and "://" not in default and Path(db).resolve() == Path(default).resolve():
        return ""
    return f" --db {shlex.quote(db)}"


def crm_path(db: str) -> Path:
    """The CRM's SQLite file: beside the runs database, or under .batonflow/ for a URL."""
    where = Path(".batonflow") if "://" in db else Path(db).resolve().parent
    where.mkdir(parents=True, exist_ok=True)
    return where / "client-enquiries-crm.db"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("emails", nargs="*", type=Path, help="e-mail JSON files (default: emails/)")
    parser.add_argument("--db", default=os.environ.get("BATONFLOW_DB", "batonflow.db"))
    parser.add_argument("--config", type=Path, help="TOML with [providers] and/or [email]")
    parser.add_argument("--decision", choices=("approve", "reject"), default="approve")
    args = parser.parse_args(argv)
    paths = args.emails or sorted(EMAILS.glob("*.json"))
    try:
        emails = read_emails(paths)
        config = read_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    crm_url, stop_crm = _load_crm().start_crm(crm_path(args.db))
    try:
        with smtp_sink() as (sink_settings, outbox):
            try:
                setup = example_setup(crm_url, sink_settings, config)
            except ConfigError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            outcomes = asyncio.run(
                process(emails, db=args.db, crm_url=crm_url, setup=setup, decision=args.decision)
            )
            print_table(outcomes, None if "email" in config else outbox, args.decision, args.db)
    finally:
        stop_crm()
    return 0 if all(o.status == "completed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
