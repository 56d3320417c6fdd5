"""Static checks of template.yaml (no AWS, no SAM CLI)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from adserve.dal.erasure_store import LEGACY_LEDGER_PREFIX

from devstack.template import Template, load_template, resources_of_type

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
FOURTEEN_DAYS = 14 * 24 * 60 * 60


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE_PATH)


def _functions(template: Template) -> dict[str, dict[str, Any]]:
    return resources_of_type(template, "AWS::Serverless::Function")


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# ------------------------------------------------------------------ loader


def test_loader_converts_short_form_tags(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n"
        "  A:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      R: !Ref B\n"
        "      G: !GetAtt B.Arn\n"
        "      GL: !GetAtt [B, Arn]\n"
        "      S: !Sub '${B}-x'\n"
        "      I: !If [C, !Ref B, !Ref AWS::NoValue]\n"
        "      J: !Join ['', [a, !Ref B]]\n"
        "      K: !Condition C\n"
        "      V: 2012-10-17\n",
        encoding="utf-8",
    )
    props = load_template(path)["Resources"]["A"]["Properties"]
    assert props["R"] == {"Ref": "B"}
    assert props["G"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert props["GL"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert props["S"] == {"Fn::Sub": "${B}-x"}
    assert props["I"] == {"Fn::If": ["C", {"Ref": "B"}, {"Ref": "AWS::NoValue"}]}
    assert props["J"] == {"Fn::Join": ["", ["a", {"Ref": "B"}]]}
    assert props["K"] == {"Condition": "C"}
    assert props["V"] == "2012-10-17"


def test_loader_rejects_unknown_tag(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("A: !Bogus x\n", encoding="utf-8")
    with pytest.raises(yaml.YAMLError, match="unknown CloudFormation tag"):
        load_template(path)


def test_resources_of_type(template: Template) -> None:
    assert set(resources_of_type(template, "AWS::DynamoDB::Table")) == {
        "CampaignsTable",
        "DeliveryTable",
        "FrequencyCapsTable",
        "PacingTable",
    }
    assert resources_of_type(template, "AWS::Nothing::Here") == {}


# ------------------------------------------------------------------ globals


def test_is_a_sam_template(template: Template) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_global_runtime_and_architecture(template: Template) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    # onnxruntime aborts at import on arm64 Lambda (microsoft/onnxruntime#10038).
    assert function_globals["Architectures"] == ["x86_64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}, {"Ref": "ModelLayer"}]


def test_no_function_overrides_runtime_or_architecture(template: Template) -> None:
    for logical_id, function in _functions(template).items():
        props = function["Properties"]
        assert props.get("Runtime", "python3.13") == "python3.13", logical_id
        assert props.get("Architectures", ["x86_64"]) == ["x86_64"], logical_id


def test_every_function_skips_pydantic_plugin_discovery(template: Template) -> None:
    """A cold start's first model would scan every installed package's metadata for plugins; none are used."""
    assert template["Globals"]["Function"]["Environment"]["Variables"]["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    assert not list(importlib.metadata.entry_points(group="pydantic"))


def test_environment_values_are_strings(template: Template) -> None:
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    for function in _functions(template).values():
        variables.update(function["Properties"].get("Environment", {}).get("Variables", {}))
    for name, value in variables.items():
        assert isinstance(value, str | dict), f"{name}={value!r} must be a string (or an intrinsic)"


# ---------------------------------------------------------------- functions


def test_every_function_has_code_handler_and_own_policies(template: Template) -> None:
    functions = _functions(template)
    assert {"DecideFunction", "CampaignsFunction"} <= set(functions)
    for logical_id, function in functions.items():
        props = function["Properties"]
        assert props.get("CodeUri"), logical_id
        assert props.get("Handler") == "app.lambda_handler", logical_id
        assert (ROOT / props["CodeUri"]).is_dir(), logical_id
        assert props.get("Policies"), f"{logical_id} needs its own least-privilege policies"
        assert "Role" not in props, f"{logical_id} must not share a role"


def test_decide_function(template: Template) -> None:
    props = _functions(template)["DecideFunction"]["Properties"]
    assert props["Timeout"] == 3
    env = props["Environment"]["Variables"]
    assert env["CAMPAIGNS_TABLE_NAME"] == {"Ref": "CampaignsTable"}
    assert env["FREQUENCY_CAPS_TABLE_NAME"] == {"Ref": "FrequencyCapsTable"}
    assert env["OUTCOMES_QUEUE_URL"] == {"Ref": "OutcomesQueue"}
    assert env["SIGNING_KEY_SECRET_ID"] == {"Ref": "SigningKeySecret"}
    assert env["MODEL_DIR"] == "/opt/model"
    assert env["POWERTOOLS_SERVICE_NAME"] == "decide"


def test_campaigns_function(template: Template) -> None:
    props = _functions(template)["CampaignsFunction"]["Properties"]
    env = props["Environment"]["Variables"]
    assert env["CAMPAIGNS_TABLE_NAME"] == {"Ref": "CampaignsTable"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "campaigns"
    assert env["DELIVERY_TABLE_NAME"] == {"Ref": "DeliveryTable"}


def test_record_function_counts_delivery(template: Template) -> None:
    props = _functions(template)["RecordFunction"]["Properties"]
    assert props["Environment"]["Variables"]["DELIVERY_TABLE_NAME"] == {"Ref": "DeliveryTable"}


def test_http_routes(template: Template) -> None:
    routes: dict[tuple[str, str], str] = {}
    for logical_id, function in _functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                assert event["Properties"]["ApiId"] == {"Ref": "AdserveHttpApi"}
                routes[(event["Properties"]["Method"], event["Properties"]["Path"])] = logical_id
    assert routes == {
        ("POST", "/v1/decisions"): "DecideFunction",
        ("POST", "/v1/decisions/explain"): "DecideFunction",
        ("PUT", "/v1/campaigns/{campaign_id}"): "CampaignsFunction",
        ("GET", "/v1/campaigns/{campaign_id}"): "CampaignsFunction",
        ("DELETE", "/v1/campaigns/{campaign_id}"): "CampaignsFunction",
        ("GET", "/v1/campaigns"): "CampaignsFunction",
        ("GET", "/v1/campaigns/{campaign_id}/delivery"): "CampaignsFunction",
        ("GET", "/v1/openapi.json"): "CampaignsFunction",
        ("GET", "/v1/events/{event_type}"): "TrackFunction",
        ("POST", "/v1/events"): "TrackFunction",
        ("POST", "/v1/erasures"): "ListenersFunction",
    }


ACCOUNT_ROOT = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}


def test_no_wildcard_iam_actions(template: Template) -> None:
    """Allow statements name their actions; a Deny may be broad (e.g. deny s3:* without TLS).

    The one exception is a key policy's grant to this account's root, KMS's default statement: it grants no
    one anything by itself, it lets this account's IAM policies decide who may use and manage the key.
    """
    for node in _walk(template["Resources"]):
        if "Action" not in node or node.get("Effect") == "Deny":
            continue
        if node.get("Principal") == ACCOUNT_ROOT and node["Action"] == "kms:*":
            continue
        actions = node["Action"] if isinstance(node["Action"], list) else [node["Action"]]
        for action in actions:
            assert action != "*", node
            assert not (isinstance(action, str) and action.endswith(":*")), node


# ------------------------------------------------------------------- layers


def test_layers_build_with_makefile(template: Template) -> None:
    layers = resources_of_type(template, "AWS::Serverless::LayerVersion")
    assert set(layers) == {"SharedLayer", "ModelLayer"}
    for logical_id, layer in layers.items():
        assert layer["Metadata"]["BuildMethod"] == "makefile", logical_id
        props = layer["Properties"]
        assert props["CompatibleRuntimes"] == ["python3.13"], logical_id
        assert props["CompatibleArchitectures"] == ["x86_64"], logical_id
        makefile = ROOT / props["ContentUri"] / "Makefile"
        assert f"build-{logical_id}:" in makefile.read_text(encoding="utf-8"), logical_id


# -------------------------------------------------------------- data stores


@pytest.mark.parametrize("logical_id", ["CampaignsTable", "FrequencyCapsTable"])
def test_tables(template: Template, logical_id: str) -> None:
    table = resources_of_type(template, "AWS::DynamoDB::Table")[logical_id]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_table_keys(template: Template) -> None:
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    assert tables["CampaignsTable"]["Properties"]["KeySchema"] == [{"AttributeName": "campaign_id", "KeyType": "HASH"}]
    assert tables["FrequencyCapsTable"]["Properties"]["KeySchema"] == [
        {"AttributeName": "listener_id", "KeyType": "HASH"},
        {"AttributeName": "counter_key", "KeyType": "RANGE"},
    ]


def test_outcomes_queue_redrives_to_dlq(template: Template) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    redrive = queues["OutcomesQueue"]["Properties"]["RedrivePolicy"]
    dlq_id, attribute = redrive["deadLetterTargetArn"]["Fn::GetAtt"]
    assert (dlq_id, attribute) == ("OutcomesDeadLetterQueue", "Arn")
    assert redrive["maxReceiveCount"] >= 5
    assert queues[dlq_id]["Properties"]["MessageRetentionPeriod"] == FOURTEEN_DAYS


def test_queues_are_encrypted(template: Template) -> None:
    for logical_id, queue in resources_of_type(template, "AWS::SQS::Queue").items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, logical_id


def test_signing_key_is_generated(template: Template) -> None:
    secret = resources_of_type(template, "AWS::SecretsManager::Secret")["SigningKeySecret"]["Properties"]
    assert "SecretString" not in secret
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32


def test_outputs(template: Template) -> None:
    outputs = template["Outputs"]
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${AdserveHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    }
    assert outputs["CampaignsTableName"]["Value"] == {"Ref": "CampaignsTable"}
    assert outputs["FrequencyCapsTableName"]["Value"] == {"Ref": "FrequencyCapsTable"}
    assert outputs["OutcomesQueueUrl"]["Value"] == {"Ref": "OutcomesQueue"}


def test_training_logs_expire_after_the_retention_parameter_and_the_erasure_ledgers_pseudonyms_never(
    template: Template,
) -> None:
    """Logs expire after LogRetentionDays (default 90, at least the 7 days training reads); the ledger entries
    (erasures/) must outlive every row they drop, and the catalog snapshots (catalogs/) every row that names
    them, so no rule may expire either."""
    parameter = template["Parameters"]["LogRetentionDays"]
    assert (parameter["Default"], parameter["MinValue"]) == (90, 7)
    rules = template["Resources"]["LogsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    logs = [rule for rule in rules if rule["Prefix"] == "logs/"]
    assert [rule["ExpirationInDays"] for rule in logs] == [{"Ref": "LogRetentionDays"}]
    assert all(
        rule["Prefix"] and not any(kept.startswith(rule["Prefix"]) for kept in ("erasures/", "catalogs/"))
        for rule in rules
    )
    # but the unkeyed hashes of rows from before pseudonyms expire as those rows do: kept, they would let anyone
    # who can list the bucket test a list of ids for erasure requests
    legacy = [rule for rule in rules if rule["Prefix"] == LEGACY_LEDGER_PREFIX]
    assert [rule["ExpirationInDays"] for rule in legacy] == [{"Ref": "LogRetentionDays"}]
