"""``swapi.dev``: the Star Wars API, as the DSL examples call it.

Like the live service (Django, ``APPEND_SLASH``), a resource URL without its trailing slash
answers ``301`` to the URL with it: ``call-http-redirect.yaml`` sets ``redirect: true`` for that.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from ._base import Request, Response

BASE = "https://swapi.dev/api"

PLANETS: dict[int, dict[str, Any]] = {
    1: {"name": "Tatooine", "climate": "arid", "terrain": "desert", "population": "200000"},
    2: {
        "name": "Alderaan",
        "climate": "temperate",
        "terrain": "grasslands, mountains",
        "population": "2000000000",
    },
    8: {
        "name": "Naboo",
        "climate": "temperate",
        "terrain": "grassy hills, swamps, forests, mountains",
        "population": "4500000000",
    },
}

PEOPLE: dict[int, dict[str, Any]] = {
    1: {"name": "Luke Skywalker", "height": "172", "gender": "male", "homeworld": 1},
    2: {"name": "C-3PO", "height": "167", "gender": "n/a", "homeworld": 1},
    3: {"name": "R2-D2", "height": "96", "gender": "n/a", "homeworld": 8},
    4: {"name": "Darth Vader", "height": "202", "gender": "male", "homeworld": 1},
    5: {"name": "Leia Organa", "height": "150", "gender": "female", "homeworld": 2},
}


def _person(person_id: int) -> dict[str, Any]:
    person = dict(PEOPLE[person_id])
    person["homeworld"] = f"{BASE}/planets/{person['homeworld']}/"
    person["url"] = f"{BASE}/people/{person_id}/"
    return person


def _planet(planet_id: int) -> dict[str, Any]:
    return {**PLANETS[planet_id], "url": f"{BASE}/planets/{planet_id}/"}


def app(request: Request) -> Response:
    path = request.path
    if not path.endswith("/"):
        query = urlencode([(k, v) for k, vs in request.query.items() for v in vs])
        return Response.redirect(path + "/" + (f"?{query}" if query else ""), 301)
    if path == "/api/people/":
        search = (request.arg("search") or "").lower()
        results = [_person(i) for i in sorted(PEOPLE) if search in PEOPLE[i]["name"].lower()]
        return Response.json(
            {"count": len(results), "next": None, "previous": None, "results": results}
        )
    match = re.fullmatch(r"/api/(people|planets)/(\d+)/", path)
    if match:
        kind, number = match.group(1), int(match.group(2))
        table, render = (PEOPLE, _person) if kind == "people" else (PLANETS, _planet)
        if number in table:
            return Response.json(render(number))
    return Response.json({"detail": "Not found"}, 404)
