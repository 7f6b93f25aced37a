"""``/subjects``: a data subject's runs (search by the id their workflows name, such as an
e-mail address), everything held about them as a download (Art. 15), and erasure (Art. 17)
after the person types the subject's id again. Export and erasure are the API's functions
(``governance.export_subject``, ``erase_subject``) under the same roles, audited alike; after
an erasure the subject's payloads read as erased on every page."""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated

from fastapi import Depends, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import batonflow as bf
from batonflow.governance import erase_subject, export_subject, wrap_store
from batonflow.governance._identity import Identity, can
from batonflow.governance._sealed import same_subject
from batonflow.server._auth import service_of
from batonflow.server.console import router
from batonflow.server.console._guard import Refused, posted, signed_in
from batonflow.server.console._render import flash, render

LIMIT = 200


def _subject(value: object) -> str:
    text = str(value or "").strip()
    if not text or len(text) > 500:
        raise Refused("No data subject named", "subject: expected an id such as an e-mail"
                      " address (1 to 500 characters)", status=400)  # fmt: skip
    return text


@router.get("/subjects")
async def subjects(
    request: Request,
    me: Annotated[Identity, Depends(signed_in())],
    subject: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    service = service_of(request)
    store = wrap_store(service.store)
    runs: list[bf.RunRecord] = []
    erased = None
    if subject and subject.strip():
        ref = await store.keys.ref(subject.strip())
        runs = await store.inner.list_runs(subject=ref, limit=LIMIT)
        erased = await store.keys.tombstone(ref)
    context = {
        "subject": (subject or "").strip(), "runs": runs, "erased": erased, "limit": LIMIT,
        "may_export": can(me, "subject.export"), "may_erase": can(me, "subject.erase"),
    }  # fmt: skip
    return render(request, "subjects.html", context)


@router.post("/subjects/export")
async def export(
    request: Request, me: Annotated[Identity, Depends(signed_in("subject.export"))]
) -> Response:
    """Everything held about the subject, opened, as a JSON download (``subject.exported``)."""
    form = await posted(request)
    subject = _subject(form.get("subject"))
    service = service_of(request)
    found = await export_subject(
        wrap_store(service.store), subject, actor=me.name, now=service.now()
    )
    body = json.dumps(found, indent=2, ensure_ascii=False, default=str)
    return Response(
        body, media_type="application/json",
        headers={"content-disposition": 'attachment; filename="batonflow-subject.json"'},
    )  # fmt: skip


@router.post("/subjects/erase")
async def erase(
    request: Request, me: Annotated[Identity, Depends(signed_in("subject.erase"))]
) -> Response:
    """Destroy the subject's key once the person typed the subject's id again to confirm."""
    form = await posted(request)
    subject = _subject(form.get("subject"))
    typed = str(form.get("confirm", ""))
    if not same_subject(subject, typed):
        raise Refused(
            "Erasure not confirmed",
            f"confirm: type the data subject's id ({subject}) exactly to erase their data;"
            " nothing was erased", status=400,
        )  # fmt: skip
    service = service_of(request)
    done = await erase_subject(wrap_store(service.store), subject, actor=me.name, now=service.now())
    words = {
        "erased": f"Erased: the data of {len(done.runs)} run(s) can no longer be read"
        + (f"; {len(done.cancelled)} unfinished run(s) cancelled" if done.cancelled else ""),
        "already-erased": "Already erased earlier: nothing readable was held",
        "unknown": "Nothing was ever held about this data subject",
    }
    message = words.get(done.outcome, done.outcome)
    if done.remainders:
        message += ". Not made unreadable: " + "; ".join(done.remainders)
    where = "/subjects?" + urllib.parse.urlencode({"subject": subject})
    response = RedirectResponse(where, status_code=303)
    flash(request, response, message)
    return response
