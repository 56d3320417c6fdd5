"""The DynamoDB impression counter's reading of transaction cancellations, on a scripted client."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from adserve.campaigns.frequency_caps import CounterSlot
from adserve.core.errors import CounterStoreUnavailableError
from adserve.dal.impression_counter import DynamoImpressionCounter
from adserve.outcomes.recording import ImpressionIncrement
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.support.builders import NOW

INCREMENT = ImpressionIncrement(
    listener="listener-1",
    marker_key="seen#d-1#ad-1#impression",
    marker_expires_at=NOW + timedelta(days=14),
    counters=(CounterSlot("cap#campaign#cmp-1#day#2026-11-25", NOW + timedelta(days=2)),),
    counted_at=NOW,
)


def cancelled(*codes: str, stored: dict[int, datetime] | None = None) -> ClientError:
    """A cancellation with one reason per item; ``stored``: by item, the expiry of the counter its condition found
    (returned as DynamoDB does with ``ReturnValuesOnConditionCheckFailure: ALL_OLD``)."""
    reasons: list[dict[str, Any]] = [{"Code": code} for code in codes]
    for index, expires_at in (stored or {}).items():
        reasons[index]["Item"] = {"impressions": {"N": "4"}, "expires_at": {"N": str(int(expires_at.timestamp()))}}
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
        "CancellationReasons": reasons,
    }
    return ClientError(response, "TransactWriteItems")


class ScriptedClient:
    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[list[dict[str, Any]]] = []

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 (boto3's)
        self.requests.append(TransactItems)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return {}


def counter(client: ScriptedClient) -> DynamoImpressionCounter:
    return DynamoImpressionCounter(client, "caps", sleep=lambda _: None)  # type: ignore[arg-type]


def test_one_transaction_puts_the_marker_if_absent_and_adds_to_each_counter() -> None:
    client = ScriptedClient(None)
    assert counter(client).count_once(INCREMENT) is True
    [[marker, update]] = client.requests
    assert marker["Put"]["ConditionExpression"] == "attribute_not_exists(counter_key)"
    # The marker in a partition of its own, naming no listener; the counters in the listener's
    assert marker["Put"]["Item"] == {
        "listener_id": {"S": INCREMENT.marker_key},
        "counter_key": {"S": "seen"},
        "expires_at": {"N": str(int(INCREMENT.marker_expires_at.timestamp()))},
    }
    assert update["Update"]["Key"]["listener_id"] == {"S": "listener-1"}
    assert update["Update"]["UpdateExpression"].startswith("ADD impressions :one")


def test_a_present_marker_means_a_duplicate() -> None:
    assert counter(ScriptedClient(cancelled("ConditionalCheckFailed", "None"))).count_once(INCREMENT) is False


def test_conflicting_transactions_are_retried() -> None:
    client = ScriptedClient(cancelled("None", "TransactionConflict"), cancelled("TransactionConflict", "None"), None)
    assert counter(client).count_once(INCREMENT) is True
    assert len(client.requests) == 3


def test_persistent_conflicts_make_the_store_unavailable() -> None:
    client = ScriptedClient(*(cancelled("TransactionConflict", "None") for _ in range(5)))
    with pytest.raises(CounterStoreUnavailableError):
        counter(client).count_once(INCREMENT)


@pytest.mark.parametrize(
    "error",
    [
        cancelled("None", "ValidationError"),
        ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "Transact"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_other_failures_make_the_store_unavailable(error: Exception) -> None:
    with pytest.raises(CounterStoreUnavailableError):
        counter(ScriptedClient(error)).count_once(INCREMENT)


def test_a_counter_found_expired_is_written_afresh_and_one_restarted_meanwhile_is_added_to() -> None:
    # The counter's condition cancels twice: it had expired, then another impression restarted it first
    expired, restarted = NOW - timedelta(hours=1), NOW + timedelta(days=2)
    client = ScriptedClient(
        cancelled("None", "ConditionalCheckFailed", stored={1: expired}),
        cancelled("None", "ConditionalCheckFailed", stored={1: restarted}),
        None,
    )
    assert counter(client).count_once(INCREMENT) is True
    updates = [request[1]["Update"] for request in client.requests]
    assert [update["UpdateExpression"].split()[0] for update in updates] == ["ADD", "SET", "ADD"]
    assert updates[1]["ConditionExpression"] == "expires_at <= :counted_at"
    assert updates[1]["ExpressionAttributeValues"][":counted_at"] == {"N": str(int(NOW.timestamp()))}
    assert all(update["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD" for update in updates)


def test_a_counter_an_impression_received_later_slid_further_is_added_to_and_keeps_its_expiry() -> None:
    # Given a counter whose expiry an impression received later, counted first, set past this impression's
    later = INCREMENT.counters[0].expires_at + timedelta(hours=1)
    client = ScriptedClient(cancelled("None", "ConditionalCheckFailed", stored={1: later}), None)
    assert counter(client).count_once(INCREMENT) is True
    # Then the first write moved the expiry only forward, and the second adds one without writing it back
    first, second = (request[1]["Update"] for request in client.requests)
    assert "expires_at <= :expires" in first["ConditionExpression"]
    assert second["UpdateExpression"] == "ADD impressions :one"
    assert second["ConditionExpression"] == "expires_at > :expires"
    assert set(second["ExpressionAttributeValues"]) == {":one", ":expires"}  # DynamoDB refuses an unused value
