"""The workflows a ``serve`` process offers: Python workflows from configured module
references, workflow documents from a configured folder, and document versions deployed over
the API (kept as governance records in the runs' database, so every process sees them).

A deployed version never replaces one that exists: old runs carry the document they started
with in their input, new runs get the latest version unless the caller names one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import batonflow as bf
from batonflow.store import AuditEntry

DOCUMENT_KIND = "workflow-document"  # triggers._host.DEPLOYED_RECORD reads them too
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
        runtime_workflow: bf.Workflow[Any, Any],
        python: list[bf.Workflow[Any, Any]],
        folder: Path | None,
    ) -> None:
        self._store = store
        self._interpreter = runtime_workflow
        self._python = {wf.name: wf for wf in python}
        self._folder = folder

    @property
    def python(self) -> list[bf.Workflow[Any, Any]]:
        return list(self._python.values())

    def folder_documents(self) -> list[Entry]:
        """Every valid document of the folder (an invalid one is an error at start)."""
        from batonflow.dsl import load_document

        if self._folder is None:
            return []
        found = []
        for path in sorted(self._folder.iterdir()):
            if path.suffix.lower() in _SUFFIXES and path.is_file():
                found.append(_entry(load_document(path).raw, str(path)))
        return found

    async def entries(self) -> list[Entry]:
        python = [Entry(name, "python", source=wf.ref) for name, wf in self._python.items()]
        deployed = [
            _entry(json.loads(text), "deployed")
            for _, text in await self._store.list_records(DOCUMENT_KIND)
        ]
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
        return entry


def _entry(document: dict[str, Any], source: str) -> Entry:
    header = document.get("document") or {}
    name = f"{header.get('namespace', 'default')}/{header.get('name')}"
    return Entry(name, "document", str(header.get("version")), source, document)


def _vkey(version: str | None) -> tuple[tuple[int, int | str], ...]:
    from batonflow.dsl._runtime import _version_key

    return _version_key(version or "")
