"""The Swagger pet store: ``petstore.swagger.io`` (Swagger 2.0, base path ``/v2``) and
``petstore3.swagger.io`` (OpenAPI 3.0, server ``/api/v3``), over one shared set of pets.

Answers are shaped like the live services': a pet is ``{id, category, name, photoUrls, tags,
status}``, an unknown pet is ``404 {"code": 1, "type": "error", "message": "Pet not found"}``, an
unknown route is a 404 too (the CTK's ``/v2/pet/getPetByName/{petName}`` relies on that).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from typing import Any

from ._base import Request, Response

STATUSES = ("available", "pending", "sold")


def _pet(pet_id: int, name: str, category: str, status: str, tag: str) -> dict[str, Any]:
    return {
        "id": pet_id,
        "category": {
            "id": {"Dogs": 1, "Cats": 2, "Fish": 3, "Birds": 4}[category],
            "name": category,
        },
        "name": name,
        "photoUrls": [f"https://petstore.swagger.io/photos/{name.lower()}.jpg"],
        "tags": [{"id": pet_id, "name": tag}],
        "status": status,
    }


def initial_pets() -> dict[int, dict[str, Any]]:
    pets = [
        _pet(1, "Milou", "Dogs", "available", "reporter"),
        _pet(2, "Garfield", "Cats", "available", "lasagna"),
        _pet(3, "Nemo", "Fish", "pending", "clownfish"),
        _pet(4, "Tweety", "Birds", "sold", "canary"),
        _pet(5, "Rantanplan", "Dogs", "available", "detective"),
        _pet(69, "Snoopy", "Dogs", "pending", "beagle"),
    ]
    return {pet["id"]: pet for pet in pets}


class PetStore:
    """The pets and both API front ends."""

    def __init__(self) -> None:
        self.pets = initial_pets()
        self._lock = threading.Lock()
        self._next_id = 1000

    # -- the Swagger 2.0 service (petstore.swagger.io) -------------------------------------

    def v2(self, request: Request) -> Response:
        if request.path == "/v2/swagger.json" and request.method == "GET":
            return Response.json(swagger_document())
        if not request.path.startswith("/v2/"):
            return _not_found()
        return self._api(request, request.path[len("/v2") :])

    # -- the OpenAPI 3.0 service (petstore3.swagger.io) ------------------------------------

    def v3(self, request: Request) -> Response:
        if request.path == "/api/v3/openapi.json" and request.method == "GET":
            return Response.json(openapi_document())
        if request.path == "/api/v3/openapi.yaml" and request.method == "GET":
            return Response.text(openapi_yaml(), "application/yaml")
        if not request.path.startswith("/api/v3/"):
            return _not_found()
        return self._api(request, request.path[len("/api/v3") :])

    # -- shared routes ---------------------------------------------------------------------

    def _api(self, request: Request, path: str) -> Response:
        method = request.method
        if path in ("/pet", "/pet/") and method in ("POST", "PUT"):  # the examples use both
            return self._save(request.json(), create=method == "POST")
        if path == "/pet/findByStatus" and method == "GET":
            return self._find_by_status(request)
        if path == "/pet/findByTags" and method == "GET":
            tags = {t for value in request.query.get("tags", []) for t in value.split(",")}
            return Response.json(
                self._select(lambda p: bool(tags & {t["name"] for t in p["tags"]}))
            )
        if path == "/store/inventory" and method == "GET":
            counts: dict[str, int] = {}
            for pet in self._select(lambda p: True):
                counts[pet["status"]] = counts.get(pet["status"], 0) + 1
            return Response.json(counts)
        match = re.fullmatch(r"/pet/([^/]+)", path)
        if match:
            return self._pet_route(request, match.group(1))
        return _not_found()

    def _pet_route(self, request: Request, raw_id: str) -> Response:
        if not raw_id.isdigit():
            message = f'java.lang.NumberFormatException: For input string: "{raw_id}"'
            return Response.json({"code": 404, "type": "unknown", "message": message}, 404)
        pet_id = int(raw_id)
        with self._lock:
            pet = copy.deepcopy(self.pets.get(pet_id))
        if pet is None:
            return Response.json({"code": 1, "type": "error", "message": "Pet not found"}, 404)
        if request.method == "GET":
            return Response.json(pet)
        if request.method == "DELETE":
            with self._lock:
                self.pets.pop(pet_id, None)
            return Response.json({"code": 200, "type": "unknown", "message": str(pet_id)})
        if request.method == "POST":  # updatePetWithForm: form body (v2) or query (v3)
            fields = {k: v[0] for k, v in {**request.query, **request.form()}.items() if v}
            pet.update({k: fields[k] for k in ("name", "status") if k in fields})
            with self._lock:
                self.pets[pet_id] = pet
            return Response.json({"code": 200, "type": "unknown", "message": str(pet_id)})
        if request.method == "PUT":  # not on the live service; the DSL examples use it
            return self._save({**pet, **(request.json() or {}), "id": pet_id}, create=False)
        return Response.json({"code": 405, "type": "unknown"}, 405)

    def _find_by_status(self, request: Request) -> Response:
        wanted = {s for value in request.query.get("status", []) for s in value.split(",")}
        if not wanted or not wanted <= set(STATUSES):
            return Response.json(
                {"code": 400, "type": "unknown", "message": "Invalid status value"}, 400
            )
        return Response.json(self._select(lambda p: p["status"] in wanted))

    def _save(self, pet: Any, *, create: bool) -> Response:
        if not isinstance(pet, dict) or not isinstance(pet.get("name"), str):
            return Response.json({"code": 405, "type": "unknown", "message": "Invalid input"}, 405)
        with self._lock:
            if create and not isinstance(pet.get("id"), int):
                self._next_id += 1
                pet = {**pet, "id": self._next_id}
            if not create and pet.get("id") not in self.pets:
                return Response.json({"code": 1, "type": "error", "message": "Pet not found"}, 404)
            pet.setdefault("photoUrls", [])
            pet.setdefault("tags", [])
            self.pets[pet["id"]] = copy.deepcopy(pet)
        return Response.json(pet)

    def _select(self, keep: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(p) for _, p in sorted(self.pets.items()) if keep(p)]


def _not_found() -> Response:
    return Response.json({"code": 404, "type": "unknown", "message": "null"}, 404)


# -- documents -------------------------------------------------------------------------------

_PET_SCHEMA = {
    "type": "object",
    "required": ["name", "photoUrls"],
    "properties": {
        "id": {"type": "integer", "format": "int64"},
        "category": {"$ref": "#/definitions/Category"},
        "name": {"type": "string", "example": "doggie"},
        "photoUrls": {"type": "array", "items": {"type": "string"}},
        "tags": {"type": "array", "items": {"$ref": "#/definitions/Tag"}},
        "status": {"type": "string", "enum": list(STATUSES)},
    },
}


def swagger_document() -> dict[str, Any]:
    """A faithful subset of https://petstore.swagger.io/v2/swagger.json (the pet operations)."""
    pet_body = {
        "in": "body",
        "name": "body",
        "required": True,
        "schema": {"$ref": "#/definitions/Pet"},
    }
    pet_id = {"name": "petId", "in": "path", "required": True, "type": "integer", "format": "int64"}
    auth = [{"petstore_auth": ["write:pets", "read:pets"]}]
    return {
        "swagger": "2.0",
        "info": {"title": "Swagger Petstore", "version": "1.0.7"},
        "host": "petstore.swagger.io",
        "basePath": "/v2",
        "schemes": ["https", "http"],
        "paths": {
            "/pet": {
                "post": {
                    "tags": ["pet"],
                    "operationId": "addPet",
                    "consumes": ["application/json", "application/xml"],
                    "produces": ["application/json", "application/xml"],
                    "parameters": [pet_body],
                    "responses": {"405": {"description": "Invalid input"}},
                    "security": auth,
                },
                "put": {
                    "tags": ["pet"],
                    "operationId": "updatePet",
                    "consumes": ["application/json", "application/xml"],
                    "produces": ["application/json", "application/xml"],
                    "parameters": [pet_body],
                    "responses": {"404": {"description": "Pet not found"}},
                    "security": auth,
                },
            },
            "/pet/findByStatus": {
                "get": {
                    "tags": ["pet"],
                    "operationId": "findPetsByStatus",
                    "produces": ["application/json", "application/xml"],
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "required": True,
                            "type": "array",
                            "items": {
                                "type": "string",
                                "enum": list(STATUSES),
                                "default": "available",
                            },
                            "collectionFormat": "multi",
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "successful operation",
                            "schema": {"type": "array", "items": {"$ref": "#/definitions/Pet"}},
                        }
                    },
                    "security": auth,
                }
            },
            "/pet/findByTags": {
                "get": {
                    "tags": ["pet"],
                    "operationId": "findPetsByTags",
                    "deprecated": True,
                    "produces": ["application/json", "application/xml"],
                    "parameters": [
                        {
                            "name": "tags",
                            "in": "query",
                            "required": True,
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "multi",
                        }
                    ],
                    "responses": {"200": {"description": "successful operation"}},
                }
            },
            "/pet/{petId}": {
                "get": {
                    "tags": ["pet"],
                    "operationId": "getPetById",
                    "produces": ["application/json", "application/xml"],
                    "parameters": [pet_id],
                    "responses": {
                        "200": {
                            "description": "successful operation",
                            "schema": {"$ref": "#/definitions/Pet"},
                        },
                        "404": {"description": "Pet not found"},
                    },
                    "security": [{"api_key": []}],
                },
                "post": {
                    "tags": ["pet"],
                    "operationId": "updatePetWithForm",
                    "consumes": ["application/x-www-form-urlencoded"],
                    "produces": ["application/json", "application/xml"],
                    "parameters": [
                        pet_id,
                        {"name": "name", "in": "formData", "required": False, "type": "string"},
                        {"name": "status", "in": "formData", "required": False, "type": "string"},
                    ],
                    "responses": {"405": {"description": "Invalid input"}},
                    "security": auth,
                },
                "delete": {
                    "tags": ["pet"],
                    "operationId": "deletePet",
                    "produces": ["application/json", "application/xml"],
                    "parameters": [
                        {"name": "api_key", "in": "header", "required": False, "type": "string"},
                        pet_id,
                    ],
                    "responses": {"404": {"description": "Pet not found"}},
                    "security": auth,
                },
            },
            "/store/inventory": {
                "get": {
                    "tags": ["store"],
                    "operationId": "getInventory",
                    "produces": ["application/json"],
                    "parameters": [],
                    "responses": {"200": {"description": "successful operation"}},
                    "security": [{"api_key": []}],
                }
            },
        },
        "securityDefinitions": {
            "api_key": {"type": "apiKey", "name": "api_key", "in": "header"},
            "petstore_auth": {
                "type": "oauth2",
                "authorizationUrl": "https://petstore.swagger.io/oauth/authorize",
                "flow": "implicit",
                "scopes": {
                    "read:pets": "read your pets",
                    "write:pets": "modify pets in your account",
                },
            },
        },
        "definitions": {
            "Category": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
            },
            "Tag": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
            },
            "Pet": _PET_SCHEMA,
            "ApiResponse": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer"},
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """A faithful subset of https://petstore3.swagger.io/api/v3/openapi.json."""
    pet_ref = {"$ref": "#/components/schemas/Pet"}
    content = {
        t: {"schema": pet_ref}
        for t in ("application/json", "application/xml", "application/x-www-form-urlencoded")
    }
    out = {t: {"schema": pet_ref} for t in ("application/xml", "application/json")}
    return {
        "openapi": "3.0.4",
        "info": {"title": "Swagger Petstore - OpenAPI 3.0", "version": "1.0.26"},
        "servers": [{"url": "/api/v3"}],
        "paths": {
            "/pet": {
                "put": {
                    "tags": ["pet"],
                    "operationId": "updatePet",
                    "requestBody": {"$ref": "#/components/requestBodies/Pet"},
                    "responses": {"200": {"description": "Successful operation", "content": out}},
                },
                "post": {
                    "tags": ["pet"],
                    "operationId": "addPet",
                    "requestBody": {
                        "description": "Create a new pet in the store",
                        "content": content,
                        "required": True,
                    },
                    "responses": {"200": {"description": "Successful operation", "content": out}},
                },
            },
            "/pet/findByStatus": {
                "get": {
                    "tags": ["pet"],
                    "operationId": "findPetsByStatus",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "required": False,
                            "explode": True,
                            "schema": {
                                "type": "string",
                                "default": "available",
                                "enum": list(STATUSES),
                            },
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "successful operation",
                            "content": {
                                "application/json": {"schema": {"type": "array", "items": pet_ref}}
                            },
                        }
                    },
                }
            },
            "/pet/{petId}": {
                "parameters": [{"$ref": "#/components/parameters/PetId"}],
                "get": {
                    "tags": ["pet"],
                    "operationId": "getPetById",
                    "responses": {
                        "200": {"description": "successful operation", "content": out},
                        "404": {"description": "Pet not found"},
                    },
                },
                "post": {
                    "tags": ["pet"],
                    "operationId": "updatePetWithForm",
                    "parameters": [
                        {"name": "name", "in": "query", "schema": {"type": "string"}},
                        {"name": "status", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "successful operation"}},
                },
                "delete": {
                    "tags": ["pet"],
                    "operationId": "deletePet",
                    "parameters": [
                        {
                            "name": "api_key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": {"description": "Pet deleted"}},
                },
            },
        },
        "components": {
            "parameters": {
                "PetId": {
                    "name": "petId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "format": "int64"},
                }
            },
            "requestBodies": {"Pet": {"description": "Pet object", "content": content}},
            "schemas": {
                "Pet": json.loads(
                    json.dumps(_PET_SCHEMA).replace("#/definitions/", "#/components/schemas/")
                )
            },
        },
    }


def openapi_yaml() -> str:
    """The OpenAPI 3.0 document as YAML (JSON is YAML 1.2; a block-style head keeps it honest)."""
    document = openapi_document()
    head = f"openapi: {document.pop('openapi')}\ninfo:\n  title: {document['info']['title']}\n"
    head += f"  version: {document.pop('info')['version']}\n"
    return head + "".join(f"{key}: {json.dumps(value)}\n" for key, value in document.items())
