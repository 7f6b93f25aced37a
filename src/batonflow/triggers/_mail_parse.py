"""An e-mail message as a run's input, or a clear refusal: never an exception that escapes.

The input shape (documented in ``docs/triggers.md``)::

    {"mailbox": "office", "from": "Ann <ann@example.com>", "to": [...], "cc": [...],
     "subject": "...", "date": "2026-03-29T09:15:00+01:00", "message_id": "<...>",
     "in_reply_to": "<...>" | None, "text": "plain text (HTML converted)",
     "attachments": [{"name": "invoice.pdf", "type": "application/pdf", "size": 1234,
                      "content": "<base64>"}],
     "defects": ["what the parser had to repair"]}

Messages in unknown or wrong character sets are decoded with replacement characters (and say
so in ``defects``); HTML-only messages are converted to text with ``html2text``.
"""

from __future__ import annotations

import base64
import email.utils
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

__all__ = ["MailRefused", "message_input"]

#: A message larger than this is refused (recorded, marked, never started).
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_TEXT_CHARS = 200_000


class MailRefused(Exception):
    """A message that cannot become a run; ``reason`` says why (it is recorded)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def message_input(raw: bytes, mailbox: str) -> dict[str, Any]:
    """The run input of message ``raw`` received in ``mailbox``; MailRefused when it has no
    usable content (empty, oversized, no headers at all)."""
    if not raw or not raw.strip():
        raise MailRefused("the message is empty")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MailRefused(f"the message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; this is a last resort
        raise MailRefused(f"the message cannot be parsed: {type(exc).__name__}: {exc}") from None
    if not message.keys():
        raise MailRefused("the message has no headers")
    defects: list[str] = [type(d).__name__ for d in message.defects]
    text = _text(message, defects)
    attachments = _attachments(message, defects)
    return {
        "mailbox": mailbox,
        "from": _header(message, "From", defects),
        "to": _addresses(message, "To", defects),
        "cc": _addresses(message, "Cc", defects),
        "subject": _header(message, "Subject", defects),
        "date": _date(message, defects),
        "message_id": _header(message, "Message-ID", defects) or None,
        "in_reply_to": _header(message, "In-Reply-To", defects) or None,
        "text": text[:MAX_TEXT_CHARS],
        "attachments": attachments,
        "defects": sorted(set(defects)),
    }


def _header(message: Message, name: str, defects: list[str]) -> str:
    try:
        value = message.get(name)
        return "" if value is None else " ".join(str(value).split())
    except Exception:  # a header the policy cannot decode: its raw form
        defects.append(f"undecodable {name}")
        raw = message.get_all(name, failobj=[])
        return " ".join(str(v) for v in raw)


def _addresses(message: Message, name: str, defects: list[str]) -> list[str]:
    try:
        values = message.get_all(name, failobj=[])
        pairs = email.utils.getaddresses([str(v) for v in values])
    except Exception:
        defects.append(f"undecodable {name}")
        return []
    return [email.utils.formataddr(pair) for pair in pairs if pair[1]]


def _date(message: Message, defects: list[str]) -> str | None:
    value = _header(message, "Date", defects)
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError):
        defects.append("unparseable Date")
        return None


def _text(message: Message, defects: list[str]) -> str:
    body: Message | None = None
    if isinstance(message, EmailMessage):
        try:
            body = message.get_body(preferencelist=("plain", "html"))
        except Exception:
            defects.append("unreadable body structure")
    if body is None and not message.is_multipart():
        body = message
    if body is None:
        return ""
    content = _decoded(body, defects)
    if body.get_content_type() == "text/html":
        import html2text

        converter = html2text.HTML2Text()
        converter.body_width = 0
        converter.ignore_images = True
        return converter.handle(content).strip()
    return content.strip()


def _decoded(part: Message, defects: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload() or "")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset)
    except LookupError:
        defects.append(f"unknown charset {charset}")
    except UnicodeDecodeError:
        defects.append(f"text not in its declared charset {charset}")
    return payload.decode("utf-8", errors="replace")


def _attachments(message: Message, defects: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if not isinstance(message, EmailMessage):
        return found
    try:
        parts = list(message.iter_attachments())
    except Exception:
        defects.append("unreadable attachments")
        return found
    for part in parts:
        try:
            data = part.get_payload(decode=True)
        except Exception:
            defects.append("undecodable attachment")
            continue
        if not isinstance(data, bytes):
            data = str(part.get_payload() or "").encode()
        found.append(
            {
                "name": part.get_filename() or "unnamed",
                "type": part.get_content_type(),
                "size": len(data),
                "content": base64.b64encode(data).decode("ascii"),
            }
        )
    return found
