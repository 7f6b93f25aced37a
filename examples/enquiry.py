"""Triage an enquiry e-mail: classify it, log it to the CRM, draft a reply.

This is the product's motivating case in miniature, with no network and no model: the
classifier is a keyword rule and the "CRM" is a JSON-lines file under ``.batonflow/``. Each of
the three calls is a durable step: if the process dies after ``log_to_crm``, the run resumes at
``draft_reply`` and the CRM entry is not written twice.

    batonflow run examples/enquiry.py:triage --input @examples/enquiry.json
    batonflow show <run id>
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import batonflow as bf

#: where the demo CRM appends its records (one JSON object a line)
CRM_FILE = Path(os.environ.get("BATONFLOW_DEMO_CRM", ".batonflow/crm.jsonl"))

_COMPLAINT = ("complaint", "refund", "broken", "damaged", "unacceptable", "disappointed", "angry")
_QUESTION = ("?", "how do i", "how can i", "when will", "what is", "could you", "can you")


@bf.step
def classify(subject: str, body: str) -> str:
    """A keyword rule for now: ``complaint``, ``routine_question`` or ``other``."""
    text = f"{subject}\n{body}".lower()
    if any(word in text for word in _COMPLAINT):
        return "complaint"
    if any(cue in text for cue in _QUESTION):
        return "routine_question"
    return "other"


@bf.step(retry=bf.Retry(max_attempts=5, initial_delay=0.5, max_delay=10))
def log_to_crm(sender: str, subject: str, label: str) -> str:
    """Append the enquiry to the CRM and return its record id.

    A real CRM call fails now and then, hence the retry policy. The id is the step's
    idempotency key, so a retried or replayed call can never create a second record.
    """
    record_id = f"crm-{bf.current_step().idempotency_key}"
    CRM_FILE.parent.mkdir(parents=True, exist_ok=True)
    if record_id not in _logged_ids():
        entry = {"id": record_id, "from": sender, "subject": subject, "label": label}
        with CRM_FILE.open("a", encoding="utf-8") as crm:
            crm.write(json.dumps({**entry, "logged_at": time.time()}) + "\n")
    return record_id


def _logged_ids() -> set[str]:
    if not CRM_FILE.exists():
        return set()
    lines = CRM_FILE.read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["id"] for line in lines if line.strip()}


_REPLIES = {
    "complaint": (
        "We are sorry to hear about the problem you describe (“{topic}”). A member of our"
        " customer care team will contact you within one working day. Your reference: {ref}."
    ),
    "routine_question": (
        "Thank you for your question (“{topic}”). You will find the answer in our help centre;"
        " if not, reply to this e-mail quoting your reference: {ref}."
    ),
    "other": "Thank you for your message (“{topic}”). We will get back to you. Reference: {ref}.",
}


@bf.step
def draft_reply(sender: str, subject: str, label: str, record_id: str) -> dict[str, str]:
    """A template reply; a person (or, later, a model) reviews it before it is sent."""
    name = sender.split("@")[0].replace(".", " ").title()
    body = _REPLIES[label].format(topic=subject.strip() or "your enquiry", ref=record_id)
    return {"to": sender, "subject": f"Re: {subject}", "body": f"Dear {name},\n\n{body}"}


@bf.workflow
async def triage(ctx: bf.Context, email: dict[str, Any]) -> dict[str, Any]:
    """Input: ``{"from": ..., "subject": ..., "body": ...}``."""
    sender, subject = email["from"], email.get("subject", "")
    label = await ctx.step(classify, subject, email.get("body", ""))
    record_id = await ctx.step(log_to_crm, sender, subject, label)
    reply = await ctx.step(draft_reply, sender, subject, label, record_id)
    return {"label": label, "crm_record": record_id, "reply": reply}
