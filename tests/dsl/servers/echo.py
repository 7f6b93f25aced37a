"""Hosts the DSL examples call only to send something: each answers ``200`` with the request
echoed (httpbin's ``/anything`` shape), so a test can see what arrived.

``myorg.io`` also serves ``/ordersservices.json``, the OpenAPI document
``accumulate-room-readings.yaml`` calls (operations ``logreading`` and ``produceReport``), and
``api.example.com`` serves ``/openapi.yaml``, an OpenAPI 3.0 document whose ``inspect`` operation
takes one parameter of every kind, to check how an OpenAPI call places its arguments.
"""

from __future__ import annotations

from typing import Any

from ._base import Request, Response
from .httpbin import echo

ECHO_HOSTS = (
    # the examples/ directory
    "fake-hospital.com",
    "hospital.example.com",
    "example.com",
    "superbet-casinos.com",
    "virtual-wf-powered-race.com",
    "fake-chat-api.com",
    "fake.com",
    "mocked.service.com",
    "my.home.com",
    # the examples inside dsl.md and dsl-reference.md
    "example-service.com",
    "fake-booking-agency.com",
    "fake-fulfillment-service.com",
    "fake-inventory-service.com",
    "fake-logging-service.com",
    "fake-notification-service.com",
    "fake-packaging-service.com",
    "fake-payment-service.com",
    "fake-shipping-service.com",
    "fake-ticketing-system.com",
    "fake.log.collector.com",
    "fake.smtp.service.com",
    "test.com",
)


def app(request: Request) -> Response:
    return Response.json(echo(request))


def myorg(request: Request) -> Response:
    if request.path == "/ordersservices.json":
        return Response.json(orders_document())
    return app(request)


def example_api(request: Request) -> Response:
    if request.path == "/openapi.yaml":
        return Response.text(INSPECT_YAML, "application/yaml")
    return app(request)


def orders_document() -> dict[str, Any]:
    reading = {
        "type": "object",
        "properties": {
            "roomId": {"type": "string"},
            "temperature": {"type": "number"},
            "humidity": {"type": "number"},
        },
    }
    echo_response = {"200": {"description": "echoed", "content": {"application/json": {}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Orders services", "version": "1.0.0"},
        "servers": [
            {"url": "http://myorg.io/api/{version}", "variables": {"version": {"default": "v1"}}}
        ],
        "paths": {
            "/readings": {
                "post": {
                    "operationId": "logreading",
                    "requestBody": {"content": {"application/json": {"schema": reading}}},
                    "responses": echo_response,
                }
            },
            "/reports": {"post": {"operationId": "produceReport", "responses": echo_response}},
        },
    }


INSPECT_YAML = """\
openapi: 3.0.3
info:
  title: Parameter inspection
  version: 1.0.0
servers:
  - url: https://api.example.com/v1
paths:
  /items/{itemId}/{labels}:
    parameters:
      - $ref: '#/components/parameters/ItemId'
      - name: labels
        in: path
        required: true
        schema: {type: array, items: {type: string}}
    post:
      operationId: inspect
      x-codegen-request-body-name: item
      parameters:
        - name: tags
          in: query
          schema: {type: array, items: {type: string}}
        - name: ids
          in: query
          explode: false
          schema: {type: array, items: {type: integer}}
        - name: filter
          in: query
          style: deepObject
          schema: {type: object}
        - name: limit
          in: query
          required: true
          schema: {type: integer}
        - name: X-Request-Id
          in: header
          schema: {type: string}
        - name: session
          in: cookie
          schema: {type: string}
      requestBody:
        content:
          application/json:
            schema: {type: object}
      responses:
        '200':
          description: the request, echoed
          content:
            application/json: {}
  /forms:
    post:
      operationId: submitForm
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema: {type: object}
      responses:
        '200': {description: echoed}
components:
  parameters:
    ItemId:
      name: itemId
      in: path
      required: true
      schema: {type: string}
"""
