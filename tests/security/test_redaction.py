"""Hostile input: identifiers spelled to slip past redaction; secrets that would be stored in
URLs and error messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

import httpx

import batonflow as bf
from security.conftest import Site
from security.servers import Crm

#: Each written so that a detector matching only the textbook spelling misses it.
DISGUISED = {
    "ni": "JG.10.37.59.A",
    "card": "4111.1111.1111.1111",
    "iban": "GB33-BUKB-2020-1555-5555-55",
    "wide card": "４１１１ １１１１ １１１１ １１１１",  # noqa: RUF001 (full-width)
    "wide email": "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",  # noqa: RUF001
    "phone": "07700.900.123",
}


@bf.step
async def file_note(note: dict[str, str]) -> dict[str, str]:
    return note


@bf.workflow
async def intake(ctx: bf.Context, note: dict[str, str]) -> dict[str, str]:
    return await ctx.step(file_note, note)


def test_disguised_identifiers_are_redacted_before_storage(site: Site) -> None:
    site.configure({"governance": {"redact": {"persist": {"detectors": "all"}}}})

    async def go() -> Any:
        async with site.engine(intake) as engine:
            return await (await engine.start(intake, DISGUISED)).result()

    stored = asyncio.run(go())
    assert stored == {
        "ni": "[uk_ni]", "card": "[card]", "iban": "[iban]", "wide card": "[card]",
        "wide email": "[email]", "phone": "[phone]",
    }  # fmt: skip
    raw = site.raw_bytes()
    for value in DISGUISED.values():
        assert value.encode() not in raw
        assert json.dumps(value).encode() not in raw  # nor JSON-escaped


@bf.step
async def push(crm: str) -> int:
    """Calls an API with its key in the path (as some do), then fails quoting the URL."""
    token = os.environ["CRM_TOKEN"]  # a secret is read where it is used, never an input
    response = await bf.current_step().http.get(f"{crm}/v1/{token}/contacts")
    raise RuntimeError(f"CRM answered {response.status_code} for {response.request.url}")


@bf.workflow
async def sync(ctx: bf.Context, args: dict[str, str]) -> int:
    return await ctx.step(bf.step(push, retry=bf.Retry.never()), args["crm"])


SECRET = "sk-live-9f8e7d6c5b4a"


def test_secrets_are_masked_wherever_they_would_be_stored(site: Site, monkeypatch: Any) -> None:
    monkeypatch.setenv("CRM_TOKEN", SECRET)
    site.configure(
        {
            "secrets": {"crm_token": {"env": "CRM_TOKEN"}},
            "governance": {"egress": {"allow": ["*", "127.0.0.1"]}},
        }
    )

    async def go(crm: Crm) -> str:
        async with site.engine(sync) as engine:
            handle = await engine.start(sync, {"crm": crm.url})
            with contextlib.suppress(bf.RunFailed):
                await handle.result()
            return handle.run_id

    with Crm() as crm:
        run_id = asyncio.run(go(crm))
        assert crm.paths == [f"/v1/{SECRET}/contacts"]  # the call itself carried it
    assert SECRET.encode() not in site.raw_bytes()
    shown = site.cli("show", run_id, "--json")
    assert SECRET not in shown.stdout
    assert "[secret:crm_token]" in shown.stdout
    trail = site.cli("audit", "export").stdout
    assert SECRET not in trail
    call = next(json.loads(line) for line in trail.splitlines() if "egress.call" in line)
    assert call["data"]["path"] == "/v1/[secret:crm_token]/contacts"


def test_secret_masking_covers_encoded_forms() -> None:
    from batonflow.governance._scrub import Scrubber

    scrub = Scrubber({"pw": "p@ss word/1", "short": "abc"})
    text = 'url=https://x/?p=p%40ss%20word%2F1&q=p%40ss+word%2F1 "p@ss word/1" abc'
    assert scrub.text(text) == ('url=https://x/?p=[secret:pw]&q=[secret:pw] "[secret:pw]" abc')
    assert httpx  # (the client is what sends the unmasked value: only storage is masked)


LETTERS = {
    "document": {
        "dsl": "1.0.3", "namespace": "firm", "name": "letters", "version": "1.0.0",
        "metadata": {"batonflow": {
            "subjects": "${ [.from] }", "identifiers": "${ [.name, .phone] }",
        }},
    },
    "do": [{"draft": {
        "call": "peek",
        "with": {"text": '${ "Write to " + (.name | ascii_upcase) + ", " + .from + ", "'
                         ' + (.phone | gsub(" "; "-")) + " about the Larch Close lease" }'},
    }}],
}  # fmt: skip


def test_the_subjects_own_identifiers_never_reach_a_model(site: Site) -> None:
    """What a model-bound call is given (the provider wrapper applies the same policy)."""
    seen: list[str] = []

    def peek(text: str) -> str:
        policy = site.setup().redactor().model_policy()
        assert policy is not None
        seen.append(text)
        return policy.redact_text(text)

    async def go() -> Any:
        setup = site.setup()
        async with (
            setup.session(site.url, functions={"peek": peek}) as session,
            session.engine(clock=site.clock) as engine,
        ):
            person = {"from": "Jane.Doe@example.com", "name": "Jane Doe", "phone": "07700 900123"}
            return await session.runtime.run(engine, LETTERS, person)

    output = asyncio.run(go())
    assert seen == [
        "Write to JANE DOE, Jane.Doe@example.com, 07700-900123 about the Larch Close lease"
    ]
    assert output == "Write to [subject], [subject], [subject] about the Larch Close lease"


def model_view(text: str) -> str:
    """What a model would be given of ``text`` (the provider wrapper's policy)."""
    from batonflow.configuration import Setup

    policy = Setup("<test>").redactor().model_policy()
    return text if policy is None else policy.redact_text(text)


@bf.step
async def ask_model(text: str) -> str:
    return model_view(text)


@bf.workflow(subjects=lambda person: [person["from"]])
async def python_letters(ctx: bf.Context, person: dict[str, str]) -> str:
    return await ctx.step(ask_model, f"Reply to {person['from'].upper()} today")


def test_a_python_workflows_subjects_never_reach_a_model(site: Site) -> None:
    async def go() -> Any:
        async with site.engine(python_letters) as engine:
            handle = await engine.start(python_letters, {"from": "jane.doe@example.com"})
            return await handle.result()

    assert asyncio.run(go()) == "Reply to [subject] today"
    assert model_view("Reply to JANE.DOE@EXAMPLE.COM") == "Reply to JANE.DOE@EXAMPLE.COM"
