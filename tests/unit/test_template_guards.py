"""template.yaml's guards: alarms that reach someone and miss nothing, bounded concurrency, storage that survives."""

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from adserve.core.errors import ConfigurationError
from adserve.core.observability import MetricName
from adserve.outcomes.api import RejectionCode
from adserve.training.retraining import RetrainStatus
from adserve.wiring.settings import RetrainSettings

from devstack.template import Template, load_template, resources_of_type
from tests.support.metric_math import alarm_value

ROOT = Path(__file__).parents[2]
RUNBOOK = ROOT / "RUNBOOK.md"
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resources(template: Template) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template["Resources"]
    return resources


def alarm(resources: dict[str, dict[str, Any]], logical_id: str) -> dict[str, Any]:
    assert resources[logical_id]["Type"] == "AWS::CloudWatch::Alarm"
    properties: dict[str, Any] = resources[logical_id]["Properties"]
    return properties


def dimensions(properties: dict[str, Any]) -> dict[str, Any]:
    return {dimension["Name"]: dimension["Value"] for dimension in properties["Dimensions"]}


# ------------------------------------------------------------ alarm destination


def test_the_alarm_email_is_required_and_must_be_an_address(template: Template) -> None:
    parameter = template["Parameters"]["AlarmEmail"]
    assert "Default" not in parameter
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch("oncall@example.com")
    for not_an_address in ("", " ", "oncall", "oncall@", "@example.com", "on call@example.com"):
        assert not pattern.fullmatch(not_an_address), not_an_address


def test_the_alarm_topic_always_has_the_email_subscription(resources: dict[str, dict[str, Any]]) -> None:
    subscription = resources["AlarmEmailSubscription"]
    assert "Condition" not in subscription
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def test_the_alarm_topic_key_lets_cloudwatch_alarms_publish(resources: dict[str, dict[str, Any]]) -> None:
    key_ref = resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    assert key_ref == {"Ref": "AlarmTopicKey"}, "an AWS-managed key (alias/aws/sns) cannot be shared with CloudWatch"
    key = resources["AlarmTopicKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    [cloudwatch] = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Effect"] == "Allow"
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


# ------------------------------------------------------------------ concurrency


def test_record_concurrency_is_bounded_by_a_parameter(template: Template, resources: dict[str, Any]) -> None:
    parameter = template["Parameters"]["RecordMaximumConcurrency"]
    assert parameter["MinValue"] == 2  # the least SQS event sources accept
    assert 2 <= parameter["Default"] <= parameter["MaxValue"] <= 1000
    event = resources["RecordFunction"]["Properties"]["Events"]["Outcomes"]
    assert event["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RecordMaximumConcurrency"}}


@pytest.mark.parametrize(
    ("parameter", "condition", "value"),
    [
        (
            "DecideReservedConcurrency",
            "HasDecideReservedConcurrency",
            {"Fn::If": ["HasDecideReservedConcurrency", {"Ref": "DecideReservedConcurrency"}, {"Ref": "AWS::NoValue"}]},
        ),
        (
            "DecideProvisionedConcurrency",
            "HasDecideProvisionedConcurrency",
            {
                "Fn::If": [
                    "HasDecideProvisionedConcurrency",
                    {"ProvisionedConcurrentExecutions": {"Ref": "DecideProvisionedConcurrency"}},
                    {"Ref": "AWS::NoValue"},
                ]
            },
        ),
    ],
)
def test_decide_concurrency_options_default_to_off(
    template: Template, resources: dict[str, Any], parameter: str, condition: str, value: dict[str, Any]
) -> None:
    assert template["Parameters"][parameter]["Default"] == 0
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, "0"]}]}
    properties = resources["DecideFunction"]["Properties"]
    option = "ReservedConcurrentExecutions" if "Reserved" in parameter else "ProvisionedConcurrencyConfig"
    assert properties[option] == value


def test_snapstart_is_an_option_off_by_default_on_published_versions_and_never_with_provisioned_concurrency(
    template: Template, resources: dict[str, Any]
) -> None:
    parameter = template["Parameters"]["DecideSnapStart"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("None", ["None", "PublishedVersions"])
    properties = resources["DecideFunction"]["Properties"]
    assert properties["SnapStart"] == {"ApplyOn": {"Ref": "DecideSnapStart"}}
    assert properties["AutoPublishAlias"]  # SnapStart snapshots published versions only
    assert template["Globals"]["Function"]["Runtime"] >= "python3.12"  # SnapStart for Python starts at 3.12
    rule = template["Rules"]["SnapStartOrProvisionedConcurrency"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "DecideSnapStart"}, "PublishedVersions"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "DecideProvisionedConcurrency"}, "0"]}


def rule_holds(expression: Any, parameters: dict[str, str]) -> bool:
    """A CloudFormation rule condition or assertion over string parameter values (the functions rules use here)."""
    [(function, arguments)] = expression.items()
    if function == "Ref":
        raise ValueError("a bare Ref is not a condition")
    if function == "Fn::Not":
        return not rule_holds(arguments[0], parameters)
    if function == "Fn::Equals":
        left, right = (parameters[a["Ref"]] if isinstance(a, dict) else a for a in arguments)
        return bool(left == right)
    raise ValueError(f"{function} is not evaluated here")


@pytest.mark.parametrize("refit", ["true", "false"])
def test_the_template_refuses_exactly_the_cross_fitting_retrain_refuses(template: Template, refit: str) -> None:
    """A stack whose every scheduled Retrain would fail on its settings is refused at deploy time instead."""
    rule = template["Rules"]["CrossFittingNeedsTheRefitAndTwoFolds"]
    folds = template["Parameters"]["TrainingCrossFitFolds"]
    required = {"LOGS_BUCKET_NAME": "logs", "MODELS_BUCKET_NAME": "models", "MODEL_DIR": "/opt/model"}
    for count in range(folds["MinValue"], folds["MaxValue"] + 1):
        parameters = {"TrainingCrossFitFolds": str(count), "TrainingRefitOnAll": refit}
        deployable = not rule_holds(rule["RuleCondition"], parameters) or all(
            rule_holds(assertion["Assert"], parameters) for assertion in rule["Assertions"]
        )
        environment = {"TRAINING_CROSS_FIT_FOLDS": str(count), "TRAINING_REFIT_ON_ALL": refit}
        try:
            RetrainSettings.from_env(required | environment)
            runs = True
        except ConfigurationError:
            runs = False
        assert deployable == runs, parameters


def test_a_failed_retrain_is_not_retried(resources: dict[str, Any]) -> None:
    properties = resources["RetrainFunction"]["Properties"]
    assert properties["EventInvokeConfig"]["MaximumRetryAttempts"] == 0  # Lambda's async retries
    [schedule] = properties["Events"].values()
    assert schedule["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] == 0  # EventBridge's


# ------------------------------------------------------------------------ alarms


@pytest.mark.parametrize(
    ("logical_id", "metric", "service"),
    [
        ("DecisionLogFailuresAlarm", "DecisionLogFailures", "decide"),
        ("EventsNotQueuedAlarm", "EventsNotQueued", "track"),
    ],
)
def test_lost_records_alarm(resources: dict[str, Any], logical_id: str, metric: str, service: str) -> None:
    properties = alarm(resources, logical_id)
    assert (properties["Namespace"], properties["MetricName"]) == ("Adserve", metric)
    assert dimensions(properties) == {"service": service}
    assert properties["Statistic"] == "Sum"
    assert properties["TreatMissingData"] == "notBreaching"


def test_failed_key_reloads_page_whichever_function_and_key(resources: dict[str, Any]) -> None:
    # A Track batch whose keys cannot be read answers every event "failed" with a 202: no 5xx, no EventsNotQueued
    properties = alarm(resources, "KeyRefreshFailuresAlarm")
    watched = {
        (query["MetricStat"]["Metric"]["MetricName"], dimensions(query["MetricStat"]["Metric"])["service"])
        for query in properties["Metrics"]
        if "MetricStat" in query
    }
    assert watched == {
        ("SigningKeyRefreshFailures", "track"),
        ("SigningKeyRefreshFailures", "decide"),
        ("PseudonymKeyRefreshFailures", "decide"),
    }
    [summed] = [query for query in properties["Metrics"] if query.get("ReturnData")]
    assert summed["Expression"] == "FILL(track, 0) + FILL(decide, 0) + FILL(pseudonyms, 0)"


def test_record_duration_alarm_fires_well_before_the_timeout(resources: dict[str, Any]) -> None:
    properties = alarm(resources, "RecordDurationAlarm")
    assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", "Duration")
    assert dimensions(properties) == {"FunctionName": {"Ref": "RecordFunction"}}
    timeout_ms = resources["RecordFunction"]["Properties"]["Timeout"] * 1000
    assert properties["Threshold"] <= timeout_ms / 2


def test_retrain_stale_alarm_counts_every_publishing_outcome_and_breaches_on_silence(
    resources: dict[str, Any],
) -> None:
    properties = alarm(resources, "RetrainStaleAlarm")
    stats = [query["MetricStat"] for query in properties["Metrics"] if "MetricStat" in query]
    outcomes = set()
    for stat in stats:
        metric = stat["Metric"]
        assert (metric["Namespace"], metric["MetricName"]) == ("Adserve", "RetrainOutcome")
        named = {dimension["Name"]: dimension["Value"] for dimension in metric["Dimensions"]}
        assert named["service"] == "retrain"
        outcomes.add(named["outcome"])
        assert stat["Period"] * properties["EvaluationPeriods"] == 24 * 60 * 60
    assert outcomes == set(get_args(RetrainStatus)) - {"skipped"}
    [expression] = [query for query in properties["Metrics"] if "Expression" in query]
    assert expression["ReturnData"] is True
    assert all(f"FILL({query['Id']}, 0)" in expression["Expression"] for query in properties["Metrics"][:-1])
    assert properties["ComparisonOperator"] == "LessThanThreshold"
    assert properties["Threshold"] == 1
    assert properties["TreatMissingData"] == "breaching"


def test_the_dashboard_shows_every_rejection_reason(resources: dict[str, Any]) -> None:
    body = json.loads(resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])
    [widget] = [w for w in body["widgets"] if w.get("properties", {}).get("title") == "Tracking events"]
    rows: list[list[str]] = []
    for entry in widget["properties"]["metrics"]:
        fields = [field for field in entry if isinstance(field, str)]
        rows.append([rows[-1][i] if field == "." else field for i, field in enumerate(fields)])
    rejected = {tuple(row[2:]) for row in rows if row[1] == "EventsRejected"}
    assert rejected == {("service", "track", "reason", code.value) for code in RejectionCode}


@pytest.mark.parametrize(
    ("function", "alarms"),
    [
        ("DecideFunction", {"DecideCanaryErrorsAlarm", "DecideCanaryLatencyAlarm"}),
        ("TrackFunction", {"TrackCanaryErrorsAlarm"}),
    ],
)
def test_canary_rollback_watches_only_the_new_version(
    resources: dict[str, Any], function: str, alarms: set[str]
) -> None:
    # Lambda's metrics of the new version, the 500s it answered (UnhandledErrors: Lambda counts them as
    # successes), and the failures it answered gracefully, each of the new version
    prefix = function.removesuffix("Function")
    unhandled, degraded = f"{prefix}CanaryUnhandledErrorsAlarm", f"{prefix}CanaryDegradedAlarm"
    preference = resources[function]["Properties"]["DeploymentPreference"]
    assert {alarm_ref["Ref"] for alarm_ref in preference["Alarms"]} == alarms | {unhandled, degraded}
    new_version = {
        "FunctionName": {"Ref": function},
        "Resource": {"Fn::Sub": f"${{{function}}}:live"},
        "ExecutedVersion": {"Fn::GetAtt": [function, "Version.Version"]},
    }
    for logical_id in alarms:
        properties = alarm(resources, logical_id)
        assert properties["Namespace"] == "AWS/Lambda"
        assert dimensions(properties) == new_version
        assert properties["TreatMissingData"] == "notBreaching"
    properties = alarm(resources, unhandled)
    service = resources[function]["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert (properties["Namespace"], properties["MetricName"]) == ("Adserve", MetricName.UNHANDLED_ERRORS.value)
    version = {"Fn::GetAtt": [function, "Version.Version"]}
    assert dimensions(properties) == {"service": service, "version": version}
    assert properties["TreatMissingData"] == "notBreaching"
    # the degraded alarm reads the new version's calls and degraded invocations, and the function's
    properties = alarm(resources, degraded)
    read = {query["Id"]: query["MetricStat"]["Metric"] for query in properties["Metrics"] if "MetricStat" in query}
    assert (read["new_calls"]["MetricName"], dimensions(read["new_calls"])) == ("Invocations", new_version)
    assert (read["all_calls"]["MetricName"], dimensions(read["all_calls"])) == (
        "Invocations",
        {"FunctionName": {"Ref": function}},
    )
    for query_id, metric_dimensions in (
        ("new_degraded", {"service": service, "version": version}),
        ("all_degraded", {"service": service}),
    ):
        assert (read[query_id]["Namespace"], read[query_id]["MetricName"]) == (
            "Adserve",
            MetricName.DEGRADED_INVOCATIONS.value,
        )
        assert dimensions(read[query_id]) == metric_dimensions
    expressions = " ".join(query["Expression"] for query in properties["Metrics"] if "Expression" in query)
    assert all(re.search(rf"\b{query_id}\b", expressions) for query_id in read), "every metric read is used"
    # 2 of 3 minutes: the latest minute's counts may be incomplete, FILLed to 0
    assert (properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == (3, 2)
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert properties["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("function", ["DecideFunction", "TrackFunction"])
@pytest.mark.parametrize(
    ("new", "old", "alarmed"),
    [
        # (invocations, degraded invocations) of the new version and of the rest, in one minute
        pytest.param((100, 100), (900, 0), True, id="the new version degrades every call"),
        pytest.param((100, 10), (900, 9), True, id="10 percent against 1"),
        pytest.param((100, 5), (900, 9), False, id="5 percent against 1: under 5 points more"),
        pytest.param((500, 45), (500, 5), True, id="9 percent against 1 on half the calls: the rest's own share"),
        pytest.param((100, 100), (900, 900), False, id="both degrade alike: a store's outage"),
        pytest.param((2, 2), (900, 0), False, id="two degraded calls are too few to judge"),
        pytest.param((1000, 1000), (0, 0), False, id="no other version to compare with (AllAtOnce)"),
        pytest.param((0, 0), (900, 900), False, id="no call of the new version"),
        pytest.param((100, 10), (0, 0), False, id="no call of the rest in that minute"),
    ],
)
def test_the_degraded_canary_compares_the_new_versions_share_with_the_rests(
    resources: dict[str, Any], function: str, new: tuple[int, int], old: tuple[int, int], alarmed: bool
) -> None:
    queries = alarm(resources, function.removesuffix("Function") + "CanaryDegradedAlarm")["Metrics"]
    (new_calls, new_degraded), (old_calls, old_degraded) = new, old
    metrics: dict[str, float | None] = {  # a metric with nothing to count has no data point
        "new_calls": new_calls or None,
        "all_calls": (new_calls + old_calls) or None,
        "new_degraded": new_degraded or None,
        "all_degraded": (new_degraded + old_degraded) or None,
    }
    assert alarm_value(queries, metrics) == float(alarmed)


# ----------------------------------------------------------------------- storage


def test_tables_refuse_deletion(resources: dict[str, Any]) -> None:
    tables = {logical_id for logical_id, resource in resources.items() if resource["Type"] == "AWS::DynamoDB::Table"}
    assert len(tables) == 4
    for logical_id in tables:
        assert resources[logical_id]["Properties"]["DeletionProtectionEnabled"] is True, logical_id


@pytest.mark.parametrize("logical_id", ["OutcomesQueue", "OutcomesDeadLetterQueue", "SigningKeySecret"])
def test_queued_records_and_the_signing_key_outlive_the_stack(resources: dict[str, Any], logical_id: str) -> None:
    assert resources[logical_id]["DeletionPolicy"] == "Retain"
    assert resources[logical_id]["UpdateReplacePolicy"] == "Retain"


def test_every_queue_refuses_plain_http(template: Template) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    covered: set[str] = set()
    for policy in resources_of_type(template, "AWS::SQS::QueuePolicy").values():
        properties = policy["Properties"]
        [deny] = properties["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny"
        assert deny["Principal"] == "*"
        assert deny["Action"] == "sqs:*"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        named = {queue["Ref"] for queue in properties["Queues"]}
        assert {resource["Fn::GetAtt"][0] for resource in deny["Resource"]} == named
        covered |= named
    assert covered == set(queues)


# -------------------------------------------------------------------------- docs


def test_every_alarm_links_to_a_runbook_section(template: Template) -> None:
    sections = set(re.findall(r"^## (\S+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE))
    for logical_id, resource in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        anchors = re.findall(r"RUNBOOK\.md#([a-z0-9-]+)", resource["Properties"]["AlarmDescription"])
        assert anchors, logical_id
        assert set(anchors) <= sections, f"{logical_id}: no RUNBOOK.md section {anchors}"


def test_every_parameter_is_documented_in_the_deploy_section(template: Template) -> None:
    readme = README.read_text(encoding="utf-8")
    deploy = readme.split("\n## Deploy to AWS\n", 1)[1].split("\n## ", 1)[0]
    for name in template["Parameters"]:
        assert f"`{name}`" in deploy, f"README.md's deploy section does not document {name}"
