"""An AWS call through dal's clients leaves no response parser in a reference cycle for the collector."""

import gc
from collections.abc import Iterator

import pytest
from adserve.dal.aws_clients import dynamodb_client, sqs_client

from devstack.stack import LocalStack

CALLS = 20


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """The collector off, then everything it finds unreachable kept in ``gc.garbage`` to be looked at."""
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if collecting:
            gc.enable()


def test_query_and_send_leave_no_parser_for_the_cyclic_collector(
    local_stack: LocalStack, saved_garbage: list[object]
) -> None:
    # Given dal's DynamoDB and SQS clients, each warm
    dynamodb, sqs = dynamodb_client(), sqs_client()
    table = local_stack.physical_name("FrequencyCapsTable")
    queue_url = local_stack.env["OUTCOMES_QUEUE_URL"]

    def query() -> object:
        return dynamodb.query(
            TableName=table,
            KeyConditionExpression="listener_id = :l",
            ExpressionAttributeValues={":l": {"S": "listener-garbage"}},
        )

    query()
    sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    gc.collect()
    # When each makes 20 calls (Decide makes one of each per decision) with the collector off
    for _ in range(CALLS):
        query()
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    # Then no botocore parser was left in a cycle (moto's server threads may leave their own garbage)
    parsers = [o for o in saved_garbage if type(o).__module__ == "botocore.parsers"]
    assert parsers == []
