"""``call: http`` and authentication, against real loopback servers standing in for the public
hosts (petstore.swagger.io, httpbin.org, swapi.dev, keycloak, secured.fake.com)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from batonflow._net import make_client
from batonflow.dsl import ErrorType, WorkflowError
from batonflow.dsl._auth import AuthResolver, Credentials, redact_headers, safe_url, scrub
from batonflow.dsl._http import call_http, expand_uri
from batonflow.testing import FakeClock

from .servers import PublicHosts, public_hosts
from .servers.identity import make_jwt

PET_URI = "https://petstore.swagger.io/v2/pet/{petId}"
SECURED = "https://secured.fake.com/sample"
AUTHORITY = "http://keycloak/realms/fake-authority"


@pytest.fixture
def hosts() -> Iterator[PublicHosts]:
    with public_hosts() as hosts:
        yield hosts


@pytest.fixture
async def client(hosts: PublicHosts) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(transport=hosts.transport()) as client:
        yield client


async def call(client: httpx.AsyncClient, spec: dict[str, Any], data: Any = None, **kw: Any) -> Any:
    return await call_http(spec, input_data=data or {}, client=client, auth=kw.get("auth"))


async def fails(
    client: httpx.AsyncClient, spec: dict[str, Any], data: Any = None, **kw: Any
) -> Any:
    with pytest.raises(WorkflowError) as caught:
        await call(client, spec, data, **kw)
    return caught.value.problem


def get(uri: Any, **more: Any) -> dict[str, Any]:
    return {"method": "get", "endpoint": uri, **more}


def secured(policy: Any) -> dict[str, Any]:
    return get({"uri": SECURED, "authentication": policy})


def oauth2(**more: Any) -> dict[str, Any]:
    return {
        "oauth2": {
            "authority": AUTHORITY,
            "grant": "client_credentials",
            "client": {"id": "workflow-runtime-id", "secret": "workflow-runtime-secret"},
            **more,
        }
    }


# -- the CTK scenarios ----------------------------------------------------------------------


async def test_content_output_with_a_templated_query(client: httpx.AsyncClient) -> None:
    uri = "https://petstore.swagger.io/v2/pet/findByStatus?status={status}"
    pets = await call(client, get({"uri": uri}), {"status": "available"})
    assert {"id", "name", "status"} <= set(pets[0])
    assert {pet["status"] for pet in pets} == {"available"}


async def test_response_output(client: httpx.AsyncClient) -> None:
    out = await call(client, get({"uri": PET_URI}, output="response"), {"petId": 1})
    assert out["request"]["method"] == "get"
    assert out["request"]["uri"] == "https://petstore.swagger.io/v2/pet/1"
    assert out["request"]["headers"]["host"] == "petstore.swagger.io"
    assert out["statusCode"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert out["content"]["id"] == 1
    assert {"name", "status"} <= set(out["content"])


async def test_basic_authentication_from_input(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    data = {"username": "serverless-workflow", "password": "conformance-test"}
    policy = {"basic": {"username": data["username"], "password": data["password"]}}
    uri = "https://httpbin.org/basic-auth/{username}/{password}"
    out = await call(client, get({"uri": uri, "authentication": policy}), data)
    assert out == {"authenticated": True, "user": "serverless-workflow"}
    (seen,) = hosts.server.requests("httpbin.org")
    assert seen.headers["authorization"].startswith("Basic ")


async def test_not_found_is_a_communication_error_with_the_status(
    client: httpx.AsyncClient,
) -> None:
    uri = "https://petstore.swagger.io/v2/pet/getPetByName/{petName}"
    problem = await fails(client, get({"uri": uri}), {"petName": "Milou"})
    assert problem.type == ErrorType.COMMUNICATION.uri
    assert problem.status == 404
    assert problem.title == "Not Found"
    assert problem.detail.startswith(
        "GET https://petstore.swagger.io/v2/pet/getPetByName/Milou answered 404 Not Found: "
    )
    assert problem.detail.endswith('{"code": 404, "type": "unknown", "message": "null"}')


async def test_server_error_keeps_its_status(client: httpx.AsyncClient) -> None:
    problem = await fails(client, get("https://httpbin.org/status/503"))
    assert (problem.type, problem.status, problem.title) == (
        ErrorType.COMMUNICATION.uri,
        503,
        "Service Unavailable",
    )


async def test_star_wars_homeworld_example(client: httpx.AsyncClient) -> None:
    person = await call(
        client, get("https://swapi.dev/api/people/{id}/", output="response"), {"id": 4}
    )
    planet = await call(client, get(person["content"]["homeworld"]))
    assert planet["name"] == "Tatooine"


async def test_hosts_the_examples_only_post_to_echo_the_request(client: httpx.AsyncClient) -> None:
    spec = {
        "method": "put",
        "endpoint": "https://fake-hospital.com/api/v3/alert/nurses",
        "body": {"patientId": "John Doe", "room": 42},
    }
    out = await call(client, spec)
    assert (out["method"], out["json"]) == ("PUT", {"patientId": "John Doe", "room": 42})


# -- URI templates --------------------------------------------------------------------------


def test_uri_template_simple_expansion() -> None:
    data = {"id": 7, "on": True, "name": "a b/c", "pet.id": "x", "none": None, "f": 1.5}
    assert expand_uri("http://h/{id}/{on}/{f}", data) == "http://h/7/true/1.5"
    assert expand_uri("http://h/{name}", data) == "http://h/a%20b%2Fc"
    assert expand_uri("http://h/{pet.id}/{missing}/{none}", data) == "http://h/x//"
    assert expand_uri("http://h/{id}", ["not", "an", "object"]) == "http://h/"
    with pytest.raises(WorkflowError) as caught:
        expand_uri("http://h/{bad}", {"bad": {"a": 1}})
    assert (caught.value.problem.type, caught.value.problem.status) == (
        ErrorType.EXPRESSION.uri,
        400,
    )


async def test_expanded_values_arrive_percent_encoded(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    await call(client, get("https://httpbin.org/anything/{name}"), {"name": "a b/c"})
    (seen,) = hosts.server.requests("httpbin.org")
    assert seen.path == "/anything/a%20b%2Fc"


# -- headers, query, body, method ----------------------------------------------------------


async def test_headers_and_query(client: httpx.AsyncClient) -> None:
    spec = get(
        "https://httpbin.org/get?fixed=1",
        headers={"X-Trace": "abc", "X-Count": 3, "X-Skip": None},
        query={"search": "luke skywalker", "tag": ["a", "b"], "flag": True, "gone": None},
    )
    out = await call(client, spec)
    assert out["args"] == {
        "fixed": "1",
        "search": "luke skywalker",
        "tag": ["a", "b"],
        "flag": "true",
    }
    assert out["headers"]["x-trace"] == "abc"
    assert out["headers"]["x-count"] == "3"
    assert "x-skip" not in out["headers"]
    assert out["headers"]["user-agent"].startswith("batonflow")


async def test_json_body_and_method(client: httpx.AsyncClient, hosts: PublicHosts) -> None:
    spec = {
        "method": "put",
        "endpoint": PET_URI,
        "body": {"name": "Milou", "status": "sold", "photoUrls": []},
    }
    pet = await call(client, spec, {"petId": 1})
    assert (pet["id"], pet["status"]) == (1, "sold")
    (seen,) = hosts.server.requests("petstore.swagger.io")
    assert seen.method == "PUT"
    assert seen.headers["content-type"] == "application/json"
    assert hosts.petstore.pets[1]["status"] == "sold"


async def test_text_and_form_bodies(client: httpx.AsyncClient) -> None:
    text = await call(
        client, {"method": "post", "endpoint": "https://httpbin.org/post", "body": "hi"}
    )
    assert (text["data"], text["headers"]["content-type"]) == ("hi", "text/plain; charset=utf-8")
    form = await call(
        client,
        {
            "method": "post",
            "endpoint": "https://httpbin.org/post",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "body": {"name": "Milou", "tags": ["a", "b"], "n": 1},
        },
    )
    assert form["form"] == {"name": "Milou", "tags": ["a", "b"], "n": "1"}


# -- outputs --------------------------------------------------------------------------------


async def test_raw_output_is_base64(client: httpx.AsyncClient) -> None:
    raw = await call(client, get("https://httpbin.org/bytes/16", output="raw"))
    assert base64.b64decode(raw) == bytes(range(16))
    json_raw = await call(client, get("https://petstore.swagger.io/v2/pet/2", output="raw"))
    assert base64.b64decode(json_raw).startswith(b"{")


async def test_content_is_decoded_by_content_type(client: httpx.AsyncClient) -> None:
    binary = await call(client, get("https://httpbin.org/bytes/4"))
    assert binary == base64.b64encode(bytes(range(4))).decode()
    html = await call(client, get("https://httpbin.org/html"))
    assert html.startswith("<!DOCTYPE html>")
    xml = await call(client, get("https://httpbin.org/xml"))
    assert xml.startswith("<?xml")
    assert await call(client, get("https://httpbin.org/status/204")) is None
    assert await call(client, get("https://httpbin.org/status/204", output="raw")) is None


# -- redirects ------------------------------------------------------------------------------


async def test_a_redirect_is_an_error_by_default(client: httpx.AsyncClient) -> None:
    problem = await fails(client, get("https://swapi.dev/api/people/{id}"), {"id": 1})
    assert (problem.type, problem.status) == (ErrorType.COMMUNICATION.uri, 301)


async def test_redirect_true_follows(client: httpx.AsyncClient) -> None:
    luke = await call(
        client,
        get("https://swapi.dev/api/people/{id}", output="response", redirect=True),
        {"id": 1},
    )
    assert luke["statusCode"] == 200
    assert luke["request"]["uri"] == "https://swapi.dev/api/people/1/"
    assert luke["content"]["name"] == "Luke Skywalker"
    search = await call(
        client, get("https://swapi.dev/api/people", query={"search": "lei"}, redirect=True)
    )
    assert [p["name"] for p in search["results"]] == ["Leia Organa"]


async def test_redirect_true_accepts_a_final_3xx(client: httpx.AsyncClient) -> None:
    out = await call(
        client, get("https://httpbin.org/status/304", output="response", redirect=True)
    )
    assert out["statusCode"] == 304
    problem = await fails(client, get("https://httpbin.org/status/404", redirect=True))
    assert problem.status == 404


async def test_cross_origin_redirect_drops_credentials(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    spec = get(
        {
            "uri": "https://httpbin.org/redirect-to?url=https://secured.fake.com/sample",
            "authentication": {"bearer": {"token": "s3cr3t-token"}},
        },
        redirect=True,
    )
    problem = await fails(client, spec)
    assert problem.status == 401
    (seen,) = hosts.server.requests("secured.fake.com")
    assert "authorization" not in seen.headers


# -- failures without a response -------------------------------------------------------------


async def test_unreachable_host_is_a_communication_error(client: httpx.AsyncClient) -> None:
    problem = await fails(client, get("https://unrouted.example.org/x"))
    assert (problem.type, problem.status) == (ErrorType.COMMUNICATION.uri, 503)
    assert problem.detail.startswith("GET https://unrouted.example.org/x failed:")


async def test_timeout_is_a_timeout_error() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with make_client(transport=httpx.MockTransport(hang)) as client:
        problem = await fails(client, get("https://petstore.swagger.io/v2/pet/1"))
    assert (problem.type, problem.status) == (ErrorType.TIMEOUT.uri, 408)


@pytest.mark.parametrize(
    "spec",
    [
        {"method": "get"},
        {"method": "get", "endpoint": {"url": "https://x"}},
        {"method": "get", "endpoint": "not a url"},
        {"method": "get", "endpoint": "ftp://host/file"},
        {"method": "g e t", "endpoint": "https://httpbin.org/get"},
        {"method": "get", "endpoint": "https://httpbin.org/get", "output": "body"},
        {"method": "get", "endpoint": "https://httpbin.org/get", "redirect": "yes"},
        {"method": "get", "endpoint": "https://httpbin.org/get", "headers": ["x"]},
        {"method": "get", "endpoint": "https://httpbin.org/get", "query": "a=b"},
    ],
)
async def test_bad_arguments_are_configuration_errors(
    client: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    problem = await fails(client, spec)
    assert (problem.type, problem.status) == (ErrorType.CONFIGURATION.uri, 400)


# -- authentication -------------------------------------------------------------------------


async def test_bearer_token_reaches_the_server(client: httpx.AsyncClient) -> None:
    spec = get(
        {"uri": "https://httpbin.org/bearer", "authentication": {"bearer": {"token": "t0k"}}}
    )
    assert await call(client, spec) == {"authenticated": True, "token": "t0k"}
    shorthand = get({"uri": "https://httpbin.org/bearer", "authentication": {"bearer": "t1k"}})
    assert (await call(client, shorthand))["token"] == "t1k"


async def test_digest_authentication(client: httpx.AsyncClient) -> None:
    policy = {"digest": {"username": "admin", "password": "password123"}}
    assert (await call(client, secured(policy)))["scheme"] == "Digest"
    spec = get(
        {
            "uri": "https://httpbin.org/digest-auth/auth/user/passwd",
            "authentication": {"digest": {"username": "user", "password": "passwd"}},
        }
    )
    assert await call(client, spec) == {"authenticated": True, "user": "user"}


async def test_rejected_credentials_never_show_the_secret(client: httpx.AsyncClient) -> None:
    policy = {"basic": {"username": "admin", "password": "wrong-password"}}
    problem = await fails(client, secured(policy))
    assert (problem.status, problem.title) == (401, "Unauthorized")
    assert "wrong-password" not in str(problem)
    token = base64.b64encode(b"admin:wrong-password").decode()
    assert token not in str(problem)


async def test_response_output_masks_credentials(client: httpx.AsyncClient) -> None:
    policy = {"basic": {"username": "admin", "password": "password123"}}
    out = await call(client, {**secured(policy), "output": "response"})
    assert out["request"]["headers"]["authorization"] == "<redacted>"
    assert "password123" not in repr(out)


async def test_policy_from_a_secret(client: httpx.AsyncClient) -> None:
    resolver = AuthResolver(
        client, secrets={"creds": {"username": "admin", "password": "password123"}}
    )
    out = await call(client, secured({"basic": {"use": "creds"}}), auth=resolver)
    assert out == {"authenticated": True, "scheme": "Basic", "user": "admin"}


async def test_missing_secret_is_an_authorization_error(client: httpx.AsyncClient) -> None:
    resolver = AuthResolver(client, secrets={"other": {}})
    for policy in ({"basic": {"use": "creds"}}, {"oauth2": {"use": "creds"}}):
        problem = await fails(client, secured(policy), auth=resolver)
        assert (problem.type, problem.status) == (ErrorType.AUTHORIZATION.uri, 403)
    problem = await fails(client, secured({"bearer": {"use": "creds"}}))  # no resolver at all
    assert problem.status == 403


async def test_named_policy(client: httpx.AsyncClient) -> None:
    resolver = AuthResolver(client, policies={"petStoreAuth": {"bearer": {"token": "named"}}})
    spec = get({"uri": "https://httpbin.org/bearer", "authentication": {"use": "petStoreAuth"}})
    assert (await call(client, spec, auth=resolver))["token"] == "named"
    unknown = get({"uri": "https://httpbin.org/bearer", "authentication": {"use": "nope"}})
    problem = await fails(client, unknown, auth=resolver)
    assert (problem.type, problem.status) == (ErrorType.CONFIGURATION.uri, 400)


async def test_unsupported_policies_are_configuration_errors(client: httpx.AsyncClient) -> None:
    for policy in (
        {"certificate": {}},
        {"nothing": {}},
        {"basic": {"username": "admin"}},
        oauth2(grant="authorization_code"),
    ):
        problem = await fails(client, secured(policy))
        assert (problem.type, problem.status) == (ErrorType.CONFIGURATION.uri, 400)


def test_credentials_hide_secrets() -> None:
    credentials = Credentials("Bearer", httpx.Auth(), "tok-123", ("tok-123",))
    assert "tok-123" not in repr(credentials)
    assert credentials.descriptor() == {"scheme": "Bearer", "parameter": "tok-123"}


# -- OAuth2 and OpenID Connect ----------------------------------------------------------------


async def test_oauth2_client_credentials_and_token_caching(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    clock = FakeClock()
    resolver = AuthResolver(client, clock=clock)
    policy = oauth2(endpoints={"token": "/auth/token"})
    for _ in range(3):
        out = await call(client, secured(policy), auth=resolver)
        assert out["claims"]["sub"] == "workflow-runtime-id"
    assert len(hosts.identity.token_requests) == 1
    (asked,) = hosts.identity.token_requests
    assert (asked.path, asked.grant_type, asked.client_auth) == (
        "/realms/fake-authority/auth/token",
        "client_credentials",
        "post",
    )
    await clock.advance(269)  # 300 s tokens are renewed 30 s early
    await call(client, secured(policy), auth=resolver)
    assert len(hosts.identity.token_requests) == 1
    await clock.advance(2)
    hosts.identity.now += 271
    await call(client, secured(policy), auth=resolver)
    assert len(hosts.identity.token_requests) == 2


async def test_oauth2_default_endpoint_basic_client_auth_json_scopes(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    policy = oauth2(
        grant="client-credentials",  # the spelling dsl.md uses
        client={
            "id": "workflow-runtime",
            "secret": "**********",
            "authentication": "client_secret_basic",
        },
        request={"encoding": "application/json"},
        scopes=["api", "read"],
        audiences=["runtime"],
    )
    out = await call(client, secured(policy), auth=AuthResolver(client))
    assert out["claims"]["aud"] == ["runtime"]
    (asked,) = hosts.identity.token_requests
    assert asked.path == "/realms/fake-authority/oauth2/token"
    assert (asked.client_auth, asked.encoding, asked.scope, asked.audience) == (
        "basic",
        "json",
        "api read",
        "runtime",
    )


async def test_oauth2_password_grant_from_a_secret(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    secret = {
        "authority": AUTHORITY,
        "grant": "password",
        "client": {"id": "workflow-runtime-id", "secret": "workflow-runtime-secret"},
        "username": "admin",
        "password": "password123",
    }
    resolver = AuthResolver(client, secrets={"mySecret": secret})
    out = await call(client, secured({"oauth2": {"use": "mySecret"}}), auth=resolver)
    assert out["claims"]["sub"] == "admin"
    assert hosts.identity.token_requests[0].grant_type == "password"


async def test_oidc_discovers_the_token_endpoint_once(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    clock = FakeClock()
    resolver = AuthResolver(client, clock=clock)
    policy = {"oidc": oauth2()["oauth2"]}
    await call(client, secured(policy), auth=resolver)
    await clock.advance(3600)
    hosts.identity.now += 3600
    out = await call(client, secured(policy), auth=resolver)
    assert out["claims"]["iss"] == AUTHORITY
    discovery = "/realms/fake-authority/.well-known/openid-configuration"
    assert len(hosts.server.requests("keycloak", discovery)) == 1
    assert [r.path for r in hosts.identity.token_requests] == [
        "/realms/fake-authority/protocol/openid-connect/token"
    ] * 2
    well_known = {"oidc": {**policy["oidc"], "authority": AUTHORITY + discovery[22:]}}
    await call(client, secured(well_known), auth=resolver)
    assert len(hosts.server.requests("keycloak", discovery)) == 1


async def test_oauth2_without_expiry_is_cached_a_minute(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    hosts.identity.expires_in = None
    clock = FakeClock()
    resolver = AuthResolver(client, clock=clock)
    await call(client, secured(oauth2()), auth=resolver)
    await clock.advance(50)
    await call(client, secured(oauth2()), auth=resolver)
    assert len(hosts.identity.token_requests) == 1
    await clock.advance(5)
    await call(client, secured(oauth2()), auth=resolver)
    assert len(hosts.identity.token_requests) == 2


async def test_oauth2_token_exchange_with_a_client_assertion(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    resolver = AuthResolver(client)
    issued = (await resolver.resolve(oauth2())).parameter
    assertion = make_jwt({"sub": "workflow-runtime-id", "aud": AUTHORITY})
    policy = oauth2(
        grant="urn:ietf:params:oauth:grant-type:token-exchange",
        client={
            "id": "workflow-runtime-id",
            "authentication": "private_key_jwt",
            "assertion": assertion,
        },
        subject={"token": issued, "type": "urn:ietf:params:oauth:token-type:access_token"},
    )
    out = await call(client, secured(policy), auth=resolver)
    assert out["claims"]["sub"] == "workflow-runtime-id via workflow-runtime-id"
    assert [(r.grant_type, r.client_auth) for r in hosts.identity.token_requests] == [
        ("client_credentials", "post"),
        ("urn:ietf:params:oauth:grant-type:token-exchange", "jwt"),
    ]


async def test_oauth2_public_client_is_refused_by_this_authority(
    client: httpx.AsyncClient, hosts: PublicHosts
) -> None:
    policy = oauth2(client={"id": "workflow-runtime-id", "authentication": "none"})
    problem = await fails(client, secured(policy))
    assert (problem.type, problem.status) == (ErrorType.AUTHENTICATION.uri, 401)
    assert hosts.identity.token_requests[0].client_auth == "none"


async def test_oauth2_rejected_client_is_an_authentication_error(
    client: httpx.AsyncClient,
) -> None:
    policy = oauth2(client={"id": "workflow-runtime-id", "secret": "not-the-secret"})
    problem = await fails(client, secured(policy))
    assert (problem.type, problem.status) == (ErrorType.AUTHENTICATION.uri, 401)
    assert "invalid_client" in problem.detail
    assert "not-the-secret" not in str(problem)


async def test_oauth2_issuer_must_be_listed(client: httpx.AsyncClient) -> None:
    problem = await fails(client, secured(oauth2(issuers=["http://other/issuer"])))
    assert (problem.type, problem.status) == (ErrorType.AUTHENTICATION.uri, 401)
    assert await call(client, secured(oauth2(issuers=[AUTHORITY])))


# -- the client factory ---------------------------------------------------------------------


async def test_make_client_layers_wrap_the_transport_and_keep_no_cookies(
    hosts: PublicHosts,
) -> None:
    seen: list[str] = []

    class Recorder(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(str(request.url))
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async with make_client(transport=hosts.transport(), layers=[Recorder]) as client:
        await call(client, get("https://httpbin.org/response-headers?Set-Cookie=session%3Dabc"))
        out = await call(client, get("https://httpbin.org/headers"))
    assert "cookie" not in out["headers"]
    assert seen == [
        "https://httpbin.org/response-headers?Set-Cookie=session%3Dabc",
        "https://httpbin.org/headers",
    ]


def test_urls_and_headers_are_shown_without_credentials() -> None:
    url = "https://user:pw@api.example.com/x?api_key=k1&access_token=t&q=luke&author=me"
    assert safe_url(url) == (
        "https://api.example.com/x?api_key=%3Credacted%3E&access_token=%3Credacted%3E"
        "&q=luke&author=me"
    )
    headers = httpx.Headers(
        {"Authorization": "Basic x", "X-Api-Key": "k", "Cookie": "a=b", "Accept": "*/*"}
    )
    assert redact_headers(headers) == {
        "authorization": "<redacted>",
        "x-api-key": "<redacted>",
        "cookie": "<redacted>",
        "accept": "*/*",
    }
    assert scrub("token abcd1234 and abc", ["abcd1234", "abc"]) == "token <redacted> and abc"
