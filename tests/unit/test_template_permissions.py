"""Each function's role allows exactly the AWS calls its code makes, on exactly the resources it makes them on.

The expected grants are read off the code (the dal classes each function's wiring builds); a grant widened in
template.yaml, or a SAM policy template (which brings actions nobody calls), fails here.
"""

import re
from pathlib import Path
from typing import Any

import pytest

from devstack.template import Template, load_template, resources_of_type

ROOT = Path(__file__).parents[2]

Grant = tuple[str, str]
"""(IAM action, resource) with the resource written as ``LogicalId`` or ``LogicalId/<object key pattern>``."""

EXPECTED: dict[str, set[Grant]] = {
    # wiring/decide.py: the catalog Scan, one caps Query, the decision record and its catalog snapshot, the
    # signing and pseudonym keys, the models.
    "DecideFunction": {
        ("dynamodb:Scan", "CampaignsTable"),
        ("dynamodb:Scan", "PacingTable"),
        ("dynamodb:Query", "FrequencyCapsTable"),
        ("sqs:SendMessage", "OutcomesQueue"),
        ("s3:PutObject", "LogsBucket/catalogs/*"),
        ("secretsmanager:GetSecretValue", "SigningKeySecret"),
        ("secretsmanager:GetSecretValue", "PseudonymKeySecret"),
        ("s3:GetObject", "ModelsBucket/models/*"),
        ("s3:ListBucket", "ModelsBucket"),
    },
    # CampaignStore.put, get, delete, list_campaigns (put and delete transact with the ad id claims, and a stale
    # claim's takeover checks its campaign); DynamoDeliveryStore.hourly and lifetime for reports, keeping (in the
    # delete's transaction), keeps_currency_of (a create's check) and deleted_campaign for a deleted campaign's;
    # DynamoPacingStore.get for the report's serve probability and status.
    "CampaignsFunction": {
        ("dynamodb:PutItem", "CampaignsTable"),
        ("dynamodb:GetItem", "CampaignsTable"),
        ("dynamodb:DeleteItem", "CampaignsTable"),
        ("dynamodb:ConditionCheckItem", "CampaignsTable"),
        ("dynamodb:Scan", "CampaignsTable"),
        ("dynamodb:Query", "DeliveryTable"),
        ("dynamodb:BatchGetItem", "DeliveryTable"),
        ("dynamodb:PutItem", "DeliveryTable"),
        ("dynamodb:ConditionCheckItem", "DeliveryTable"),
        ("dynamodb:GetItem", "DeliveryTable"),
        ("dynamodb:GetItem", "PacingTable"),
    },
    # OutcomeQueue.publish and publish_batch (SendMessageBatch needs sqs:SendMessage), the signing key.
    "TrackFunction": {
        ("sqs:SendMessage", "OutcomesQueue"),
        ("secretsmanager:GetSecretValue", "SigningKeySecret"),
    },
    # wiring/record.py: campaigns (Scan), the impression and delivery transactions (Puts and Updates), the
    # request counts (Updates), the logs.
    "RecordFunction": {
        ("dynamodb:Scan", "CampaignsTable"),
        ("dynamodb:PutItem", "FrequencyCapsTable"),
        ("dynamodb:UpdateItem", "FrequencyCapsTable"),
        ("dynamodb:PutItem", "DeliveryTable"),
        ("dynamodb:UpdateItem", "DeliveryTable"),
        ("s3:PutObject", "LogsBucket/logs/*"),
    },
    # wiring/retrain.py: list and read the logs and the catalog snapshots they name; read the pointer and
    # champion, publish, write the pointer.
    "RetrainFunction": {
        ("s3:ListBucket", "LogsBucket"),
        ("s3:GetObject", "LogsBucket/logs/*"),
        ("s3:GetObject", "LogsBucket/catalogs/*"),
        ("s3:ListBucket", "ModelsBucket"),
        ("s3:GetObject", "ModelsBucket/models/*"),
        ("s3:PutObject", "ModelsBucket/models/*"),
    },
    # wiring/listeners.py: one listener's partitions queried (keys only) and batch-deleted, the ledger entry
    # put (conditionally) under erasures/, the pseudonym keys.
    "ListenersFunction": {
        ("dynamodb:Query", "FrequencyCapsTable"),
        ("dynamodb:BatchWriteItem", "FrequencyCapsTable"),
        ("s3:PutObject", "LogsBucket/erasures/*"),
        ("secretsmanager:GetSecretValue", "PseudonymKeySecret"),
    },
    # wiring/pacing.py: campaigns (Scan); delivery hourly, lifetime and request counts; states read and written.
    "PacingFunction": {
        ("dynamodb:Scan", "CampaignsTable"),
        ("dynamodb:Query", "DeliveryTable"),
        ("dynamodb:BatchGetItem", "DeliveryTable"),
        ("dynamodb:Scan", "PacingTable"),
        ("dynamodb:PutItem", "PacingTable"),
    },
}

# Granted by the former SAM policy templates and called by no function.
NEVER: set[str] = {
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "s3:DeleteObject",
    "s3:PutObjectAcl",
    "s3:PutLifecycleConfiguration",
}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def functions(template: Template) -> dict[str, dict[str, Any]]:
    return resources_of_type(template, "AWS::Serverless::Function")


def resource_name(resource: Any) -> str:
    """``LogicalId`` for ``!GetAtt X.Arn`` / ``!Ref X``; ``X/<key pattern>`` for ``!Sub ${X.Arn}/<key pattern>``."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn", resource
        return str(logical_id)
    if isinstance(resource, dict) and "Ref" in resource:
        return str(resource["Ref"])
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        arn, _, key = resource["Fn::Sub"].partition("/")
        assert re.fullmatch(r"\$\{\w+\.Arn\}", arn), resource
        assert key, f"a bucket ARN where an object key pattern belongs: {resource!r}"
        return f"{arn[2:-5]}/{key}"
    raise AssertionError(f"unscoped resource {resource!r}")


CURRENT_AND_PREVIOUS_KEYS: dict[str, Any] = {
    "StringEquals": {"secretsmanager:VersionStage": ["AWSCURRENT", "AWSPREVIOUS"]}
}
"""The condition on every read of the pseudonym key: a key two rotations old is unreadable to the functions."""


def grants(function: dict[str, Any]) -> set[Grant]:
    found: set[Grant] = set()
    for policy in function["Properties"]["Policies"]:
        assert set(policy) == {"Version", "Statement"}, f"not an inline policy document: {policy!r}"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow", statement
            # A condition can only narrow a grant; the one the reader knows is compared as the grant without it
            assert statement.get("Condition", CURRENT_AND_PREVIOUS_KEYS) == CURRENT_AND_PREVIOUS_KEYS, statement
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            found |= {(action, resource_name(resource)) for action in actions for resource in resources}
    return found


def test_every_function_is_listed(functions: dict[str, dict[str, Any]]) -> None:
    assert set(functions) == set(EXPECTED)


@pytest.mark.parametrize("logical_id", sorted(EXPECTED))
def test_each_function_is_granted_exactly_what_its_code_calls(
    functions: dict[str, dict[str, Any]], logical_id: str
) -> None:
    assert grants(functions[logical_id]) == EXPECTED[logical_id]


def test_policy_documents_use_the_current_policy_language(functions: dict[str, dict[str, Any]]) -> None:
    for logical_id, function in functions.items():
        for policy in function["Properties"]["Policies"]:
            assert policy["Version"] == "2012-10-17", logical_id


def test_only_erasure_deletes_counters_and_it_writes_nothing_but_the_ledger(
    functions: dict[str, dict[str, Any]],
) -> None:
    deleting = {
        logical_id
        for logical_id, function in functions.items()
        if ("dynamodb:BatchWriteItem", "FrequencyCapsTable") in grants(function)
    }
    assert deleting == {"ListenersFunction"}
    writes = {resource for action, resource in grants(functions["ListenersFunction"]) if action.startswith("s3:")}
    assert writes == {"LogsBucket/erasures/*"}


def test_decide_reads_only_one_listeners_counters(functions: dict[str, dict[str, Any]]) -> None:
    caps = {action for action, resource in grants(functions["DecideFunction"]) if resource == "FrequencyCapsTable"}
    assert caps == {"dynamodb:Query"}


def test_nothing_can_delete_or_reconfigure_data(functions: dict[str, dict[str, Any]]) -> None:
    for logical_id, function in functions.items():
        allowed = {action for action, _ in grants(function)}
        if logical_id == "CampaignsFunction":  # DELETE /v1/campaigns/{id} deletes one campaign item
            allowed.discard("dynamodb:DeleteItem")
        if logical_id == "ListenersFunction":  # POST /v1/erasures deletes one listener's counters
            allowed.discard("dynamodb:BatchWriteItem")
        assert not allowed & NEVER, logical_id


def test_the_pseudonym_key_is_read_at_its_current_and_previous_versions_only(
    functions: dict[str, dict[str, Any]],
) -> None:
    # Secrets Manager keeps a version whose labels moved on (it deletes them only past 100 versions): without the
    # condition, a role could read a key two rotations old, and pseudonyms under it would link to ids again
    reads = [
        statement
        for function in functions.values()
        for policy in function["Properties"].get("Policies", [])
        if isinstance(policy, dict)
        for statement in policy.get("Statement", [])
        if statement["Resource"] == {"Ref": "PseudonymKeySecret"}
    ]
    assert len(reads) == 2  # Decide and Listeners
    assert all(statement.get("Condition") == CURRENT_AND_PREVIOUS_KEYS for statement in reads)


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${B.Arn}"}},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${B.Arn}/k/*"}, "Condition": {}},
    ],
)
def test_the_reader_refuses_what_it_cannot_compare(statement: dict[str, Any]) -> None:
    function = {"Properties": {"Policies": [{"Version": "2012-10-17", "Statement": [statement]}]}}
    with pytest.raises(AssertionError):
        grants(function)


def test_the_reader_refuses_sam_policy_templates() -> None:
    function = {"Properties": {"Policies": [{"DynamoDBReadPolicy": {"TableName": {"Ref": "CampaignsTable"}}}]}}
    with pytest.raises(AssertionError, match="not an inline policy document"):
        grants(function)
