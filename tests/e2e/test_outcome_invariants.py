"""The outcome pipeline's acceptance: a seeded end-to-end run on the local stack, with faults, loses nothing.

Three processes talk real HTTP, as in AWS: moto in server mode (its own process, so no other test's moto
state is shared), ``python -m devstack run`` pointed at it, and this test. DynamoDB and S3 are reached through
an ``AwsProxy`` each (``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_S3``), so faults can be switched on
while RecordFunction consumes the outcomes queue: throttling, answers lost after the write was applied, and
the service unreachable.

The run: seeded capped campaigns, N decisions over HTTP for a few dozen listeners, then a random mix of
impression/click/complete/skip events sent as beacons and in POST /v1/events batches, with duplicates (a
beacon fired up to three times, an event in two batches, an event sent both ways) and 5 % corrupted tokens,
and a few poison messages put straight on the queue. Then, once the queue has drained: every decision is
logged once, every distinct valid event is logged once and nothing else is, every impression is counted
exactly once per listener and campaign (and advertiser), and the DLQ holds exactly the poison.
"""

import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import boto3
import httpx
import pytest
from adserve.campaigns.frequency_caps import counter_key
from adserve.campaigns.model import Campaign
from adserve.dal.aws_clients import dynamodb_client, s3_client, secretsmanager_client
from adserve.dal.frequency_cap_store import FrequencyCapStore
from adserve.dal.log_store import S3LogStore
from adserve.dal.secret_keys import read_pseudonymizer
from adserve.outcomes.logs import ReadStats, read_decisions, read_outcomes

from tests.support.aws_proxy import AwsProxy, aws_proxy
from tests.support.progress import Reading, wait_for_progress
from tests.support.stack_process import clean_environment, moto_server

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
SEED = 20_260_311
DECISIONS = 150
LISTENERS = 36
CAMPAIGNS = 8
CORRUPTED_SHARE = 0.05
VISIBILITY_TIMEOUT = 30
"""Seconds. A message becomes visible again if its batch is not done within this, and every receive counts
towards maxReceiveCount (5), so valid messages reach the DLQ when it is too short. Lambda's rule, which the
template follows (180 s, six times RecordFunction's timeout), applied to what a batch of 100 takes here: up to
5.2 s seen on two busy cores with faults on, so six times that. With 3 s three valid messages were
dead-lettered under load, and with 10 s seven to eleven were at a load average of 8 to 13."""
STARTUP_SECONDS = 180
"""A bound, not a wait: the banner usually comes in seconds, but a start on two busy cores can take a minute."""
DRAIN_STALL_SECONDS = 6 * VISIBILITY_TIMEOUT
"""The queue must reach a new low within this; its depth history is in the failure. Longer than a poison
message's stay (maxReceiveCount, 5, receives of a visibility timeout each), when the depth holds still."""
DRAIN_BOUND_SECONDS = 900
FAULT_SECONDS = 2.0
"""How long each fault stays on at least; healthy spells of HEAL_SECONDS between them let retries succeed."""
FAULTED_CALLS = 3
"""Write calls each fault stays on for (up to FAULT_LIMIT_SECONDS): when Record's writes come depends on its polling
and the machine's load, not on the clock, and a fault no write met would test nothing."""
FAULT_LIMIT_SECONDS = 90.0
HEAL_SECONDS = VISIBILITY_TIMEOUT + 2.5
POISON = (
    "not json at all",
    "[]",
    '{"kind": "mystery"}',
    '{"kind": "outcome", "event_id": "poison-1"}',
    '{"kind": "decision", "decision_id": "poison-2"}',
)
EVENT_TYPES = ("impression", "click", "complete", "skip")
EVENT_ODDS = {"impression": 0.85, "click": 0.15, "complete": 0.5, "skip": 0.2}
# --- processes --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningStack:
    process: "subprocess.Popen[bytes]"
    api: str
    resources: dict[str, str]
    """Logical id -> Ref (table and bucket names, queue URLs), from the banner."""


def read_banner(process: "subprocess.Popen[bytes]", banner: Path) -> RunningStack:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"adserve-local exited with {process.returncode}"
        text = banner.read_text(errors="replace")
        found = re.search(r"API:\s+(http://\S+)", text)
        if found and "Ctrl-C to stop." in text:
            block = text.split("Resources:", 1)[1].split("Routes:", 1)[0]
            resources = dict(re.findall(r"^ {4}(\w+)\s+(\S+)$", block, flags=re.MULTILINE))
            return RunningStack(process, found.group(1), resources)
        time.sleep(0.2)
    raise AssertionError(f"adserve-local was not ready within {STARTUP_SECONDS} s")


@contextmanager
def local_stack(logs: Path, environment: dict[str, str]) -> Iterator[RunningStack]:
    with (logs / "stdout").open("wb") as stdout, (logs / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "devstack", "run", "--port", "0", "--no-seed"),
                *("--visibility-timeout", str(VISIBILITY_TIMEOUT)),
            ],
            cwd=ROOT,
            env=clean_environment() | environment,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            yield read_banner(process, logs / "stdout")
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


# --- the plan ---------------------------------------------------------------------------------------------


def campaign_document(index: int, now: datetime) -> dict[str, Any]:
    """A capped campaign every listener is eligible for; each has its own advertiser."""
    return {
        "campaign_id": f"cmp-inv-{index}",
        "advertiser_id": f"adv-inv-{index}",
        "name": f"Invariant campaign {index}",
        "status": "active",
        "category": "music",
        "flight_start": (now - timedelta(days=1)).isoformat(),
        "flight_end": (now + timedelta(days=30)).isoformat(),
        "placements": ["audio_midroll"],
        "value_cpm": 5.0 + index,
        "frequency_caps": [
            {"max": 10_000, "window": "lifetime"},
            {"max": 10_000, "window": "lifetime", "scope": "advertiser"},
        ],
        "creatives": [
            {
                "ad_id": f"ad-inv-{index}",
                "format": "audio",
                "title": f"Spot {index}",
                "media_url": f"https://cdn.example.com/audio/inv-{index}.mp3",
                "click_url": "https://example.com/",
                "duration_seconds": 30,
            }
        ],
    }


@dataclass(frozen=True)
class Served:
    decision_id: str
    listener_id: str
    ad_id: str
    campaign_id: str
    tracking: dict[str, str]


@dataclass(frozen=True)
class PlannedEvent:
    served: Served
    event_type: str
    corrupted: bool
    url: str
    """The tracking URL, its token corrupted if the event is."""

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.served.decision_id, self.served.ad_id, self.event_type)

    @property
    def token(self) -> str:
        return parse_qs(urlparse(self.url).query)["t"][0]


@dataclass(frozen=True)
class Beacon:
    event: PlannedEvent


@dataclass(frozen=True)
class Batch:
    items: tuple[tuple[str, PlannedEvent], ...]
    """(event_id, event): an event sent twice keeps its event_id."""


def corrupt(url: str, rng: random.Random) -> str:
    """Flip one character of the token's payload or signature: a forged or tampered token."""
    token = parse_qs(urlparse(url).query)["t"][0]
    position = rng.randrange(len(token))
    while token[position] == ".":
        position = rng.randrange(len(token))
    replacement = "A" if token[position] != "A" else "B"
    return url.replace(token, token[:position] + replacement + token[position + 1 :])


def plan_events(served: list[Served], rng: random.Random) -> list[PlannedEvent]:
    events = []
    for ad in served:
        for event_type in EVENT_TYPES:
            if rng.random() < EVENT_ODDS[event_type]:
                corrupted = rng.random() < CORRUPTED_SHARE
                url = ad.tracking[event_type]
                events.append(PlannedEvent(ad, event_type, corrupted, corrupt(url, rng) if corrupted else url))
    return events


def plan_sends(events: list[PlannedEvent], rng: random.Random) -> list[Beacon | Batch]:
    """Beacons (some fired 2-3 times), batch items (some in two batches), some events sent both ways."""
    beacons: list[Beacon] = []
    first_round: list[tuple[str, PlannedEvent]] = []
    second_round: list[tuple[str, PlannedEvent]] = []
    for event in events:
        channel = rng.random()
        if channel < 0.45 or channel >= 0.9:
            beacons.extend(Beacon(event) for _ in range(rng.choice((1, 1, 1, 2, 3))))
        if channel >= 0.45:
            item = (f"ev-{rng.getrandbits(64):016x}", event)
            first_round.append(item)
            if rng.random() < 0.25:
                second_round.append(item)
    batches: list[Batch] = []
    for items in (first_round, second_round):  # a round never holds an event_id twice, so neither does a batch
        rng.shuffle(items)
        while items:
            size = rng.randint(5, 40)
            batches.append(Batch(tuple(items[:size])))
            del items[:size]
    sends: list[Beacon | Batch] = [*beacons, *batches]
    rng.shuffle(sends)
    return sends


# --- sending ----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    """Every event submission: each beacon firing and each batch item."""
    rejected: int = 0
    accepted: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    retried: int = 0


def fire_beacon(api: httpx.Client, event: PlannedEvent, tally: Tally) -> None:
    tally.sent += 1
    path = urlparse(event.url)
    for _ in range(3):
        response = api.get(f"{path.path}?{path.query}")
        if response.status_code != 503:
            break
        tally.retried += 1
        time.sleep(0.2)
    if event.corrupted:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"]
        tally.rejected += 1
    else:
        assert response.status_code == 204, response.text
        assert response.content == b""
        tally.accepted[event.identity] += 1


MAX_BATCH_RETRIES = 12  # backoff 0.2 s doubling to 5 s: about 45 s of retrying in all


def post_batch(api: httpx.Client, batch: Batch, tally: Tally) -> None:
    tally.sent += len(batch.items)
    pending = list(batch.items)
    # An app retries failed entries with the same event_id, backing off; on two busy cores moto can outlast
    # Track's queue budget several times in a row, so retry as long as a retry still gets some through.
    for attempt in range(MAX_BATCH_RETRIES):
        occurred_at = datetime.now(UTC).isoformat()
        body = {
            "events": [
                {"event_id": event_id, "type": event.event_type, "token": event.token, "occurred_at": occurred_at}
                for event_id, event in pending
            ]
        }
        response = api.post("/v1/events", json=body)
        assert response.status_code == 202, response.text
        results = response.json()["results"]
        assert [result["event_id"] for result in results] == [event_id for event_id, _ in pending]
        retry = []
        for (event_id, event), result in zip(pending, results, strict=True):
            if result["status"] == "failed":
                retry.append((event_id, event))
            elif event.corrupted:
                assert (result["status"], result["code"]) == ("rejected", "invalid_token"), result
                tally.rejected += 1
            else:
                assert result["status"] == "accepted", result
                tally.accepted[event.identity] += 1
        if not retry:
            return
        tally.retried += len(retry)
        pending = retry
        time.sleep(min(0.2 * 2**attempt, 5.0))
    raise AssertionError(f"{len(pending)} events were never queued after {MAX_BATCH_RETRIES} tries")


# --- faults -----------------------------------------------------------------------------------------------


def _throttle_writes(dynamodb: AwsProxy, s3: AwsProxy) -> None:
    dynamodb.throttle.add("TransactWriteItems")
    s3.drop_response.add("PutObject")


def _lose_answers(dynamodb: AwsProxy, s3: AwsProxy) -> None:
    dynamodb.drop_response.add("TransactWriteItems")
    s3.throttle.add("PutObject")


def _unreachable(dynamodb: AwsProxy, s3: AwsProxy) -> None:
    dynamodb.unreachable = True
    s3.delay["PutObject"] = 0.5


FAULTS: tuple[tuple[str, Callable[[AwsProxy, AwsProxy], None]], ...] = (
    ("DynamoDB TransactWriteItems throttled; S3 PutObject applied but its answer lost", _throttle_writes),
    ("DynamoDB TransactWriteItems applied but its answer lost; S3 PutObject throttled (SlowDown)", _lose_answers),
    ("DynamoDB unreachable; S3 PutObject slowed by 0.5 s", _unreachable),
)


def _write_calls(dynamodb: AwsProxy, s3: AwsProxy) -> int:
    """Record's writes the proxies have seen: DynamoDB's transactions (or connections refused), S3's puts."""
    return dynamodb.calls["TransactWriteItems"] + dynamodb.refused + s3.calls["PutObject"]


@dataclass
class FaultLog:
    lines: list[str] = field(default_factory=list)
    faulted_calls: int = 0


def send_with_faults(
    api: httpx.Client, sends: list[Beacon | Batch], proxies: tuple[AwsProxy, AwsProxy], tally: Tally
) -> FaultLog:
    """Send everything in len(FAULTS) + 1 slices; during each slice but the first one fault is on."""
    dynamodb, s3 = proxies
    log = FaultLog()
    slices = len(FAULTS) + 1
    for index in range(slices):
        fault = FAULTS[index - 1] if index else None
        if fault is not None:
            before = _write_calls(dynamodb, s3)
            fault[1](dynamodb, s3)
        started = time.monotonic()
        for send in sends[len(sends) * index // slices : len(sends) * (index + 1) // slices]:
            if isinstance(send, Beacon):
                fire_beacon(api, send.event, tally)
            else:
                post_batch(api, send, tally)
        if fault is None:
            continue
        while time.monotonic() - started < FAULT_LIMIT_SECONDS and (
            time.monotonic() - started < FAULT_SECONDS or _write_calls(dynamodb, s3) - before < FAULTED_CALLS
        ):
            time.sleep(0.05)
        calls = _write_calls(dynamodb, s3) - before
        for proxy in proxies:
            proxy.reset()
        log.faulted_calls += calls
        log.lines.append(f"{fault[0]}: {time.monotonic() - started:.1f} s, {calls} proxied write calls")
        time.sleep(HEAL_SECONDS)  # failed records come back after the visibility timeout and succeed
    return log


# --- checking ---------------------------------------------------------------------------------------------


def aws_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def queue_depth(sqs: "SQSClient", queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def wait_for_drain(sqs: "SQSClient", queue_url: str, dlq_url: str, poison: int) -> float:
    """Seconds until the queue is empty and the DLQ holds as many messages as the poison, twice in a row.

    Waits as long as the queue (visible + in flight) keeps shrinking: two busy cores drain it several times
    slower than an idle machine. A poison message stays for maxReceiveCount (5) receives of a visibility
    timeout each before it moves, hence the stall window.
    """

    def read() -> Reading:
        depth, dead = queue_depth(sqs, queue_url), queue_depth(sqs, dlq_url)
        return Reading(depth, done=(depth, dead) == (0, poison), note=f"(DLQ {dead})")

    return wait_for_progress(
        read,
        "outcomes queue not drained",
        stall_seconds=DRAIN_STALL_SECONDS,
        bound_seconds=DRAIN_BOUND_SECONDS,
        confirmations=2,
    )


BATCH_LINE = re.compile(r"RecordFunction <- OutcomesQueue: batch of (\d+), (\d+) failed")


def record_batches(stderr: Path) -> tuple[int, int]:
    """(batches RecordFunction was invoked with, records it reported failed), from the stack's log."""
    found = [(int(size), int(failed)) for size, failed in BATCH_LINE.findall(stderr.read_text(errors="replace"))]
    return len(found), sum(failed for _, failed in found)


def dead_letters(sqs: "SQSClient", dlq_url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not messages.get("Messages"):
            return bodies
        bodies.extend(message.get("Body", "") for message in messages["Messages"])


def seed_campaigns(api: httpx.Client, now: datetime) -> dict[str, Campaign]:
    documents = [campaign_document(index, now) for index in range(CAMPAIGNS)]
    for document in documents:
        response = api.put(f"/v1/campaigns/{document['campaign_id']}", json=document)
        assert response.status_code == 200, response.text
    return {document["campaign_id"]: Campaign.model_validate(document) for document in documents}


def make_decisions(api: httpx.Client, rng: random.Random) -> tuple[set[str], list[Served]]:
    """N decisions over HTTP; their ids and every ad they served."""
    served: list[Served] = []
    decision_ids: set[str] = set()
    for _ in range(DECISIONS):
        listener = f"listener-{rng.randrange(LISTENERS):02d}"
        request = {
            "listener": {
                "id": listener,
                "country": "SE",
                "device": "mobile",
                "session_id": f"s-{listener}",
                "context": {"content_type": "music", "genre": "pop"},
            },
            "placement": "audio_midroll",
            "max_ads": rng.randint(1, 3),
            "consent": {"personalise": True, "cap_frequency": True, "measure": True},
        }
        response = api.post("/v1/decisions", json=request)
        assert response.status_code == 200, response.text
        decision = response.json()
        assert decision["ads"], decision
        decision_ids.add(decision["decision_id"])
        served.extend(
            Served(decision["decision_id"], listener, ad["ad_id"], ad["campaign_id"], ad["tracking"])
            for ad in decision["ads"]
        )
    assert len(decision_ids) == DECISIONS
    return decision_ids, served


@dataclass
class Observed:
    """What the stack holds once the queue has drained, read as the trainer and Decide read it."""

    decisions: Counter[str]
    outcomes: Counter[tuple[str, str, str]]
    duplicate_rows_dropped: int
    counters: Counter[tuple[str, str]]
    """(listener, counter key) -> impressions."""
    dead_letters: list[str]


def observe(
    session: boto3.session.Session, moto: str, stack: RunningStack, listeners: set[str], since: datetime
) -> Observed:
    store = S3LogStore(s3_client(endpoint_url=moto), stack.resources["LogsBucket"])
    start, end = since - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
    decision_stats, outcome_stats = ReadStats(), ReadStats()
    decisions = Counter(record.decision_id for record in read_decisions(store, start, end, decision_stats))
    outcomes = Counter(outcome.identity for outcome in read_outcomes(store, start, end, outcome_stats))
    caps = FrequencyCapStore(dynamodb_client(endpoint_url=moto), stack.resources["FrequencyCapsTable"])
    pseudonyms = read_pseudonymizer(secretsmanager_client(endpoint_url=moto), stack.resources["PseudonymKeySecret"])
    counters: Counter[tuple[str, str]] = Counter()
    for listener in listeners:
        for key, count in caps.read_counters(pseudonyms.listener(listener), datetime.now(UTC)).items():
            counters[(listener, key)] = count
    return Observed(
        decisions=decisions,
        outcomes=outcomes,
        duplicate_rows_dropped=decision_stats.duplicates_dropped + outcome_stats.duplicates_dropped,
        counters=counters,
        dead_letters=dead_letters(session.client("sqs", endpoint_url=moto), stack.resources["OutcomesDeadLetterQueue"]),
    )


def expected_counters(
    valid: set[tuple[str, str, str]], served: list[Served], campaigns: dict[str, Campaign]
) -> Counter[tuple[str, str]]:
    """One per distinct valid impression, on each cap's counter (lifetime caps: the bucket is "all")."""
    by_ad = {(ad.decision_id, ad.ad_id): ad for ad in served}
    expected: Counter[tuple[str, str]] = Counter()
    for decision_id, ad_id, event_type in valid:
        if event_type == "impression":
            ad = by_ad[(decision_id, ad_id)]
            campaign = campaigns[ad.campaign_id]
            for cap in campaign.frequency_caps:
                expected[(ad.listener_id, counter_key(cap, campaign, "all"))] += 1
    return expected


def test_outcome_invariants_hold_through_duplicates_corruption_poison_and_faults(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    started_at = datetime.now(UTC)
    with moto_server() as moto, aws_proxy(moto) as dynamodb_proxy, aws_proxy(moto) as s3_proxy:
        environment = {
            "AWS_ENDPOINT_URL": moto,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_proxy.url,
            "AWS_ENDPOINT_URL_S3": s3_proxy.url,
            # Every decision must reach the log here: on a busy machine a send to moto can outlast the
            # production budget (250 ms, sized for SQS), so give it the most the setting allows.
            "DECISION_LOG_TIMEOUT_SECONDS": "1.0",
            # Every campaign here is capped. The production caps budget (0.3 s, then Decide fails closed and serves
            # no capped campaign) is a latency target that a Query through the proxy to moto on two busy cores
            # misses, which served empty breaks; this test is about the outcome pipeline, so the bound is generous.
            "CAP_READ_TIMEOUT_SECONDS": "5",
        }
        with local_stack(tmp_path, environment) as stack, httpx.Client(base_url=stack.api, timeout=15) as api:
            session = aws_session()
            sqs = session.client("sqs", endpoint_url=moto)
            queue_url, dlq_url = stack.resources["OutcomesQueue"], stack.resources["OutcomesDeadLetterQueue"]
            # Given capped campaigns, and N decisions for a few dozen listeners
            campaigns = seed_campaigns(api, started_at)
            decision_ids, served = make_decisions(api, rng)
            # When events arrive with duplicates and corrupted tokens, poison is queued, and faults come and go
            events = plan_events(served, rng)
            sends = plan_sends(events, rng)
            for body in POISON:
                sqs.send_message(QueueUrl=queue_url, MessageBody=body)
            tally = Tally()
            faults = send_with_faults(api, sends, (dynamodb_proxy, s3_proxy), tally)
            drain_seconds = wait_for_drain(sqs, queue_url, dlq_url, len(POISON))
            redrive = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
            poison_failures = len(POISON) * int(json.loads(redrive["RedrivePolicy"])["maxReceiveCount"])
            observed = observe(session, moto, stack, {ad.listener_id for ad in served}, started_at)
        batches, failed_records = record_batches(tmp_path / "stderr")

    valid = {event.identity for event in events if not event.corrupted}
    only_corrupted = {event.identity for event in events if event.corrupted} - valid
    recorded = set(observed.outcomes)
    summary = (
        f"sent={tally.sent} recorded={len(recorded)} duplicates dropped={sum(tally.accepted.values()) - len(valid)} "
        f"dead-lettered={len(observed.dead_letters)} lost={len(valid - recorded)} "
        f"(decisions={DECISIONS} logged={len(observed.decisions)}, rejected={tally.rejected}, "
        f"duplicate log rows dropped by the reader={observed.duplicate_rows_dropped}, "
        f"faulted write calls={faults.faulted_calls}, Record batches={batches}, valid records failed and "
        f"redelivered={failed_records - poison_failures}, drained in {drain_seconds:.1f} s)"
    )
    print(summary)
    for line in faults.lines:
        print(f"  fault: {line}")

    # Every decision logged once (after the reader's dedupe), and nothing else
    assert set(observed.decisions) == decision_ids, summary
    # Every valid event sent is recorded once; corrupted ones never reached the queue
    assert set(tally.accepted) == valid
    assert recorded == valid, summary
    assert not recorded & only_corrupted
    assert tally.rejected > 0
    assert sum(tally.accepted.values()) > len(valid), "the run sent no duplicates"
    # Counters: distinct impressions per listener and campaign, and per listener and advertiser
    assert observed.counters == expected_counters(valid, served, campaigns), summary
    # The DLQ holds exactly the poison
    assert sorted(observed.dead_letters) == sorted(POISON), summary
    # The faults were felt: writes hit them and valid records failed and were redelivered
    assert faults.faulted_calls > 0, summary
    assert failed_records > poison_failures, summary
    assert len(valid - recorded) == 0
