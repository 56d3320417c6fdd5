"""RetrainFunction in process on the local stack: the sample schedule event, S3 logs in, S3 models out."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from adserve.dal.erasure_store import S3ErasureLedger
from adserve.dal.model_store import S3ModelStore
from adserve.models.ctr_model import CtrModel
from adserve.models.features import DEFAULT_SPEC
from adserve.outcomes.logs import encode_object, log_row
from adserve.training.simulation import World

from devstack.simulated_logs import TrafficConfig, simulate_traffic
from devstack.stack import LocalStack
from tests.support.privacy import PSEUDONYMS
from tests.support.record_messages import decision

EVENT = Path(__file__).parents[2] / "events" / "retrain_schedule.json"


@pytest.fixture
def buckets(local_stack: LocalStack) -> Iterator[tuple[Any, str, str]]:
    """The stack's logs and models buckets; whatever the test adds to them is removed afterwards."""
    s3 = boto3.client("s3", endpoint_url=local_stack.endpoint_url)
    logs, models = local_stack.physical_name("LogsBucket"), local_stack.physical_name("ModelsBucket")

    def keys(bucket: str) -> set[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    before = {bucket: keys(bucket) for bucket in (logs, models)}
    pointer = (
        s3.get_object(Bucket=models, Key="models/active.json")["Body"].read()
        if "models/active.json" in before[models]
        else None
    )
    yield s3, logs, models
    for bucket, existing in before.items():
        for key in keys(bucket) - existing:
            s3.delete_object(Bucket=bucket, Key=key)
    if pointer is not None:
        s3.put_object(Bucket=models, Key="models/active.json", Body=pointer)


def invoke(local_stack: LocalStack) -> dict[str, Any]:
    result: dict[str, Any] = local_stack.invoke("RetrainFunction", json.loads(EVENT.read_text()))
    return result


def test_without_logs_the_run_is_skipped_and_publishes_nothing(
    local_stack: LocalStack, buckets: tuple[Any, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s3, _, models = buckets
    before = s3.list_objects_v2(Bucket=models).get("KeyCount", 0)
    summary = invoke(local_stack)
    assert summary["status"] == "skipped"
    assert "not enough data" in summary["message"]
    assert s3.list_objects_v2(Bucket=models).get("KeyCount", 0) == before
    # And the outcome is counted by its dimension alone; the row counts by the service, as the RUNBOOK lists them
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    dimensions = {
        metric["Name"]: directive["Dimensions"]
        for document in emitted
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert sorted(dimensions["RetrainOutcome"][0]) == ["outcome", "service"]
    assert dimensions["RetrainExamples"] == [["service"]]


def test_a_scheduled_run_publishes_a_model_serving_can_load(
    local_stack: LocalStack, buckets: tuple[Any, str, str], tmp_path: Path
) -> None:
    # Given three days of simulated traffic that ended two days ago, in the stack's logs bucket
    s3, logs, models = buckets
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=130)
    traffic = TrafficConfig(decisions=2500, start=start, span=timedelta(hours=72), keep_truth=False)

    class Sink:
        def put_object(self, key: str, body: bytes) -> None:
            s3.put_object(Bucket=logs, Key=key, Body=body)

    simulate_traffic(Sink(), World(seed=5), traffic)
    # When the schedule fires
    summary = invoke(local_stack)
    # Then a version is published, whether or not it beat the baseline, and it loads for serving
    assert summary["status"] in {"promoted", "registered"}, summary
    assert summary["dataset"]["examples"] >= 2 * 2500
    store = S3ModelStore(s3, models)
    assert summary["version"] in store.versions()
    model = CtrModel.load(store.download(summary["version"], tmp_path), DEFAULT_SPEC)
    assert model.manifest["evaluation"]["promotion"]["estimator"] == "snips"


def test_a_run_reads_the_erasure_ledger_and_leaves_the_erased_listeners_decisions_out(
    local_stack: LocalStack, buckets: tuple[Any, str, str]
) -> None:
    # Given two listeners' decisions two days ago, then one of them in the erasure ledger
    s3, logs, _ = buckets
    erased, kept = PSEUDONYMS.listener("retrain-erased"), PSEUDONYMS.listener("retrain-kept")
    decided_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=48)
    for listener, decision_id in ((erased, "d-retrain-erased"), (kept, "d-retrain-kept")):
        record = decision(decision_id=decision_id, decided_at=decided_at).model_copy(update={"listener_hash": listener})
        row = log_row(record)
        s3.put_object(Bucket=logs, Key=row.partition.object_key([decision_id]), Body=encode_object([row.line]))
    before = invoke(local_stack)["dataset"]
    assert S3ErasureLedger(s3, logs).record(erased)
    # When the schedule fires (other tests of this worker may have logged decisions in the window too)
    summary = invoke(local_stack)
    # Then the erased listener's decision was read and left out, the other one kept
    assert summary["status"] == "skipped"
    assert (before["log_dropped_erased"], summary["dataset"]["log_dropped_erased"]) == (0, 1)
    assert summary["dataset"]["decisions"] == before["decisions"] - 1
