"""Redaction: detectors, field paths, keep, parsing, rules per workflow and step."""

from __future__ import annotations

import copy
import random
import string
import tomllib

import pytest

import batonflow as bf
from batonflow.errors import ConfigError
from batonflow.governance._redaction import (
    DETECTORS,
    IBAN_LENGTHS,
    RedactionPolicy,
    detect,
    iban_valid,
    luhn_valid,
    parse_path,
)
from batonflow.governance._redaction_rules import RedactionRules, Redactor, redaction_config

ALL = tuple(DETECTORS)


def found(text: str, name: str) -> list[str]:
    return [text[a:b] for a, b, kind in detect(text, [name]) if kind == name]


# -- detectors: each positive must be found whole, each negative not at all -------------------

POSITIVE = {
    "email": [
        "jane.doe@example.com",
        "jane.doe+orders@example.co.uk",
        "o'neil@mail.example.org",
        "J_Smith-99@sub.domain.example.ie",
        "info@xn--bcher-kva.example",
        "a@b.io",
        "user%tag@example.travel",
        "zoë@example.de",
    ],
    "phone": [
        "07700 900123",
        "07700900123",
        "+44 7700 900123",
        "+447700900123",
        "+44 (0)20 7946 0958",
        "020 7946 0958",
        "(020) 7946 0958",
        "0161 496 0000",
        "01632 960001",
        "0121-496-0000",
        "0800 123 4567",
        "0044 20 7946 0958",
        "+1 415 555 2671",
        "+14155552671",
        "+33 1 23 45 67 89",
        "+49 30 901820",
        "+353 1 234 5678",
        "0033 1 23 45 67 89",
        "00447700900123",
    ],
    "uk_ni": [
        "AB123456C",
        "AB 12 34 56 C",
        "ab 12 34 56 c",
        "JG103759A",
        "OA123456D",
        "CE 00 00 00 A",
        "ZY-12-34-56-B",
        "HR 98 76 54 A",
        "TS123456B",
    ],
    "iban": [
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "gb82 west 1234 5698 7654 32",
        "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "BE68 5390 0754 7034",
        "NO93 8601 1117 947",
        "MT84 MALT 0110 0001 2345 MTLC AST0 01S",
        "IE29 AIBK 9311 5212 3456 78",
        "ES91 2100 0418 4502 0005 1332",
    ],
    "card": [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555 5555 5555 4444",
        "2223 0031 2200 3222",
        "3782 822463 10005",
        "6011 1111 1111 1117",
        "3530 1113 3330 0000",
        "3056 9309 0259 04",
        "6759 6498 2643 8453",
        "4222222222222",
    ],
}

NEGATIVE = {
    "email": [
        "jane.doe at example dot com",
        "@handle on social media",
        "logo@2x.png",
        "user@localhost",
        "price: 5@3",
        "a@b",
        "email me: jane@",
        "name@domain.c0m",
    ],
    "phone": [
        "Order 2024-001234 placed",
        "2024-01-15",
        "15/01/2024 at 10:30",
        "£1,234,567.89",
        "1 234 567",
        "sort code 20-00-00, account 12345678",
        "card 4111 1111 1111 1111",
        "GB82 WEST 1234 5698 7654 32",
        "DE89 3704 0044 0532 0130 00",
        "ticket 1234567890",
        "+5 degrees",
        "+99 123 456 789",
        "06 123 456",
        "04123 456789",
        "0612 345 6789",
        "+44 4123 456789",
        "0044 20",
        "PO 0098765432",
        "ref 0800-2024-11",
        "order 0123 4567 89",
    ],
    "uk_ni": [
        "AB123456",
        "AB123456E",
        "GB123456A",
        "BG123456A",
        "NK123456A",
        "TN 12 34 56 A",
        "ZZ123456A",
        "DA123456A",
        "QQ123456C",
        "AO123456A",
        "AV123456A",
        "AB1234567C",
        "XAB123456C",
        "GB82WEST12345698765432",
    ],
    "iban": [
        "GB82 WEST 1234 5698 7654 33",
        "GB82 WEST 1234 5698 7654",
        "GB82 WEST 1234 5698 7654 321",
        "XX82 WEST 1234 5698 7654 32",
        "DE89 3704 0044 0532 0130 01",
        "GB00 WEST 1234 5698 7654 32",
        "ISO 9001 certified",
        "AB12 3456",
        "GB82  WEST 1234 5698 7654 32",
    ],
    "card": [
        "4111 1111 1111 1112",
        "1234 5678 9012 3456",
        "0000 0000 0000 0000",
        "4111 1111 1111 111",
        "9111 1111 1111 1111",
        "2024-001234",
        "+44 7700 900123",
        "GB82 WEST 1234 5698 7654 32",
        "55555555555544441",
        "x4111111111111111",
    ],
}


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, texts in POSITIVE.items() for t in texts])
def test_detector_finds_the_whole_value(name: str, text: str) -> None:
    sentence = f"Please note: {text}. Thanks"
    assert found(sentence, name) == [text]
    redacted = RedactionPolicy(detectors=(name,)).apply(sentence)
    assert redacted.value == f"Please note: [{name}]. Thanks"
    assert redacted.detectors == {name: 1}


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, texts in NEGATIVE.items() for t in texts])
def test_detector_leaves_lookalikes_alone(name: str, text: str) -> None:
    assert found(f"Ref: {text}. Thanks", name) == []


def test_a_card_followed_by_another_number_is_still_found() -> None:
    text = "card 4111 1111 1111 1111 2 times, or 12 5555 5555 5555 4444"
    assert found(text, "card") == ["4111 1111 1111 1111", "5555 5555 5555 4444"]


def test_every_detector_has_eight_positives_and_negatives() -> None:
    for name in DETECTORS:
        assert len(POSITIVE[name]) >= 8
        assert len(NEGATIVE[name]) >= 8


ENQUIRY = """\
From: Jane Doe <jane.doe@example.co.uk>
Subject: Refund for order 2024-001234

Hello, I was charged twice on 15/01/2024 (£1,234.56 each) for order 2024-001234.
The card was 4111 1111 1111 1111 (exp 12/27). Please refund to my account
GB82 WEST 1234 5698 7654 32 instead. My NI number is AB 12 34 56 C if you need it.
Call me on 07700 900123 or my office +44 (0)20 7946 0958, or write to j.doe@work.example.
Kind regards, Jane
"""


def test_a_realistic_enquiry_keeps_everything_but_the_personal_data() -> None:
    redacted = RedactionPolicy(detectors=ALL).apply(ENQUIRY)
    assert (
        redacted.value
        == """\
From: Jane Doe <[email]>
Subject: Refund for order 2024-001234

Hello, I was charged twice on 15/01/2024 (£1,234.56 each) for order 2024-001234.
The card was [card] (exp 12/27). Please refund to my account
[iban] instead. My NI number is [uk_ni] if you need it.
Call me on [phone] or my office [phone], or write to [email].
Kind regards, Jane
"""
    )
    assert redacted.detectors == {"email": 2, "card": 1, "iban": 1, "uk_ni": 1, "phone": 2}
    assert redacted.summary() == {"detectors": dict(redacted.detectors)}


def test_a_second_enquiry_with_the_data_run_together() -> None:
    text = (
        "hi,pls pay IBAN:DE89370400440532013000,card:5555555555554444;"
        "tel:+4915112345678;mail:max@beispiel.de;NI:JG103759A. Invoice INV-2024-0042 of "
        "EUR 1.299,00 due 2024-02-01, call 0161 496 0000 before 5pm."
    )
    assert RedactionPolicy(detectors=ALL).apply(text).value == (
        "hi,pls pay IBAN:[iban],card:[card];tel:[phone];mail:[email];NI:[uk_ni]. Invoice "
        "INV-2024-0042 of EUR 1.299,00 due 2024-02-01, call [phone] before 5pm."
    )


def test_only_the_named_detectors_run() -> None:
    policy = RedactionPolicy(detectors=("email",))
    assert policy.apply(ENQUIRY).detectors == {"email": 2}
    assert "4111 1111 1111 1111" in policy.apply(ENQUIRY).value


def test_the_replacement_template_is_configurable() -> None:
    policy = RedactionPolicy(
        fields=(".card",), detectors=("email",), replacement="<{kind} removed>"
    )
    assert policy.apply({"card": "x", "note": "to a@b.io"}).value == {
        "card": "<redacted removed>",
        "note": "to <email removed>",
    }
    assert RedactionPolicy(detectors=("uk_ni",), replacement="***").apply("AB123456C").value == (
        "***"
    )


# -- fuzz: generated valid values are found, one changed character is not ----------------------


def make_iban(rng: random.Random, country: str) -> str:
    alphabet = string.digits + string.ascii_uppercase
    bban = "".join(rng.choice(alphabet if rng.random() < 0.3 else string.digits)
                   for _ in range(IBAN_LENGTHS[country] - 4))  # fmt: skip
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def make_card(rng: random.Random) -> str:
    prefix, length = rng.choice(
        [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
         ("34", 15), ("37", 15), ("6011", 16), ("65", 19), ("3528", 16), ("36", 14),
         ("62", 17), ("6759", 18)]
    )  # fmt: skip
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return next(body + d for d in string.digits if luhn_valid(body + d))


def make_ni(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        first, second = "A", "B"
    digits = "".join(rng.choice(string.digits) for _ in range(6))
    return first + second + digits + rng.choice("ABCD")


def spaced(rng: random.Random, value: str, size: int) -> str:
    if rng.random() < 0.5:
        return value
    return " ".join(value[i : i + size] for i in range(0, len(value), size))


def mutate(rng: random.Random, value: str, alphabet: str) -> str:
    positions = [i for i, c in enumerate(value) if c in alphabet]
    i = rng.choice(positions)
    return value[:i] + rng.choice(alphabet.replace(value[i], "")) + value[i + 1 :]


def test_generated_valid_values_are_found_and_corrupted_ones_are_not() -> None:
    rng = random.Random(20240115)
    policy = RedactionPolicy(detectors=ALL)
    for _ in range(300):
        iban = make_iban(rng, rng.choice(sorted(IBAN_LENGTHS)))
        card = make_card(rng)
        ni = make_ni(rng)
        assert iban_valid(iban), iban
        text = f"iban {spaced(rng, iban, 4)}, card {spaced(rng, card, 4)}, ni {spaced(rng, ni, 2)}."
        assert policy.apply(text).value == "iban [iban], card [card], ni [uk_ni].", text
        bad_iban = mutate(rng, iban[4:], string.digits)
        assert found(f"iban {iban[:4]}{bad_iban} x", "iban") == []
        assert found(f"card {mutate(rng, card, string.digits)} x", "card") == []


# -- paths -------------------------------------------------------------------------------------


def test_path_syntax() -> None:
    each = parse_path(".items[]")[1]
    assert parse_path(".customer.email") == ("customer", "email")
    assert parse_path(".items[].iban") == ("items", each, "iban")
    assert parse_path('."first name".x') == ("first name", "x")
    assert parse_path(".items[2].card-number") == ("items", 2, "card-number")
    assert parse_path(".[]") == (each,)
    assert parse_path('.a."say \\"hi\\""') == ("a", 'say "hi"')


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("customer.email", "a path starts with '.'"),
        (".", "expected a field name at position 1, found the end"),
        (".customer.", "expected a field name at position 10, found the end"),
        (".a..b", "expected a field name at position 3, found '.'"),
        (".items[x]", "expected '.name', '[]' or '[N]' at position 6"),
        (".items[-1]", "expected '.name', '[]' or '[N]' at position 6"),
        ('."open', "unterminated quoted key at position 1"),
        (".a b", "expected '.name', '[]' or '[N]' at position 2"),
    ],
)
def test_bad_paths_say_what_is_wrong(path: str, problem: str) -> None:
    with pytest.raises(ValueError, match="^" + problem.replace("[", r"\[").replace("]", r"\]")):
        parse_path(path)


ORDER = {
    "customer": {"name": "Jane Doe", "email": "jane@example.com", "phone": "07700 900123"},
    "card": {"number": "4111 1111 1111 1111", "expiry": "12/27"},
    "items": [
        {"sku": "A-1", "iban": "GB82 WEST 1234 5698 7654 32", "qty": 2},
        {"sku": "B-2", "qty": 1},
    ],
    "notes": "Call 07700 900123 after 5pm",
    "total": 12.5,
}


def test_field_paths_replace_the_whole_value() -> None:
    policy = RedactionPolicy(fields=(".card.number", ".items[].iban", ".notes", ".customer"))
    redacted = policy.apply(ORDER)
    assert redacted.value == {
        "customer": "[redacted]",
        "card": {"number": "[redacted]", "expiry": "12/27"},
        "items": [{"sku": "A-1", "iban": "[redacted]", "qty": 2}, {"sku": "B-2", "qty": 1}],
        "notes": "[redacted]",
        "total": 12.5,
    }
    assert redacted.fields == {".card.number": 1, ".items[].iban": 1, ".notes": 1, ".customer": 1}
    assert "07700" not in str(redacted.summary())
    assert "Jane" not in str(redacted.summary())


def test_a_path_that_reaches_nothing_is_no_error() -> None:
    policy = RedactionPolicy(fields=(".card.number.x", ".missing", ".items[5]", ".total[]"))
    assert policy.apply(ORDER).value == ORDER
    assert not policy.apply(ORDER)
    assert policy.apply("just text").value == "just text"


def test_index_and_each_paths() -> None:
    policy = RedactionPolicy(fields=(".items[0].sku", ".tags[]"))
    value = {"items": [{"sku": 1}, {"sku": 2}], "tags": ["a", "b"]}
    assert policy.apply(value).value == {
        "items": [{"sku": "[redacted]"}, {"sku": 2}],
        "tags": ["[redacted]", "[redacted]"],
    }
    assert RedactionPolicy(fields=(".[].secret",)).apply({"a": {"secret": 1}, "b": 2}).value == {
        "a": {"secret": "[redacted]"},
        "b": 2,
    }


def test_detectors_scan_strings_anywhere_and_keys_and_card_numbers_as_integers() -> None:
    value = {
        "thread": [{"body": "write to jane@example.com"}, ["or call 07700 900123"]],
        "by_sender": {"jane@example.com": 1, "bob@example.com": 2},
        "pan": 4111111111111111,
        "count": 4111,
        "flag": True,
        "none": None,
    }
    redacted = RedactionPolicy(detectors=ALL).apply(value)
    assert redacted.value == {
        "thread": [{"body": "write to [email]"}, ["or call [phone]"]],
        "by_sender": {"[email]": 1, "[email]#2": 2},
        "pan": "[card]",
        "count": 4111,
        "flag": True,
        "none": None,
    }
    assert redacted.detectors == {"email": 3, "phone": 1, "card": 1}


def test_keep_gives_a_step_only_the_fields_it_needs() -> None:
    policy = RedactionPolicy(keep=(".customer.name", ".items[].sku", ".total"))
    redacted = policy.apply(ORDER)
    assert redacted.value == {
        "customer": {"name": "Jane Doe"},
        "items": [{"sku": "A-1"}, {"sku": "B-2"}],
        "total": 12.5,
    }
    assert redacted.dropped == 7
    assert redacted.summary() == {"dropped": 7}


def test_keep_then_fields_then_detectors() -> None:
    policy = RedactionPolicy(
        fields=(".customer.email",), detectors=("phone",), keep=(".customer", ".notes")
    )
    assert policy.apply(ORDER).value == {
        "customer": {"name": "Jane Doe", "email": "[redacted]", "phone": "[phone]"},
        "notes": "Call [phone] after 5pm",
    }


def test_keep_on_a_value_that_is_not_an_object_drops_it() -> None:
    assert RedactionPolicy(keep=(".a",)).apply("text").value is None
    assert RedactionPolicy(keep=(".a",)).apply([1, 2]).value == []
    assert RedactionPolicy(keep=(".[]",)).apply([1, 2]).value == [1, 2]
    assert RedactionPolicy(keep=(".a[1]",)).apply({"a": [1, 2, 3]}).value == {"a": [2]}


def test_the_input_is_never_modified() -> None:
    before = copy.deepcopy(ORDER)
    policy = RedactionPolicy(fields=(".card.number",), detectors=ALL, keep=(".card", ".notes"))
    policy.apply(ORDER)
    RedactionPolicy(fields=(".items[].iban",), detectors=ALL).apply(ORDER)
    assert before == ORDER


def test_an_empty_policy_returns_its_input_untouched() -> None:
    policy = RedactionPolicy()
    assert policy.is_empty
    assert policy.apply(ORDER).value is ORDER
    assert not policy.apply(ORDER)


def test_values_that_are_not_json_are_redacted_in_their_json_form() -> None:
    import dataclasses

    @dataclasses.dataclass
    class Customer:
        email: str
        tags: frozenset[str]

    value = {"who": Customer("jane@example.com", frozenset({"vip"}))}
    assert RedactionPolicy(detectors=("email",)).apply(value).value == {
        "who": {"email": "[email]", "tags": ["vip"]}
    }


# -- parsing -------------------------------------------------------------------------------------

WHERE = "client.yaml: document.metadata.batonflow.redact.persist"


def test_parse_a_policy() -> None:
    policy = RedactionPolicy.parse(
        {"detectors": ["email", "iban"], "fields": [".card.number"], "keep": [".card"]}, WHERE
    )
    assert policy == RedactionPolicy((".card.number",), ("email", "iban"), (".card",))
    assert RedactionPolicy.parse({"detectors": "all"}, WHERE).detectors == ALL


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"detectors": ["email", "ssn"]},
            f"{WHERE}.detectors[1]: unknown detector 'ssn'; "
            "known detectors: card, email, iban, phone, uk_ni",
        ),
        (
            {"fields": [".card.number", "card.cvv"]},
            f"{WHERE}.fields[1]: bad path 'card.cvv': a path starts with '.', as in "
            ".customer.email",
        ),
        (
            {"keep": [".items[x]"]},
            f"{WHERE}.keep[0]: bad path '.items[x]': expected '.name', '[]' or '[N]' at position 6",
        ),
        ({"keep": []}, f"{WHERE}.keep: empty, which would drop everything; leave keep out"),
        (
            {"feilds": [".a"]},
            f"{WHERE}: unknown key 'feilds'; expected one of detectors, fields, keep, replacement",
        ),
        ({"fields": ".a"}, f"{WHERE}.fields: must be a list of strings, got str"),
        ({"detectors": ["email", 3]}, f"{WHERE}.detectors[1]: must be a string, got int"),
        ({"replacement": "[{kind}:{value}]"}, f"{WHERE}.replacement: '[{{kind}}:{{value}}]' may"),
        ({"replacement": "{"}, f"{WHERE}.replacement: '{{' may use only the field {{kind}}"),
        ({"replacement": "a@b.io"}, f"{WHERE}.replacement: 'a@b.io' looks like personal data"),
        ({"replacement": 7}, f"{WHERE}.replacement: must be a string"),
        (["email"], f"{WHERE}: must be a mapping with fields, detectors, keep or replacement"),
    ],
)
def test_parse_errors_say_where_and_what(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        RedactionPolicy.parse(data, WHERE)
    assert str(raised.value).startswith(message)


def test_the_constructor_checks_too() -> None:
    with pytest.raises(ConfigError, match=r"^RedactionPolicy.detectors\[0\]: unknown detector"):
        RedactionPolicy(detectors=("mail",))
    with pytest.raises(ConfigError, match=r"^RedactionPolicy.fields: must be a list of strings"):
        RedactionPolicy(fields=".a")  # type: ignore[arg-type]


# -- rules per workflow and step ------------------------------------------------------------------

DOCUMENT_REDACT = {
    "persist": {
        "detectors": ["email", "phone", "uk_ni", "iban", "card"],
        "fields": [".card.number"],
    },
    "model": {"detectors": ["email", "phone", "uk_ni", "iban", "card"]},
    "steps": {
        "classify": {"fields": [".body"]},
        "reply": {"model": {"keep": [".subject"], "detectors": ["email"]}},
    },
}
RULES_AT = "client.yaml: document.metadata.batonflow.redact"


def test_rules_from_a_workflow_document() -> None:
    rules = RedactionRules.parse(DOCUMENT_REDACT, RULES_AT)
    assert rules.for_persist() == RedactionPolicy((".card.number",), ALL_ORDERED)
    assert rules.for_model(None) == RedactionPolicy(detectors=ALL_ORDERED)
    # a plain step entry adds to both destinations
    assert rules.for_persist("classify") == RedactionPolicy((".card.number", ".body"), ALL_ORDERED)
    assert rules.for_model("classify") == RedactionPolicy((".body",), ALL_ORDERED)
    # a step entry with model: only the model destination; keep comes from the step
    assert rules.for_persist("reply") == rules.for_persist()
    assert rules.for_model("reply") == RedactionPolicy((), ALL_ORDERED, (".subject",))
    # DSL task steps are named by their JSON pointer
    assert rules.for_model("/do/1/classify") == rules.for_model("classify")
    assert rules.for_model("/do/0/other") == rules.for_model()


ALL_ORDERED = ("email", "phone", "uk_ni", "iban", "card")


def test_nothing_applies_gives_none() -> None:
    rules = RedactionRules.parse({"steps": {"classify": {"detectors": ["email"]}}}, RULES_AT)
    assert rules.for_persist() is None
    assert rules.for_model("other") is None
    assert rules.for_model("classify") == RedactionPolicy(detectors=("email",))
    assert RedactionRules.parse({"model": {}}, RULES_AT).for_model() is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"persit": {}},
            f"{RULES_AT}: unknown key 'persit'; expected one of model, persist, steps",
        ),
        (
            {"model": {"detectors": ["e-mail"]}},
            f"{RULES_AT}.model.detectors[0]: unknown detector 'e-mail'",
        ),
        ({"steps": ["classify"]}, f"{RULES_AT}.steps: must map step names to policies, got list"),
        (
            {"steps": {"classify": {"fields": ["body"]}}},
            f"{RULES_AT}.steps.classify.fields[0]: bad path 'body'",
        ),
        (
            {"steps": {"classify": {"model": {}, "fields": [".a"]}}},
            f"{RULES_AT}.steps.classify: unknown key 'fields'; a step entry is either a policy",
        ),
        (
            {"steps": {"reply": {"persist": {"keep": []}}}},
            f"{RULES_AT}.steps.reply.persist.keep: empty",
        ),
        ("email", f"{RULES_AT}: must be a mapping with persist, model or steps, got str"),
    ],
)
def test_rules_parse_errors(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        RedactionRules.parse(data, RULES_AT)
    assert str(raised.value).startswith(message)


def test_the_global_default_is_a_floor_under_every_workflow() -> None:
    floor = RedactionRules.parse(
        {"persist": {"detectors": ["card", "iban"]}, "model": {"detectors": ["card"]}},
        "batonflow.toml: [governance.redact]",
    )
    redactor = Redactor(
        {"enquiries": RedactionRules.parse(DOCUMENT_REDACT, RULES_AT)}, default=floor
    )
    assert redactor.for_persist("unknown") == RedactionPolicy(detectors=("card", "iban"))
    enquiries = redactor.for_persist("enquiries", "classify")
    assert enquiries is not None
    assert set(enquiries.detectors) == set(ALL)
    assert enquiries.fields == (".card.number", ".body")
    assert redactor.persist("unknown", None, {"pan": "4111111111111111", "e": "a@b.io"}) == {
        "pan": "[card]",
        "e": "a@b.io",
    }
    got = redactor.redact_persist("enquiries", "classify", {"body": "x", "e": "a@b.io"})
    assert got.value == {"body": "[redacted]", "e": "[email]"}
    assert got.summary() == {"fields": {".body": 1}, "detectors": {"email": 1}}


GLOBAL_TOML = """
[governance.redact.persist]
detectors = ["card", "iban"]
fields = [".password"]

[governance.redact.model]
detectors = "all"
"""


def test_global_rules_from_the_toml_config() -> None:
    rules = redaction_config(tomllib.loads(GLOBAL_TOML), "batonflow.toml")
    assert rules.for_persist() == RedactionPolicy((".password",), ("card", "iban"))
    assert rules.for_model() == RedactionPolicy(detectors=ALL)
    assert redaction_config({}, "batonflow.toml") == RedactionRules()
    bad = GLOBAL_TOML.replace('"iban"]', '"iban", "passport"]')
    with pytest.raises(ConfigError) as raised:
        redaction_config(tomllib.loads(bad), "batonflow.toml")
    assert str(raised.value) == (
        "batonflow.toml: governance.redact.persist.detectors[2]: unknown detector 'passport'; "
        "known detectors: card, email, iban, phone, uk_ni"
    )
    with pytest.raises(ConfigError, match=r"^batonflow\.toml: governance: must be a table$"):
        redaction_config({"governance": 1}, "batonflow.toml")


def test_a_redactor_without_rules_leaves_values_alone() -> None:
    redactor = Redactor()
    value = {"e": "a@b.io"}
    assert redactor.persist("any", "step", value) is value
    assert redactor.for_model("any") is None
    assert redactor.model_policy() is None


def test_register_replaces_and_removes_rules() -> None:
    redactor = Redactor()
    assert redactor.for_model("w") is None
    redactor.register("w", RedactionRules(model=RedactionPolicy(detectors=("email",))))
    assert redactor.for_model("w") == RedactionPolicy(detectors=("email",))
    redactor.register("w", None)
    assert redactor.for_model("w") is None


# -- the model policy of the step executing now ---------------------------------------------------

REDACTOR = Redactor(
    {
        "triage": RedactionRules(
            model=RedactionPolicy(detectors=("email",)),
            step_model={"classify": RedactionPolicy(fields=(".body",))},
        )
    },
    default=RedactionRules(model=RedactionPolicy(detectors=("card",))),
)


@bf.step
async def classify() -> list[str]:
    policy = REDACTOR.model_policy()
    assert policy is not None
    return [*policy.fields, *policy.detectors]


@bf.step
async def other() -> list[str]:
    policy = REDACTOR.model_policy()
    assert policy is not None
    return [*policy.fields, *policy.detectors]


@bf.workflow
async def triage(ctx: bf.Context) -> list[list[str]]:
    return [await ctx.step(classify), await ctx.step(other)]


async def test_model_policy_follows_the_current_step(engine: bf.Engine) -> None:
    handle = await engine.start(triage)
    assert await handle.result() == [[".body", "card", "email"], ["card", "email"]]
    assert REDACTOR.model_policy() == RedactionPolicy(detectors=("card",))  # outside a step
