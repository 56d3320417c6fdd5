"""A lean client for the S3 calls adserve makes, on ``aws_http``: GetObject, PutObject, HeadObject, ListObjectsV2.

The functions' S3 calls are few (a model pointer's read, a catalog snapshot's put, Record's log objects), but a
botocore S3 client costs a cold start ~9 ms to create and, with the lean JSON clients, is what still made a
function import botocore's session (~90 ms, see ``aws_clients``). This client takes and answers the calls as
boto3's does (the same parameter names, ``Body`` something to ``read()``, ``Metadata`` from the
``x-amz-meta-*`` headers, errors as ``ClientError`` with S3's codes, a HEAD's 404 as code ``404``), for the
parameters adserve sends; any other raises TypeError rather than being dropped. Objects are addressed
virtual-hosted (``bucket.s3.region.amazonaws.com``) on AWS's endpoints, path-style on a configured endpoint
(moto, MinIO, LocalStack) and for bucket names no host name can hold. PUTs carry their CRC32 for S3 to check,
as botocore's do.
"""

import base64
import hashlib
import io
import re
import zlib
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Unpack, cast
from urllib.parse import quote, unquote_plus

from botocore.exceptions import ClientError

from adserve.dal.aws_http import AwsHttpClient, ClientSettings, Request, Response, UnreadableAnswerError

if TYPE_CHECKING:
    from xml.etree import ElementTree

    from mypy_boto3_s3.type_defs import (
        GetObjectOutputTypeDef,
        GetObjectRequestTypeDef,
        HeadObjectOutputTypeDef,
        HeadObjectRequestTypeDef,
        ListObjectsV2OutputTypeDef,
        ListObjectsV2RequestTypeDef,
        PutObjectOutputTypeDef,
        PutObjectRequestTypeDef,
    )

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HOSTABLE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
"""A bucket name that is one DNS label: its own host name under the endpoint's, covered by S3's certificate."""
_XML_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_ERROR_CODE = re.compile(rb"<Error>.*?<Code>([^<]*)</Code>", re.DOTALL)
_ERROR_MESSAGE = re.compile(rb"<Error>.*?<Message>([^<]*)</Message>", re.DOTALL)
_XML_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))
_METADATA_PREFIX = "x-amz-meta-"
_PUT_HEADERS = {"ContentType": "content-type", "IfMatch": "if-match", "IfNoneMatch": "if-none-match"}


def object_keys(client: "S3RestClient", bucket: str, prefix: str) -> Iterator[str]:
    """Every key under ``prefix``, a page of ListObjectsV2 at a time."""
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = client.list_objects_v2(**request)
        for item in page.get("Contents", []):
            yield item["Key"]
        if not page.get("IsTruncated"):
            return
        request["ContinuationToken"] = page["NextContinuationToken"]


def _only(operation: str, params: Mapping[str, Any], supported: set[str]) -> None:
    unsupported = sorted(set(params) - supported)
    if unsupported:
        raise TypeError(f"{operation}: the lean S3 client does not send {', '.join(unsupported)}")


class S3RestClient(AwsHttpClient):
    """S3's object calls adserve makes, as boto3's client takes and answers them (see the module docstring)."""

    def __init__(self, settings: ClientSettings, *, virtual_hosted: bool) -> None:
        """``virtual_hosted``: address a bucket as a host under the endpoint's (AWS's endpoints), else in the path."""
        super().__init__("s3", settings)
        self._virtual_hosted = virtual_hosted

    def get_object(self, **params: Unpack["GetObjectRequestTypeDef"]) -> "GetObjectOutputTypeDef":
        _only("GetObject", params, {"Bucket", "Key"})
        response, metadata = self._object_call(
            "GetObject", "GET", bucket=params["Bucket"], key=params["Key"], headers={}, body=b""
        )
        return cast("GetObjectOutputTypeDef", {**_described(response, metadata), "Body": io.BytesIO(response.body)})

    def head_object(self, **params: Unpack["HeadObjectRequestTypeDef"]) -> "HeadObjectOutputTypeDef":
        _only("HeadObject", params, {"Bucket", "Key"})
        response, metadata = self._object_call(
            "HeadObject", "HEAD", bucket=params["Bucket"], key=params["Key"], headers={}, body=b""
        )
        return cast("HeadObjectOutputTypeDef", _described(response, metadata))

    def put_object(self, **params: Unpack["PutObjectRequestTypeDef"]) -> "PutObjectOutputTypeDef":
        _only("PutObject", params, {"Bucket", "Key", "Body", *_PUT_HEADERS, "Metadata"})
        body = params.get("Body", b"")
        if not isinstance(body, bytes):
            raise TypeError("PutObject: the lean S3 client sends a Body of bytes")
        headers = {header: str(params[name]) for name, header in _PUT_HEADERS.items() if name in params}  # type: ignore[literal-required]
        headers.update(
            {f"{_METADATA_PREFIX}{name.lower()}": value for name, value in params.get("Metadata", {}).items()}
        )
        if any("\r" in value or "\n" in value for value in headers.values()):
            raise ValueError("PutObject: a header value cannot hold a line break")
        headers["x-amz-checksum-crc32"] = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        headers["x-amz-sdk-checksum-algorithm"] = "CRC32"
        response, metadata = self._object_call(
            "PutObject", "PUT", bucket=params["Bucket"], key=params["Key"], headers=headers, body=body
        )
        answer: dict[str, Any] = {"ResponseMetadata": metadata}
        if "etag" in response.headers:
            answer["ETag"] = response.headers["etag"]
        return cast("PutObjectOutputTypeDef", answer)

    def list_objects_v2(self, **params: Unpack["ListObjectsV2RequestTypeDef"]) -> "ListObjectsV2OutputTypeDef":
        """One page; keys asked for URL-encoded (XML cannot carry every key) and decoded, as botocore does."""
        _only("ListObjectsV2", params, {"Bucket", "Prefix", "ContinuationToken", "MaxKeys"})
        query = {"list-type": "2", "encoding-type": "url", "prefix": params.get("Prefix", "")}
        if "ContinuationToken" in params:
            query["continuation-token"] = params["ContinuationToken"]
        if "MaxKeys" in params:
            query["max-keys"] = str(params["MaxKeys"])
        host, path = self._address(params["Bucket"], "")
        encoded = "&".join(f"{name}={quote(value, safe='-_.~')}" for name, value in sorted(query.items()))
        request = Request("GET", host, path, encoded, {}, b"", _EMPTY_SHA256)
        response, metadata = self._send("ListObjectsV2", params["Bucket"], request)
        try:
            page = _listing(response.body)
        except (SyntaxError, ValueError) as error:  # ElementTree's ParseError is a SyntaxError
            raise UnreadableAnswerError(
                operation="ListObjectsV2", status=response.status, expected="XML listing", start=response.body[:200]
            ) from error
        return cast("ListObjectsV2OutputTypeDef", {**page, "ResponseMetadata": metadata})

    def _address(self, bucket: str, key: str) -> tuple[str, str]:
        """The Host header and the path (encoded once, as S3 signs it) of ``key`` in ``bucket``."""
        if not bucket or "/" in bucket:
            raise ValueError(f"not a bucket name: {bucket!r}")
        path = quote(key, safe="/~")
        if self._virtual_hosted and _HOSTABLE.match(bucket):
            return f"{bucket}.{self._host}", f"/{path}"
        return self._host, f"/{bucket}/{path}" if key else f"/{bucket}"

    def _object_call(
        self, operation: str, method: str, *, bucket: str, key: str, headers: dict[str, str], body: bytes
    ) -> tuple[Response, dict[str, Any]]:
        """An object call's 2xx answer and its ResponseMetadata (see ``_send``)."""
        host, path = self._address(bucket, key)
        payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        return self._send(operation, bucket, Request(method, host, path, "", headers, body, payload_hash))

    def _send(self, operation: str, bucket: str, request: Request) -> tuple[Response, dict[str, Any]]:
        """The 2xx answer and its ResponseMetadata; an error answer raises ClientError as botocore's parser reads
        it, retried when transient. Traced with the bucket's name, as X-Ray's botocore patch records it, but not
        the key it records too: a key can name a pseudonym (the erasure ledger's)."""
        answer = self._call(
            operation,
            {"bucket_name": bucket},
            lambda attempt, header: self._attempt(operation, request, attempt, header),
        )
        return answer["_response"], answer["ResponseMetadata"]

    def _attempt(self, operation: str, request: Request, attempt: int, trace_header: str | None) -> dict[str, Any]:
        response = self._exchange(request, trace_header)
        metadata = {
            "RequestId": response.headers.get("x-amz-request-id", ""),
            "HostId": response.headers.get("x-amz-id-2", ""),
            "HTTPStatusCode": response.status,
            "RetryAttempts": attempt - 1,
        }
        if response.status < 300:
            return {"_response": response, "ResponseMetadata": metadata}
        error = _error(response)
        failure = ClientError({"Error": error, "ResponseMetadata": metadata}, operation)  # type: ignore[typeddict-item]
        raise self._failed(failure, response.status)


def _described(response: Response, metadata: dict[str, Any]) -> dict[str, Any]:
    """What boto3 answers of an object (GetObject's and HeadObject's fields but the body)."""
    described: dict[str, Any] = {
        "ContentLength": int(response.headers.get("content-length", len(response.body))),
        "Metadata": {
            name[len(_METADATA_PREFIX) :]: value
            for name, value in response.headers.items()
            if name.startswith(_METADATA_PREFIX)
        },
        "ResponseMetadata": metadata,
    }
    for header, field in (("etag", "ETag"), ("content-type", "ContentType")):
        if header in response.headers:
            described[field] = response.headers[header]
    return described


def _error(response: Response) -> dict[str, str]:
    """S3's XML error document's code and message; without one (a HEAD, a proxy's page) the status is the code
    and its reason the message, as botocore reads it. Read without an XML parser: a cold start's first catalog
    snapshot put meets S3's PreconditionFailed whenever another environment wrote it first."""
    code = _ERROR_CODE.search(response.body)
    message = _ERROR_MESSAGE.search(response.body)
    return {
        "Code": _unescaped(code.group(1)) if code else str(response.status),
        "Message": _unescaped(message.group(1)) if message else _reason(response.status),
    }


def _unescaped(text: bytes) -> str:
    decoded = text.decode("utf-8", errors="replace")
    for entity, character in _XML_ENTITIES:
        decoded = decoded.replace(entity, character)
    return decoded


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _xml(body: bytes) -> "ElementTree.Element":
    """``body`` parsed; a document with a DTD is refused (S3's never have one), so no entity can expand."""
    from xml.etree import ElementTree  # noqa: PLC0415 - only a listing parses XML: the tools', Retrain's

    if b"<!doctype" in body.lower():
        raise ValueError("an XML answer with a DTD is not S3's")
    return ElementTree.fromstring(body)  # noqa: S314 - no DTD, so none of the attacks S314 names


def _listing(body: bytes) -> dict[str, Any]:
    document = _xml(body)

    def text(element: Any, name: str) -> str | None:
        found = element.find(f"{_XML_NAMESPACE}{name}")
        if found is None:
            found = element.find(name)
        return None if found is None else found.text or ""

    contents = []
    for item in [*document.findall(f"{_XML_NAMESPACE}Contents"), *document.findall("Contents")]:
        entry: dict[str, Any] = {"Key": unquote_plus(text(item, "Key") or "")}
        if (size := text(item, "Size")) is not None:
            entry["Size"] = int(size)
        if (etag := text(item, "ETag")) is not None:
            entry["ETag"] = etag
        contents.append(entry)
    page: dict[str, Any] = {"IsTruncated": text(document, "IsTruncated") == "true", "KeyCount": len(contents)}
    if contents:
        page["Contents"] = contents
    if token := text(document, "NextContinuationToken"):
        page["NextContinuationToken"] = token
    return page
