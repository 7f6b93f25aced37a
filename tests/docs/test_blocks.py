"""The block extractor the docs suite relies on: what it finds, and what it says about each."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import blocks as extract
from .test_docs_run import is_synopsis, shell_commands, shell_script

PAGE = """\
# A page

```python
x = 1
```

<!-- not run: needs a server at db.internal -->

```sh
batonflow worker
```

<!-- file: event.json -->
```json
{"id": "1"}
```

- a list item:

  ```python
  y = 2
  ```

```yaml
# flow.yaml
document: {}
```

```
batonflow list [--status STATUS]
```
"""


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(extract, "ROOT", tmp_path)
    path = tmp_path / "page.md"
    path.write_text(PAGE)
    return path


def test_every_fence_with_its_notes(page: Path) -> None:
    found = extract.blocks(page)
    assert [(b.line, b.lang) for b in found] == [
        (3, "python"), (9, "sh"), (14, "json"), (20, "python"), (24, "yaml"), (29, ""),
    ]  # fmt: skip
    assert found[1].not_run == "needs a server at db.internal"
    assert found[2].file == "event.json"
    assert found[3].text == "y = 2\n"  # dedented with its fence
    assert found[4].file == "flow.yaml"  # named by its first-line comment
    assert is_synopsis(found[5])
    assert [b.not_run for b in found].count(None) == 5


def test_an_unclosed_fence_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "ROOT", tmp_path)
    path = tmp_path / "bad.md"
    path.write_text("text\n```sh\nbatonflow list\n")
    with pytest.raises(AssertionError, match=r"bad\.md:2: unclosed code fence"):
        extract.blocks(path)


def test_shell_commands_expected_exits_and_placeholders() -> None:
    block = extract.Block(
        extract.ROOT / "p.md", 1, "sh",
        "# a comment\nbatonflow audit verify   # exits 12\nbatonflow show RUN_ID \\\n  --json\n",
    )  # fmt: skip
    assert shell_commands(block) == [
        "batonflow audit verify   # exits 12", "batonflow show RUN_ID  --json",
    ]  # fmt: skip
    script = shell_script(block, sets_run_id=False)
    assert "-ne 12 ]" in script
    assert "RUN_ID=$(_bf_latest_run)" in script
    assert "batonflow show $RUN_ID  --json" in script
    console = extract.Block(extract.ROOT / "p.md", 1, "console", "$ batonflow list\nid  status\n")
    assert shell_commands(console) == ["batonflow list"]
