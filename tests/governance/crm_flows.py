"""The seed's failure, as a user writes it: log an enquiry in the CRM, which times out on every
attempt. Loaded by the alert tests in-process and by `batonflow run` / `batonflow worker`
subprocesses (``tests/governance/crm_flows.py:enquiry``)."""

from __future__ import annotations

from typing import Any

import httpx

import batonflow as bf

#: Seconds an attempt may take (the step's timeout, on the engine's clock) and the retry waits.
ATTEMPT_TIMEOUT = 0.5
RETRY = bf.Retry(max_attempts=3, initial_delay=0.1, backoff=2.0, jitter=0.0)


@bf.step(retry=RETRY, timeout=ATTEMPT_TIMEOUT)
async def log_enquiry(crm: str, enquiry: dict[str, Any]) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{crm}/enquiries", json=enquiry)
        response.raise_for_status()
        crm_id: str = response.json()["id"]
        return crm_id


@bf.workflow(name="enquiry")
async def enquiry(ctx: bf.Context, data: dict[str, Any]) -> dict[str, Any]:
    crm_id = await ctx.step(log_enquiry, data["crm"], data["enquiry"])
    return {"crm_id": crm_id}


#: The same flow as a workflow document: three attempts, then the catch raises the CRM's error.
DOCUMENT = """\
document: {dsl: '1.0.3', namespace: tests, name: enquiry, version: '1.0.0'}
do:
  - logEnquiry:
      try:
        - post:
            call: http
            with:
              method: post
              endpoint: ${ .crm + "/enquiries" }
              body: ${ .enquiry }
            timeout: {after: {milliseconds: 500}}
      catch:
        as: failure
        retry:
          delay: {milliseconds: 100}
          backoff: {exponential: {}}
          limit: {attempt: {count: 2}}
        do:
          - giveUp:
              raise:
                error:
                  type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
                  status: 503
                  title: The CRM did not answer
                  detail: '${ "every attempt failed, the last with " + $failure.title }'
"""
