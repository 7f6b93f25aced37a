"""The typed model as a runtime reads it: task kinds, task lists and their pointers, calls,
durations, defaults, unions."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pydantic
import pytest

from batonflow.dsl import (
    CallFunction,
    CallHttp,
    DoTask,
    FlowDirective,
    ForTask,
    ListenTask,
    RunTask,
    SwitchTask,
    TaskList,
    TryTask,
    Workflow,
    duration_to_timedelta,
    endpoint_authentication,
    endpoint_uri,
    is_flow_directive,
    load_document,
)
from batonflow.dsl._model.auth import (
    AuthenticationReference,
    BearerAuthentication,
    BearerToken,
    SecretReference,
)
from batonflow.dsl._model.base import DurationInline
from batonflow.dsl._model.events import AnyEvents, OneEvent
from batonflow.dsl._model.tasks import RunContainer, RunWorkflow

from .spec_kit import spec_path


def example(name: str) -> Workflow:
    return load_document(spec_path("v1.0.3", "examples", name)).model


def workflow(body: str) -> Workflow:
    head = "document: {dsl: '1.0.3', namespace: test, name: t, version: '0.1.0'}\n"
    return load_document("wf.yaml", text=head + textwrap.dedent(body)).model


def test_every_task_type_has_its_kind() -> None:
    kinds = {
        "call-http-query-parameters.yaml": "call",
        "do-single.yaml": "call",
        "emit.yaml": "emit",
        "for.yaml": "for",
        "fork.yaml": "fork",
        "listen-to-one.yaml": "listen",
        "raise-inline.yaml": "raise",
        "run-container.yaml": "run",
        "set.yaml": "set",
        "switch-then-string.yaml": "switch",
        "try-catch.yaml": "try",
        "wait-duration-inline.yaml": "wait",
    }
    for name, kind in kinds.items():
        assert example(name).do[0].value.kind == kind, name


def test_a_task_list_is_an_ordered_list_of_named_tasks() -> None:
    flow = example("switch-then-string.yaml")
    tasks = flow.tasks
    assert isinstance(tasks, TaskList)
    assert tasks.names() == [
        "processOrder", "processElectronicOrder", "processPhysicalOrder", "handleUnknownOrderType",
    ]  # fmt: skip
    name, task = tasks[1]
    assert (name, task.kind, task.then) == ("processElectronicOrder", "set", "exit")
    assert tasks.index_of("processPhysicalOrder") == 2
    assert tasks.index_of("nope") is None
    assert tasks.get("processOrder") is tasks[0].value
    assert [p for p, _, _ in tasks.items_at("/do")][:2] == [
        "/do/0/processOrder",
        "/do/1/processElectronicOrder",
    ]
    assert tasks == example("switch-then-string.yaml").tasks
    assert tasks != example("set.yaml").tasks


def test_walking_the_flow_gives_each_task_its_reference() -> None:
    flow = example("try-catch-retry-inline.yaml")
    refs = list(flow.walk())
    assert [r.pointer for r in refs] == ["/do/0/tryGetPet", "/do/0/tryGetPet/try/0/getPet"]
    inner = refs[1]
    assert (inner.name, inner.index, inner.list_pointer) == ("getPet", 0, "/do/0/tryGetPet/try")
    assert inner.tasks.get("getPet") is inner.task
    assert flow.find("/do/0/tryGetPet/try/0/getPet") == inner
    assert flow.find("/do/9/x") is None


def test_nested_task_lists_of_every_composite_task() -> None:
    flow = workflow("""\
        use:
          functions:
            f:
              do:
                - inner: {set: {a: 1}}
          extensions:
            - ext:
                extend: call
                before:
                  - pre: {set: {a: 1}}
        do:
          - seq:
              do:
                - a: {set: {a: 1}}
          - loop:
              for: {in: .items}
              do:
                - b: {set: {a: 1}}
          - both:
              fork:
                branches:
                  - c: {set: {a: 1}}
          - guarded:
              try:
                - d: {set: {a: 1}}
              catch:
                do:
                  - e: {set: {a: 1}}
          - wait:
              listen: {to: {any: []}}
              foreach:
                do:
                  - f: {set: {a: 1}}
        """)
    assert [p for p, _ in flow.task_lists()] == [
        "/do",
        "/do/0/seq/do",
        "/do/1/loop/do",
        "/do/2/both/fork/branches",
        "/do/3/guarded/try",
        "/do/3/guarded/catch/do",
        "/do/4/wait/foreach/do",
        "/use/functions/f/do",
        "/use/extensions/0/ext/before",
    ]
    assert [r.pointer for r in flow.walk()][-2:] == ["/do/4/wait", "/do/4/wait/foreach/do/0/f"]


def test_calls_and_their_targets() -> None:
    http = example("do-single.yaml").do[0].value
    assert isinstance(http, CallHttp)
    assert (http.call, http.is_function, http.with_.method) == ("http", False, "get")
    assert endpoint_uri(http.with_.endpoint) == "https://petstore.swagger.io/v2/pet/{petId}"
    assert endpoint_authentication(http.with_.endpoint) is None
    assert (http.with_.output, http.with_.redirect) == ("content", False)

    secured = example("authentication-reusable.yaml").do[0].value
    assert isinstance(secured, CallHttp)
    reference = endpoint_authentication(secured.with_.endpoint)
    assert isinstance(reference, AuthenticationReference)
    assert reference.use == "petStoreAuth"

    function = example("call-custom-function-inline.yaml").do[0].value
    assert isinstance(function, CallFunction)
    assert (function.function, function.with_, function.catalog_reference) == (
        "getPetById", {"petId": 69}, None,
    )  # fmt: skip
    cataloged = workflow("do:\n  - log:\n      call: log:1.0.0@default\n").do[0].value
    assert isinstance(cataloged, CallFunction)
    assert cataloged.catalog_reference == ("log", "1.0.0", "default")


def test_reusable_authentication_policies() -> None:
    flow = workflow("""\
        use:
          authentications:
            token: {bearer: {token: abc}, note: ignored by the schema}
            secret: {bearer: {use: mySecret}}
        do: []
        """)
    assert flow.use is not None
    assert flow.use.authentications is not None
    token = flow.use.authentications["token"]
    assert isinstance(token, BearerAuthentication)
    assert token.scheme == "bearer"
    assert token.bearer == BearerToken(token="abc")
    secret = flow.use.authentications["secret"]
    assert isinstance(secret, BearerAuthentication)
    assert secret.bearer == SecretReference(use="mySecret")


def test_durations() -> None:
    wait = example("wait-duration-inline.yaml").do[0].value.wait  # type: ignore[union-attr]
    assert isinstance(wait, DurationInline)
    assert duration_to_timedelta(wait) == timedelta(seconds=30)
    assert duration_to_timedelta("PT1H30M") == timedelta(hours=1, minutes=30)
    assert duration_to_timedelta("P1W2DT0.5S") == timedelta(days=9, milliseconds=500)
    assert duration_to_timedelta("P1Y1M") == timedelta(days=395)
    assert duration_to_timedelta("${ .delay }") is None
    inline = DurationInline(days=1, milliseconds=5)
    assert inline.to_timedelta() == timedelta(days=1, milliseconds=5)


def test_defaults_from_the_dsl() -> None:
    loop = example("for.yaml").do[0].value
    assert isinstance(loop, ForTask)
    assert (loop.for_.each, loop.for_.at) == ("pet", "index")
    run = example("run-container.yaml").do[0].value
    assert isinstance(run, RunTask)
    assert isinstance(run.run, RunContainer)
    assert (run.run.process, run.run.await_, run.run.return_) == ("container", True, "stdout")
    assert run.run.container.pull_policy == "ifNotPresent"
    listen = example("listen-to-one.yaml").do[0].value
    assert isinstance(listen, ListenTask)
    assert isinstance(listen.listen.to, OneEvent)
    assert listen.listen.read == "data"
    guarded = example("try-catch.yaml").do[0].value
    assert isinstance(guarded, TryTask)
    assert guarded.catch.as_ == "error"


def test_event_strategies() -> None:
    listen = example("listen-to-any-until-consumed.yaml").do[0].value
    assert isinstance(listen, ListenTask)
    to = listen.listen.to
    assert isinstance(to, AnyEvents)
    assert isinstance(to.until, OneEvent)
    assert to.strategy == "any"
    assert to.until.strategy == "one"
    condition = example("listen-to-any-until-condition.yaml").do[0].value
    assert isinstance(condition, ListenTask)
    assert isinstance(condition.listen.to, AnyEvents)
    assert isinstance(condition.listen.to.until, str)


def test_schedule_on_stays_on() -> None:
    flow = example("schedule-event-driven.yaml")
    assert flow.schedule is not None
    assert isinstance(flow.schedule.on, OneEvent)


def test_flow_directives_and_switch_cases() -> None:
    switch = example("switch-then-string.yaml").do[0].value
    assert isinstance(switch, SwitchTask)
    assert [(n, c.when, c.then) for n, c in switch.switch][2] == (
        "default", None, "handleUnknownOrderType",
    )  # fmt: skip
    assert is_flow_directive("end")
    assert not is_flow_directive("processOrder")
    assert FlowDirective("exit") is FlowDirective.EXIT


def test_subflows_and_later_drafts_additions() -> None:
    run = example("run-subflow.yaml").do[0].value
    assert isinstance(run, RunTask)
    assert isinstance(run.run, RunWorkflow)
    assert run.run.workflow.version == "0.1.0"
    flow = workflow("""\
        evaluate: {mode: strict}
        do:
          - loop:
              for: {in: [{a: 1}]}
              do:
                - x: {set: {a: 1}}
          - guarded:
              try:
                - y: {set: {a: 1}}
              catch:
                then: loop
        """)
    assert flow.evaluate is not None
    assert flow.evaluate.language == "jq"
    loop = flow.do[0].value
    assert isinstance(loop, ForTask)
    assert loop.for_.in_ == [{"a": 1}]
    guarded = flow.do[1].value
    assert isinstance(guarded, TryTask)
    assert guarded.catch.then == "loop"


def test_models_are_immutable_and_keep_unknown_top_level_keys() -> None:
    flow = workflow("do:\n  - a: {do: []}\nx-owner: team\n")
    assert flow.model_extra == {"x-owner": "team"}
    task = flow.do[0].value
    assert isinstance(task, DoTask)
    assert len(task.do) == 0
    with pytest.raises(pydantic.ValidationError):
        task.then = "end"  # type: ignore[misc]
    assert flow.to_data() == {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "t", "version": "0.1.0"},
        "do": [{"a": {"do": []}}],
        "x-owner": "team",
    }
