"""Ready-made model-calling functions for workflows: :func:`llm`, :func:`classify`,
:func:`extract`, :func:`agent`, :func:`approval` (people decide, by rules), and
:class:`Catalog`, which binds them to providers by name so
their recorded step inputs are plain JSON (and gives them to the DSL). See ``docs/catalog.md``
and ``docs/agents.md``.

Structured answers are validated against their JSON Schema and re-asked, with the error fed back,
a bounded number of times; then :class:`InvalidModelOutput` (not retryable). A
:class:`RunBudget` caps a run's model tokens and cost, counted from its journal; past it,
:class:`BudgetExceeded` (not retryable).
"""

from batonflow.catalog._agent import (
    AgentBudgetExceeded,
    AgentResult,
    ApprovalUnavailable,
    agent,
)
from batonflow.catalog._approval import approval
from batonflow.catalog._budget import RunBudget, Spend
from batonflow.catalog._catalog import Catalog
from batonflow.catalog._classify import UNSURE, classify, load_examples
from batonflow.catalog._corrections import Correction, correct_label, stored_examples
from batonflow.catalog._email import (
    EmailDeferred,
    EmailNotSent,
    EmailRejected,
    InvalidEmailAddress,
    Mailer,
    SmtpSettings,
    load_smtp_settings,
    parse_smtp_settings,
)
from batonflow.catalog._errors import BudgetExceeded, InvalidModelOutput
from batonflow.catalog._functions import (
    Answer,
    classification_schema,
    extract,
    extract_pinned,
    llm,
    llm_pinned,
)
from batonflow.catalog._mcp import McpServer, McpServerError, McpToolError
from batonflow.catalog._tools import AgentTool, ApprovalHook, http_tool, tool

__all__ = [
    "Answer",
    "BudgetExceeded",
    "Catalog",
    "EmailDeferred",
    "EmailNotSent",
    "EmailRejected",
    "InvalidEmailAddress",
    "Mailer",
    "SmtpSettings",
    "load_smtp_settings",
    "parse_smtp_settings",
    "InvalidModelOutput",
    "RunBudget",
    "Spend",
    "classification_schema",
    "classify",
    "load_examples",
    "Correction",
    "correct_label",
    "stored_examples",
    "UNSURE",
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
    "McpServerError",
    "McpToolError",
    "agent",
    "approval",
    "http_tool",
    "tool",
]
