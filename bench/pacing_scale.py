"""Figure 10d: what one pacing step costs per budgeted campaign, and so how many campaigns one step can pace.

The real step (``run_pacing_step``) runs through the real stores (``DynamoDeliveryStore``,
``DynamoPacingStore``) over an in-memory table that answers their calls and counts them: today's hours are one
item per shard and hour so far, the lifetime one item per shard, growing every minute. Sixteen steps a minute
apart from a table with no states (no checkpoints: the first step of this release): the first reads every
campaign's today exactly, the next fifteen (one period of ``EXACT_READ_EVERY``) estimate it from those
checkpoints, each campaign reading exactly once more at its own slot.

Reported: calls per campaign in the first step (what every step cost before checkpoints) and over the fifteen
(mean, and the busiest step), our own CPU per campaign (the answers' JSON parse in, their building out), and
the campaigns a step can pace within its time (the function's timeout less ``TIME_RESERVE_MS``): waiting on the
calls at their ASSUMED latencies (``cost_model.LATENCY_MS``), ``PACING_PARALLEL_READS`` at a time; and on CPU,
at the share of a vCPU the function's memory buys (this machine's core taken for one).
"""

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from adserve.campaigns.model import Budget, BudgetUnit
from adserve.dal.delivery_store import COUNTS, LIFETIME_KEY, DynamoDeliveryStore, hour_key
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.dal.pacing_store import DynamoPacingStore
from adserve.delivery.counting import SHARDS, hour_of
from adserve.delivery.pacing import EXACT_READ_EVERY
from adserve.delivery.pacing_step import run_pacing_step
from adserve.wiring.pacing import TIME_RESERVE_MS
from adserve.wiring.settings import PacingSettings

from bench import catalogs
from bench.cost_model import LATENCY_MS, page_read_units, write_units
from bench.scale import ScannedTables
from devstack.stack import DEFAULT_TEMPLATE
from devstack.template import load_template

CAMPAIGNS = 1_000
"""Calls and CPU per campaign do not depend on how many there are; a thousand keep the figure to seconds."""
STEPS = 1 + int(EXACT_READ_EVERY / timedelta(minutes=1))
PER_HOUR = {name: 3 for name in COUNTS}


class DeliveryTable(ScannedTables):
    """The delivery table's counter items as the store's calls read them, for campaigns delivering every hour; the
    pacing table as ``ScannedTables`` keeps it. Counts every call by operation, and the read and write units
    DynamoDB would bill for it (``cost_model``'s sizes)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = datetime.now(UTC)
        self.calls: Counter[str] = Counter()
        self.read_units = 0.0
        self.write_units = 0.0
        self.answering_seconds = 0.0
        """Thread CPU spent building answers and sizing them (the bench's, not the step's: taken off its figure)."""
        self._hours: dict[tuple[str, str, int], str] = {}

    @contextmanager
    def _answering(self) -> Iterator[None]:
        started = time.thread_time()
        yield
        self.answering_seconds += time.thread_time() - started

    def put_item(self, *, TableName: str, Item: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.calls["dynamodb.PutItem"] += 1
        with self._answering():
            self.write_units += write_units(Item)
        return super().put_item(TableName=TableName, Item=Item)

    def scan_pages(self, *, TableName: str, **_: Any) -> Iterator[dict[str, Any]]:  # noqa: N803
        self.calls["dynamodb.Scan"] += 1
        for page in super().scan_pages(TableName=TableName):
            with self._answering():
                self.read_units += page_read_units(page["Items"], consistent=False)
            yield page

    def query_pages(
        self,
        *,
        TableName: str,  # noqa: N803, ARG002
        KeyConditionExpression: str,  # noqa: N803, ARG002
        ExpressionAttributeValues: dict[str, Any],  # noqa: N803
        ConsistentRead: bool = False,  # noqa: N803
    ) -> Iterator[dict[str, Any]]:
        """One page: a counter item per hour of the range up to now (no request counts: a uniform profile),
        parsed from its JSON as the client parses the service's answer."""
        self.calls["dynamodb.Query"] += 1
        with self._answering():
            page = self._page(ExpressionAttributeValues)
        answer = json.loads(page)
        with self._answering():
            self.read_units += page_read_units(answer["Items"], ConsistentRead)
        return iter([answer])

    def _page(self, values: dict[str, Any]) -> str:
        if not values[":pk"]["S"].startswith("campaign#"):
            return '{"Items": []}'
        span = (values[":first"]["S"], values[":last"]["S"], self.now.hour)
        page = self._hours.get(span)
        if page is None:
            day = hour_of(self.now).replace(hour=0)
            keys = [hour_key(day + timedelta(hours=hour)) for hour in range(self.now.hour + 1)]
            items = [{"sk": {"S": key}, **_counts(PER_HOUR)} for key in keys if span[0] <= key <= span[1]]
            page = self._hours[span] = json.dumps({"Items": items})
        return page

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        """Each lifetime key's item, parsed from its JSON as the client parses the service's answer; each item is
        billed on its own (eventually consistent, as the store asks)."""
        self.calls["dynamodb.BatchGetItem"] += 1
        with self._answering():
            ((table, request),) = RequestItems.items()
            minutes = self.now.hour * 60 + self.now.minute  # delivery goes on: states hold what real ones do
            lifetime = {name: 1_000 * count + minutes * count for name, count in PER_HOUR.items()}
            items = [key | _counts(lifetime) for key in request["Keys"] if key["sk"]["S"] == LIFETIME_KEY]
            self.read_units += sum(page_read_units([item], consistent=False) for item in items)
            answer = json.dumps({"Responses": {table: items}})
        return cast("dict[str, Any]", json.loads(answer))


def _counts(counts: dict[str, int]) -> dict[str, Any]:
    return {name: {"N": str(count)} for name, count in counts.items()}


FULL_VCPU_MB = 1769
"""Lambda gives a function one vCPU's worth of CPU at 1,769 MB, in proportion below it (AWS's documentation)."""


def _deployed() -> tuple[float, float]:
    """(seconds a step may spend on campaigns: PacingFunction's timeout less what it keeps for the last ones, the
    vCPUs its memory buys) from template.yaml."""
    template = load_template(DEFAULT_TEMPLATE)
    properties = template["Resources"]["PacingFunction"]["Properties"]
    memory = properties.get("MemorySize", template["Globals"]["Function"]["MemorySize"])
    return float(properties["Timeout"]) - TIME_RESERVE_MS / 1000, min(float(memory) / FULL_VCPU_MB, 1.0)


def _campaigns_per_step(calls_per_campaign: dict[str, float], parallel: int, seconds: float) -> int:
    wait_ms = sum(count * LATENCY_MS[call] for call, count in calls_per_campaign.items())
    return int(seconds * 1000 * parallel / wait_ms)


def run() -> dict[str, Any]:
    start = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    campaigns = [
        campaign.model_copy(update={"budget": Budget(unit=BudgetUnit.IMPRESSIONS, daily=1e9)})
        for campaign in catalogs.campaigns(CAMPAIGNS, start)
    ]
    table = DeliveryTable()
    client = cast("DynamoDBJsonClient", table)
    delivery, states = DynamoDeliveryStore(client, "delivery"), DynamoPacingStore(client, "pacing")
    steps: list[dict[str, Any]] = []
    for step in range(STEPS):
        table.now = start + timedelta(minutes=step)
        table.calls.clear()
        table.read_units = table.write_units = table.answering_seconds = 0.0
        cpu = time.thread_time()
        summary = run_pacing_step(campaigns, delivery, delivery, states, table.now)
        cpu_ms = (time.thread_time() - cpu - table.answering_seconds) * 1000
        if summary.paced != CAMPAIGNS:
            raise RuntimeError(f"the bench step paced {summary.paced} of {CAMPAIGNS} campaigns")
        steps.append(
            {
                "exact_reads": summary.exact_reads,
                "calls_per_campaign": {call: count / CAMPAIGNS for call, count in sorted(table.calls.items())},
                "read_units_per_campaign": table.read_units / CAMPAIGNS,
                "write_units_per_campaign": table.write_units / CAMPAIGNS,
                "cpu_ms_per_campaign": cpu_ms / CAMPAIGNS,
            }
        )
    first, steady = steps[0], steps[1:]
    if first["exact_reads"] != CAMPAIGNS or sum(s["exact_reads"] for s in steady) != CAMPAIGNS:
        raise RuntimeError("each campaign should read exactly in the first step and once in the period after it")
    mean = {
        call: sum(s["calls_per_campaign"].get(call, 0.0) for s in steady) / len(steady)
        for call in first["calls_per_campaign"]
    }
    parallel = PacingSettings.model_fields["pacing_parallel_reads"].default
    seconds, vcpus = _deployed()
    total = sum(mean.values())
    cpu_ms = sum(s["cpu_ms_per_campaign"] for s in steady) / len(steady)
    return {
        "campaigns": CAMPAIGNS,
        "shards": SHARDS,
        "steps": STEPS,
        "exact_read_every_minutes": EXACT_READ_EVERY / timedelta(minutes=1),
        "first_step": first,
        "steady_calls_per_campaign": mean,
        "steady_calls_per_campaign_total": round(total, 2),
        "steady_read_units_per_campaign": round(sum(s["read_units_per_campaign"] for s in steady) / len(steady), 2),
        "steady_write_units_per_campaign": round(sum(s["write_units_per_campaign"] for s in steady) / len(steady), 2),
        "busiest_steady_step_calls_per_campaign": round(max(sum(s["calls_per_campaign"].values()) for s in steady), 2),
        "most_exact_reads_in_a_steady_step": max(s["exact_reads"] for s in steady),
        "steady_cpu_ms_per_campaign": round(cpu_ms, 4),
        "steady_to_first_calls": round(total / sum(first["calls_per_campaign"].values()), 3),
        "assumed_latency_ms": {call: LATENCY_MS[call] for call in mean},
        "parallel_reads": parallel,
        "step_seconds": seconds,
        "vcpus": round(vcpus, 3),
        "campaigns_per_step": {
            "exact_every_step": _campaigns_per_step(first["calls_per_campaign"], parallel, seconds),
            "checkpointed": _campaigns_per_step(mean, parallel, seconds),
            "checkpointed_cpu_bound": int(seconds * 1000 * vcpus / cpu_ms),
        },
    }
