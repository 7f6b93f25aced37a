"""A workflow document's flow as an SVG picture, drawn from its Mermaid graph (one source of
truth for the flow: :func:`batonflow.dsl._graph.mermaid`).

The layout is simple and deterministic: each node's row is its longest distance from the start
(back edges of loops are ignored for that), nodes of a row side by side; edges are straight
lines with arrowheads, labelled where the graph labels them (switch cases). Composite tasks
(do, for, fork, try) are drawn as one box."""

from __future__ import annotations

import re
from collections import defaultdict
from xml.sax.saxutils import escape

_NODE = re.compile(r'^\s*(?:subgraph\s+)?(\w+)\W{1,2}"(.*?)"\W{1,2}\s*$')
_ROUND = re.compile(r"^\s*(\w+)\(\((\w+)\)\)\s*$")
_EDGE = re.compile(r"^\s*(\w+) -->(?:\|(.*?)\|)? (\w+)\s*$")
_W, _H, _GAP_X, _GAP_Y = 180, 48, 30, 50
_PLAIN = 'fill="#eef3fb" stroke="#36c"'
_MARKED = 'fill="#d9f2df" stroke="#1a6b32" stroke-width="3" class="on-path"'


def svg_of(mermaid: str, marked: frozenset[str] = frozenset()) -> str:
    """The picture; nodes named in ``marked`` (a run's path) are drawn highlighted."""
    labels: dict[str, str] = {}
    edges: list[tuple[str, str, str | None]] = []
    title = ""
    for line in mermaid.splitlines():
        if line.startswith("title:"):
            title = line[6:].strip()
        elif found := _EDGE.match(line):
            edges.append((found[1], found[3], found[2]))
        elif found := _NODE.match(line) or _ROUND.match(line):
            labels[found[1]] = found[2].replace("<br/>", "\n")
    rows = _rows(labels, edges)
    places = _places(rows)
    width = max((x for x, _ in places.values()), default=0) + _W + _GAP_X
    height = max((y for _, y in places.values()), default=0) + _H + _GAP_Y + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='8'"
        " markerHeight='8' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z'/></marker>"
        "</defs>",
        f"<title>{escape(title)}</title>",
        f'<text x="{_GAP_X}" y="20" font-weight="bold">{escape(title)}</text>',
    ]
    for source, target, label in edges:
        if source in places and target in places:
            parts.append(_edge(places[source], places[target], label))
    for node, (x, y) in places.items():
        parts.append(
            _box(x, y, labels.get(node, node), rounded=node in ("start", "finish"),
                 marked=node in marked)
        )  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _rows(labels: dict[str, str], edges: list[tuple[str, str, str | None]]) -> list[list[str]]:
    """Nodes by row: the longest path from the start, ignoring edges that go back up."""
    order = list(labels)
    position = {n: i for i, n in enumerate(order)}
    rank = dict.fromkeys(order, 0)
    forward = [(s, t) for s, t, _ in edges if s in rank and t in rank and position[s] < position[t]]
    forward += [(s, "finish") for s, t, _ in edges if t == "finish" and s in rank]
    for _ in range(len(order)):  # relax until stable (a DAG: at most one pass per node)
        changed = False
        for source, target in forward:
            if rank[target] < rank[source] + 1:
                rank[target], changed = rank[source] + 1, True
        if not changed:
            break
    rows: dict[int, list[str]] = defaultdict(list)
    for node in order:
        rows[rank[node]].append(node)
    return [rows[r] for r in sorted(rows)]


def _places(rows: list[list[str]]) -> dict[str, tuple[int, int]]:
    widest = max((len(r) for r in rows), default=1)
    places = {}
    for r, nodes in enumerate(rows):
        offset = (widest - len(nodes)) * (_W + _GAP_X) // 2
        for i, node in enumerate(nodes):
            places[node] = (_GAP_X + offset + i * (_W + _GAP_X), 40 + r * (_H + _GAP_Y))
    return places


def _box(x: int, y: int, label: str, *, rounded: bool, marked: bool = False) -> str:
    radius = _H // 2 if rounded else 6
    lines = label.split("\n")[:2]
    texts = "".join(
        f'<tspan x="{x + _W // 2}" dy="{0 if i == 0 else 15}">{escape(t[:28])}</tspan>'
        for i, t in enumerate(lines)
    )
    top = y + _H // 2 - (len(lines) - 1) * 7 + 4
    return (
        f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="{radius}"'
        f" {_MARKED if marked else _PLAIN}/>"
        f'<text x="{x + _W // 2}" y="{top}" text-anchor="middle">{texts}</text>'
    )


def _edge(a: tuple[int, int], b: tuple[int, int], label: str | None) -> str:
    x1, y1 = a[0] + _W // 2, a[1] + _H
    x2, y2 = b[0] + _W // 2, b[1]
    if y2 <= y1:  # a loop back up: leave from the side
        x1, y1, x2, y2 = a[0] + _W, a[1] + _H // 2, b[0] + _W, b[1] + _H // 2
    line = f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555" marker-end="url(#arrow)"/>'
    if not label:
        return line
    mx, my = (x1 + x2) // 2 + 4, (y1 + y2) // 2
    return line + f'<text x="{mx}" y="{my}" fill="#333">{escape(label)}</text>'
