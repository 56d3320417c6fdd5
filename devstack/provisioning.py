"""Create the template's tables, queues, buckets and secrets on an AWS endpoint (moto or another).

Each creator maps CloudFormation properties to the service API and returns the real references (a queue's
URL and ARN as the endpoint reports them), so the functions' environment points at what exists. A resource
left by an earlier run on a persistent endpoint is reused as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from devstack.intrinsics import ResourceReferences
from devstack.stack_description import BUCKET, QUEUE, SECRET, TABLE, LocalResource, StackDescription

__all__ = ["ProvisioningError", "create_resources"]

logger = logging.getLogger(__name__)


class ProvisioningError(RuntimeError):
    """A resource could not be created; the message names it and the endpoint's reason."""


Creator = Callable[[boto3.session.Session, LocalResource, Mapping[str, Any]], ResourceReferences]


def create_resources(
    description: StackDescription, session: boto3.session.Session, *, visibility_timeout_override: int | None = None
) -> dict[str, ResourceReferences]:
    """Create every local resource in dependency order; the real references of each, by logical ID.

    *visibility_timeout_override* replaces every queue's VisibilityTimeout (seconds), so that messages a
    function failed come back, and reach a dead-letter queue, in seconds rather than minutes locally.
    """
    created: dict[str, ResourceReferences] = {}
    for resource in description.creation_order():
        # Resolve against what exists so far, so a RedrivePolicy gets the dead-letter queue's real ARN.
        current = dataclasses.replace(description, references={**description.references, **created})
        properties = current.resolve(dict(resource.properties))
        if resource.resource_type == QUEUE and visibility_timeout_override is not None:
            properties["VisibilityTimeout"] = visibility_timeout_override
        try:
            created[resource.logical_id] = _CREATORS[resource.resource_type](session, resource, properties)
        except Exception as error:
            msg = f"could not create {resource.resource_type} {resource.logical_id} ({resource.physical_name}): {error}"
            raise ProvisioningError(msg) from error
        logger.debug("created %s %s", resource.resource_type, resource.physical_name)
    return created


def _create_table(
    session: boto3.session.Session, resource: LocalResource, properties: Mapping[str, Any]
) -> ResourceReferences:
    client = session.client("dynamodb")
    request: dict[str, Any] = {
        "TableName": resource.physical_name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
    }
    if properties.get("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST" or "ProvisionedThroughput" not in properties:
        request["BillingMode"] = "PAY_PER_REQUEST"
    else:
        request["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
    for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if properties.get(index_kind):
            request[index_kind] = [_index(index, request) for index in properties[index_kind]]
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    try:
        table = client.create_table(**request)["TableDescription"]
    except client.exceptions.ResourceInUseException:  # left by an earlier run on a persistent endpoint
        table = client.describe_table(TableName=resource.physical_name)["Table"]
    client.get_waiter("table_exists").wait(TableName=resource.physical_name, WaiterConfig={"Delay": 1})
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled") in (True, "true"):
        client.update_time_to_live(
            TableName=resource.physical_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )
    attributes = {"Arn": table["TableArn"]}
    if "LatestStreamArn" in table:
        attributes["StreamArn"] = table["LatestStreamArn"]
    return ResourceReferences(ref=resource.physical_name, attributes=attributes)


def _index(index: Mapping[str, Any], table_request: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"IndexName", "KeySchema", "Projection"}
    if "ProvisionedThroughput" in table_request:
        keep.add("ProvisionedThroughput")
    return {key: value for key, value in index.items() if key in keep}


# CloudFormation queue properties that are SQS attributes under the same name.
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def _create_queue(
    session: boto3.session.Session, resource: LocalResource, properties: Mapping[str, Any]
) -> ResourceReferences:
    client = session.client("sqs")
    attributes: dict[Any, str] = {
        name: _attribute_string(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties
    }
    try:
        url = client.create_queue(QueueName=resource.physical_name, Attributes=attributes)["QueueUrl"]
    except ClientError as error:
        # Left by an earlier run on a persistent endpoint with other attributes (say another visibility
        # timeout): take this run's, FifoQueue aside, which cannot change.
        if error.response.get("Error", {}).get("Code") not in _QUEUE_EXISTS_CODES:
            raise
        url = client.get_queue_url(QueueName=resource.physical_name)["QueueUrl"]
        attributes.pop("FifoQueue", None)
        if attributes:
            client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return ResourceReferences(ref=url, attributes={"Arn": arn, "QueueName": resource.physical_name, "QueueUrl": url})


_QUEUE_EXISTS_CODES = frozenset({"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"})


def _attribute_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _create_bucket(
    session: boto3.session.Session, resource: LocalResource, properties: Mapping[str, Any]
) -> ResourceReferences:
    client = session.client("s3")
    name = resource.physical_name
    region = session.region_name or "us-east-1"
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):  # left by an earlier run
        if region == "us-east-1":  # the one region that refuses a LocationConstraint
            client.create_bucket(Bucket=name)
        else:
            client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    versioning = (properties.get("VersioningConfiguration") or {}).get("Status")
    if versioning:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
    return ResourceReferences(
        ref=name,
        attributes={
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
        },
    )


def _create_secret(
    session: boto3.session.Session, resource: LocalResource, properties: Mapping[str, Any]
) -> ResourceReferences:
    client = session.client("secretsmanager")
    request: dict[str, Any] = {"Name": resource.physical_name, "SecretString": _secret_string(properties)}
    if properties.get("Description"):
        request["Description"] = properties["Description"]
    try:
        arn = client.create_secret(**request)["ARN"]
    except client.exceptions.ResourceExistsException:  # keep its value: tokens signed with it stay valid
        arn = client.describe_secret(SecretId=resource.physical_name)["ARN"]
    return ResourceReferences(ref=arn, attributes={"Id": arn})


def _secret_string(properties: Mapping[str, Any]) -> str:
    if "SecretString" in properties:
        return str(properties["SecretString"])
    options = properties.get("GenerateSecretString") or {}
    password = _generated_password(options)
    template = options.get("SecretStringTemplate")
    if template:
        document = json.loads(template)
        document[options["GenerateStringKey"]] = password
        return json.dumps(document)
    return password


def _generated_password(options: Mapping[str, Any]) -> str:
    """A random string honouring GenerateSecretString's length and character-class options."""
    classes = {
        "ExcludeLowercase": string.ascii_lowercase,
        "ExcludeUppercase": string.ascii_uppercase,
        "ExcludeNumbers": string.digits,
        "ExcludePunctuation": string.punctuation,
    }
    alphabet = "".join(chars for option, chars in classes.items() if options.get(option) not in (True, "true"))
    if options.get("IncludeSpace") in (True, "true"):
        alphabet += " "
    excluded = set(str(options.get("ExcludeCharacters", "")))
    alphabet = "".join(char for char in alphabet if char not in excluded)
    if not alphabet:
        raise ProvisioningError("GenerateSecretString excludes every character")
    length = int(options.get("PasswordLength", 32))
    return "".join(secrets.choice(alphabet) for _ in range(length))


_CREATORS: dict[str, Creator] = {
    TABLE: _create_table,
    QUEUE: _create_queue,
    BUCKET: _create_bucket,
    SECRET: _create_secret,
}
