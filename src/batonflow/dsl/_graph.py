"""A workflow document's flow as a Mermaid flowchart (``batonflow graph``).

Tasks are nodes (shaped by kind), composite tasks (do, for, fork, try) are subgraphs, and the
edges follow the flow directives: the next task by default, ``then:`` targets, every ``switch``
case (labelled), ``exit`` to the end of the enclosing list and ``end`` to the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from batonflow.dsl._interpreter import task_kind

_COMPOSITE = ("do", "for", "fork", "try")
_SHAPES = {
    "switch": ("{", "}"),
    "wait": ("([", "])"),
    "listen": ("{{", "}}"),
    "emit": (">", "]"),
    "raise": ("[/", "\\]"),
    "run": ("[[", "]]"),
}


def mermaid(document: dict[str, Any]) -> str:
    """Mermaid ``flowchart`` text for the document's task lists."""
    graph = _Graph()
    entry, exits = graph.task_list(document.get("do") or [], "/do", indent=1)
    graph.edge("start", entry or "finish")
    for node in exits:
        graph.edge(node, "finish")
    meta = document.get("document") or {}
    title = f"{meta.get('namespace', '')}/{meta.get('name', '')} {meta.get('version', '')}"
    header = ["---", f"title: {title.strip()}", "---", "flowchart TD"]
    nodes = ["  start((start))", "  finish((end))"]
    return "\n".join([*header, *nodes, *graph.lines, *graph.edges]) + "\n"


@dataclass
class _Graph:
    lines: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)

    def edge(self, source: str, target: str, label: str | None = None) -> None:
        arrow = f" -->|{_text(label)}| " if label else " --> "
        self.edges.append(f"  {source}{arrow}{target}")

    def task_list(
        self, items: list[dict[str, Any]], pointer: str, indent: int
    ) -> tuple[str | None, list[str]]:
        """Draw a task list; return its entry node and the nodes that leave it."""
        names = [next(iter(item)) for item in items]
        ids = [_node_id(f"{pointer}/{i}/{name}") for i, name in enumerate(names)]
        exits: list[str] = []
        for index, name in enumerate(names):
            task = items[index][name]
            node = ids[index]
            inner_exits = self.task(name, task, f"{pointer}/{index}/{name}", node, indent)
            following = ids[index + 1] if index + 1 < len(ids) else None
            for source, directive, label in inner_exits:
                target = self._target(directive, following, names, ids)
                if target == "__exit__":
                    exits.append(source)
                elif target is not None:
                    self.edge(source, target, label)
        return (ids[0] if ids else None), exits

    def _target(
        self, directive: str | None, following: str | None, names: list[str], ids: list[str]
    ) -> str | None:
        if directive in (None, "continue"):
            return following or "__exit__"
        if directive == "exit":
            return "__exit__"
        if directive == "end":
            return "finish"
        return ids[names.index(directive)] if directive in names else "__exit__"

    def task(
        self, name: str, task: dict[str, Any], pointer: str, node: str, indent: int
    ) -> list[tuple[str, str | None, str | None]]:
        """Draw one task; return (node, directive, edge label) for each way out of it."""
        kind = task_kind(task)
        pad = "  " * indent
        then = task.get("then")
        if kind in _COMPOSITE:
            self.lines.append(f'{pad}subgraph {node}["{_text(name)} ({_detail(kind, task)})"]')
            for list_pointer, items in _children(kind, task, pointer):
                self.task_list(items, list_pointer, indent + 1)
            self.lines.append(f"{pad}end")
            return [(node, then, None)]
        left, right = _SHAPES.get(kind, ("[", "]"))
        self.lines.append(
            f'{pad}{node}{left}"{_text(name)}<br/>{_text(_detail(kind, task))}"{right}'
        )
        if kind == "switch":
            ways: list[tuple[str, str | None, str | None]] = []
            for case in task["switch"]:
                case_name, spec = next(iter(case.items()))
                label = case_name if spec.get("when") else "default"
                ways.append((node, spec.get("then"), label))
            if not any(label == "default" for _, _, label in ways):
                ways.append((node, then, "no match"))
            return ways
        return [(node, then, None)]


def _children(kind: str, task: dict[str, Any], pointer: str) -> list[tuple[str, list[Any]]]:
    if kind == "fork":
        return [(f"{pointer}/fork/branches", task["fork"]["branches"])]
    if kind == "try":
        lists = [(f"{pointer}/try", task["try"])]
        catch_do = (task.get("catch") or {}).get("do")
        return [*lists, (f"{pointer}/catch/do", catch_do)] if catch_do else lists
    return [(f"{pointer}/do", task["do"])]


def _detail(kind: str, task: dict[str, Any]) -> str:
    if kind == "call":
        return f"call: {task['call']}"
    if kind == "for":
        loop = task["for"]
        return f"for {loop.get('each', 'item')} in {loop.get('in')}"
    if kind == "fork":
        return "fork, compete" if task["fork"].get("compete") else "fork"
    if kind == "run":
        return "run: " + next(
            (k for k in ("workflow", "shell", "script", "container") if k in task["run"]), "?"
        )
    return kind


def _node_id(pointer: str) -> str:
    return "t_" + re.sub(r"[^A-Za-z0-9_]", "_", pointer.strip("/"))


def _text(value: Any) -> str:
    """Text safe inside a quoted Mermaid label."""
    return str(value).replace('"', "#quot;").replace("|", "#124;")
