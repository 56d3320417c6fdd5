"""Lean clients for the AWS JSON-protocol services the functions call: DynamoDB (Decide's caps Query of every
decision and its catalog's Scans, Record's transaction of every impression, the stores), SQS's sends (Decide's
record, Track's outcomes) and Secrets Manager's reads (the signing and pseudonym keys), on ``aws_http``.

botocore spends 500-650 us of CPU on each such call (figure 12: validating, serialising through the service
model, resolving the endpoint from its rules, signing with a key derived anew, urllib3, parsing through the
model), several times the rest of a decision. These clients do what the calls need, per call: the parameters as
JSON, one signed POST, the JSON answer. What does not change per call is resolved when a client is made
(``aws_clients``): the credentials, the region, the endpoint, the CA bundle's TLS context, the proxy.

Errors and retries are botocore's (``aws_http``); DynamoDB's CRC32 is checked. Parameters must be JSON as they are
(no ``bytes`` blobs; no calls here send any), and nothing is validated against the service model: the stores
build them, typed against boto3's stubs.
"""

import base64
import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Unpack, cast

from botocore.exceptions import ChecksumError, ClientError

from adserve.dal.aws_http import AwsHttpClient, ClientSettings, Request, Response, TransientError, UnreadableAnswerError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import (
        BatchGetItemInputTypeDef,
        BatchGetItemOutputTypeDef,
        BatchWriteItemInputTypeDef,
        BatchWriteItemOutputTypeDef,
        DeleteItemInputTypeDef,
        DeleteItemOutputTypeDef,
        GetItemInputTypeDef,
        GetItemOutputTypeDef,
        PutItemInputTypeDef,
        PutItemOutputTypeDef,
        QueryInputTypeDef,
        QueryOutputTypeDef,
        ScanInputTypeDef,
        ScanOutputTypeDef,
        TransactWriteItemsInputTypeDef,
        TransactWriteItemsOutputTypeDef,
        UpdateItemInputTypeDef,
        UpdateItemOutputTypeDef,
    )
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueRequestTypeDef, GetSecretValueResponseTypeDef
    from mypy_boto3_sqs.type_defs import (
        SendMessageBatchRequestTypeDef,
        SendMessageBatchResultTypeDef,
        SendMessageRequestTypeDef,
        SendMessageResultTypeDef,
    )


@dataclass(frozen=True)
class JsonProtocol:
    """What differs between the JSON-protocol services these clients call."""

    service: str
    """botocore's name for it: its endpoint, shared-config and ``AWS_ENDPOINT_URL_*`` key."""
    target_prefix: str
    """``X-Amz-Target`` is this, a dot, and the operation."""
    content_type: str
    query_compatible: bool
    """Asks for error codes as the service's older query protocol named them (SQS), as botocore does."""


DYNAMODB = JsonProtocol("dynamodb", "DynamoDB_20120810", "application/x-amz-json-1.0", query_compatible=False)
SQS = JsonProtocol("sqs", "AmazonSQS", "application/x-amz-json-1.0", query_compatible=True)
SECRETS_MANAGER = JsonProtocol("secretsmanager", "secretsmanager", "application/x-amz-json-1.1", query_compatible=False)


_ERROR_ENVELOPE = frozenset({"__type", "message", "Message", "Error", "ResponseMetadata"})

_TRACED_PARAMETERS = {"TableName": "table_name", "QueueUrl": "queue_url"}
"""The parameters X-Ray's botocore patch records for these operations."""


class JsonClient(AwsHttpClient):
    """POSTs of one JSON-protocol service to one endpoint, signed, on kept-alive connections (``aws_http``)."""

    def __init__(self, protocol: JsonProtocol, settings: ClientSettings) -> None:
        super().__init__(protocol.service, settings)
        self._protocol = protocol

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One operation's JSON answer, with botocore's ``ResponseMetadata`` (request id, status, retries)."""
        fields = {key: str(params[name]) for name, key in _TRACED_PARAMETERS.items() if name in params}
        body = json.dumps(params, separators=(",", ":")).encode()
        headers = {
            "content-type": self._protocol.content_type,
            "x-amz-target": f"{self._protocol.target_prefix}.{operation}",
        }
        if self._protocol.query_compatible:
            headers["x-amzn-query-mode"] = "true"
        request = Request("POST", self._host, "/", "", headers, body)
        return self._call(operation, fields, lambda attempt, header: self._attempt(operation, request, attempt, header))

    def _attempt(self, operation: str, request: Request, attempt: int, trace_header: str | None) -> dict[str, Any]:
        response = self._exchange(request, trace_header)
        data = response.body
        expected_crc = response.headers.get("x-amz-crc32")
        if expected_crc is not None and str(zlib.crc32(data)) != expected_crc.strip():
            raise TransientError(
                ChecksumError(
                    checksum_type="crc32", expected_checksum=expected_crc, actual_checksum=str(zlib.crc32(data))
                )
            )
        metadata: Any = {
            "RequestId": response.headers.get("x-amzn-requestid", ""),
            "HTTPStatusCode": response.status,
            "RetryAttempts": attempt - 1,
        }
        if response.status < 300:
            try:
                answer = json.loads(data) if data else {}
            except ValueError:
                answer = None
            if not isinstance(answer, dict):  # botocore's parser fails the same way: not the service's answer
                raise UnreadableAnswerError(
                    operation=operation, status=response.status, expected="JSON object", start=data[:200]
                )
            answer["ResponseMetadata"] = metadata
            return answer
        raise self._failed(self._client_error(operation, response, metadata), response.status)

    def _client_error(self, operation: str, response: Response, metadata: Any) -> ClientError:
        """botocore's parse of a JSON-protocol error: the code is ``__type`` after any ``#`` (else the status), or
        the query protocol's code where ``x-amzn-query-error`` gives one; the message is ``message`` or ``Message``."""
        try:
            parsed = json.loads(response.body) if response.body else {}
        except ValueError:
            parsed = {}
        document: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        code = str(document.get("__type") or response.status).split(":", 1)[0].rsplit("#", 1)[-1]
        error: dict[str, str] = {"Message": str(document.get("message", document.get("Message", ""))), "Code": code}
        query_error = response.headers.get("x-amzn-query-error", "").split(";")
        if len(query_error) == 2 and query_error[0]:
            error.update(Code=query_error[0], QueryErrorCode=code, Type=query_error[1])
        # The error's own fields at the top, as botocore adds a modeled error's members (CancellationReasons).
        modeled = {name: value for name, value in document.items() if name not in _ERROR_ENVELOPE}
        return ClientError({**modeled, "Error": error, "ResponseMetadata": metadata}, operation)  # type: ignore[typeddict-item]


class DynamoDBJsonClient(JsonClient):
    """DynamoDB's operations adserve uses, as boto3's client takes and answers them (items in DynamoDB JSON);
    ``query_pages`` and ``scan_pages`` follow ``LastEvaluatedKey`` as boto3's paginators do."""

    def get_item(self, **params: Unpack["GetItemInputTypeDef"]) -> "GetItemOutputTypeDef":
        return cast("GetItemOutputTypeDef", self.call("GetItem", params))

    def put_item(self, **params: Unpack["PutItemInputTypeDef"]) -> "PutItemOutputTypeDef":
        return cast("PutItemOutputTypeDef", self.call("PutItem", params))

    def update_item(self, **params: Unpack["UpdateItemInputTypeDef"]) -> "UpdateItemOutputTypeDef":
        return cast("UpdateItemOutputTypeDef", self.call("UpdateItem", params))

    def delete_item(self, **params: Unpack["DeleteItemInputTypeDef"]) -> "DeleteItemOutputTypeDef":
        return cast("DeleteItemOutputTypeDef", self.call("DeleteItem", params))

    def query(self, **params: Unpack["QueryInputTypeDef"]) -> "QueryOutputTypeDef":
        return cast("QueryOutputTypeDef", self.call("Query", params))

    def scan(self, **params: Unpack["ScanInputTypeDef"]) -> "ScanOutputTypeDef":
        return cast("ScanOutputTypeDef", self.call("Scan", params))

    def batch_get_item(self, **params: Unpack["BatchGetItemInputTypeDef"]) -> "BatchGetItemOutputTypeDef":
        return cast("BatchGetItemOutputTypeDef", self.call("BatchGetItem", params))

    def batch_write_item(self, **params: Unpack["BatchWriteItemInputTypeDef"]) -> "BatchWriteItemOutputTypeDef":
        return cast("BatchWriteItemOutputTypeDef", self.call("BatchWriteItem", params))

    def transact_write_items(
        self, **params: Unpack["TransactWriteItemsInputTypeDef"]
    ) -> "TransactWriteItemsOutputTypeDef":
        return cast("TransactWriteItemsOutputTypeDef", self.call("TransactWriteItems", params))

    def query_pages(self, **params: Unpack["QueryInputTypeDef"]) -> Iterator["QueryOutputTypeDef"]:
        return self._pages("Query", params)

    def scan_pages(self, **params: Unpack["ScanInputTypeDef"]) -> Iterator["ScanOutputTypeDef"]:
        return self._pages("Scan", params)

    def _pages(self, operation: str, params: Mapping[str, Any]) -> Iterator[Any]:
        request = dict(params)
        while True:
            page = self.call(operation, request)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class SQSJsonClient(JsonClient):
    """SQS's SendMessage and SendMessageBatch as boto3's client takes and answers them."""

    def send_message(self, **params: Unpack["SendMessageRequestTypeDef"]) -> "SendMessageResultTypeDef":
        return cast("SendMessageResultTypeDef", self.call("SendMessage", params))

    def send_message_batch(self, **params: Unpack["SendMessageBatchRequestTypeDef"]) -> "SendMessageBatchResultTypeDef":
        return cast("SendMessageBatchResultTypeDef", self.call("SendMessageBatch", params))


class SecretsManagerJsonClient(JsonClient):
    """Secrets Manager's GetSecretValue as boto3's client takes and answers it: ``SecretBinary`` decoded to bytes,
    ``CreatedDate`` a datetime, as botocore's parser gives them."""

    def get_secret_value(self, **params: Unpack["GetSecretValueRequestTypeDef"]) -> "GetSecretValueResponseTypeDef":
        answer = self.call("GetSecretValue", params)
        if "SecretBinary" in answer:
            answer["SecretBinary"] = base64.b64decode(answer["SecretBinary"])
        if "CreatedDate" in answer:
            answer["CreatedDate"] = datetime.fromtimestamp(answer["CreatedDate"], UTC)
        return cast("GetSecretValueResponseTypeDef", answer)
