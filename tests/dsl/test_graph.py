"""batonflow graph: a document's flow as Mermaid, edges following the flow directives."""

from __future__ import annotations

from batonflow.dsl._graph import mermaid

DOCUMENT = {
    "document": {"dsl": "1.0.3", "namespace": "shop", "name": "triage", "version": "1.0.0"},
    "do": [
        {"classify": {"call": "http", "with": {"method": "post", "endpoint": "https://x"}}},
        {
            "route": {
                "switch": [
                    {"complaint": {"when": '.label == "complaint"', "then": "escalate"}},
                    {"other": {"then": "end"}},
                ]
            }
        },
        {"escalate": {"do": [{"ask": {"listen": {"to": {"one": {"with": {"type": "x"}}}}}}]}},
    ],
}


def test_the_flow_as_mermaid() -> None:
    text = mermaid(DOCUMENT)
    assert text.startswith("---\ntitle: shop/triage 1.0.0\n---\nflowchart TD\n")
    assert 't_do_0_classify["classify<br/>call: http"]' in text
    assert 't_do_1_route{"route<br/>switch"}' in text
    assert 'subgraph t_do_2_escalate["escalate (do)"]' in text
    assert "t_do_2_escalate_do_0_ask{{" in text
    for edge in (
        "start --> t_do_0_classify",
        "t_do_0_classify --> t_do_1_route",
        "t_do_1_route -->|complaint| t_do_2_escalate",
        "t_do_1_route -->|default| finish",
        "t_do_2_escalate --> finish",
    ):
        assert edge in text, edge
