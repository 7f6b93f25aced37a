"""The fenced code blocks of the documentation, with what the page says about each.

A block is run according to its language (see ``test_docs_run.py``). What an HTML comment just
before a block says (blank lines between are allowed):

* ``<!-- not run: REASON -->``: the block is not executed; the reason is required.
* ``<!-- file: NAME -->``: the block's text is written to ``NAME`` in the page's directory
  before it is checked, so later blocks can use it. A YAML or TOML block whose first line is a
  comment naming a file (``# triage.yaml``) is written there too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: the pages whose blocks are executed: the README, docs/*.md and every example's README
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").glob("**/README.md")]
)

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
COMMENT = re.compile(r"^\s*<!--\s*(?P<key>not run|file)\s*:\s*(?P<value>.*?)\s*-->\s*$")
FILE_COMMENT = re.compile(r"^#\s*(?P<name>[\w.-]+\.(?:ya?ml|toml|json))\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str  # the info string's first word, lower-case ("" when none)
    text: str  # the content, dedented by the fence's indentation
    not_run: str | None = None  # the reason given by <!-- not run: ... -->
    file: str | None = None  # where the block's text is written before it runs

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order. An unclosed fence is an error."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines):
            close = lines[index].strip()
            if close.startswith(fence[0] * len(fence)) and set(close) == {fence[0]}:
                break
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        else:
            raise AssertionError(f"{page.relative_to(ROOT)}:{start + 1}: unclosed code fence")
        index += 1
        notes = _comments_before(lines, start)
        text = "\n".join(body) + "\n"
        file = notes.get("file")
        first = body[0].strip() if body else ""
        lang = (match["info"].strip().split() or [""])[0].lower()
        named = FILE_COMMENT.match(first)
        if file is None and named and lang in {"yaml", "yml", "toml"}:
            file = named["name"]
        found.append(Block(page, start + 1, lang, text, notes.get("not run"), file))
    return found


def _comments_before(lines: list[str], fence: int) -> dict[str, str]:
    notes: dict[str, str] = {}
    index = fence - 1
    while index >= 0:
        line = lines[index]
        if not line.strip():
            index -= 1
            continue
        match = COMMENT.match(line)
        if match is None:
            break
        notes[match["key"]] = match["value"]
        index -= 1
    return notes
