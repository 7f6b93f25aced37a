"""The SVG picture of a document's flow: every task a box, rows by distance from the start."""

from __future__ import annotations

import re
import xml.dom.minidom
from pathlib import Path

from batonflow.dsl import load_document
from batonflow.dsl._graph import mermaid
from batonflow.server._svg import svg_of

ENQUIRY = Path(__file__).resolve().parents[2] / "examples" / "enquiry.yaml"


def test_branches_share_a_row_and_join_below() -> None:
    picture = svg_of(mermaid(load_document(ENQUIRY).raw))
    xml.dom.minidom.parseString(picture)  # well-formed
    boxes = [(int(x), int(y)) for x, y in re.findall(r'<rect x="(\d+)" y="(\d+)"', picture)]
    assert len(boxes) == 8  # start, 6 tasks, end
    rows = sorted({y for _, y in boxes})
    assert len(rows) == 6  # start, classify, three cases side by side, record, draft, end
    assert sum(1 for _, y in boxes if y == rows[2]) == 3
    assert "complaint" in picture
    assert picture.count("marker-end") == 9  # every edge has an arrow


def test_loops_and_labels_are_escaped() -> None:
    text = (
        "---\ntitle: a/<b> 1\n---\nflowchart TD\n  start((start))\n  finish((end))\n"
        '  t_a["a & b<br/>set"]\n  t_b{"b<br/>switch"}\n  start --> t_a\n  t_a --> t_b\n'
        "  t_b -->|again| t_a\n  t_b -->|default| finish\n"
    )
    picture = svg_of(text)
    xml.dom.minidom.parseString(picture)
    assert "a &amp; b" in picture
    assert "&lt;b&gt;" in picture
