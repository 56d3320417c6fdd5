"""The lean S3 client (adserve.dal.s3_rest) answers as boto3's S3 client does, over real HTTP: against the embedded
moto for S3's own answers and errors, and against a local server of the test's own for addressing and retries."""

import http.server
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from adserve.dal.aws_clients import s3_client
from adserve.dal.aws_http import ClientSettings, Endpoint, Proxy, TimeBudget, UnreadableAnswerError
from adserve.dal.s3_rest import S3RestClient, object_keys
from adserve.dal.sigv4 import Credentials
from botocore.exceptions import ClientError

from bench.local_server import serving
from devstack.stack import LocalStack
from tests.support.xray import xray_recorder

KEYS = ["plain.json", "with space/ü+%20#?.gz", "a/b/c", "tilde~and(parens)", "x" * 200]


@pytest.fixture
def bucket(local_stack: LocalStack) -> str:
    return local_stack.physical_name("LogsBucket")


@pytest.fixture
def theirs(local_stack: LocalStack) -> Any:
    return boto3.client("s3", endpoint_url=local_stack.endpoint_url)


@pytest.fixture
def ours(local_stack: LocalStack) -> S3RestClient:
    return s3_client(endpoint_url=local_stack.endpoint_url)


def test_objects_put_by_either_client_read_alike_through_both(bucket: str, theirs: Any, ours: S3RestClient) -> None:
    prefix = f"lean-s3/{uuid.uuid4().hex}/"
    for n, key in enumerate(KEYS):
        writer = ours if n % 2 else theirs
        writer.put_object(
            Bucket=bucket,
            Key=prefix + key,
            Body=key.encode() * 3,
            ContentType="application/gzip",
            Metadata={"sha256": key[:8]},
        )
    for key in KEYS:
        mine, boto3s = (
            ours.get_object(Bucket=bucket, Key=prefix + key),
            theirs.get_object(Bucket=bucket, Key=prefix + key),
        )
        assert mine["Body"].read() == boto3s["Body"].read() == key.encode() * 3
        for field in ("ContentLength", "ContentType", "ETag", "Metadata"):
            assert mine[field] == boto3s[field], field
        head = ours.head_object(Bucket=bucket, Key=prefix + key)
        assert head["Metadata"] == {"sha256": key[:8]}
        assert head["ContentLength"] == len(key.encode()) * 3


def test_a_put_carries_its_crc32_for_s3_to_check(bucket: str, theirs: Any, ours: S3RestClient) -> None:
    key = f"lean-s3/{uuid.uuid4().hex}"
    ours.put_object(Bucket=bucket, Key=key, Body=b"checked bytes")
    theirs.put_object(Bucket=bucket, Key=f"{key}-boto3", Body=b"checked bytes", ChecksumAlgorithm="CRC32")
    mine = theirs.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    boto3s = theirs.head_object(Bucket=bucket, Key=f"{key}-boto3", ChecksumMode="ENABLED")
    assert mine["ChecksumCRC32"] == boto3s["ChecksumCRC32"]


def test_listing_pages_are_boto3s(bucket: str, theirs: Any, ours: S3RestClient) -> None:
    prefix = f"lean-s3/{uuid.uuid4().hex}/"
    for key in KEYS:
        ours.put_object(Bucket=bucket, Key=prefix + key, Body=b"")
    mine: list[tuple[list[str], bool, int]] = []
    boto3s: list[tuple[list[str], bool, int]] = []
    for client, pages in ((ours, mine), (theirs, boto3s)):
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 2}
        while True:
            page = client.list_objects_v2(**request)
            pages.append(([item["Key"] for item in page.get("Contents", [])], page["IsTruncated"], page["KeyCount"]))
            if not page["IsTruncated"]:
                break
            request["ContinuationToken"] = page["NextContinuationToken"]
    assert mine == boto3s
    assert len(mine) == 3
    assert sorted(object_keys(ours, bucket, prefix)) == sorted(prefix + key for key in KEYS)
    assert list(object_keys(ours, bucket, f"{prefix}nothing-here/")) == []


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda client, bucket: client.get_object(Bucket=bucket, Key="lean-s3/missing"), "NoSuchKey"),
        (lambda client, bucket: client.head_object(Bucket=bucket, Key="lean-s3/missing"), "404"),
        (lambda client, _: client.get_object(Bucket="adserve-no-such-bucket", Key="k"), "NoSuchBucket"),
        (lambda client, _: client.put_object(Bucket="adserve-no-such-bucket", Key="k", Body=b""), "NoSuchBucket"),
    ],
)
def test_errors_are_boto3s(call: Any, code: str, bucket: str, theirs: Any, ours: S3RestClient) -> None:
    errors = []
    for client in (ours, theirs):
        with pytest.raises(ClientError) as raised:
            call(client, bucket)
        errors.append(raised.value.response["Error"])
    assert errors[0]["Code"] == errors[1]["Code"] == code
    assert errors[0]["Message"] == errors[1]["Message"]


def test_a_conditional_put_of_an_existing_key_is_a_precondition_failure(bucket: str, ours: S3RestClient) -> None:
    key = f"lean-s3/{uuid.uuid4().hex}"
    ours.put_object(Bucket=bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as raised:
        ours.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert raised.value.response["Error"]["Code"] == "PreconditionFailed"
    assert ours.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first"


def test_a_put_if_match_replaces_only_the_object_it_names(bucket: str, theirs: Any, ours: S3RestClient) -> None:
    key = f"lean-s3/{uuid.uuid4().hex}"
    first = ours.put_object(Bucket=bucket, Key=key, Body=b"first")["ETag"]
    second = ours.put_object(Bucket=bucket, Key=key, Body=b"second", IfMatch=first)["ETag"]
    codes = []
    for client in (ours, theirs):
        with pytest.raises(ClientError) as raised:
            client.put_object(Bucket=bucket, Key=key, Body=b"stale", IfMatch=first)
        codes.append(raised.value.response["Error"]["Code"])
    assert codes == ["PreconditionFailed", "PreconditionFailed"]
    assert ours.get_object(Bucket=bucket, Key=key)["ETag"] == second
    with pytest.raises(ClientError) as raised:
        ours.put_object(Bucket=bucket, Key=f"{key}-never-written", Body=b"x", IfMatch=first)
    assert raised.value.response["Error"]["Code"] == "NoSuchKey"


def test_a_parameter_it_does_not_send_is_refused_not_dropped(bucket: str, ours: S3RestClient) -> None:
    with pytest.raises(TypeError, match="ServerSideEncryption"):
        ours.put_object(Bucket=bucket, Key="k", Body=b"", ServerSideEncryption="aws:kms")
    with pytest.raises(TypeError, match="Range"):
        ours.get_object(Bucket=bucket, Key="k", Range="bytes=0-1")
    with pytest.raises(ValueError, match="line break"):
        ours.put_object(Bucket=bucket, Key="k", Body=b"", Metadata={"sha256": "x\r\nx-amz-acl: public-read"})


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next scripted (status, body), recording its request line and headers."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Any = self.server
        server.requests.append((self.requestline, dict(self.headers)))
        status, body = server.answers.pop(0) if server.answers else (200, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def recorder() -> Iterator[Any]:
    with serving(_Recorder, answers=[], requests=[]) as server:
        yield server


def through(recorder: Any, *, attempts: int = 1, tracing: Any = None) -> S3RestClient:
    """A client of AWS's eu-west-1 endpoint, virtual-hosted, whose plain-HTTP requests go through the recorder as
    a forwarding proxy: each request line names the host the client addressed, with no DNS involved."""
    settings = ClientSettings(
        Endpoint("http://s3.eu-west-1.amazonaws.com", "eu-west-1", "s3"),
        lambda: Credentials("AKIDEXAMPLE", "secret", None),
        TimeBudget(5.0, 5.0, attempts),
        tls=lambda: pytest.fail("no TLS to a plain-HTTP endpoint"),
        user_agent="test",
        proxy=Proxy(f"http://127.0.0.1:{recorder.server_address[1]}", {}),
        tracing=tracing,
    )
    return S3RestClient(settings, virtual_hosted=True)


def test_aws_endpoints_address_a_bucket_as_its_own_host_unless_its_name_cannot_be_one(recorder: Any) -> None:
    client = through(recorder)
    listing_answer = (
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated>'
    )
    recorder.answers[:] = [(200, b""), (200, b""), (200, listing_answer + b"</ListBucketResult>")]
    client.get_object(Bucket="adserve-logs-1a2b", Key="decisions/a b.gz")
    client.get_object(Bucket="dotted.bucket", Key="k")
    client.list_objects_v2(Bucket="adserve-logs-1a2b", Prefix="erasures/")
    (first, first_headers), (second, second_headers), (listing, _) = recorder.requests
    assert first == "GET http://adserve-logs-1a2b.s3.eu-west-1.amazonaws.com/decisions/a%20b.gz HTTP/1.1"
    assert first_headers["host"] == "adserve-logs-1a2b.s3.eu-west-1.amazonaws.com"
    assert second == "GET http://s3.eu-west-1.amazonaws.com/dotted.bucket/k HTTP/1.1"
    assert second_headers["host"] == "s3.eu-west-1.amazonaws.com"
    assert listing.startswith("GET http://adserve-logs-1a2b.s3.eu-west-1.amazonaws.com/?")
    assert "list-type=2" in listing
    assert "prefix=erasures%2F" in listing


def test_slow_down_is_tried_again_and_a_missing_key_is_not(recorder: Any) -> None:
    slow_down = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    recorder.answers[:] = [(503, slow_down), (200, b"body")]
    answer = through(recorder, attempts=3).get_object(Bucket="adserve-logs-1a2b", Key="k")
    assert answer["Body"].read() == b"body"
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    recorder.answers[:] = [(404, b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>")]
    with pytest.raises(ClientError, match="NoSuchKey"):
        through(recorder, attempts=3).get_object(Bucket="adserve-logs-1a2b", Key="k")
    assert len(recorder.requests) == 3


def test_a_listing_that_is_no_xml_is_an_unreadable_answer(recorder: Any) -> None:
    recorder.answers[:] = [(200, b"<html>a proxy's page")]
    with pytest.raises(UnreadableAnswerError, match="XML listing"):
        through(recorder).list_objects_v2(Bucket="adserve-logs-1a2b", Prefix="")


def test_a_listing_with_a_dtd_is_not_parsed(recorder: Any) -> None:
    recorder.answers[:] = [(200, b'<!DOCTYPE x [<!ENTITY a "aaaa">]><ListBucketResult>&a;</ListBucketResult>')]
    with pytest.raises(UnreadableAnswerError):
        through(recorder).list_objects_v2(Bucket="adserve-logs-1a2b", Prefix="")


def test_an_error_documents_code_and_message_are_read_with_their_entities(recorder: Any) -> None:
    recorder.answers[:] = [
        (403, b"<?xml version='1.0'?>\n<Error><Code>AccessDenied</Code><Message>a &amp; &lt;b&gt;</Message></Error>")
    ]
    with pytest.raises(ClientError) as raised:
        through(recorder).get_object(Bucket="adserve-logs-1a2b", Key="k")
    assert raised.value.response["Error"] == {"Code": "AccessDenied", "Message": "a & <b>"}


def test_with_tracing_on_each_call_is_an_aws_subsegment_naming_its_bucket_not_its_key(recorder: Any) -> None:
    with xray_recorder() as (xray, _):
        client = through(recorder, tracing=xray)
        segment = xray.begin_segment("RecordFunction")
        client.put_object(Bucket="adserve-logs-1a2b", Key="erasures/pseudonym", Body=b"")
        xray.end_segment()
    (traced,) = segment.subsegments
    assert (traced.name, traced.namespace) == ("s3", "aws")
    assert traced.aws == {
        "operation": "PutObject",
        "region": "eu-west-1",
        "bucket_name": "adserve-logs-1a2b",
        "request_id": "",
    }
    assert recorder.requests[0][1]["x-amzn-trace-id"] == f"Root={segment.trace_id};Parent={traced.id};Sampled=1"
