"""The embedded moto in a child process (``AwsEndpoint.start_process``, what ``make demo`` runs on): it answers
over HTTP like the in-process one, and stopping it ends the child."""

import subprocess
import uuid
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from devstack.aws_endpoint import AwsEndpoint

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def sqs_client(endpoint_url: str) -> "SQSClient":
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5),
    )


def test_the_moto_process_serves_until_stopped_and_then_ends() -> None:
    endpoint = AwsEndpoint.start_process()
    process = endpoint._process  # the child this test must see end
    assert isinstance(process, subprocess.Popen)
    try:
        assert endpoint.embedded
        sqs = sqs_client(endpoint.url)
        queue_url = sqs.create_queue(QueueName=f"process-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        sqs.send_message(QueueUrl=queue_url, MessageBody="hello")
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5).get("Messages", [])
        assert [message["Body"] for message in messages] == ["hello"]
        assert endpoint.child_cpu_seconds() > 0  # importing moto alone takes a good part of a second
    finally:
        endpoint.stop()
    assert process.poll() is not None
    with pytest.raises(EndpointConnectionError):
        sqs_client(endpoint.url).list_queues()
