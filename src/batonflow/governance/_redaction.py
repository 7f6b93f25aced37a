"""Redaction: personal data taken out of a value before it is stored or sent to a model.

Architecture rule 7: redaction runs before persistence and before data leaves the process,
never after. A :class:`RedactionPolicy` says what to take out of one value:

* ``fields``: paths whose whole value is replaced by the placeholder ``[redacted]``;
* ``detectors`` (``email``, ``phone``, ``uk_ni``, ``iban``, ``card``; ``all`` in configuration):
  every string anywhere in the value (and every dict key, and every integer that is a card
  number) is scanned, and each finding is replaced whole by a typed placeholder (``[email]``);
* ``keep``: an allow-list. When set, only the listed paths survive; everything else is dropped,
  so a step is given only the fields it needs.

Path syntax (a small subset of jq's)::

    .customer.email       key "email" of key "customer"
    ."first name"         a key that is not a plain name, as a JSON string
    .items[]              every element of the list (or every value of the object) at "items"
    .items[0]             element 0 of the list at "items"
    .items[].iban         key "iban" of every element

A plain name is ``[A-Za-z_][A-Za-z0-9_-]*``. A path that does not reach anything in a value
is not an error: payloads differ, and a policy applies to all of them.

:class:`RedactionRules` holds one workflow's settings (``persist``, ``model``, per-step
overrides); :class:`Redactor` maps workflow names to them, on top of a global floor (both in
``_redaction_rules``).
"""

from __future__ import annotations

import bisect
import json
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batonflow import _serde
from batonflow.errors import ConfigError

__all__ = [
    "DETECTORS",
    "Redacted",
    "RedactionPolicy",
    "detect",
    "iban_valid",
    "luhn_valid",
    "parse_path",
]

Span = tuple[int, int]

# --------------------------------------------------------------------------------------------
# Detectors. Each returns the spans it found; all are precise rather than eager: a value that
# only looks like a phone number or an IBAN (a date, an amount, an order number) stays.

_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w%+-]+(?:[.'][\w%+-]+)*"  # local part
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+([^\W\d_]{2,63})(?![\w-])"  # domain, TLD group
)
# "logo@2x.png" is a file name, not an address.
_NOT_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico"})


def _emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    return [m.span() for m in _EMAIL.finditer(text) if m[1].lower() not in _NOT_TLDS]


_NI = re.compile(
    r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])[ -]?\d{2}[ -]?\d{2}[ -]?\d{2}"
    r"[ -]?[A-D](?![A-Za-z0-9])",
    re.IGNORECASE,
)
# HMRC never allocates these prefixes (D, F, I, Q, U, V anywhere and O second are in the regex).
_NI_NOT_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def _uk_ni(text: str) -> list[Span]:
    return [m.span() for m in _NI.finditer(text) if m[1].upper() not in _NI_NOT_PREFIXES]


#: IBAN lengths from the SWIFT IBAN registry (all EEA countries and GB included), plus the
#: territories that use their parent's format (GG, IM, JE as GB; the French overseas ones as FR).
IBAN_LENGTHS: Mapping[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AX": 18, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BL": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GF": 27, "GG": 22, "GI": 23, "GL": 18, "GP": 27,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IM": 22, "IQ": 23, "IS": 26,
    "IT": 27, "JE": 22, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MF": 27, "MK": 19, "MN": 20,
    "MQ": 27, "MR": 27, "MT": 31, "MU": 30, "NC": 27, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PF": 27, "PK": 24, "PL": 28, "PM": 27, "PS": 29, "PT": 25, "QA": 29, "RE": 27, "RO": 24,
    "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TF": 27, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22,
    "VG": 24, "WF": 27, "XK": 20, "YE": 30, "YT": 27,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})\d{2}")
_ALNUM = frozenset(string.ascii_letters + string.digits)


def iban_valid(iban: str) -> bool:
    """True for an IBAN (spaces allowed) of its country's length passing ISO 7064 mod 97-10."""
    compact = iban.replace(" ", "").upper()
    if not compact.isascii() or not compact.isalnum() or len(compact) < 5:
        return False
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    if not 2 <= int(compact[2:4]) <= 98:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in _IBAN_START.finditer(text):
        if spans and m.start() < spans[-1][1]:
            continue
        length = IBAN_LENGTHS.get(m[1].upper())
        if length is None:
            continue
        end = _take_alnum(text, m.end(), length - 4)
        if end is not None and iban_valid(text[m.start() : end]):
            spans.append((m.start(), end))
    return spans


def _take_alnum(text: str, i: int, count: int) -> int | None:
    """End of ``count`` more alphanumerics from ``i`` (single spaces between them allowed),
    provided no alphanumeric follows them; else None."""
    while count:
        c = text[i : i + 1]
        if c in _ALNUM:
            count -= 1
        elif c != " " or text[i + 1 : i + 2] not in _ALNUM:
            return None
        i += 1
    return None if text[i : i + 1] in _ALNUM else i


# A run of digit groups joined by single spaces or dashes, not inside a longer number or word.
_DIGIT_RUN = re.compile(r"(?<![\w+])(?<!\d[ -])\d+(?:[ -]\d+)*(?!\w)")
_GROUP = re.compile(r"\d+")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _issuer_length_ok(d: str) -> bool:
    """Whether ``d`` starts like a card of a known scheme and has that scheme's length."""
    n, p2, p3, p4, p6 = len(d), int(d[:2]), int(d[:3]), int(d[:4]), int(d[:6])
    if d[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # American Express
        return n == 15
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):  # Diners Club
        return 14 <= n <= 19
    if 3528 <= p4 <= 3589 or 2200 <= p4 <= 2204:  # JCB, Mir
        return 16 <= n <= 19
    if p4 == 6011 or 644 <= p3 <= 649 or p2 in (62, 65) or 622126 <= p6 <= 622925:
        return 16 <= n <= 19  # Discover, UnionPay
    if p2 == 50 or 56 <= p2 <= 58 or p2 in (60, 63, 67, 69):  # Maestro, RuPay
        return 13 <= n <= 19
    return False


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _issuer_length_ok(digits) and luhn_valid(digits)


def _cards(text: str) -> list[Span]:
    spans: list[Span] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [g.span() for g in _GROUP.finditer(text, run.start(), run.end())]
        if len(groups) == 1:
            if _is_card(run[0]):
                spans.append(run.span())
            continue
        # Printed cards are grouped 4-4-4-4, 4-6-5, 4-4-4-2 and so on: a group shorter than
        # three digits can only end one (which also keeps "1 2 3 4 ..." cheap).
        i = 0
        while i < len(groups):  # the longest card starting at each group
            windows: list[tuple[int, str]] = []
            digits = ""
            for j in range(i, len(groups)):
                digits += text[groups[j][0] : groups[j][1]]
                if len(digits) > 19 or len(digits) < 3:
                    break
                windows.append((j, digits))
                if groups[j][1] - groups[j][0] < 3:
                    break
            for j, candidate in reversed(windows):
                if _is_card(candidate):
                    spans.append((groups[i][0], groups[j][1]))
                    i = j
                    break
            i += 1
    return spans


# A phone number: digit groups, one may be in parentheses, single spaces or dashes between.
_PHONE = re.compile(
    r"(?<![\w+)])(?<!\d[ -])"
    r"\+?(?:\(\d{1,5}\)|\d+)(?:(?:[ -]|(?<=\))|(?=\())(?:\(\d{1,5}\)|\d+)){0,7}"
    r"(?![\w(])(?![ -]\d)"
)
#: ITU-T E.164 country codes in use (1, 2 or 3 digits); "+" followed by anything else is not
#: an international number.
_COUNTRY_CODES = frozenset(
    str(code)
    for code in (
        1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53,
        54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
        211, 212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232,
        233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250,
        251, 252, 253, 254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269,
        290, 291, 297, 298, 299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372,
        373, 374, 375, 376, 377, 378, 379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423,
        500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597,
        598, 599, 670, 672, 673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687,
        688, 689, 690, 691, 692, 850, 852, 853, 855, 856, 880, 886, 960, 961, 962, 963, 964, 965,
        966, 967, 968, 970, 971, 972, 973, 974, 975, 976, 977, 992, 993, 994, 995, 996, 998,
    )
)  # fmt: skip


def _phone_digits_ok(candidate: str) -> bool:
    international = candidate.startswith(("+", "00"))
    digits = re.sub(r"\D", "", candidate.replace("(0)", "") if international else candidate)
    if not international:  # UK national format: 01, 02, 03, 05, 07, 08, 09 + 8 or 9 digits,
        # grouped in threes or more ("0123 4567 89" is a reference, not a number)
        return (
            len(digits) in (10, 11)
            and digits[0] == "0"
            and digits[1] in "1235789"
            and all(len(g) >= 3 for g in _GROUP.findall(candidate))
        )
    if candidate.startswith("00"):  # "0098765432" is more likely a reference than Iran
        digits = digits[2:]
        if not digits.startswith("44") and not re.search(r"[ ()-]", candidate):
            return False
    if digits.startswith("44"):
        return len(digits) in (11, 12) and digits[2] in "1235789"
    if digits.startswith("1"):  # North America: [2-9]XX [2-9]XX XXXX
        return len(digits) == 11 and digits[1] not in "01" and digits[4] not in "01"
    codes = (digits[:1], digits[:2], digits[:3])
    return 8 <= len(digits) <= 15 and any(c in _COUNTRY_CODES for c in codes)


def _phones(text: str) -> list[Span]:
    found = [m.span() for m in _PHONE.finditer(text) if _phone_digits_ok(m[0])]
    if not found:
        return []
    taken = _Taken()  # the digits of IBANs and card numbers are not phone numbers
    for span in sorted(_ibans(text) + _cards(text)):
        if not taken.overlaps(span):
            taken.add(span)
    return [s for s in found if not taken.overlaps(s)]


class _Taken:
    """Non-overlapping spans, sorted, with a fast overlap test."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def overlaps(self, span: Span) -> bool:
        i = bisect.bisect_left(self.starts, span[1]) - 1
        return i >= 0 and self.ends[i] > span[0]

    def add(self, span: Span) -> None:
        i = bisect.bisect_left(self.starts, span[0])
        self.starts.insert(i, span[0])
        self.ends.insert(i, span[1])


#: Detector name -> finder. Order is precedence: when two findings overlap, the earlier wins.
DETECTORS: Mapping[str, Callable[[str], list[Span]]] = {
    "iban": _ibans,
    "card": _cards,
    "uk_ni": _uk_ni,
    "email": _emails,
    "phone": _phones,
}
_HAS_DIGIT = re.compile(r"\d")


#: Separators people and systems write inside identifiers (``JG.10.37.59.A``,
#: ``4111.1111.1111.1111``, ``GB33-BUKB-...``, ``4111/1111``): read as a space between two
#: letters or digits, so each detector sees one spelling.
_INNER_SEPARATOR = re.compile(
    r"(?<=[^\W_])[._/\-\u2010-\u2015\u2212\u00a0\u2000-\u200b\u202f\u3000](?=[^\W_])"
)


def normalise(text: str) -> tuple[str, list[int] | None]:
    """``text`` in Unicode NFKC (full-width digits and letters, ligatures, compatibility
    forms as their plain characters) and, for each character of the result, the index of the
    character of ``text`` it came from (None: the same as ``text``)."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text, None
    whole = unicodedata.normalize("NFKC", text)
    if len(whole) == len(text):  # one character for one (full-width forms): same positions
        return whole, None
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        plain = unicodedata.normalize("NFKC", ch) if not ch.isascii() else ch
        chars.append(plain)
        origin.extend([i] * len(plain))
    return "".join(chars), origin


def detect(text: str, names: Iterable[str] = DETECTORS) -> list[tuple[int, int, str]]:
    """Non-overlapping findings ``(start, end, detector)`` of the named detectors, in order,
    as spans of ``text``. Detectors read the text normalised first (:func:`normalise`, and
    separators inside identifiers as spaces; e-mail addresses keep their dots)."""
    wanted = set(names)
    plain, origin = normalise(text)
    spaced = _INNER_SEPARATOR.sub(" ", plain)
    if not _HAS_DIGIT.search(spaced):
        wanted &= {"email"}
    found: list[tuple[int, int, str]] = []
    taken = _Taken()
    for name, finder in DETECTORS.items():
        if name in wanted:
            for start, end in finder(plain if name == "email" else spaced):
                span = (start, end) if origin is None else (origin[start], origin[end - 1] + 1)
                if not taken.overlaps(span):
                    taken.add(span)
                    found.append((*span, name))
    return sorted(found)


def known_spans(text: str, known: Iterable[str]) -> list[Span]:
    """Where any of ``known`` (values of 3 or more characters) occurs in ``text``, compared
    after NFKC normalisation, without case, any run of spaces or separators matching any
    other."""
    words = [unicodedata.normalize("NFKC", k).strip() for k in known if isinstance(k, str)]
    alternatives = sorted({w for w in words if len(w) >= 3}, key=len, reverse=True)
    if not alternatives:
        return []
    pattern = "|".join(
        r"[\s._-]*".join(re.escape(part) for part in re.split(r"[\s._-]+", w) if part)
        for w in alternatives
    )
    plain, origin = normalise(text)
    spans = [m.span() for m in re.finditer(pattern, plain, re.IGNORECASE) if m.end() > m.start()]
    if origin is None:
        return spans
    return [(origin[a], origin[b - 1] + 1) for a, b in spans]


def _with_known(
    text: str, known: Iterable[str], findings: list[tuple[int, int, str]]
) -> list[tuple[int, int, str]]:
    """``findings`` with the known identifiers' spans, which win over any overlapping one."""
    taken = _Taken()
    merged: list[tuple[int, int, str]] = []
    for span in known_spans(text, known):
        if not taken.overlaps(span):
            taken.add(span)
            merged.append((*span, "subject"))
    merged += [f for f in findings if not taken.overlaps((f[0], f[1]))]
    return sorted(merged)


# --------------------------------------------------------------------------------------------
# Paths.

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[(\d+)\]")


class _Each:
    """The ``[]`` segment: every element of a list, every value of an object."""

    def __repr__(self) -> str:
        return "[]"


_EACH = _Each()
Segment = str | int | _Each


def parse_path(path: str) -> tuple[Segment, ...]:
    """Segments of ``path`` (keys as str, indexes as int, ``_EACH`` for ``[]``);
    ValueError saying what is wrong and where."""
    if not isinstance(path, str) or not path.startswith((".", "[")):
        raise ValueError("a path starts with '.', as in .customer.email")
    segments: list[Segment] = []
    pos = 0
    while pos < len(path):
        if path.startswith(".", pos) and not path.startswith(".[", pos):
            pos += 1
            if path.startswith('"', pos):
                try:
                    key, pos = json.JSONDecoder().raw_decode(path, pos)
                except json.JSONDecodeError:
                    raise ValueError(f"unterminated quoted key at position {pos}") from None
                segments.append(key)
                continue
            name = _NAME.match(path, pos)
            if name is None:
                what = "the end" if pos == len(path) else repr(path[pos])
                raise ValueError(f"expected a field name at position {pos}, found {what}")
            segments.append(name[0])
            pos = name.end()
            continue
        pos += path.startswith(".[", pos)
        if path.startswith("[]", pos):
            segments.append(_EACH)
            pos += 2
        elif index := _INDEX.match(path, pos):
            segments.append(int(index[1]))
            pos = index.end()
        else:
            raise ValueError(f"expected '.name', '[]' or '[N]' at position {pos}")
    return tuple(segments)


class _Node:
    """A trie of paths: where a path ends, ``pattern`` is set."""

    __slots__ = ("children", "pattern")

    def __init__(self) -> None:
        self.children: dict[Segment, _Node] = {}
        self.pattern: str | None = None

    @classmethod
    def build(cls, paths: Iterable[str]) -> _Node:
        root = cls()
        for path in paths:
            node = root
            for segment in parse_path(path):
                node = node.children.setdefault(segment, cls())
            node.pattern = node.pattern or path
        return root

    def step(self, key: Segment) -> list[_Node]:
        return [n for n in (self.children.get(key), self.children.get(_EACH)) if n is not None]


def _step_all(nodes: Sequence[_Node], key: Segment) -> list[_Node]:
    return [child for node in nodes for child in node.step(key)]


# --------------------------------------------------------------------------------------------
# Policies.


@dataclass(frozen=True, slots=True)
class Redacted:
    """A redacted value and what was taken out of it (counts only, never the values).

    ``fields`` counts values replaced per configured path, ``detectors`` findings per detector,
    ``dropped`` values left out because ``keep`` did not list them.
    """

    value: Any
    fields: Mapping[str, int] = field(default_factory=dict)
    detectors: Mapping[str, int] = field(default_factory=dict)
    dropped: int = 0

    def __bool__(self) -> bool:
        """True when anything was redacted or dropped."""
        return bool(self.fields or self.detectors or self.dropped)

    def summary(self) -> dict[str, Any]:
        """A JSON-able description for the audit trail."""
        out: dict[str, Any] = {}
        if self.fields:
            out["fields"] = dict(self.fields)
        if self.detectors:
            out["detectors"] = dict(self.detectors)
        if self.dropped:
            out["dropped"] = self.dropped
        return out


_DROP = object()
_JSON_SCALARS = (str, int, float, bool, type(None))
DEFAULT_REPLACEMENT = "[{kind}]"


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """What to take out of a value; see the module docstring for paths and detectors.

    ``replacement`` is the placeholder template; ``{kind}`` becomes the detector name, or
    ``redacted`` for a field path. None means the default ``[{kind}]``.
    """

    fields: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    keep: tuple[str, ...] | None = None
    replacement: str | None = None
    #: The run's own identifiers (its subjects' ids, names, numbers): each found anywhere,
    #: whatever its case, spacing or Unicode form, becomes ``[subject]``.
    known: tuple[str, ...] = ()
    _fields: _Node = field(init=False, repr=False, compare=False)
    _keep: _Node | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = "RedactionPolicy"
        fields = _strings(self.fields, f"{where}.fields")
        detectors = _strings(self.detectors, f"{where}.detectors")
        keep = None if self.keep is None else _strings(self.keep, f"{where}.keep")
        _check(fields, detectors, keep, self.replacement, where)
        object.__setattr__(self, "known", tuple(dict.fromkeys(self.known)))
        object.__setattr__(self, "fields", tuple(dict.fromkeys(fields)))
        object.__setattr__(self, "detectors", tuple(dict.fromkeys(detectors)))
        object.__setattr__(self, "keep", None if keep is None else tuple(dict.fromkeys(keep)))
        object.__setattr__(self, "_fields", _Node.build(self.fields))
        object.__setattr__(self, "_keep", None if keep is None else _Node.build(keep))

    @property
    def is_empty(self) -> bool:
        """Nothing to do: :meth:`apply` returns its input as it is."""
        return not self.fields and not self.detectors and self.keep is None and not self.known

    def placeholder(self, kind: str) -> str:
        return (self.replacement or DEFAULT_REPLACEMENT).format(kind=kind)

    def redact_text(self, text: str, counts: dict[str, int] | None = None) -> str:
        """``text`` with each detector finding replaced; ``counts`` (if given) is updated."""
        findings = detect(text, self.detectors) if self.detectors else []
        if self.known:
            findings = _with_known(text, self.known, findings)
        if not findings:
            return text
        parts: list[str] = []
        pos = 0
        for start, end, kind in findings:
            parts += (text[pos:start], self.placeholder(kind))
            pos = end
            if counts is not None:
                counts[kind] = counts.get(kind, 0) + 1
        parts.append(text[pos:])
        return "".join(parts)

    def apply(self, value: Any) -> Redacted:
        """A redacted copy of ``value`` (any JSON value; the input is never modified)."""
        if self.is_empty:
            return Redacted(value)
        walk = _Walk(self)
        keep = None if self._keep is None else [self._keep]
        result = walk.value(value, [self._fields], keep)
        return Redacted(None if result is _DROP else result, walk.fields, walk.found, walk.dropped)

    def combined(self, other: RedactionPolicy | None) -> RedactionPolicy:
        """This policy with ``other`` on top: union of fields and detectors; ``keep`` and
        ``replacement`` from ``other`` when it sets them."""
        if other is None:
            return self
        return RedactionPolicy(
            fields=self.fields + other.fields,
            detectors=self.detectors + other.detectors,
            keep=self.keep if other.keep is None else other.keep,
            replacement=other.replacement or self.replacement,
            known=tuple(dict.fromkeys(self.known + other.known)),
        )

    @classmethod
    def parse(cls, data: Any, where: str) -> RedactionPolicy:
        """A policy from configuration (``fields``, ``detectors``, ``keep``, ``replacement``);
        ConfigError naming ``where`` and the offending key."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where}: must be a mapping with fields, detectors, keep or replacement, "
                f"got {type(data).__name__}"
            )
        known = ("detectors", "fields", "keep", "replacement")
        for key in data:
            if key not in known:
                raise ConfigError(f"{where}: unknown key {key!r}; expected one of {_list(known)}")
        detectors = data.get("detectors", ())
        if detectors == "all":
            detectors = tuple(DETECTORS)
        fields = _strings(data.get("fields", ()), f"{where}.fields")
        detectors = _strings(detectors, f"{where}.detectors")
        keep = None if data.get("keep") is None else _strings(data["keep"], f"{where}.keep")
        replacement = data.get("replacement")
        _check(fields, detectors, keep, replacement, where)
        return cls(fields, detectors, keep, replacement)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{where}: must be a list of strings, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{where}[{index}]: must be a string, got {type(item).__name__}")
    return tuple(value)


def _list(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def _check(
    fields: tuple[str, ...],
    detectors: tuple[str, ...],
    keep: tuple[str, ...] | None,
    replacement: object,
    where: str,
) -> None:
    for index, name in enumerate(detectors):
        if name not in DETECTORS:
            raise ConfigError(
                f"{where}.detectors[{index}]: unknown detector {name!r}; "
                f"known detectors: {_list(DETECTORS)}"
            )
    for key, paths in (("fields", fields), ("keep", keep or ())):
        for index, path in enumerate(paths):
            try:
                parse_path(path)
            except ValueError as exc:
                raise ConfigError(f"{where}.{key}[{index}]: bad path {path!r}: {exc}") from None
    if keep is not None and not keep:
        raise ConfigError(
            f"{where}.keep: empty, which would drop everything; leave keep out to keep all"
        )
    if replacement is not None:
        _check_replacement(replacement, f"{where}.replacement")


def _check_replacement(replacement: object, where: str) -> None:
    if not isinstance(replacement, str):
        raise ConfigError(f"{where}: must be a string such as '[{{kind}}]'")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(replacement) if f is not None}
        sample = replacement.format(kind="email")
    except (ValueError, IndexError, KeyError):
        names, sample = {"?"}, ""
    if names - {"kind"}:
        raise ConfigError(f"{where}: {replacement!r} may use only the field {{kind}}")
    if detect(sample):
        raise ConfigError(f"{where}: {replacement!r} looks like personal data itself")


class _Walk:
    """One pass over a value: keep, then field paths, then detectors, building a copy."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self.fields: dict[str, int] = {}
        self.found: dict[str, int] = {}
        self.dropped = 0

    def value(self, value: Any, nodes: list[_Node], keep: list[_Node] | None) -> Any:
        for node in nodes:
            if node.pattern is not None:
                self.fields[node.pattern] = self.fields.get(node.pattern, 0) + 1
                return self.policy.placeholder("redacted")
        if keep is not None and any(k.pattern is not None for k in keep):
            keep = None  # this whole subtree is kept
        if not isinstance(value, (*_JSON_SCALARS, list, tuple, dict)):
            value = _serde.loads(_serde.dumps(value, what="a value to redact"))
        if isinstance(value, dict):
            return self.mapping(value, nodes, keep)
        if isinstance(value, list | tuple):
            return self.sequence(value, nodes, keep)
        if keep is not None:
            self.dropped += 1
            return _DROP
        return self.scalar(value)

    def mapping(self, value: dict[Any, Any], nodes: list[_Node], keep: list[_Node] | None) -> Any:
        out: dict[Any, Any] = {}
        for key, item in value.items():
            inner_keep = None if keep is None else _step_all(keep, key)
            if inner_keep == []:
                self.dropped += 1
                continue
            new = self.value(item, _step_all(nodes, key), inner_keep)
            if new is _DROP:
                continue
            new_key = self.scalar(key) if isinstance(key, str) else key
            if new_key in out:  # two keys redacted to the same placeholder
                new_key = next(
                    f"{new_key}#{n}" for n in range(2, 1 << 30) if f"{new_key}#{n}" not in out
                )
            out[new_key] = new
        return out

    def sequence(self, value: Sequence[Any], nodes: list[_Node], keep: list[_Node] | None) -> Any:
        out: list[Any] = []
        for index, item in enumerate(value):
            inner_keep = None if keep is None else _step_all(keep, index)
            if inner_keep == []:
                self.dropped += 1
                continue
            new = self.value(item, _step_all(nodes, index), inner_keep)
            if new is not _DROP:
                out.append(new)
        return out

    def scalar(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.policy.redact_text(value, self.found)
        if (
            type(value) is int
            and "card" in self.policy.detectors
            and value > 0
            and _is_card(str(value))
        ):
            self.found["card"] = self.found.get("card", 0) + 1
            return self.policy.placeholder("card")
        return value
