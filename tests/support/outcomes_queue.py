"""The outcomes queue as Record sees it: drain what Decide and Track queued, hand it over as Lambda would.

Messages keep their attributes (the correlation id among them), and the SQS event is built by the local
stack's own event source mapping code, so Record gets exactly what a deployed Record would.
"""

from typing import Any

import boto3

from devstack.event_source_mapping import sqs_event
from devstack.stack import LocalStack


def drain(local_stack: LocalStack) -> list[Any]:
    """Every message on the worker's outcomes queue, removed from it, attributes included."""
    sqs = boto3.client("sqs", endpoint_url=local_stack.endpoint_url)
    queue_url = local_stack.env["OUTCOMES_QUEUE_URL"]
    drained: list[Any] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return drained
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        drained.extend(messages)


def record_event(local_stack: LocalStack, messages: list[Any]) -> dict[str, Any]:
    """The SQS event Lambda's event source mapping would invoke Record with for *messages*."""
    queue_arn = local_stack.description.references["OutcomesQueue"].attributes["Arn"]
    return sqs_event(messages, queue_arn=queue_arn, region=local_stack.description.region)
