"""Ready-made model-calling functions for workflows: :func:`llm`, :func:`classify`,
:func:`extract`, and :class:`Catalog`, which binds them to providers by name so their recorded
step inputs are plain JSON (and gives them to the DSL). See ``docs/catalog.md``.

Structured answers are validated against their JSON Schema and re-asked, with the error fed back,
a bounded number of times; then :class:`InvalidModelOutput` (not retryable).
"""

from batonflow.catalog._agent import (
    AgentBudgetExceeded,
    AgentResult,
    AgentTool,
    ApprovalHook,
    ApprovalUnavailable,
    agent,
    http_tool,
    tool,
)
from batonflow.catalog._catalog import Catalog
from batonflow.catalog._errors import InvalidModelOutput
from batonflow.catalog._functions import (
    Answer,
    classification_schema,
    classify,
    extract,
    extract_pinned,
    llm,
    llm_pinned,
)
from batonflow.catalog._mcp import McpServer, McpToolError

__all__ = [
    "Answer",
    "Catalog",
    "InvalidModelOutput",
    "classification_schema",
    "classify",
    "extract",
    "extract_pinned",
    "llm",
    "llm_pinned",
    "AgentBudgetExceeded",
    "AgentResult",
    "AgentTool",
    "ApprovalHook",
    "ApprovalUnavailable",
    "McpServer",
    "McpToolError",
    "agent",
    "http_tool",
    "tool",
]
