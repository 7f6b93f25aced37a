"""`batonflow dataflow`: which services, models and people a workflow's data reaches, read from
the document (no run), as text, JSON and a UK GDPR Art. 30 record."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from batonflow.cli import app
from batonflow.cli._dataflow import dataflow
from batonflow.dsl import DslValidationError, load_document
from batonflow.dsl._dataflow.meta import load_dataflow_config
from batonflow.dsl._dataflow.paths import Reference, references
from batonflow.dsl._dataflow.record import record_of_processing
from batonflow.dsl._dataflow.report import DataflowReport, Flow, analyse_dataflow
from batonflow.errors import ConfigError

from .spec_kit import spec_files, spec_path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [*spec_files("v1.0.3", "examples"), *spec_files("main-4d42471", "examples")]
# (without the kit: two "spec-kit-missing" parameters, which skip, or fail in CI)

CLAIMS = """\
document:
  dsl: '1.0.3'
  namespace: insurance
  name: claims
  version: '2.0.0'
  title: Motor claims intake
  summary: Check a claim, score it, and have finance approve the payout.
  metadata:
    batonflow:
      subjects: ${ [.from] }
      retention: P6Y
      deadline: PT4H
      egress: [crm.example.test, '*.hooks.example.test']
      redact:
        persist: {detectors: [email, phone, iban], fields: [.card.number]}
        model: {detectors: [email]}
        steps: {classifyClaim: {fields: [.body]}}
input:
  schema:
    format: json
    document:
      type: object
      properties:
        from: {type: string}
        name: {type: string}
        body: {type: string}
        customerId: {type: string}
        amount: {type: number}
        items: {type: array}
do:
  - lookup:
      call: http
      with:
        method: get
        endpoint: https://crm.example.test/customers/{customerId}
        query: {email: '${ .from }'}
      output:
        as: '${ {customer: .content, claim: $input} }'
      export:
        as: '${ {callback: .customer.webhook} }'
  - score:
      input:
        from: '${ {who: .claim.name, text: .claim.body} }'
      call: http
      with:
        method: post
        endpoint: https://scoring.other.test/score
        body: {applicant: '${ .who }'}
      output:
        as: '${ $input }'
  - checks:
      do:
        - parallel:
            fork:
              branches:
                - notifyHook:
                    call: http
                    with:
                      method: post
                      endpoint: '${ $context.callback }'
                      body: {status: received}
                - guarded:
                    try:
                      - classifyClaim:
                          call: classify
                          with:
                            text: '${ .text }'
                            labels: [fraud, ordinary]
                            provider: claude
                    catch:
                      as: failure
                      do:
                        - tellStaff:
                            call: email
                            with:
                              to: claims@insurer.example.test
                              subject: Classification failed
                              body: '${ "Error: \\($failure.detail) re \\($workflow.input.from)" }'
  - review:
      call: approval
      with:
        title: '${ "Pay out \\($workflow.input.amount)?" }'
        approvers: {groups: [finance]}
        quorum: 2
        expires_in: P2D
        on_expiry: {escalate: {groups: [finance-leads], expires_in: P1D}}
        data: '${ {amount: $workflow.input.amount} }'
  - eachItem:
      for:
        each: line
        in: '${ $workflow.input.items }'
      do:
        - postItem:
            call: http
            with:
              method: post
              endpoint: https://crm.example.test/items
              body: '${ {sku: $line.sku} }'
  - archive:
      run:
        shell:
          command: tar czf /tmp/claim.tgz .
          environment: {CLAIMANT: '${ $workflow.input.name }'}
  - announce:
      emit:
        event:
          with:
            source: https://insurer.example.test/claims
            type: test.insurer.claim.received.v1
            data: {customer: '${ $workflow.input.customerId }'}
"""

CONFIG = """\
[providers.claude]
kind = "anthropic"
model = "claude-sonnet-4-5"
api_key_env = "ANTHROPIC_API_KEY"

[governance.egress]
allow = ["api.anthropic.com"]

[governance.retention]
claims = "P10Y"

[email]
host = "smtp.insurer.example.test"
port = 587
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the `batonflow` logger; give other tests theirs back."""
    logger = logging.getLogger("batonflow")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def analyse(tmp_path: Path, text: str, *, config: str | None = None) -> DataflowReport:
    settings = load_dataflow_config(write(tmp_path, "config.toml", config)) if config else None
    return analyse_dataflow(load_document(write(tmp_path, "flow.yaml", text)), config=settings)


def flow(report: DataflowReport, task: str, kind: str | None = None) -> Flow:
    found = [f for f in report.flows if f.task == task and (kind is None or f.kind == kind)]
    assert len(found) == 1, [f.to_dict() for f in report.flows]
    return found[0]


def codes(report: DataflowReport) -> list[tuple[str, str | None]]:
    return [(f.code, f.pointer) for f in report.flags]


def run_cli(*args: str | Path) -> Result:
    """The command through the real CLI once the lead registers it, else on a one-command app."""
    target = app
    if not any(c.name == "dataflow" for c in app.registered_commands):
        target = typer.Typer()
        target.callback()(lambda: None)
        target.command("dataflow")(dataflow)
    return CliRunner().invoke(target, ["dataflow", *map(str, args)])


# -- the jq reference finder ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("${ .from }", [Reference(".", ("from",))]),
        ("${ .a[0].b }", [Reference(".", ("a", "[0]", "b"))]),
        ('${ .["x y"].z }', [Reference(".", ("x y", "z"))]),
        ("${ $input.x }", [Reference("$input", ("x",))]),
        ("${ $context.y.z }", [Reference("$context", ("y", "z"))]),
        ('${ "Dear \\(.name), re \\(.subject)" }', [Reference(".", ("name",)),
                                                    Reference(".", ("subject",))]),
        ("${ {from, label: .data.label} }", [Reference(".", ("from",)),
                                             Reference(".", ("data", "label"))]),
        ("${ tojson }", [Reference(".")]),
        ("${ .. }", [Reference(".")]),
        ("${ now }", []),
        ('${ "no fields here" }', []),
        ("${ 1.5 + .a }", [Reference(".", ("a",))]),
        ('(.subject + " " + .body) | test("x"; "i")', [Reference(".", ("subject",)),
                                                        Reference(".", ("body",))]),
        (". as $x | $x.a", [Reference("."), Reference("$x", ("a",))]),
    ],
)  # fmt: skip
def test_references_are_found_without_evaluating(
    expression: str, expected: list[Reference]
) -> None:
    assert references(expression) == expected


# -- the spec's examples and the repository's ------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_spec_example_is_analysed(path: Path | None) -> None:
    path = path or spec_path("v1.0.3", "examples")
    report = analyse_dataflow(load_document(path))
    document = report.to_dict()
    assert json.loads(json.dumps(document)) == document  # JSON all the way down
    assert document["format"] == "batonflow-dataflow/1"
    assert "Record of processing activities (UK GDPR Art. 30)" in record_of_processing(report)


def test_star_wars_example_follows_the_exported_homeworld() -> None:
    report = analyse_dataflow(load_document(spec_path("v1.0.3", "examples",
                                                      "star-wars-homeworld.yaml")))  # fmt: skip
    character = flow(report, "getStarWarsCharacter")
    assert (character.kind, character.target, character.fields) == ("http", "swapi.dev", (".id",))
    assert character.details["method"] == "GET"
    homeworld = flow(report, "getStarWarsHomeworld")
    assert homeworld.target == "dynamic host from ${ $context.homeworld }"
    assert homeworld.details["dynamic"] is True
    assert homeworld.other == ("response of getStarWarsCharacter",)
    assert ("dynamic-host", "/do/1/getStarWarsHomeworld") in codes(report)


def test_fork_example_sends_patient_and_room_to_both_branches() -> None:
    report = analyse_dataflow(load_document(spec_path("v1.0.3", "examples", "fork.yaml")))
    for task in ("callNurse", "callDoctor"):
        sent = flow(report, task)
        assert sent.target == "fake-hospital.com"
        assert sent.fields == (".patient.fullName", ".room.number")
    assert flow(report, "callDoctor").pointer == "/do/0/raiseAlarm/fork/branches/1/callDoctor"


def test_interpolated_endpoint_keeps_its_static_host() -> None:
    path = spec_path("v1.0.3", "examples", "call-http-endpoint-interpolation.yaml")
    report = analyse_dataflow(load_document(path))
    get_pet = flow(report, "getPet")
    assert (get_pet.target, get_pet.fields, get_pet.line) == ("petstore.swagger.io", (".petId",), 7)
    assert "dynamic-host" not in [code for code, _ in codes(report)]


def test_examples_with_processes_and_private_hosts_are_flagged() -> None:
    mcp = analyse_dataflow(load_document(spec_path("v1.0.3", "examples", "call-mcp.yaml")))
    assert flow(mcp, "publishMessageToSlack").target == "local process: npx"
    assert [f.severity for f in mcp.flags if f.code == "process"] == ["high"]
    grpc = analyse_dataflow(load_document(spec_path("v1.0.3", "examples", "call-grpc.yaml")))
    assert flow(grpc, "greet").target == "localhost:5011"
    assert flow(grpc, "greet").fields == (".user.preferredDisplayName",)
    assert ("egress-private", "/do/0/greet") in codes(grpc)
    [private] = [f for f in grpc.flags if f.code == "egress-private"]
    assert private.severity == "high"
    assert "localhost is a loopback name" in private.message


def test_oauth2_authority_is_a_recipient_of_credentials() -> None:
    path = spec_path("v1.0.3", "examples", "authentication-oauth2.yaml")
    report = analyse_dataflow(load_document(path))
    auth = flow(report, "getPet", "auth")
    assert (auth.target, auth.other) == ("keycloak", ("client credentials",))
    assert flow(report, "getPet", "http").target == "petstore.swagger.io"


def test_function_defined_in_use_is_analysed_at_its_call() -> None:
    path = spec_path("v1.0.3", "examples", "call-custom-function-inline.yaml")
    report = analyse_dataflow(load_document(path))
    call = report.flows[0]
    assert (call.kind, call.target, call.via) == ("http", "petstore.swagger.io", "/do/0/getPet")
    assert call.pointer == "/use/functions/getPetById"


def test_subflow_is_analysed_when_its_document_is_given(tmp_path: Path) -> None:
    child = write(tmp_path, "register.yaml", """\
document: {dsl: '1.0.3', namespace: test, name: register-customer, version: '0.1.0'}
do:
  - save:
      call: http
      with: {method: post, endpoint: https://crm.example.test/customers, body: '${ .customer }'}
""")  # fmt: skip
    parent = write(tmp_path, "parent.yaml", """\
document: {dsl: '1.0.3', namespace: test, name: parent, version: '0.1.0'}
do:
  - registerCustomer:
      run:
        workflow:
          namespace: test
          name: register-customer
          version: '0.1.0'
          input: {customer: '${ .user }'}
""")  # fmt: skip
    alone = analyse_dataflow(load_document(parent))
    assert ("subflow-not-analysed", "/do/0/registerCustomer") in codes(alone)
    report = analyse_dataflow(load_document(parent), documents=[load_document(child)])
    assert flow(report, "registerCustomer").details["resolved"] is True
    save = flow(report, "save")
    assert (save.target, save.fields, save.via) == (
        "crm.example.test",
        (".user",),
        "/do/0/registerCustomer",
    )
    assert save.source == str(child)
    assert "subflow-not-analysed" not in [code for code, _ in codes(report)]


def test_host_from_a_secret_is_noted_not_flagged_as_data_driven(tmp_path: Path) -> None:
    report = analyse(tmp_path, """\
document: {dsl: '1.0.3', namespace: t, name: crm, version: '1.0.0'}
do:
  - log:
      call: http
      with:
        method: post
        endpoint: '${ $secrets.crm_url + "/enquiries" }'
        body: {from: '${ .from }'}
  - notify:
      call: email
      with: {to: '${ .from }', subject: Thanks, body: We have your message.}
""")  # fmt: skip
    log = flow(report, "log")
    assert (log.target, log.fields, log.other) == (
        "host from secret crm_url",
        (".from",),
        ("$secrets.crm_url",),
    )
    assert [(f.severity, f.code) for f in report.flags if f.pointer == "/do/0/log"] == [
        ("info", "secret-host")
    ]
    assert flow(report, "notify").target == "to: the address in ${ .from }"
    assert flow(report, "notify").details["dynamic_recipients"] is True
    record = record_of_processing(report)
    assert "$secrets" not in record.split("### Data sent")[0]  # a secret is not personal data


def test_enquiry_example(tmp_path: Path) -> None:
    report = analyse_dataflow(load_document(REPO / "examples" / "enquiry.yaml"))
    assert report.input_fields == (".body", ".from", ".subject")
    record = flow(report, "record")
    assert (record.kind, record.target, record.fields, record.line) == (
        "emit",
        "org.example.enquiry.classified.v1",
        (".from",),
        39,
    )
    assert [f.code for f in report.flags] == ["no-retention", "no-subjects"]


# -- a document using every feature ---------------------------------------------------------


def test_fields_are_traced_through_output_input_and_export(tmp_path: Path) -> None:
    report = analyse(tmp_path, CLAIMS)
    lookup = flow(report, "lookup")
    assert (lookup.target, lookup.fields, lookup.details["method"]) == (
        "crm.example.test",
        (".customerId", ".from"),
        "GET",
    )
    score = flow(report, "score")  # input.from renamed .claim.name (the raw input's .name)
    assert (score.fields, score.other, score.details["method"]) == ((".name",), (), "POST")
    hook = flow(report, "notifyHook")  # the callback came from the CRM's answer, via $context
    assert hook.target == "dynamic host from ${ $context.callback }"
    assert hook.other == ("response of lookup",)
    assert flow(report, "postItem").fields == (".items[].sku",)
    assert flow(report, "announce").fields == (".customerId",)


def test_egress_list_of_the_workflow_alone_narrows(tmp_path: Path) -> None:
    report = analyse(tmp_path, CLAIMS)
    off_list = [f for f in report.flags if f.code == "egress-not-allowed"]
    assert [(f.severity, f.pointer, f.line) for f in off_list] == [("high", "/do/1/score", 41)]
    assert off_list[0].message == (
        "score: scoring.other.test is not on the workflow's own egress list: the call will be"
        " refused"
    )
    assert (report.egress_global, report.egress) == (
        None,
        ("crm.example.test", "*.hooks.example.test"),
    )
    assert ("dynamic-host", "/do/2/checks/do/0/parallel/fork/branches/0/notifyHook") in codes(
        report
    )


def test_egress_with_the_global_policy_flags_refused_hosts(tmp_path: Path) -> None:
    report = analyse(tmp_path, CLAIMS, config=CONFIG)
    off_list = [f for f in report.flags if f.code == "egress-not-allowed"]
    # the operator allows only the model's host: the workflow's own list cannot add the CRM
    assert [(f.severity, f.pointer) for f in off_list] == [
        ("high", "/do/0/lookup"),
        ("high", "/do/1/score"),
        ("high", "/do/4/eachItem/do/0/postItem"),
    ]
    assert off_list[0].message == (
        "lookup: crm.example.test is not on the egress allow-list: the call will be refused"
    )
    wider = [f.message.split(" asks")[0] for f in report.flags if f.code == "egress-wider"]
    assert wider == ["egress: 'crm.example.test'", "egress: '*.hooks.example.test'"]
    assert report.egress_global == ("api.anthropic.com",)
    assert report.block_private is True


def test_without_a_global_egress_table_any_public_host_passes(tmp_path: Path) -> None:
    report = analyse(tmp_path, CLAIMS, config="[governance.retention]\nclaims = 'P1Y'\n")
    assert report.egress_global == ("*",)
    # ... but the workflow's own list narrows it: only the scoring host is off that list
    flagged = [(f.code, f.pointer) for f in report.flags if f.code.startswith("egress")]
    assert flagged == [("egress-not-allowed", "/do/1/score")]


def test_model_call_without_config_names_the_provider_only(tmp_path: Path) -> None:
    report = analyse(tmp_path, CLAIMS)
    model = flow(report, "classifyClaim")
    assert model.kind == "model"
    assert model.fields == (".body",)
    assert model.details["provider"] == "claude"
    assert model.target == "provider 'claude' from the providers config (not given)"
    assert model.pointer.endswith("/guarded/try/0/classifyClaim")


def test_config_resolves_vendor_smtp_and_global_egress(tmp_path: Path) -> None:
    report = analyse(tmp_path, CLAIMS, config=CONFIG)
    model = flow(report, "classifyClaim")
    assert model.target == "Anthropic (api.anthropic.com)"
    [vendor] = model.details["vendors"]
    assert vendor["model"] == "claude-sonnet-4-5"
    assert vendor["transfer"] == "depends on provider region: check"
    assert "api.anthropic.com" in report.egress
    mail = flow(report, "tellStaff")
    assert mail.details["smtp"] == "smtp.insurer.example.test:587"
    assert mail.target == "to: claims@insurer.example.test"
    assert mail.fields == (".from",)
    assert mail.other == ("error caught by guarded",)
    # SMTP does not go through the HTTP egress client: its host is a recipient, not a flag
    assert "/do/1/score" in [f.pointer for f in report.flags if f.code == "egress-not-allowed"]


def test_unknown_provider_in_config_is_flagged(tmp_path: Path) -> None:
    report = analyse(tmp_path, CLAIMS.replace("provider: claude", "provider: gpt"), config=CONFIG)
    assert flow(report, "classifyClaim").target == "unknown provider 'gpt'"
    assert any(f.code == "unknown-provider" and f.severity == "high" for f in report.flags)


def test_approval_processes_and_governance(tmp_path: Path) -> None:
    report = analyse(tmp_path, CLAIMS)
    review = flow(report, "review")
    assert review.target == "groups finance"
    assert review.fields == (".amount",)
    assert review.details["quorum"] == 2
    assert review.details["expires_in"] == "P2D"
    assert review.details["on_expiry"] == {"escalate": {"groups": ["finance-leads"],
                                                        "expires_in": "P1D"}}  # fmt: skip
    archive = flow(report, "archive")
    assert (archive.kind, archive.target, archive.fields) == (
        "process",
        "shell: tar czf /tmp/claim.tgz .",
        (".name",),
    )
    assert ("process", "/do/5/archive") in codes(report)
    gov = report.governance
    assert (gov.subjects, gov.retention, gov.deadline) == ("${ [.from] }", "P6Y", "PT4H")
    assert gov.persist is not None
    assert gov.persist.fields == (".card.number",)
    assert "no-retention" not in [code for code, _ in codes(report)]
    assert (report.retention, report.retention_source) == ("P6Y", "document")


def test_retention_from_the_config_when_the_document_has_none(tmp_path: Path) -> None:
    text = CLAIMS.replace("      retention: P6Y\n", "")
    report = analyse(tmp_path, text, config=CONFIG)
    assert (report.retention, report.retention_source) == ("P10Y", str(tmp_path / "config.toml"))
    assert "no-retention" not in [code for code, _ in codes(report)]
    assert "no-retention" in [code for code, _ in codes(analyse(tmp_path, text))]
    record = record_of_processing(report)
    assert "run data retained for P10Y, then purged by `batonflow purge` (from " in record


def test_json_structure(tmp_path: Path) -> None:
    document = analyse(tmp_path, CLAIMS).to_dict()
    assert list(document) == [
        "format", "file", "config", "workflow", "input_fields", "subjects", "retention",
        "retention_source", "deadline", "egress", "redaction", "flows", "flags",
    ]  # fmt: skip
    assert document["workflow"]["title"] == "Motor claims intake"
    rule = {"detectors": [], "fields": [".body"], "keep": None}
    assert document["redaction"]["steps"] == {"classifyClaim": {"persist": rule, "model": rule}}
    assert document["egress"] == {
        "workflow": ["crm.example.test", "*.hooks.example.test"],
        "global": None,
        "block_private": None,
    }
    assert set(document["flows"][0]) == {
        "kind", "task", "pointer", "file", "line", "target", "fields", "other", "details", "via"
    }  # fmt: skip


def test_a_conditional_task_may_pass_its_input_on(tmp_path: Path) -> None:
    report = analyse(tmp_path, """\
document: {dsl: '1.0.3', namespace: t, name: maybe, version: '1.0.0'}
do:
  - narrow:
      if: '${ .short }'
      set: {text: '${ .summary }'}
  - send:
      call: http
      with: {method: post, endpoint: 'https://crm.example.test/x', body: '${ .text }'}
""")  # fmt: skip
    # skipped, the whole input goes on, and `.text` of it is the input's own `.text`
    assert flow(report, "send").fields == (".summary", ".text")


def test_switch_jumps_join_what_each_branch_made(tmp_path: Path) -> None:
    report = analyse(tmp_path, """\
document: {dsl: '1.0.3', namespace: t, name: jumps, version: '1.0.0'}
do:
  - route:
      switch:
        - vip: {when: '${ .vip }', then: vipPath}
        - other: {then: plain}
  - vipPath:
      set: {who: '${ .name }'}
      then: send
  - plain:
      set: {who: '${ .email }'}
  - send:
      call: http
      with: {method: post, endpoint: 'https://crm.example.test/x', body: '${ .who }'}
""")  # fmt: skip
    assert flow(report, "send").fields == (".email", ".name")


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "pointer", "message"),
    [
        ("retention: six years", "/document/metadata/batonflow/retention", "ISO 8601"),
        ("egress: crm.example.test", "/document/metadata/batonflow/egress", "host names"),
        ("subjects: '${ [.from }'", "/document/metadata/batonflow/subjects", "compile"),
        ("colour: blue", "/document/metadata/batonflow/colour", "unknown setting"),
        ("redact: {persist: {fields: [card]}}", "/document/metadata/batonflow/redact",
         "bad path 'card'"),
        ("redact: {model: {detectors: [dna]}}", "/document/metadata/batonflow/redact",
         "unknown detector 'dna'"),
    ],
)  # fmt: skip
def test_bad_governance_settings_are_errors_at_their_line(
    tmp_path: Path, setting: str, pointer: str, message: str
) -> None:
    text = f"""\
document:
  dsl: '1.0.3'
  namespace: t
  name: bad
  version: '1.0.0'
  metadata:
    batonflow:
      {setting}
do:
  - a: {{set: {{x: 1}}}}
"""
    with pytest.raises(DslValidationError) as caught:
        analyse(tmp_path, text)
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == (pointer, 8)
    assert message in problem.message


def test_redaction_of_a_task_that_does_not_exist_is_flagged(tmp_path: Path) -> None:
    report = analyse(tmp_path, """\
document:
  dsl: '1.0.3'
  namespace: t
  name: odd
  version: '1.0.0'
  metadata:
    batonflow:
      retention: P30D
      redact:
        steps: {nosuch: {fields: [.x]}, a: {keep: [.y]}}
do:
  - a: {set: {x: 1}}
""")  # fmt: skip
    assert [(f.code, f.line) for f in report.flags] == [("unknown-step", 10)]
    assert report.governance.steps["a"]["model"].keep == (".y",)


def test_bad_config_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", "[governance]\negress = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad.toml: governance.egress: expected a table"):
        load_dataflow_config(path)
    path = write(tmp_path, "bad2.toml", "[providers.x]\nkind = 'nope'\n")
    with pytest.raises(ConfigError, match=r"providers.x.kind"):
        load_dataflow_config(path)


# -- the command ------------------------------------------------------------------------------


def test_cli_text(tmp_path: Path) -> None:
    result = run_cli(write(tmp_path, "claims.yaml", CLAIMS))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "insurance/claims 2.0.0" in out
    assert "run data retained for P6Y, then purged by `batonflow purge`" in out
    assert "crm.example.test" in out
    assert "scoring.other.test" in out
    assert "People deciding" in out
    assert "groups finance" in out
    assert "high: score: scoring.other.test is not on the workflow's own egress list" in out


def test_cli_json(tmp_path: Path) -> None:
    path = write(tmp_path, "claims.yaml", CLAIMS)
    result = run_cli(path, "--format", "json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    assert document == analyse_dataflow(load_document(path)).to_dict()
    assert document["retention"] == "P6Y"
    assert [f["task"] for f in document["flows"] if f["kind"] == "model"] == ["classifyClaim"]
    assert json.loads(run_cli(path, "--json").stdout) == document


def test_cli_markdown_is_an_art_30_record(tmp_path: Path) -> None:
    flow_file = write(tmp_path, "claims.yaml", CLAIMS)
    config = write(tmp_path, "batonflow.toml", CONFIG)
    result = run_cli(flow_file, "--format", "markdown", "--config", config)
    assert result.exit_code == 0, result.output
    md = result.stdout
    assert md.startswith("## Record of processing activities (UK GDPR Art. 30)\n")
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ", 1)[1]
        for line in md.splitlines()
        if line.startswith("| ") and " | " in line
    }
    assert rows["Purpose"].startswith(
        "Motor claims intake: Check a claim, score it, and have finance approve the payout."
    )
    assert rows["Data subjects"].startswith("identified in each run's input by `${ [.from] }`")
    assert "`.amount`, `.body`, `.customerId`, `.from`" in rows["Categories of personal data"]
    assert "redacts: email, iban, phone" in rows["Categories of personal data"]
    assert "services: crm.example.test, scoring.other.test" in rows["Recipients"]
    assert "model providers: Anthropic (api.anthropic.com)" in rows["Recipients"]
    assert (
        "Anthropic (api.anthropic.com): depends on provider region: check"
        in rows["International transfers"]
    )
    assert rows["Retention"].startswith(
        "run data retained for P6Y, then purged by `batonflow purge`"
    )
    security = rows["Security measures"]
    assert "redaction before storage (email, phone, iban, `.card.number`)" in security
    assert (
        "egress allow-list: crm.example.test, *.hooks.example.test, api.anthropic.com" in security
    )
    assert "encrypted with the subject's own key" in security
    decisions = rows["Human decision points (Art. 22)"]
    assert (
        "human approval at `review` (line 79) by groups finance, quorum 2, expires P2D" in decisions
    )
    assert "on expiry escalate to groups finance-leads, expires P1D" in decisions
    assert "automated processing by models at `classifyClaim` (classify)" in decisions
    assert "| `score` | http | scoring.other.test | `.name` | - | 41 |" in md
    assert "- **high** (egress-not-allowed, line 41): score: scoring.other.test" in md
    assert "private and loopback addresses blocked" in security


def test_cli_markdown_without_retention_says_so(tmp_path: Path) -> None:
    result = run_cli(REPO / "examples" / "enquiry.yaml", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "| Retention | **no retention set: run data is kept until deleted**" in result.stdout
    assert "| `record` | emit | org.example.enquiry.classified.v1 | `.from` | - | 39 |" in (
        result.stdout
    )


def test_cli_invalid_document_reports_like_validate(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", """\
document: {dsl: '1.0.3', namespace: t, name: bad, version: '1.0.0'}
do:
  - a:
      call: http
      with: {endpoint: 'https://x.example.test'}
""")  # fmt: skip
    result = run_cli(bad)
    validated = CliRunner().invoke(app, ["validate", str(bad)])
    problems = [line for line in validated.stdout.splitlines() if line.startswith(str(bad))]
    assert problems
    assert problems[0].startswith(f"{bad}:5:")
    assert result.exit_code == validated.exit_code == 2
    for line in problems:
        assert line in result.stderr
    assert result.stdout == ""


def test_cli_bad_config_and_missing_file(tmp_path: Path) -> None:
    flow_file = write(tmp_path, "claims.yaml", CLAIMS)
    result = run_cli(flow_file, "--config", tmp_path / "nope.toml")
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'nope.toml'}: no such file" in result.stderr
    missing = run_cli(tmp_path / "absent.yaml")
    assert missing.exit_code == 2
    assert "absent.yaml: no such file" in missing.stderr
