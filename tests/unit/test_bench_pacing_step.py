"""Figure 10d's table answers the real delivery store as DynamoDB would, bills as DynamoDB would, and the docs
say so when the figure was not measured."""

from datetime import UTC, datetime, timedelta
from typing import cast

from adserve.dal.delivery_store import DynamoDeliveryStore
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.delivery.counting import SHARDS, DeliveryTotals

from bench import docs
from bench.pacing_scale import PER_HOUR, DeliveryTable


def test_the_table_answers_the_store_with_every_hour_so_far_in_every_shard_and_bills_its_reads() -> None:
    # Given the bench's table at 10:30 and the real store over it
    table = DeliveryTable()
    table.now = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
    store = DynamoDeliveryStore(cast("DynamoDBJsonClient", table), "delivery")
    day = table.now.replace(hour=0, minute=0)
    # When the pacing step's exact read and lifetime read run
    hours = store.hourly("cmp-bench", day, day + timedelta(hours=23))
    lifetime = store.lifetime("cmp-bench")
    # Then today holds the eleven hours so far, each summed over the 64 shards, and the lifetime more than that
    per_hour = DeliveryTotals(**{name: count * SHARDS for name, count in PER_HOUR.items()})
    assert hours == {day + timedelta(hours=hour): per_hour for hour in range(11)}
    assert lifetime.impressions > sum(totals.impressions for totals in hours.values())
    # And DynamoDB's bill: a strongly consistent Query per shard (1 unit each), 64 items of 0.5 unit each
    assert table.calls == {"dynamodb.Query": SHARDS, "dynamodb.BatchGetItem": 1}
    assert table.read_units == SHARDS * 1.0 + SHARDS * 0.5


def test_the_docs_say_when_the_pacing_step_was_not_measured() -> None:
    assert "not in this results file" in docs.pacing_step({"figures": {}})
