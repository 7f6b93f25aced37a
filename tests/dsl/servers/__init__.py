"""Loopback stand-ins for the public hosts the CTK and the DSL examples call.

Usage (in a fixture)::

    with public_hosts() as hosts:
        async with make_client(transport=hosts.transport()) as client:
            ...  # https://petstore.swagger.io/v2/pet/1 now reaches the loopback pet store

``hosts.server.requests(host, path)`` lists what the servers received; ``hosts.petstore`` and
``hosts.identity`` expose the pet store's pets and the OAuth2 authority's state (token request
count, clock). See each module for what its host answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from . import echo, httpbin, swapi
from ._base import App, LoopbackServer, Request, Response
from .identity import Identity
from .petstore import PetStore
from .routing import HostRouter

__all__ = [
    "App",
    "HostRouter",
    "Identity",
    "LoopbackServer",
    "PetStore",
    "PublicHosts",
    "Request",
    "Response",
    "public_hosts",
]


@dataclass
class PublicHosts:
    server: LoopbackServer
    petstore: PetStore
    identity: Identity

    @property
    def routes(self) -> dict[str, str]:
        """Host name -> loopback base URL, for :class:`HostRouter`."""
        return dict.fromkeys(self.server.apps, self.server.base_url)

    def transport(self, inner: httpx.AsyncBaseTransport | None = None) -> HostRouter:
        """A transport that sends every covered public host to the loopback server."""
        return HostRouter(self.routes, inner)


def apps(petstore: PetStore, identity: Identity) -> dict[str, App]:
    table: dict[str, App] = {
        "petstore.swagger.io": petstore.v2,
        "petstore3.swagger.io": petstore.v3,
        "httpbin.org": httpbin.app,
        "swapi.dev": swapi.app,
        "keycloak": identity.authority,
        "secured.fake.com": identity.secured,
        "myorg.io": echo.myorg,
        "api.example.com": echo.example_api,
    }
    table.update(dict.fromkeys(echo.ECHO_HOSTS, echo.app))
    return table


@contextmanager
def public_hosts() -> Iterator[PublicHosts]:
    """Start the loopback server with every fake host; stop it on exit."""
    petstore, identity = PetStore(), Identity()
    with LoopbackServer(apps(petstore, identity)) as server:
        yield PublicHosts(server, petstore, identity)
