"""boto3 clients with explicit time budgets.

boto3 honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, which is how the local stack and the tests
point every client at moto without a line of code here.
"""

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


def _config(connect_timeout: float, read_timeout: float, attempts: int) -> Config:
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        tcp_keepalive=True,
    )


def dynamodb_client(*, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3) -> "DynamoDBClient":
    return boto3.session.Session().client("dynamodb", config=_config(connect_timeout, read_timeout, attempts))


def sqs_client(*, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 3) -> "SQSClient":
    return boto3.session.Session().client("sqs", config=_config(connect_timeout, read_timeout, attempts))
