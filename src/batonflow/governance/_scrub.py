"""What is scrubbed from every text before it is stored: ``$secrets`` values, and personal
data in error messages.

A secret named in ``[secrets]`` (an API key, a password in a URL) must not reach the database
through a side door: an error message quoting the URL it was in, an ``egress.call`` path, a
step's result. :class:`Scrubber` replaces each value (as written, JSON-escaped and
URL-encoded) by ``[secret:NAME]`` in every payload the sealed store writes, and runs the
redaction detectors (e-mail, phone, NI, IBAN, card) over error texts, which no workflow rule
reaches (an HTTP error quotes the URL, path and query included).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

from batonflow.governance._redaction import DEFAULT_REPLACEMENT, detect

__all__ = ["MIN_SECRET", "Scrubber"]

#: Shorter values are not masked (masking "on" or "1" everywhere would mangle data).
MIN_SECRET = 6


class Scrubber:
    """Masks ``secrets`` (name -> value) in stored texts; redacts detectors in error texts."""

    def __init__(self, secrets: Mapping[str, object] | None = None) -> None:
        forms: dict[str, str] = {}
        for name, value in (secrets or {}).items():
            if not isinstance(value, str) or len(value) < MIN_SECRET:
                continue
            for form in (value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value)):
                forms.setdefault(form, f"[secret:{name}]")
        # longest first: a secret that contains another is masked whole
        self._forms = sorted(forms.items(), key=lambda item: -len(item[0]))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, text: str | None) -> str | None:
        """``text`` with every secret value masked."""
        if text is None or not self._forms:
            return text
        for form, mask in self._forms:
            if form in text:
                text = text.replace(form, mask)
        return text

    def error(self, text: str | None) -> str | None:
        """An error's JSON text with secrets masked and personal data redacted."""
        text = self.text(text)
        if not text:
            return text
        findings = detect(text)
        if not findings:
            return text
        parts: list[str] = []
        pos = 0
        for start, end, kind in findings:
            parts += (text[pos:start], DEFAULT_REPLACEMENT.format(kind=kind))
            pos = end
        parts.append(text[pos:])
        redacted = "".join(parts)
        try:  # an error is stored as JSON: a finding must never break it
            json.loads(redacted)
        except ValueError:
            return text
        return redacted
