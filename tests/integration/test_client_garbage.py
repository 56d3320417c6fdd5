"""An AWS call through dal's clients leaves nothing in a reference cycle for the collector: no botocore response
parser (S3's client, the one botocore client the functions call on every model pointer check and log write), and
nothing of the lean clients' (Decide's two calls of every decision)."""

import gc
from collections.abc import Iterator

import boto3
import pytest
from adserve.dal.aws_clients import dynamodb_client, s3_client, sqs_send_client

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


def test_calls_leave_nothing_for_the_cyclic_collector(local_stack: LocalStack, saved_garbage: list[object]) -> None:
    # Given dal's clients, each warm
    dynamodb, sqs, s3 = dynamodb_client(), sqs_send_client(), s3_client()
    table = local_stack.physical_name("FrequencyCapsTable")
    queue_url = boto3.client("sqs", endpoint_url=local_stack.endpoint_url).create_queue(QueueName="garbage-check")[
        "QueueUrl"
    ]  # its own: other tests read the stack's queues
    bucket = local_stack.physical_name("ModelsBucket")

    def calls() -> None:
        dynamodb.query(
            TableName=table,
            KeyConditionExpression="listener_id = :l",
            ExpressionAttributeValues={":l": {"S": "listener-garbage"}},
        )
        sqs.send_message(QueueUrl=queue_url, MessageBody="garbage-check")
        s3.list_objects_v2(Bucket=bucket, Prefix="nothing-here/")

    calls()
    gc.collect()
    # When each makes 20 calls (Decide makes a Query and a send per decision) with the collector off
    for _ in range(CALLS):
        calls()
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    # Then nothing of botocore's parsers or of the lean clients was left in a cycle (moto's server threads may leave
    # their own garbage)
    ours = [o for o in saved_garbage if type(o).__module__ in ("botocore.parsers", "adserve.dal.json_clients")]
    assert ours == []
