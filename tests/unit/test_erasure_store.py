"""Erasure's DynamoDB partition deletion and S3 ledger, on scripted clients: pages, batches of 25, unprocessed
items retried with backoff (and given up on), the ledger's conditional put."""

from collections.abc import Mapping
from typing import Any

import pytest
from adserve.core.errors import ErasureUnavailableError
from adserve.dal.erasure_store import (
    LEGACY_LEDGER_PREFIX,
    UNPROCESSED_ATTEMPTS,
    DynamoCounterPartitions,
    S3ErasureLedger,
)
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.privacy.erasure import PartitionDeletion
from adserve.privacy.pseudonyms import legacy_listener_hash
from botocore.exceptions import ClientError

from tests.support.privacy import pseudonym

TABLE = "caps"


def item(partition: str, key: str) -> dict[str, Any]:
    return {"listener_id": {"S": partition}, "counter_key": {"S": key}}


class ScriptedDynamo(DynamoDBJsonClient):
    """Query answers `pages` in turn; each BatchWriteItem leaves the scripted number of its items unprocessed.
    The client's own methods (its pages among them) run; only its calls are answered from the script."""

    def __init__(self, pages: list[list[dict[str, Any]]], unprocessed: list[int] | None = None) -> None:
        self.pages = pages
        self.unprocessed = unprocessed or []
        self.queries: list[dict[str, Any]] = []
        self.batches: list[list[dict[str, Any]]] = []

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if operation == "Query":
            return self._query(**params)
        return self._batch_write_item(**params)

    def _query(self, **request: Any) -> dict[str, Any]:
        self.queries.append(dict(request))
        index = len(self.queries) - 1
        page: dict[str, Any] = {"Items": self.pages[index]}
        if index + 1 < len(self.pages):
            page["LastEvaluatedKey"] = self.pages[index][-1]
        return page

    def _batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        requests = RequestItems[TABLE]
        self.batches.append(requests)
        left = self.unprocessed.pop(0) if self.unprocessed else 0
        return {"UnprocessedItems": {TABLE: requests[:left]} if left else {}}


def test_every_page_is_deleted_in_batches_of_25_and_counted_by_kind() -> None:
    first = [item("p", f"cap#campaign#c-{n}#day#2026-11-25") for n in range(30)]
    second = [item("p", f"seen#d-{n}#ad-1#impression") for n in range(3)]
    client = ScriptedDynamo([first, second])

    deletion = DynamoCounterPartitions(client, TABLE, sleep=lambda _: None).delete_partition("p")

    assert deletion == PartitionDeletion(counters=30, markers=3)
    assert [len(batch) for batch in client.batches] == [25, 5, 3]
    assert client.queries[1]["ExclusiveStartKey"] == first[-1]
    deleted = [request["DeleteRequest"]["Key"] for batch in client.batches for request in batch]
    assert deleted == first + second


def test_unprocessed_items_are_retried_with_growing_pauses() -> None:
    client = ScriptedDynamo([[item("p", f"cap#{n}") for n in range(4)]], unprocessed=[3, 1])
    pauses: list[float] = []

    deletion = DynamoCounterPartitions(client, TABLE, sleep=pauses.append).delete_partition("p")

    assert deletion.counters == 4
    assert [len(batch) for batch in client.batches] == [4, 3, 1]
    assert pauses == sorted(pauses)
    assert len(pauses) == 2


def test_items_never_processed_fail_the_erasure() -> None:
    client = ScriptedDynamo([[item("p", "cap#1")]], unprocessed=[1] * UNPROCESSED_ATTEMPTS)
    with pytest.raises(ErasureUnavailableError, match="unprocessed"):
        DynamoCounterPartitions(client, TABLE, sleep=lambda _: None).delete_partition("p")


class ScriptedS3:
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.puts: list[dict[str, Any]] = []

    def put_object(self, **request: Any) -> dict[str, Any]:
        self.puts.append(request)
        if request.get("IfNoneMatch") == "*" and request["Key"] in self.keys:
            raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one"}}, "PutObject")
        self.keys.add(request["Key"])
        return {}

    def list_objects_v2(self, **request: Any) -> dict[str, Any]:
        keys = sorted(key for key in self.keys if key.startswith(request["Prefix"]))
        return {"Contents": [{"Key": key} for key in keys], "IsTruncated": False}


def test_the_ledger_records_a_pseudonym_once_and_nothing_else() -> None:
    s3 = ScriptedS3()
    ledger = S3ErasureLedger(s3, "logs")  # type: ignore[arg-type]
    assert ledger.record(pseudonym("listener-1")) is True
    assert ledger.record(pseudonym("listener-1")) is False
    assert s3.keys == {f"erasures/{pseudonym('listener-1')}"}
    with pytest.raises(ValueError, match="pseudonym"):
        ledger.record("listener-1")  # a raw id never becomes a ledger entry


def test_the_unkeyed_hash_of_rows_from_before_pseudonyms_goes_where_it_expires_and_is_read_back() -> None:
    s3 = ScriptedS3()
    ledger = S3ErasureLedger(s3, "logs")  # type: ignore[arg-type]
    assert ledger.record(legacy_listener_hash("listener-1")) is True
    assert s3.keys == {f"{LEGACY_LEDGER_PREFIX}{legacy_listener_hash('listener-1')}"}
    assert ledger.erased() == {legacy_listener_hash("listener-1")}
