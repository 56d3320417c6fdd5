"""Figure 7: Record's throughput per consumer invocation, for SQS batches of 10 and 100 messages.

Each batch is what Decide and Track put on the outcomes queue: mostly impressions of capped campaigns (each
one a DynamoDB transaction: marker + two counters), some clicks/completions, some decision records (20
candidates each). Every batch carries fresh decision ids, so every impression is really counted (no
duplicate short-cut).

* *fakes*: ``OutcomeRecorder`` wired to ``InMemoryImpressionCounter`` and ``InMemoryLogStore``, with the
  production ``CampaignDirectory`` over ``InMemoryCampaigns``: our own CPU cost, read by the thread's CPU
  clock (``thread_time_ns``, the ``cpu_us_per_event_*`` figures) next to wall time (``us_per_event_*``).
  Timed twice: the domain's ``process_batch`` alone, and the real ``functions/record/app.py`` handler around
  it (Powertools logger context, metrics flush), whose ``recorder()`` returns that recorder. Measured in a
  child process of its own (``python -m bench.record_throughput --fakes``), as a Record environment runs only
  Record: measured after the other figures in the bench's process, with their heap left behind, it read more.
* *moto*: the real handler through ``LocalStack.invoke`` with the production wiring, against moto in server
  mode: one TransactWriteItems per impression, one PutObject per (kind, hour) of the batch. The events are
  built from real messages: sent to the stack's outcomes queue, received with every attribute, deleted
  (so the queue stays empty, see figure 1b), then turned into the event Lambda's poller would build.
"""

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from adserve.campaigns.directory import CampaignDirectory
from adserve.campaigns.model import Campaign
from adserve.core.vocabulary import EventType
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.botocore_session import sqs_client
from adserve.outcomes.decision_records import (
    DecisionRecord,
    LoggedCandidate,
    LoggedChoice,
    LoggedPolicy,
)
from adserve.outcomes.events import OutcomeEvent
from adserve.outcomes.recording import OutcomeRecorder
from aws_lambda_powertools.utilities.typing import LambdaContext

from bench import catalogs
from bench.catalogs import PSEUDONYMS
from bench.decide_latency import quiet_stdout
from bench.handler import load_module
from bench.handler_errors import counting_errors
from bench.moto_latency import empty_queue, put_campaigns
from bench.stats import Summary, measure
from devstack.event_source_mapping import sqs_event
from devstack.fakes import InMemoryCampaigns, InMemoryDeliveryCounter, InMemoryImpressionCounter, InMemoryLogStore
from devstack.lambda_runtime import LocalLambdaContext
from devstack.stack import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef
    from mypy_boto3_sqs.type_defs import MessageTypeDef, SendMessageBatchRequestEntryTypeDef

RECORD_APP = catalogs.REPO_ROOT / "functions" / "record" / "app.py"
FUNCTION = "RecordFunction"
BATCH_SIZES = (10, 100)
IMPRESSION_SHARE = 0.8
DECISION_SHARE = 0.1
CANDIDATES_PER_DECISION = 20
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:bench-OutcomesQueue"
LISTENERS = 50


def capped_campaigns(now: datetime) -> list[Campaign]:
    """The benchmark catalog's campaigns that carry caps (two each: session/campaign, day/advertiser)."""
    return [campaign for campaign in catalogs.campaigns(60, now) if campaign.is_capped]


class MessageFactory:
    """Queue message bodies: mostly impressions of capped campaigns, each with a fresh decision id."""

    def __init__(self, campaigns: Sequence[Campaign], seed: int) -> None:
        self._campaigns = list(campaigns)
        self._rng = random.Random(seed)

    def body(self) -> str:
        roll = self._rng.random()
        if roll < DECISION_SHARE:
            return self._decision().model_dump_json()
        kind = EventType.IMPRESSION if roll < DECISION_SHARE + IMPRESSION_SHARE else self._other_type()
        return self._outcome(kind).model_dump_json()

    def bodies(self, count: int) -> list[str]:
        return [self.body() for _ in range(count)]

    def _other_type(self) -> EventType:
        return self._rng.choice((EventType.CLICK, EventType.COMPLETE, EventType.SKIP))

    def _outcome(self, event_type: EventType) -> OutcomeEvent:
        campaign = self._rng.choice(self._campaigns)
        now = datetime.now(UTC)
        listener = f"listener-{self._rng.randrange(LISTENERS)}"
        return OutcomeEvent(
            event_id=f"e-{self._rng.getrandbits(64):016x}",
            event_type=event_type,
            decision_id=f"d-{self._rng.getrandbits(64):016x}",
            ad_id=campaign.creatives[0].ad_id,
            campaign_id=campaign.campaign_id,
            advertiser_id=campaign.advertiser_id,
            listener=PSEUDONYMS.listener(listener),
            session=f"s:{listener}",
            occurred_at=now - timedelta(seconds=2),
            received_at=now,
        )

    def _decision(self) -> DecisionRecord:
        chosen = self._rng.sample(self._campaigns, 3)
        candidates = [*chosen, *self._rng.sample(self._campaigns, CANDIDATES_PER_DECISION - 3)]
        return DecisionRecord(
            decision_id=f"d-{self._rng.getrandbits(64):016x}",
            decided_at=datetime.now(UTC),
            model_version="bench",
            policy=LoggedPolicy(epsilon=0.1),
            listener_hash=PSEUDONYMS.listener(f"listener-{self._rng.randrange(LISTENERS)}"),
            listener_features={"country": "SE", "device": "mobile", "content_type": "music", "genre": "pop"},
            placement=catalogs.PLACEMENT,
            max_ads=3,
            cap_check="ok",
            candidates=[
                LoggedCandidate(
                    ad_id=campaign.creatives[0].ad_id,
                    campaign_id=campaign.campaign_id,
                    advertiser_id=campaign.advertiser_id,
                    features={"category": campaign.category, "format": "audio"},
                    score=0.05,
                    value_cpm=campaign.value_cpm,
                )
                for campaign in candidates
            ],
            chosen=[
                LoggedChoice(ad_id=campaign.creatives[0].ad_id, rank=rank, score=0.05, propensity=0.9)
                for rank, campaign in enumerate(chosen, 1)
            ],
        )


def synthetic_event(bodies: Sequence[str]) -> dict[str, Any]:
    """The event Lambda's poller builds, from messages shaped as ReceiveMessage returns them."""
    sent = str(int(datetime.now(UTC).timestamp() * 1000))
    messages: list[MessageTypeDef] = [
        {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": uuid.uuid4().hex,
            "Body": body,
            "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "Attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": sent,
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": sent,
            },
        }
        for body in bodies
    ]
    return sqs_event(messages, queue_arn=QUEUE_ARN, region="us-east-1")


def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name="bench-record",
        memory_limit_in_mb=1024,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench-record",
        timeout_seconds=3600,  # the recorder stops counting 5 s before the deadline: keep it far away
    )


def _check(response: Any, size: int) -> None:
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if failures:
        raise RuntimeError(f"{len(failures)} of {size} records failed: the benchmark would time a failure path")


def _per_event(summary: Summary, size: int) -> dict[str, Any]:
    """The invocation's latency plus per-event cost and throughput (from the mean and the p50).

    ``us_per_event_*`` are wall time (``perf_counter``); with the thread's CPU clock measured (``Summary.cpu``,
    the fakes), ``cpu_us_per_event_*`` are the handler's own CPU per event: on shared cores the wall time also
    holds the time other processes had the core, which the CPU clock leaves out.
    """
    cpu = summary.cpu
    return {
        **summary.to_dict(),
        "batch_size": size,
        "us_per_event_mean": round(summary.mean_ms * 1000 / size, 2),
        "us_per_event_p50": round(summary.p50_ms * 1000 / size, 2),
        "events_per_second_mean": round(size / (summary.mean_ms / 1000), 1),
        **(
            {}
            if cpu is None
            else {
                "cpu_us_per_event_mean": round(cpu.mean_ms * 1000 / size, 2),
                "cpu_us_per_event_p50": round(cpu.p50_ms * 1000 / size, 2),
                "cpu_us_per_event_min": round(cpu.min_ms * 1000 / size, 2),
            }
        ),
    }


class _Batches:
    """Pre-built events handed out one per call, so nothing but the invocation is timed."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events
        self._next = 0

    def take(self) -> dict[str, Any]:
        event = self._events[self._next]
        self._next += 1
        return event


def run_fakes(quick: bool = False) -> dict[str, Any]:
    """Figure 7a in a fresh child process (``measure_fakes``), with nothing else in its heap."""
    child = subprocess.run(
        [sys.executable, "-m", "bench.record_throughput", "--fakes", *(["--quick"] if quick else [])],
        cwd=catalogs.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(catalogs.REPO_ROOT)},
    )
    if child.returncode:
        raise RuntimeError(f"figure 7a's process failed ({child.returncode}): {child.stderr[-2000:]}")
    figure: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return {**figure, "measured_in": "a child process of its own"}


def measure_fakes(quick: bool = False) -> dict[str, Any]:
    """Figure 7a in this process: the recorder on in-memory ports, then the real handler around it."""
    now = datetime.now(UTC)
    campaigns = capped_campaigns(now)
    counter, logs = InMemoryImpressionCounter(), InMemoryLogStore()
    recorder = OutcomeRecorder(
        counter=counter,
        campaigns=CampaignDirectory(InMemoryCampaigns(campaigns), ttl_seconds=3600.0),
        logs=logs,
        delivery=InMemoryDeliveryCounter(),
    )
    module = load_module(RECORD_APP, "bench_record_app")
    setattr(module, "recorder", lambda: recorder)  # noqa: B010 - the handler's one seam, as bench/handler.py does
    context = lambda_context()
    factory = MessageFactory(campaigns, seed=6)
    results: dict[str, Any] = {"campaigns": len(campaigns), "sizes": {}}
    for size in BATCH_SIZES:
        iterations = (200 if size == 10 else 60) // (5 if quick else 1)
        warmup = max(iterations // 10, 5)
        total = 2 * (iterations + warmup) + 1
        batches = _Batches([synthetic_event(factory.bodies(size)) for _ in range(total)])
        domain_call: Callable[[dict[str, Any]], Any] = partial(
            recorder.process_batch, context=cast(LambdaContext, context)
        )
        handler_call: Callable[[dict[str, Any]], Any] = partial(module.lambda_handler, context=context)
        with quiet_stdout(), counting_errors() as errors:
            _invoke_batch(domain_call, batches, size)
            domain = measure(partial(_invoke_batch, domain_call, batches, size), iterations, warmup, own_cpu=True)
            handler = measure(partial(_invoke_batch, handler_call, batches, size), iterations, warmup, own_cpu=True)
        results["sizes"][str(size)] = {
            "domain_process_batch": _per_event(domain, size),
            "full_handler": _per_event(handler, size),
            "handler_errors": errors.to_dict(),
        }
    results["impressions_counted"] = sum(sum(counts.values()) for counts in counter.counts.values())
    results["log_objects"] = len(logs.objects)
    return results


def received_event(stack: LocalStack, bodies: Sequence[str]) -> dict[str, Any]:
    """Send the bodies to the stack's queue, receive them with every attribute, delete them; Lambda's event."""
    client = sqs_client()
    queue_url = stack.env["OUTCOMES_QUEUE_URL"]
    for start in range(0, len(bodies), 10):
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(index), "MessageBody": body} for index, body in enumerate(bodies[start : start + 10])
        ]
        client.send_message_batch(QueueUrl=queue_url, Entries=entries)
    received: dict[str, MessageTypeDef] = {}
    while len(received) < len(bodies):
        messages = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=600,
        ).get("Messages", [])
        if not messages:
            raise RuntimeError(f"received {len(received)} of {len(bodies)} messages")
        received.update((message["MessageId"], message) for message in messages)
    for start in range(0, len(received), 10):
        chunk = list(received.values())[start : start + 10]
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(chunk)
            ],
        )
    queue = stack.description.references["OutcomesQueue"]
    return sqs_event(list(received.values()), queue_arn=str(queue.attributes["Arn"]), region=stack.description.region)


def clear_caps_table(stack: LocalStack) -> None:
    """Delete every item of the caps table: moto copies the whole table for each item of a transaction.

    moto's TransactWriteItems deep-copies the table once per transaction item (to roll back on failure), so
    its cost grows with the table (~100 ms an impression at a few thousand items on this machine). DynamoDB's
    does not; each timed batch therefore starts from an empty table, as figure 1b starts from an empty queue.
    """
    client = dynamodb_client()
    table = stack.physical_name("FrequencyCapsTable")
    keys = [
        {"listener_id": item["listener_id"], "counter_key": item["counter_key"]}
        for page in client.scan_pages(TableName=table, ProjectionExpression="listener_id, counter_key")
        for item in page["Items"]
    ]
    for start in range(0, len(keys), 25):
        client.batch_write_item(
            RequestItems={table: [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]}
        )


def bare_transaction(stack: LocalStack) -> Callable[[], object]:
    """One impression's transaction (marker + two counters) as a bare boto3 call on an emptied table."""
    client = dynamodb_client()
    table = stack.physical_name("FrequencyCapsTable")
    rng = random.Random(3)
    expires = {"N": str(int((datetime.now(UTC) + timedelta(days=2)).timestamp()))}

    def transact() -> object:
        listener = {"S": f"listener-{rng.randrange(LISTENERS)}"}
        marker = {"S": f"seen#d-{rng.getrandbits(64):016x}#ad#impression"}
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": table,
                    "Item": {"listener_id": marker, "counter_key": {"S": "seen"}, "expires_at": expires},
                    "ConditionExpression": "attribute_not_exists(counter_key)",
                }
            }
        ]
        for key in ("cap#campaign#bench#session#s", "cap#advertiser#bench#day#d"):
            items.append(
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"listener_id": listener, "counter_key": {"S": key}},
                        "UpdateExpression": "ADD impressions :one SET expires_at = :expires",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":expires": expires},
                    }
                }
            )
        return client.transact_write_items(TransactItems=items)

    return transact


def run_moto(stack: LocalStack, quick: bool = False) -> dict[str, Any]:
    now = datetime.now(UTC)
    campaigns = capped_campaigns(now)
    put_campaigns(stack, campaigns)
    module: ModuleType = stack.handler_module(FUNCTION)
    module.recorder.cache_clear()  # the next invocation builds the recorder and loads these campaigns
    empty_queue(stack)
    clear_caps_table(stack)
    factory = MessageFactory(campaigns, seed=7)
    results: dict[str, Any] = {"campaigns": len(campaigns), "sizes": {}}
    for size in BATCH_SIZES:
        iterations = (20 if size == 10 else 5) // (4 if quick else 1) or 1
        warmup = 1
        batches = _Batches([received_event(stack, factory.bodies(size)) for _ in range(iterations + warmup + 1)])
        invoke: Callable[[], None] = partial(_invoke_checked, stack, batches, size)
        clear = partial(clear_caps_table, stack)
        with quiet_stdout(), counting_errors() as errors:
            invoke()
            clear()
            handler = measure(invoke, iterations, warmup, clear)
        results["sizes"][str(size)] = {"full_handler": _per_event(handler, size), "handler_errors": errors.to_dict()}
    transaction = measure(bare_transaction(stack), 50 if not quick else 10, 5)
    clear_caps_table(stack)
    results["moto_bare_transaction"] = transaction.to_dict()
    return results


def _invoke_checked(stack: LocalStack, batches: _Batches, size: int) -> None:
    _check(stack.invoke(FUNCTION, batches.take()), size)


def _invoke_batch(call: Callable[[dict[str, Any]], Any], batches: _Batches, size: int) -> None:
    _check(call(batches.take()), size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fakes", action="store_true", help="(child) measure figure 7a in this process")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not args.fakes:
        parser.error("only --fakes runs on its own; `python -m bench --only record` runs figure 7a")
    print(json.dumps(measure_fakes(args.quick)))


if __name__ == "__main__":
    main()
