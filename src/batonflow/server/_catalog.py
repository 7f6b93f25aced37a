"""The workflows a ``serve`` process offers: Python workflows from configured module
references, workflow documents from a configured folder, and document versions deployed over
the API (kept as records in the runs' database, so every process sees them without a restart).

Looking is cheap: the folder is parsed again only when a file in it changed (name, size or
modification time), and a deployed record is parsed once (records are never rewritten).

A deployed version never replaces one that exists: old runs carry the document they started
with in their input, new runs get the latest version unless the caller names one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import batonflow as bf
from batonflow.dsl._runtime import DEPLOYED_KIND as DOCUMENT_KIND
from batonflow.store import AuditEntry

if TYPE_CHECKING:
    from batonflow.dsl import DslRuntime
_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Entry:
    """One workflow: ``kind`` is ``python`` or ``document``; a document has a version."""

    name: str
    kind: str
    version: str | None = None
    source: str | None = None
    document: dict[str, Any] | None = None


class Catalog:
    def __init__(
        self,
        store: bf.Store,
        runtime: DslRuntime,
        python: list[bf.Workflow[Any, Any]],
        folder: Path | None,
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._interpreter = runtime.workflow
        self._python = {wf.name: wf for wf in python}
        self._folder = folder
        self._folder_seen: tuple[tuple[str, int, int], ...] | None = None
        self._folder_entries: list[Entry] = []

    @property
    def python(self) -> list[bf.Workflow[Any, Any]]:
        return list(self._python.values())

    def folder_documents(self) -> list[Entry]:
        """Every valid document of the folder (an invalid one is an error at start)."""
        from batonflow.dsl import load_document

        if self._folder is None:
            return []
        paths = [
            p for p in sorted(self._folder.iterdir())
            if p.suffix.lower() in _SUFFIXES and p.is_file()
        ]  # fmt: skip
        seen = tuple((str(p), s.st_size, s.st_mtime_ns) for p in paths for s in [p.stat()])
        if seen != self._folder_seen:
            self._folder_entries = [_entry(load_document(p).raw, str(p)) for p in paths]
            self._folder_seen = seen
        return list(self._folder_entries)

    async def entries(self) -> list[Entry]:
        python = [Entry(name, "python", source=wf.ref) for name, wf in self._python.items()]
        await self._runtime.refresh_deployed()  # also what `run: workflow` tasks may start
        deployed = [_entry(document, "deployed") for document in self._runtime.deployed.values()]
        documents = {(e.name, e.version): e for e in [*self.folder_documents(), *deployed]}
        return python + sorted(documents.values(), key=lambda e: (e.name, _vkey(e.version)))

    async def document(self, name: str, version: str | None) -> Entry:
        versions = [e for e in await self.entries() if e.kind == "document" and e.name == name]
        if version is not None:
            versions = [e for e in versions if e.version == version]
        if not versions:
            known = ", ".join(sorted({e.name for e in await self.entries()})) or "none"
            which = f"{name} version {version}" if version else name
            raise bf.WorkflowNotFound(f"no workflow {which!r} here (known: {known})")
        return max(versions, key=lambda e: _vkey(e.version))

    async def resolve(
        self, name: str, version: str | None, input: Any
    ) -> tuple[bf.Workflow[Any, Any], Any, float | None]:
        """The kernel workflow to start for ``name``, the run's input, and its timeout."""
        if name in self._python and version is None:
            return self._python[name], input, None
        entry = await self.document(name, version)
        from batonflow.dsl._runtime import _timeout

        assert entry.document is not None
        payload = {"definition": entry.document, "input": input}
        return self._interpreter, payload, _timeout(entry.document)

    async def deploy(self, text: str, actor: str, now: float) -> Entry:
        """Validate ``text`` as a document and keep it as a new version (ConfigError when that
        version exists: bump ``document.version``)."""
        from batonflow.dsl import load_document
        from batonflow.triggers._host import check_document

        document = load_document("deployed document", text=text).raw
        check_document(document)  # a schedule or webhook no process could host is refused now
        entry = _entry(document, "deployed")
        existing = [e for e in await self.entries() if e.name == entry.name]
        if any(e.version == entry.version for e in existing) or entry.name in self._python:
            raise bf.ConfigError(
                f"workflow {entry.name} version {entry.version} exists; give the new one another"
                " document.version (runs keep the version they started with)"
            )
        data = {"workflow": entry.name, "version": entry.version}
        audit = AuditEntry("workflow.deployed", json.dumps(data), actor=actor)
        added = await self._store.add_record(
            DOCUMENT_KIND, f"{entry.name}@{entry.version}", json.dumps(document), now, audit=[audit]
        )
        if not added:
            raise bf.ConfigError(f"workflow {entry.name} version {entry.version} exists")
        await self._runtime.refresh_deployed()
        return entry


def _entry(document: dict[str, Any], source: str) -> Entry:
    header = document.get("document") or {}
    name = f"{header.get('namespace', 'default')}/{header.get('name')}"
    return Entry(name, "document", str(header.get("version")), source, document)


def _vkey(version: str | None) -> tuple[tuple[int, int | str], ...]:
    from batonflow.dsl._runtime import _version_key

    return _version_key(version or "")
