"""The local stack's reading of template.yaml: every resource, resolved environments, every route. No AWS."""

from pathlib import Path
from typing import Any

import pytest

from devstack.intrinsics import UnresolvableError
from devstack.routing import Router
from devstack.stack_description import LOCAL_RESOURCE_TYPES, StackDescription, describe_stack, parameter_values
from devstack.template import load_template, resources_of_type

TEMPLATE = Path(__file__).parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def stack() -> StackDescription:
    return describe_stack(TEMPLATE, stack_name="adserve-test")


def test_every_table_queue_bucket_and_secret_is_created_locally(
    template: dict[str, Any], stack: StackDescription
) -> None:
    expected = {
        logical_id: resource_type
        for resource_type in LOCAL_RESOURCE_TYPES
        for logical_id in resources_of_type(template, resource_type)
    }
    assert {logical_id: r.resource_type for logical_id, r in stack.resources.items()} == expected
    for logical_id, resource in stack.resources.items():
        assert resource.physical_name.lower() == f"adserve-test-{logical_id}".lower()


def test_dead_letter_queues_are_created_before_the_queues_that_use_them(stack: StackDescription) -> None:
    order = [resource.logical_id for resource in stack.creation_order()]
    for resource in stack.resources.values():
        for dependency in resource.depends_on & stack.resources.keys():
            assert order.index(dependency) < order.index(resource.logical_id)


def test_function_environments_name_the_local_resources(template: dict[str, Any], stack: StackDescription) -> None:
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    for logical_id, function in resources_of_type(template, "AWS::Serverless::Function").items():
        declared = {**globals_env, **function["Properties"].get("Environment", {}).get("Variables", {})}
        resolved = stack.functions[logical_id].environment
        assert resolved.keys() == declared.keys()
        for name, value in declared.items():
            if isinstance(value, dict) and value.get("Ref") in template["Parameters"]:
                assert resolved[name] == str(template["Parameters"][value["Ref"]]["Default"]), name
            elif isinstance(value, dict) and "Ref" in value:
                assert resolved[name].endswith(stack.physical_name(value["Ref"])), name
            elif not isinstance(value, dict):
                assert resolved[name] == str(value), name


def test_a_parameter_given_replaces_its_default_where_the_template_refers_to_it() -> None:
    rates = '{"EUR": 1.08, "SEK": 0.095}'
    described = describe_stack(TEMPLATE, stack_name="adserve-test", parameters={"ExchangeRates": rates})
    for function in ("DecideFunction", "PacingFunction"):
        assert described.functions[function].environment["EXCHANGE_RATES"] == rates


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ({"NoSuchParameter": "1"}, "no parameter NoSuchParameter"),
        ({"ExchangeRates": "{"}, "a JSON object"),  # AllowedPattern, with its ConstraintDescription
        ({"ExplorationPolicy": "thompson"}, "not one of squarecb, epsilon_greedy"),  # AllowedValues
        ({"PacingMaxAgeSeconds": "5"}, "under its MinValue 120"),  # a Number's bounds
        ({"PacingMaxAgeSeconds": "five minutes"}, "not a number"),
        ({"PacingMaxAgeSeconds": "nan"}, "not a number"),  # float() reads it, and it passes every bound
        ({"PacingMaxAgeSeconds": "1_000"}, "not a number"),
    ],
)
def test_a_parameter_the_template_would_refuse_is_refused_as_a_deploy_would_be(
    template: dict[str, Any], given: dict[str, str], refusal: str
) -> None:
    with pytest.raises(ValueError, match=refusal):
        parameter_values(template, given)


def test_functions_point_at_their_code(stack: StackDescription) -> None:
    for function in stack.functions.values():
        assert function.module_file.is_file(), function.logical_id
        assert function.timeout_seconds > 0
        assert function.memory_mb >= 128


def test_routes_cover_every_http_api_event(template: dict[str, Any], stack: StackDescription) -> None:
    declared = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"], logical_id)
        for logical_id, function in resources_of_type(template, "AWS::Serverless::Function").items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    assert {(route.method, route.path, route.function_id) for route in stack.routes} == declared


@pytest.mark.parametrize(
    ("method", "path", "route_key", "parameters"),
    [
        ("GET", "/v1/campaigns", "GET /v1/campaigns", {}),
        ("GET", "/v1/campaigns/cmp-1", "GET /v1/campaigns/{campaign_id}", {"campaign_id": "cmp-1"}),
        ("DELETE", "/v1/campaigns/a%20b", "DELETE /v1/campaigns/{campaign_id}", {"campaign_id": "a b"}),
        ("POST", "/v1/decisions", "POST /v1/decisions", {}),
    ],
)
def test_requests_match_the_template_routes(
    stack: StackDescription, method: str, path: str, route_key: str, parameters: dict[str, str]
) -> None:
    match = Router(stack.routes).match(method, path)
    assert match is not None
    assert (match.route.route_key, match.path_parameters) == (route_key, parameters)


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/v1/campaigns"), ("GET", "/v1/decisions"), ("GET", "/v1/campaigns/a/b"), ("GET", "/")],
)
def test_unknown_routes_and_other_methods_do_not_match(stack: StackDescription, method: str, path: str) -> None:
    assert Router(stack.routes).match(method, path) is None


def test_sqs_events_are_described_as_event_source_mappings(template: dict[str, Any], stack: StackDescription) -> None:
    declared = {
        (logical_id, name): event["Properties"]
        for logical_id, function in resources_of_type(template, "AWS::Serverless::Function").items()
        for name, event in function["Properties"].get("Events", {}).items()
        if event["Type"] == "SQS"
    }
    described = {(source.function_id, source.event_name): source for source in stack.sqs_event_sources}
    assert described.keys() == declared.keys()
    for key, properties in declared.items():
        source = described[key]
        assert properties["Queue"] == {"Fn::GetAtt": [source.queue_id, "Arn"]}
        assert stack.resources[source.queue_id].resource_type == "AWS::SQS::Queue"
        assert source.batch_size == properties.get("BatchSize", 10)
        assert source.maximum_batching_window_seconds == properties.get("MaximumBatchingWindowInSeconds", 0)
        assert source.function_response_types == tuple(properties.get("FunctionResponseTypes", ()))
        assert source.enabled
    record = described[("RecordFunction", "Outcomes")]
    assert (record.queue_id, record.batch_size, record.reports_batch_item_failures) == ("OutcomesQueue", 100, True)
    default_concurrency = template["Parameters"]["RecordMaximumConcurrency"]["Default"]
    assert record.maximum_concurrency == default_concurrency  # ScalingConfig's !Ref, resolved


SQS_EVENT_TEMPLATE = """
Resources:
  Work:
    Type: AWS::SQS::Queue
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker/
      Handler: app.handler
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: {queue}
{extra}
"""


def test_sqs_event_sources_take_lambdas_defaults(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(SQS_EVENT_TEMPLATE.format(queue="!GetAtt Work.Arn", extra="            Enabled: false"))
    (source,) = describe_stack(path).sqs_event_sources
    assert (source.function_id, source.event_name, source.queue_id) == ("Worker", "Work", "Work")
    assert (source.batch_size, source.maximum_batching_window_seconds, source.function_response_types) == (10, 0, ())
    assert not source.reports_batch_item_failures
    assert not source.enabled
    assert source.maximum_concurrency is None


def test_an_sqs_event_on_a_queue_outside_the_template_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(SQS_EVENT_TEMPLATE.format(queue="arn:aws:sqs:us-east-1:123456789012:elsewhere", extra=""))
    with pytest.raises(UnresolvableError, match="Worker event Work"):
        describe_stack(path)


def test_every_route_but_the_beacon_requires_iam(stack: StackDescription) -> None:
    # The template's API has DefaultAuthorizer AWS_IAM; only the beacon opts out with Authorizer: NONE.
    public = {route.route_key for route in stack.routes if not route.requires_iam}
    assert public == {"GET /v1/events/{event_type}"}


AUTH_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  HttpApi:
    Auth:
      EnableIamAuthorizer: true
      DefaultAuthorizer: AWS_IAM
Resources:
  OpenApi:
    Type: AWS::Serverless::HttpApi
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        EnableIamAuthorizer: true
        DefaultAuthorizer: AWS_IAM
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/worker/
      Handler: app.handler
      Events:
        Default:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /default}
        Opted:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /open, Auth: {Authorizer: NONE}}
        Implicit:
          Type: HttpApi
          Properties: {Method: GET, Path: /implicit}
        OtherApi:
          Type: HttpApi
          Properties: {ApiId: !Ref OpenApi, Method: GET, Path: /other}
"""


def test_requires_iam_follows_the_event_then_its_api_then_the_globals(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(AUTH_TEMPLATE)
    routes = {route.path: route.requires_iam for route in describe_stack(path).routes}
    assert routes == {"/default": True, "/open": False, "/implicit": True, "/other": True}
