"""Redaction before a model call: what the provider receives, and the audit entry."""

from __future__ import annotations

import json
import re

import batonflow as bf
from batonflow.governance._redaction import RedactionPolicy
from batonflow.governance._redaction_rules import RedactionRules, Redactor
from batonflow.providers import ChatRequest, ChatResponse, Message, Provider, ToolCall, Usage
from batonflow.providers._redacting import RedactingProvider

ALL = ("email", "phone", "uk_ni", "iban", "card")


class RecordingProvider:
    """A provider that answers "ok" and keeps every request it was given."""

    def __init__(self) -> None:
        self.received: list[ChatRequest] = []

    @property
    def name(self) -> str:
        return "recorder"

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.received.append(request)
        return ChatResponse("ok", (), "stop", Usage(1, 1), self.name, "fake-1", 0.0)


ENQUIRY = (
    "From jane.doe@example.co.uk: please refund card 4111 1111 1111 1111 to "
    "GB82 WEST 1234 5698 7654 32. NI AB 12 34 56 C, phone 07700 900123. Order 2024-001234."
)
SECRETS = [
    "jane.doe@example.co.uk",
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "AB 12 34 56 C",
    "07700 900123",
    "4111111111111111",
]

REQUEST = ChatRequest(
    (
        Message.system("You triage enquiries. Escalations go to ops@example.com."),
        Message.user(ENQUIRY),
        Message.assistant(
            "Looking up the customer.",
            (ToolCall("c1", "crm_lookup", {"email": "jane.doe@example.co.uk", "limit": 3}),),
        ),
        Message.tool("c1", '{"customer": "Jane", "card": "4111111111111111"}'),
    ),
    model="fake-1",
    temperature=0.0,
)


def as_text(request: ChatRequest) -> str:
    parts = []
    for m in request.messages:
        parts.append(m.content)
        parts += [json.dumps(dict(c.arguments)) for c in m.tool_calls]
    return "\n".join(parts)


async def test_the_provider_receives_no_personal_data() -> None:
    inner = RecordingProvider()
    provider: Provider = RedactingProvider(inner, lambda: RedactionPolicy(detectors=ALL))
    answer = await provider.complete(REQUEST)
    assert answer.text == "ok"
    assert provider.name == "recorder"
    (sent,) = inner.received
    text = as_text(sent)
    for secret in SECRETS:
        assert secret not in text
    assert not re.search(r"\d{4} ?\d{4} ?\d{4} ?\d{4}", text)
    assert sent.messages[1].content == (
        "From [email]: please refund card [card] to [iban]. NI [uk_ni], phone [phone]. "
        "Order 2024-001234."
    )
    assert sent.messages[2].tool_calls == (
        ToolCall("c1", "crm_lookup", {"email": "[email]", "limit": 3}),
    )
    assert sent.messages[3].tool_call_id == "c1"
    assert (sent.model, sent.temperature) == ("fake-1", 0.0)
    assert "4111" in REQUEST.messages[1].content  # the caller's request is unchanged


async def test_field_paths_apply_to_tool_call_arguments() -> None:
    inner = RecordingProvider()
    policy = RedactionPolicy(fields=(".email",), keep=(".nothing",))
    await RedactingProvider(inner, lambda: policy).complete(REQUEST)
    (sent,) = inner.received
    assert sent.messages[2].tool_calls[0].arguments == {"email": "[redacted]", "limit": 3}
    assert sent.messages[1] == REQUEST.messages[1]  # keep is not applied to the conversation


async def test_no_policy_sends_the_request_as_it_is() -> None:
    inner = RecordingProvider()
    await RedactingProvider(inner, lambda: None).complete(REQUEST)
    await RedactingProvider(inner, RedactionPolicy).complete(REQUEST)
    await RedactingProvider(inner, lambda: RedactionPolicy(keep=(".a",))).complete(REQUEST)
    clean = ChatRequest((Message.user("What is the weather like?"),))
    await RedactingProvider(inner, lambda: RedactionPolicy(detectors=ALL)).complete(clean)
    assert inner.received[:3] == [REQUEST, REQUEST, REQUEST]
    assert inner.received[3] is clean


# -- inside a workflow: the step's model policy, and the audit entry -------------------------------

RECORDER = RecordingProvider()
REDACTOR = Redactor(
    {
        "answer_enquiry": RedactionRules.parse(
            {"model": {"detectors": ["email", "iban", "card"]}, "steps": {"chat": {}}},
            "test: redact",
        )
    },
    default=RedactionRules(model=RedactionPolicy(detectors=("uk_ni",))),
)
MODEL = RedactingProvider(RECORDER, REDACTOR.model_policy)


@bf.step
async def chat(text: str) -> str:
    answer = await MODEL.complete(ChatRequest((Message.user(text),)))
    return answer.text


@bf.workflow
async def answer_enquiry(ctx: bf.Context, text: str) -> list[str]:
    return [await ctx.step(chat, text), await ctx.step(chat, "Thanks, nothing personal here.")]


async def test_a_step_records_what_was_redacted_without_the_values(engine: bf.Engine) -> None:
    RECORDER.received.clear()
    handle = await engine.start(answer_enquiry, ENQUIRY)
    assert await handle.result() == ["ok", "ok"]
    sent = RECORDER.received[0].messages[0].content
    assert sent == (
        "From [email]: please refund card [card] to [iban]. NI [uk_ni], phone 07700 900123. "
        "Order 2024-001234."
    )
    entries = [
        r for r in await engine.store.read_audit(run_id=handle.run_id) if r.kind == "model.redacted"
    ]
    assert len(entries) == 1  # the second call had nothing to redact
    data = json.loads(entries[0].data_json)
    assert data == {
        "provider": "recorder",
        "messages": 1,
        "detectors": {"iban": 1, "card": 1, "uk_ni": 1, "email": 1},
    }
    assert entries[0].step_id is not None
    for secret in SECRETS:
        assert secret not in entries[0].data_json
