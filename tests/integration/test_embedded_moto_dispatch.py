"""The embedded moto's per-request work that does not depend on the request: done once, or not at all.

Each request used to list its response class's methods with ``inspect.getmembers`` (to find the action's) and
format werkzeug's access log line for a logger at WARNING that never prints it; each DynamoDB update parsed its
expression twice.
"""

import inspect
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import boto3
import flask
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.parsing.tokens import ExpressionTokenizer
from moto.sqs.models import Queue
from werkzeug.serving import WSGIRequestHandler

from devstack.aws_endpoint import AwsEndpoint

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

REQUESTS = 20


def client(endpoint: AwsEndpoint, service: Literal["sqs", "dynamodb", "s3"]) -> Any:
    """A client of *service* at the endpoint, with the embedded moto's dummy credentials."""
    return boto3.client(
        service,
        endpoint_url=endpoint.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def sqs_client(endpoint: AwsEndpoint) -> "SQSClient":
    sqs: SQSClient = client(endpoint, "sqs")
    return sqs


def dynamodb_table(endpoint: AwsEndpoint, prefix: str) -> tuple["DynamoDBClient", str]:
    """A client of the endpoint and a new on-demand table of its own, keyed by a string ``pk``."""
    dynamodb: DynamoDBClient = client(endpoint, "dynamodb")
    table = f"{prefix}-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    return dynamodb, table


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEndpoint]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # an embedded moto of this test's own
    started = AwsEndpoint.start()
    try:
        yield started
    finally:
        started.stop()


def test_requests_find_their_action_without_listing_the_class_each_time(
    endpoint: AwsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = sqs_client(endpoint)
    queue_url = sqs.create_queue(QueueName=f"dispatch-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="first")  # the class's methods, listed once
    listings: list[object] = []
    getmembers = inspect.getmembers

    def counted(target: object, predicate: Any = None) -> list[tuple[str, Any]]:
        listings.append(target)
        return getmembers(target, predicate)

    monkeypatch.setattr(inspect, "getmembers", counted)
    for number in range(REQUESTS):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"message {number}")
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == str(REQUESTS + 1)  # every action still found
    assert listings == []


def test_no_access_log_line_is_made_for_a_logger_that_does_not_print_it(
    endpoint: AwsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    monkeypatch.setattr(WSGIRequestHandler, "log", lambda _self, _type, message, *args: lines.append(message % args))
    sqs = sqs_client(endpoint)
    for _ in range(REQUESTS):
        sqs.list_queues()
    assert lines == []


def counting(name: str, count: Callable[[Queue], int], counted: list[str]) -> Callable[[Queue], int]:
    def counts(queue: Queue) -> int:
        counted.append(name)
        return count(queue)

    return counts


def test_sending_counts_none_of_the_queues_messages(endpoint: AwsEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's SendMessage read ``queue.attributes`` for ContentBasedDeduplication, which counts the queue's
    messages three ways: three scans of the queue per message sent. GetQueueAttributes still counts."""
    sqs = sqs_client(endpoint)
    queue_url = sqs.create_queue(QueueName=f"sends-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    counted: list[str] = []
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_not_visible",
        "approximate_number_of_messages_delayed",
    ):
        monkeypatch.setattr(Queue, name, property(counting(name, vars(Queue)[name].fget, counted)))
    for number in range(REQUESTS):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"message {number}")
    sqs.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(number), "MessageBody": f"entry {number}"} for number in range(10)]
    )
    assert counted == []
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == str(REQUESTS + 10)
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert "ApproximateNumberOfMessagesDelayed" in attributes
    assert "approximate_number_of_messages" in counted


def test_each_update_expression_is_parsed_once(endpoint: AwsEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto parsed an update's expression twice per Update (request handler and backend): Record's delivery
    transactions send the same ``ADD`` expression in every group. Parsed once, every update still applies."""
    dynamodb, table = dynamodb_table(endpoint, "updates")

    expression, one = "ADD n :one, plays :one", {":one": {"N": "1"}}

    def add(pk: str) -> "TransactWriteItemTypeDef":
        key = {"pk": {"S": pk}}
        return {
            "Update": {"TableName": table, "Key": key, "UpdateExpression": expression, "ExpressionAttributeValues": one}
        }

    dynamodb.transact_write_items(TransactItems=[add("hour"), add("lifetime")])  # the expression, parsed once
    parses: list[str] = []
    make_list = ExpressionTokenizer.make_list

    def counted(expression: str) -> Any:
        parses.append(expression)
        return make_list(expression)

    monkeypatch.setattr(ExpressionTokenizer, "make_list", staticmethod(counted))
    for _ in range(REQUESTS):
        dynamodb.transact_write_items(TransactItems=[add("hour"), add("lifetime")])
        dynamodb.update_item(
            TableName=table, Key={"pk": {"S": "single"}}, UpdateExpression=expression, ExpressionAttributeValues=one
        )
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "lifetime"}})["Item"]
    assert item["n"] == item["plays"] == {"N": str(REQUESTS + 1)}  # every update applied
    assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "single"}})["Item"]["n"] == {"N": str(REQUESTS)}
    assert parses == []
    with pytest.raises(ClientError, match="Invalid UpdateExpression"):  # an expression that does not parse still fails
        dynamodb.update_item(TableName=table, Key={"pk": {"S": "x"}}, UpdateExpression="ADD ,")


def test_a_condition_is_parsed_once_per_item_not_three_times(
    endpoint: AwsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto parsed a Put's condition three times per item of a transaction (the request's check, the transaction's
    and ``put_item``'s): Record puts every event's marker under ``attribute_not_exists(pk)``. Now only the request's
    check parses; a marker already there still cancels its transaction."""
    dynamodb, table = dynamodb_table(endpoint, "markers")

    def mark(pk: str) -> "TransactWriteItemTypeDef":
        return {
            "Put": {"TableName": table, "Item": {"pk": {"S": pk}}, "ConditionExpression": "attribute_not_exists(pk)"}
        }

    dynamodb.transact_write_items(TransactItems=[mark("warm-a"), mark("warm-b")])
    parses: list[str | None] = []
    parse = ConditionExpressionParser.parse

    def counted(parser: ConditionExpressionParser) -> Any:
        parses.append(parser.condition_expression)
        return parse(parser)

    monkeypatch.setattr(ConditionExpressionParser, "parse", counted)
    for number in range(REQUESTS):
        dynamodb.transact_write_items(TransactItems=[mark(f"a-{number}"), mark(f"b-{number}")])
    assert len(parses) <= 2 * REQUESTS  # at most one parse per item: the request's own check
    with pytest.raises(ClientError, match="TransactionCanceled"):  # a marker already there cancels the transaction
        dynamodb.transact_write_items(TransactItems=[mark("fresh"), mark("a-0")])
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"pk": {"S": "fresh"}})  # and nothing of it is kept


def test_sqs_and_dynamodb_requests_reach_moto_without_flask_and_answer_as_through_it(
    endpoint: AwsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS's and DynamoDB's JSON-protocol requests go to moto's response class straight; their answers, errors
    included, are moto's own. S3 (a REST protocol) still goes through moto's Flask application."""
    applications: list[str] = []
    wsgi_app = flask.Flask.wsgi_app

    def counted(app: flask.Flask, environ: dict[str, Any], start_response: Any) -> Any:
        applications.append(app.service)  # type: ignore[attr-defined]
        return wsgi_app(app, environ, start_response)

    monkeypatch.setattr(flask.Flask, "wsgi_app", counted)
    sqs = sqs_client(endpoint)
    queue_url = sqs.create_queue(QueueName=f"straight-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    attributes: dict[str, MessageAttributeValueTypeDef] = {"kind": {"DataType": "String", "StringValue": "decision"}}
    sqs.send_message(QueueUrl=queue_url, MessageBody="body", MessageAttributes=attributes)
    received = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"])["Messages"]
    assert [(message["Body"], message["MessageAttributes"]) for message in received] == [("body", attributes)]
    deleted = sqs.delete_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": "0", "ReceiptHandle": received[0]["ReceiptHandle"]}]
    )
    assert [entry["Id"] for entry in deleted["Successful"]] == ["0"]
    with pytest.raises(ClientError) as missing:
        sqs.get_queue_url(QueueName=f"missing-{uuid.uuid4().hex[:12]}")
    assert missing.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    dynamodb, table = dynamodb_table(endpoint, "straight")
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(ClientError) as present:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
    assert present.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}
    assert applications == []
    s3 = client(endpoint, "s3")
    bucket = f"straight-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert set(applications) == {"s3"}
