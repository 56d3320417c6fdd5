"""The demo's traffic driver (``devstack.demo.Traffic``): with several listeners in flight it still delivers
every decision and every event exactly once, the same counts as one listener at a time.

It runs on the demo's own stack (moto in a child process, event sources on), and counts what Record logged.
"""

import gzip
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from adserve.core.observability import MetricName
from adserve.dal.aws_clients import dynamodb_client, s3_client
from adserve.dal.campaign_store import CampaignStore
from adserve.dal.log_store import S3LogStore
from adserve.outcomes.logs import LOG_ROOT, LogKind, ReadStats, read_decisions, read_outcomes
from adserve.training.progress import SILENT

from devstack.demo import DemoConfig, Traffic, as_served, campaigns_of, demo_stack
from devstack.metrics_output import metric_total

DECISIONS = 360


def objects_holding(logs: S3LogStore, decision_ids: list[str]) -> dict[str, list[str]]:
    """Each decision id's decision log objects that hold its text, whatever partition they are in."""
    objects = {
        key: gzip.decompress(logs.read_object(key)).decode()
        for key in logs.list_keys(f"{LOG_ROOT}/{LogKind.DECISIONS.value}/")
    }
    return {decision_id: [key for key, text in objects.items() if decision_id in text] for decision_id in decision_ids}


class StackCounts:
    """The stack's own account of what it lost or saw twice, summed over every invocation's metrics.

    - ``DecisionLogFailures``: records Decide could not send within its budget, lost by design (a decision never
      waits on its own log line). On a loaded machine moto can outlast the budget; nothing else may lose one.
    - ``RecordsRedelivered``: records SQS gave Record again. A Record invocation that outlasts the demo's 10 s
      visibility timeout on a loaded machine has its batch redelivered, and a batch of another composition can
      log a row twice (readers drop it). Decide sends each record once, so no other cause may.
    - ``DeliveryDuplicatesDropped``: outcomes Record's delivery marker saw before (a redelivery, or Track's retry
      of a send whose answer timed out), the only way an outcome row can be logged twice.
    """

    NAMES = (MetricName.DECISION_LOG_FAILURES, MetricName.RECORDS_REDELIVERED, MetricName.DELIVERY_DUPLICATES_DROPPED)

    def __init__(self) -> None:
        self.totals = dict.fromkeys(self.NAMES, 0)
        self._lock = threading.Lock()

    def __call__(self, _function: object, documents: list[dict[str, Any]]) -> None:
        with self._lock:
            for name in self.NAMES:
                self.totals[name] += int(metric_total(documents, name))


@pytest.mark.parametrize("workers", [1, 4])
def test_every_decision_impression_and_click_is_logged_once(workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the demo's own moto process
    config = DemoConfig()
    world = config.world()
    counts = StackCounts()
    with demo_stack(config.exploration(), on_metrics=counts) as stack:
        campaigns = CampaignStore(
            dynamodb_client(endpoint_url=stack.endpoint_url), stack.physical_name("CampaignsTable")
        )
        for campaign in campaigns_of(world):
            campaigns.put(campaign)
        ads_by_id = {as_served(ad)["ad_id"]: ad for ad in world.ads}
        traffic = Traffic(stack, world, np.random.default_rng(5), ads_by_id, workers=workers)
        started = datetime.now(UTC)
        phase = traffic.run("test", DECISIONS, SILENT)
        traffic.wait_for_queue(0)
        ended = datetime.now(UTC)
        logs = S3LogStore(s3_client(endpoint_url=stack.endpoint_url), stack.physical_name("LogsBucket"))
        decision_stats, outcome_stats = ReadStats(), ReadStats()
        decisions = list(read_decisions(logs, started - timedelta(hours=1), ended, decision_stats))
        outcomes = list(read_outcomes(logs, started - timedelta(hours=1), ended, outcome_stats))
        dead_letters = boto3.client("sqs", endpoint_url=stack.endpoint_url).get_queue_attributes(
            QueueUrl=stack.physical_name("OutcomesDeadLetterQueue"),  # a queue's physical id is its URL
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
        # What a failure needs to be explained: the decisions whose outcomes arrived but whose record did not, and
        # whether their rows are in the bucket at all (written but not read back, or never written)
        unlogged = sorted({outcome.decision_id for outcome in outcomes} - {record.decision_id for record in decisions})
        stored = objects_holding(logs, unlogged)
    assert phase.decisions == DECISIONS
    assert phase.load is not None  # the round's CPU by process, which the demo prints and summarises per decision
    cpu = phase.load.cpu_seconds
    assert set(cpu) == {"stack", "moto", "DecideFunction", "TrackFunction", "RecordFunction"}
    assert all(seconds > 0 for seconds in cpu.values())
    assert 0.0 <= phase.load.paused_seconds < phase.load.seconds
    cost = phase.cost()
    assert cost["decisions_per_second"] == round(DECISIONS / phase.load.seconds, 1)
    assert cost["cpu_ms_per_decision"] == {part: round(s * 1000 / DECISIONS, 2) for part, s in cpu.items()}
    lost = counts.totals[MetricName.DECISION_LOG_FAILURES]
    logged = {record.decision_id for record in decisions}
    explain = (
        f"unlogged decisions with outcomes {unlogged}, the decision objects holding them {stored}, messages in the "
        f"DLQ {dead_letters}, counts {counts.totals}, reading the decisions {decision_stats}"
    )
    # Every decision not reported lost is logged; one reported lost may still be, if only the send's answer was late
    assert DECISIONS - lost <= len(decisions) <= DECISIONS, explain
    assert lost <= DECISIONS // 100
    assert decision_stats.duplicates_dropped <= counts.totals[MetricName.RECORDS_REDELIVERED]
    assert all(len(record.chosen) == 1 for record in decisions)  # uncapped, every placement: one ad each
    assert traffic.beacons_left == 0  # the first few events went through the beacon route, and are counted below
    by_type = {event: [o for o in outcomes if o.event_type == event] for event in ("impression", "click")}
    assert len(by_type["impression"]) == DECISIONS  # every played ad's impression, once (play rate 1)
    assert len(by_type["click"]) == phase.clicks
    assert outcome_stats.duplicates_dropped <= counts.totals[MetricName.DELIVERY_DUPLICATES_DROPPED]
    assert len({outcome.decision_id for outcome in outcomes} - logged) <= lost  # outcomes of a lost record
