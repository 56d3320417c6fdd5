"""template.yaml keeps the operational promises: auth, alarms with actions, safe deploys, queue timing."""

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.template import Template, alarmed_metrics, load_template, resources_of_type

ROOT = Path(__file__).parents[2]
BEACON = ("GET", "/v1/events/{event_type}")


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def functions(template: Template) -> dict[str, dict[str, Any]]:
    return resources_of_type(template, "AWS::Serverless::Function")


def http_events(functions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        event["Properties"]
        for function in functions.values()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    ]


def test_the_api_demands_iam_auth_by_default(template: Template) -> None:
    auth = template["Resources"]["AdserveHttpApi"]["Properties"]["Auth"]
    assert auth["EnableIamAuthorizer"] is True
    assert auth["DefaultAuthorizer"] == "AWS_IAM"


def test_only_the_beacon_route_opts_out_of_auth(functions: dict[str, dict[str, Any]]) -> None:
    public = {
        (event["Method"], event["Path"])
        for event in http_events(functions)
        if event.get("Auth", {}).get("Authorizer") == "NONE"
    }
    assert public == {BEACON}


def test_every_function_has_its_own_role_and_scoped_policies(functions: dict[str, dict[str, Any]]) -> None:
    for logical_id, function in functions.items():
        properties = function["Properties"]
        assert "Role" not in properties, f"{logical_id} shares a role"
        assert properties["Policies"], logical_id
        for policy in properties["Policies"]:
            assert isinstance(policy, dict), f"{logical_id}: managed policy {policy!r} is not scoped"


def test_every_alarm_notifies_the_alarm_topic(template: Template) -> None:
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 14
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert "RUNBOOK.md#" in alarm["Properties"]["AlarmDescription"], logical_id


@pytest.mark.parametrize(
    "alarm",
    [
        "ApiServerErrorRateAlarm",
        "DecideLatencyAlarm",
        "OutcomesDeadLetterQueueDepthAlarm",
        "OutcomesQueueAgeAlarm",
        "FrequencyCapsTableThrottleAlarm",
        "ModelLoadFailuresAlarm",
        "CapCheckFailuresAlarm",
    ],
)
def test_the_named_alarms_exist(template: Template, alarm: str) -> None:
    assert template["Resources"][alarm]["Type"] == "AWS::CloudWatch::Alarm"


def test_every_function_has_error_and_throttle_alarms(template: Template, functions: dict[str, dict[str, Any]]) -> None:
    watched: dict[str, set[str]] = {}
    for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        for metric in alarmed_metrics(alarm):
            # Function-wide alarms only (the canary alarms watch one version of Decide and Track).
            if metric.get("Namespace") == "AWS/Lambda" and len(metric["Dimensions"]) == 1:
                [dimension] = metric["Dimensions"]
                watched.setdefault(dimension["Value"]["Ref"], set()).add(metric["MetricName"])
    for logical_id in functions:
        assert {"Errors", "Throttles"} <= watched.get(logical_id, set()), logical_id


def test_an_api_functions_errors_alarm_counts_the_500s_it_answered_itself(
    template: Template, functions: dict[str, dict[str, Any]]
) -> None:
    # Its handler answers any exception as a 500 and returns: Lambda counts that a success, so Errors alone never
    # paged for it (an erasure that failed that way among them)
    for logical_id, function in functions.items():
        if not any(event["Type"] == "HttpApi" for event in function["Properties"].get("Events", {}).values()):
            continue
        service = function["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        alarm = template["Resources"][logical_id.removesuffix("Function") + "ErrorsAlarm"]
        watched = {(metric["Namespace"], metric["MetricName"]) for metric in alarmed_metrics(alarm)}
        assert watched == {("AWS/Lambda", "Errors"), ("Adserve", "UnhandledErrors")}, logical_id
        [answered] = [metric for metric in alarmed_metrics(alarm) if metric["MetricName"] == "UnhandledErrors"]
        assert answered["Dimensions"] == [{"Name": "service", "Value": service}], logical_id


def test_every_table_has_a_throttle_alarm_and_is_on_the_dashboard(template: Template) -> None:
    throttled: dict[str, set[str]] = {}
    for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        for query in alarm["Properties"].get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "AWS/DynamoDB":
                [dimension] = metric["Dimensions"]
                throttled.setdefault(dimension["Value"]["Ref"], set()).add(metric["MetricName"])
    graphed = {(name, dimensions) for _, name, dimensions in dashboard_metrics(template)}
    for logical_id in resources_of_type(template, "AWS::DynamoDB::Table"):
        assert throttled.get(logical_id) == {"ReadThrottleEvents", "WriteThrottleEvents"}, logical_id
        for name in ("ReadThrottleEvents", "WriteThrottleEvents"):
            assert (name, ("TableName", f"${{{logical_id}}}")) in graphed, (logical_id, name)


def dashboard_metrics(template: Template) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every (namespace, metric, dimensions) the dashboard graphs, its rows' "." shorthand (the row above's value)
    filled in."""
    [dashboard] = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    graphed = []
    for widget in json.loads(dashboard["Properties"]["DashboardBody"]["Fn::Sub"])["widgets"]:
        above: list[str] = []
        for row in widget["properties"].get("metrics", []):
            if row[0] == "...":  # the row above again, with other options
                continue
            names = [part for part in row if isinstance(part, str)]
            names = [above[i] if part == "." and i < len(above) else part for i, part in enumerate(names)]
            graphed.append((names[0], names[1], tuple(names[2:])))
            above = names
    return graphed


@pytest.mark.parametrize("logical_id", ["DecideFunction", "TrackFunction"])
def test_user_facing_functions_deploy_gradually_and_roll_back_on_alarms(
    template: Template, functions: dict[str, dict[str, Any]], logical_id: str
) -> None:
    properties = functions[logical_id]["Properties"]
    assert properties["AutoPublishAlias"] == "live"
    preference = properties["DeploymentPreference"]
    assert preference["Type"] == {"Ref": "DeploymentStrategy"}
    assert preference["Alarms"]
    for alarm in preference["Alarms"]:
        assert template["Resources"][alarm["Ref"]]["Type"] == "AWS::CloudWatch::Alarm"


def test_every_consumed_queue_has_a_dlq_and_six_times_the_consumer_timeout(
    template: Template, functions: dict[str, dict[str, Any]]
) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    default_timeout = template["Globals"]["Function"]["Timeout"]
    consumed = 0
    for function in functions.values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            consumed += 1
            queue = queues[event["Properties"]["Queue"]["Fn::GetAtt"][0]]["Properties"]
            timeout = function["Properties"].get("Timeout", default_timeout)
            assert queue["VisibilityTimeout"] >= 6 * timeout
            assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5
            assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert consumed >= 1


def test_data_at_rest_is_encrypted_and_buckets_are_private(template: Template) -> None:
    for logical_id, table in resources_of_type(template, "AWS::DynamoDB::Table").items():
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True, logical_id
    for logical_id, queue in resources_of_type(template, "AWS::SQS::Queue").items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, logical_id
    policies = resources_of_type(template, "AWS::S3::BucketPolicy")
    for logical_id, bucket in resources_of_type(template, "AWS::S3::Bucket").items():
        properties = bucket["Properties"]
        assert all(properties["PublicAccessBlockConfiguration"].values()), logical_id
        assert properties["VersioningConfiguration"]["Status"] == "Enabled", logical_id
        assert properties["LifecycleConfiguration"]["Rules"], logical_id
        assert properties["BucketEncryption"], logical_id
        [policy] = [p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": logical_id}]
        [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_signing_key_is_generated_not_written_down(template: Template) -> None:
    secret = template["Resources"]["SigningKeySecret"]["Properties"]
    assert "GenerateSecretString" in secret
    assert "SecretString" not in secret
