"""``call: openapi`` against documents served by loopback servers: the Swagger 2.0 pet store
(petstore.swagger.io), the OpenAPI 3.0 pet store (petstore3.swagger.io, JSON and YAML), and two
small OpenAPI 3.0 documents (myorg.io, api.example.com) that echo what they receive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from batonflow._net import make_client
from batonflow.dsl import ErrorType, WorkflowError
from batonflow.dsl._auth import AuthResolver
from batonflow.dsl._openapi import OpenApiDocuments, call_openapi

from .servers import PublicHosts, public_hosts

SWAGGER = "https://petstore.swagger.io/v2/swagger.json"
OPENAPI_JSON = "https://petstore3.swagger.io/api/v3/openapi.json"
OPENAPI_YAML = "https://petstore3.swagger.io/api/v3/openapi.yaml"
INSPECT = "https://api.example.com/openapi.yaml"


@pytest.fixture
def hosts() -> Iterator[PublicHosts]:
    with public_hosts() as hosts:
        yield hosts


@pytest.fixture
async def client(hosts: PublicHosts) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(transport=hosts.transport()) as client:
        yield client


def openapi(document: Any, operation: str, **more: Any) -> dict[str, Any]:
    return {"document": {"endpoint": document}, "operationId": operation, **more}


async def call(client: httpx.AsyncClient, spec: dict[str, Any], **kw: Any) -> Any:
    return await call_openapi(spec, input_data=kw.pop("data", {}), client=client, **kw)


async def fails(client: httpx.AsyncClient, spec: dict[str, Any], **kw: Any) -> Any:
    with pytest.raises(WorkflowError) as caught:
        await call(client, spec, **kw)
    return caught.value.problem


# -- the CTK scenarios (Swagger 2.0) --------------------------------------------------------


async def test_find_pets_by_status(client: httpx.AsyncClient, hosts: PublicHosts) -> None:
    pets = await call(
        client, openapi(SWAGGER, "findPetsByStatus", parameters={"status": "available"})
    )
    assert len(pets) == 3
    assert {pet["status"] for pet in pets} == {"available"}
    (seen,) = hosts.server.requests("petstore.swagger.io", "/v2/pet/findByStatus")
    assert seen.query == {"status": ["available"]}
    assert seen.headers["accept"] == "application/json"


async def test_get_pet_by_id_response_output(client: httpx.AsyncClient) -> None:
    spec = openapi(SWAGGER, "getPetById", parameters={"petId": 1}, output="response")
    out = await call(client, spec)
    assert out["request"]["method"] == "get"
    assert out["request"]["uri"] == "https://petstore.swagger.io/v2/pet/1"
    assert out["statusCode"] == 200
    assert (out["content"]["id"], out["content"]["name"]) == (1, "Milou")
    assert "content-type" in out["headers"]


async def test_documents_are_fetched_once_per_cache(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    documents = OpenApiDocuments(client)
    for pet_id in (1, 2, 3):
        spec = openapi(SWAGGER, "getPetById", parameters={"petId": pet_id})
        assert (await call(client, spec, documents=documents))["id"] == pet_id
    assert len(hosts.server.requests("petstore.swagger.io", "/v2/swagger.json")) == 1


# -- Swagger 2.0 parameters -------------------------------------------------------------------


async def test_swagger_body_form_and_header_parameters(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    pet = {"name": "Idefix", "photoUrls": [], "status": "available"}
    created = await call(client, openapi(SWAGGER, "addPet", parameters={"body": pet}))
    assert created["name"] == "Idefix"
    new_id = created["id"]

    form = {"petId": new_id, "name": "Idéfix", "status": "sold"}
    await call(client, openapi(SWAGGER, "updatePetWithForm", parameters=form))
    (seen,) = hosts.server.requests("petstore.swagger.io", f"/v2/pet/{new_id}")
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert hosts.petstore.pets[new_id]["name"] == "Idéfix"

    await call(client, openapi(SWAGGER, "deletePet", parameters={"petId": new_id, "api_key": "k"}))
    assert hosts.server.requests("petstore.swagger.io")[-1].headers["api_key"] == "k"
    assert new_id not in hosts.petstore.pets


async def test_swagger_multi_collection_and_body_from_leftovers(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    pets = await call(
        client, openapi(SWAGGER, "findPetsByStatus", parameters={"status": ["pending", "sold"]})
    )
    assert [pet["name"] for pet in pets] == ["Nemo", "Tweety", "Snoopy"]
    seen = hosts.server.requests("petstore.swagger.io", "/v2/pet/findByStatus")[-1]
    assert seen.query == {"status": ["pending", "sold"]}

    pet = {"id": 2, "name": "Garfield", "photoUrls": [], "status": "sold"}
    updated = await call(client, openapi(SWAGGER, "updatePet", parameters=pet))
    assert updated["status"] == "sold"


# -- OpenAPI 3.0 ----------------------------------------------------------------------------


@pytest.mark.parametrize("document", [OPENAPI_JSON, OPENAPI_YAML])
async def test_openapi3_relative_server_and_path_level_ref(
    client: httpx.AsyncClient, hosts: PublicHosts, document: str
) -> None:
    spec = openapi(document, "getPetById", parameters={"petId": 3}, output="response")
    out = await call(client, spec)
    assert out["request"]["uri"] == "https://petstore3.swagger.io/api/v3/pet/3"
    assert out["content"]["name"] == "Nemo"
    pets = await call(client, openapi(document, "findPetsByStatus", parameters={"status": "sold"}))
    assert [pet["name"] for pet in pets] == ["Tweety"]


async def test_openapi3_request_body(client: httpx.AsyncClient, hosts: PublicHosts) -> None:
    pet = {"name": "Bill", "photoUrls": [], "status": "pending"}
    created = await call(client, openapi(OPENAPI_JSON, "addPet", parameters=pet))
    assert created["name"] == "Bill"
    seen = hosts.server.requests("petstore3.swagger.io", "/api/v3/pet")[-1]
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == pet

    updated = {**created, "status": "sold"}
    out = await call(client, openapi(OPENAPI_JSON, "updatePet", parameters={"body": updated}))
    assert out["status"] == "sold"


async def test_every_kind_of_parameter_is_placed(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    arguments = {
        "itemId": "a/b c",
        "labels": ["x", "y"],
        "tags": ["t1", "t2"],
        "ids": [1, 2],
        "filter": {"color": "red", "size": "L"},
        "limit": 10,
        "X-Request-Id": "req-1",
        "session": "s1",
        "item": {"n": 1},
        "unknown": "ignored",
    }
    await call(client, openapi(INSPECT, "inspect", parameters=arguments))
    seen = hosts.server.requests("api.example.com")[-1]
    assert seen.method == "POST"
    assert seen.path == "/v1/items/a%2Fb%20c/x%2Cy"
    assert parse_qsl(seen.query_string) == [
        ("tags", "t1"),
        ("tags", "t2"),
        ("ids", "1,2"),
        ("filter[color]", "red"),
        ("filter[size]", "L"),
        ("limit", "10"),
    ]
    assert seen.headers["x-request-id"] == "req-1"
    assert seen.headers["cookie"] == "session=s1"
    assert seen.json() == {"n": 1}


async def test_form_request_body(client: httpx.AsyncClient) -> None:
    out = await call(client, openapi(INSPECT, "submitForm", parameters={"a": "1", "b": ["2", "3"]}))
    assert out["form"] == {"a": "1", "b": ["2", "3"]}


async def test_server_variables_default(client: httpx.AsyncClient, hosts: PublicHosts) -> None:
    reading = {"roomId": "kitchen", "temperature": 21.5}
    out = await call(
        client, openapi("http://myorg.io/ordersservices.json", "logreading", parameters=reading)
    )
    assert hosts.server.requests("myorg.io")[-1].path == "/api/v1/readings"
    assert out["json"] == reading
    report = await call(client, openapi("http://myorg.io/ordersservices.json", "produceReport"))
    assert (report["method"], report["data"]) == ("POST", "")


# -- authentication, outputs, templates ------------------------------------------------------


async def test_authentication_for_the_operation_and_the_document(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    document = {"uri": SWAGGER, "authentication": {"basic": {"use": "docs"}}}
    spec = openapi(
        document,
        "getPetById",
        parameters={"petId": 1},
        authentication={"bearer": {"token": "op-token"}},
    )
    resolver = AuthResolver(client, secrets={"docs": {"username": "u", "password": "pw"}})
    await call(client, spec, auth=resolver)
    doc_request, op_request = hosts.server.requests("petstore.swagger.io")
    assert doc_request.headers["authorization"].startswith("Basic ")
    assert op_request.headers["authorization"] == "Bearer op-token"


async def test_raw_output_and_templated_document_uri(client: httpx.AsyncClient) -> None:
    spec = openapi("https://{host}/v2/swagger.json", "getInventory", output="raw")
    raw = await call(client, spec, data={"host": "petstore.swagger.io"})
    assert isinstance(raw, str)


# -- errors ---------------------------------------------------------------------------------


async def test_operation_errors_carry_the_http_status(client: httpx.AsyncClient) -> None:
    problem = await fails(client, openapi(SWAGGER, "getPetById", parameters={"petId": 9999}))
    assert (problem.type, problem.status) == (ErrorType.COMMUNICATION.uri, 404)
    assert "Pet not found" in problem.detail


async def test_missing_required_parameter_is_a_validation_error(
    client: httpx.AsyncClient,
) -> None:
    for operation in ("getPetById", "findPetsByStatus"):
        problem = await fails(client, openapi(SWAGGER, operation))
        assert (problem.type, problem.status) == (ErrorType.VALIDATION.uri, 400)
    problem = await fails(client, openapi(INSPECT, "submitForm"))
    assert problem.status == 400


async def test_unknown_operation_and_bad_documents(client: httpx.AsyncClient) -> None:
    problem = await fails(client, openapi(SWAGGER, "getPetByName"))
    assert (problem.type, problem.status) == (ErrorType.CONFIGURATION.uri, 400)
    assert "getPetByName" in problem.detail
    problem = await fails(client, openapi("https://httpbin.org/json", "anything"))
    assert (problem.type, problem.status) == (ErrorType.CONFIGURATION.uri, 400)
    problem = await fails(client, openapi("https://httpbin.org/robots.txt", "anything"))
    assert problem.status == 400
    problem = await fails(client, openapi("https://petstore.swagger.io/v2/nope.json", "x"))
    assert (problem.type, problem.status) == (ErrorType.COMMUNICATION.uri, 404)


@pytest.mark.parametrize(
    "spec",
    [
        {"operationId": "x"},
        {"document": {"endpoint": SWAGGER}},
        openapi(SWAGGER, "getPetById", parameters=["petId"]),
        openapi(SWAGGER, "getPetById", output="body"),
        openapi(SWAGGER, "getPetById", redirect="no"),
        openapi(SWAGGER, "getPetById", authentication=7),
    ],
)
async def test_bad_arguments_are_configuration_errors(
    client: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    problem = await fails(client, spec)
    assert (problem.type, problem.status) == (ErrorType.CONFIGURATION.uri, 400)
