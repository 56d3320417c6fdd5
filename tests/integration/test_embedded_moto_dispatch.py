"""The embedded moto's per-request work that does not depend on the request: done once, or not at all.

Each request used to list its response class's methods with ``inspect.getmembers`` (to find the action's) and
format werkzeug's access log line for a logger at WARNING that never prints it.
"""

import inspect
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from werkzeug.serving import WSGIRequestHandler

from devstack.aws_endpoint import AwsEndpoint

REQUESTS = 20


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
    sqs = boto3.client("sqs", endpoint_url=endpoint.url)
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
    sqs = boto3.client("sqs", endpoint_url=endpoint.url)
    for _ in range(REQUESTS):
        sqs.list_queues()
    assert lines == []
