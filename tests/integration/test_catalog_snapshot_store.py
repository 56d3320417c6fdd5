"""Catalog snapshots in the logs bucket on moto over HTTP: put only if absent, so racing environments write once."""

import uuid

import pytest
from adserve.core.errors import LogObjectMissingError, LogStoreUnavailableError
from adserve.dal.aws_clients import s3_client
from adserve.dal.log_store import S3LogStore

from devstack.stack import LocalStack


def test_a_snapshot_is_put_once_and_a_second_put_leaves_it(local_stack: LocalStack) -> None:
    s3 = s3_client(endpoint_url=local_stack.endpoint_url)
    logs = S3LogStore(s3, local_stack.physical_name("LogsBucket"))
    key = f"catalogs/put-once-{uuid.uuid4().hex}.json.gz"
    logs.put_if_absent(key, b"first")
    logs.put_if_absent(key, b"second")  # another environment, racing: no error, nothing replaced
    assert logs.read_object(key) == b"first"


def test_a_put_that_fails_raises_the_log_store_error(local_stack: LocalStack) -> None:
    s3 = s3_client(endpoint_url=local_stack.endpoint_url)
    with pytest.raises(LogStoreUnavailableError):
        S3LogStore(s3, "adserve-no-such-bucket").put_if_absent("catalogs/x.json.gz", b"x")


def test_reading_a_missing_object_says_it_is_missing_and_an_unreachable_bucket_does_not(
    local_stack: LocalStack,
) -> None:
    s3 = s3_client(endpoint_url=local_stack.endpoint_url)
    logs = S3LogStore(s3, local_stack.physical_name("LogsBucket"))
    with pytest.raises(LogObjectMissingError, match="no such object"):
        logs.read_object(f"catalogs/never-written-{uuid.uuid4().hex}.json.gz")
    with pytest.raises(LogStoreUnavailableError) as unreachable:
        S3LogStore(s3, "adserve-no-such-bucket").read_object("catalogs/x.json.gz")
    assert not isinstance(unreachable.value, LogObjectMissingError)
