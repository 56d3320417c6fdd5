"""TransactWriteItems on the embedded moto, over HTTP: all or nothing, at a cost that does not grow with the
table (devstack.aws_endpoint rolls back the transaction's own items instead of copying whole tables)."""

import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb import models
from moto.dynamodb.models.table import Table

from devstack.stack import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def dynamodb(local_stack: LocalStack) -> "DynamoDBClient":
    return boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)


@pytest.fixture
def table(dynamodb: "DynamoDBClient") -> str:
    name = f"moto-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    return name


def _key(sort_key: str) -> dict[str, Any]:
    return {"pk": {"S": "listener"}, "sk": {"S": sort_key}}


def _count_and_mark(table: str, marker: str) -> list[Any]:
    """The shape Record writes: a counter ADD first, then a marker that must not exist yet."""
    return [
        {"Update": {"TableName": table, "Key": _key("counter"), "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Put": {"TableName": table, "Item": {**_key(marker), "seen": {"BOOL": True}},
                 "ConditionExpression": "attribute_not_exists(sk)"}},
        {"Put": {"TableName": table, "Item": {**_key(f"side-{marker}"), "n": {"N": "7"}}}},
    ]  # fmt: skip


def _counter(dynamodb: "DynamoDBClient", table: str) -> int:
    item = dynamodb.get_item(TableName=table, Key=_key("counter")).get("Item")
    return int(item["n"]["N"]) if item else 0


def test_a_cancelled_transaction_leaves_no_write_behind(dynamodb: "DynamoDBClient", table: str) -> None:
    # Given one counted marker
    dynamodb.transact_write_items(TransactItems=_count_and_mark(table, "m1"))
    dynamodb.delete_item(TableName=table, Key=_key("side-m1"))
    # When the same marker comes again (the counter ADD runs before the failing condition)
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=_count_and_mark(table, "m1"))
    # Then the transaction is cancelled naming the marker, and neither the ADD nor the new item survives
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed", "None"]
    assert _counter(dynamodb, table) == 1
    assert "Item" not in dynamodb.get_item(TableName=table, Key=_key("side-m1"))
    # And a new marker still counts
    dynamodb.transact_write_items(TransactItems=_count_and_mark(table, "m2"))
    assert _counter(dynamodb, table) == 2


def test_a_transaction_does_not_copy_the_tables_it_touches(
    dynamodb: "DynamoDBClient", table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a table with many items, and every copy moto's DynamoDB models make watched
    for index in range(50):
        dynamodb.put_item(TableName=table, Item={**_key(f"filler-{index}"), "n": {"N": "1"}})
    copied: list[str] = []
    sharing_copy: Any = getattr(models, "copy")  # noqa: B009 - the module does not export it
    original = type(sharing_copy).deepcopy

    def watched(self: Any, value: Any, memo: dict[int, Any] | None = None) -> Any:
        result = original(self, value, memo)
        if isinstance(value, Table) and result is not value:
            copied.append(value.name)
        return result

    monkeypatch.setattr(type(sharing_copy), "deepcopy", watched)
    # When a transaction commits and another is cancelled
    dynamodb.transact_write_items(TransactItems=_count_and_mark(table, "m1"))
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(TransactItems=_count_and_mark(table, "m1"))
    # Then no table was copied whole, and the rollback still held
    assert copied == []
    assert _counter(dynamodb, table) == 1
