"""Issue 11's evidence: after decisions, beacons and Record on the local stack, nothing stored names a listener.

``python -m devstack run`` as a process (``--raw-metrics``, so the handlers' EMF documents reach its stdout
as they reach CloudWatch in Lambda), driven over HTTP for listeners with full consent, without any consent
object (the template's strict default), with capping consent but not personalisation, with capping consent
only (no measurement either: its decision rows carry no pseudonym), with a TCF string, and a minor with full
consent. moto runs in a process of its own, behind a proxy that keeps every call the stack makes to it and
every answer (so the SQS messages Record consumed are read too, as sent). Once Record has drained the queue,
the test reads everything the stack holds: every item of every DynamoDB table, every message left on every
queue (the DLQ too), every object in every bucket (gunzipped), every line the process wrote to stdout and
stderr (the handlers' logs and metrics, the gateway's access log, the devstack's own), and that traffic.
The raw listener ids and session ids must occur nowhere; the listeners without personalisation consent and
the minor must have no listener field in their decision records (their devices and age buckets are ones no
personalised listener uses, so a grep is exact); the listeners without capping consent must have no
item in the caps table; and no item of the caps table may name both a pseudonym and a decision id (the
decision rows carry the decision id, so such an item would tie an unmeasured listener's rows to it).
"""

import gzip
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from adserve.dal.aws_clients import s3_client, secretsmanager_client
from adserve.dal.log_store import S3LogStore
from adserve.dal.secret_keys import read_pseudonymizer
from adserve.outcomes.logs import read_decisions, read_outcomes

from tests.support.aws_proxy import AwsProxy, aws_proxy
from tests.support.progress import Reading, wait_for_progress
from tests.support.stack_process import moto_server, running_stack
from tests.support.tc_strings import tc_string

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.slow

VISIBILITY_TIMEOUT = 10
"""Seconds; long enough for a batch on two busy cores (see test_outcome_invariants)."""
DRAIN_STALL_SECONDS = 120
DRAIN_BOUND_SECONDS = 600
FULL = {"personalise": True, "cap_frequency": True, "measure": True}
CAPS_ONLY = {"personalise": False, "cap_frequency": True, "measure": True}
UNMEASURED = {"personalise": False, "cap_frequency": True, "measure": False}
PERSONALISED_DEVICE, PERSONALISED_AGE = "mobile", "25-34"
BEACONS = ("impression", "click", "complete")


@dataclass(frozen=True)
class Persona:
    """A kind of listener: its consent, and the device and age bucket only listeners of its kind use."""

    name: str
    consent: dict[str, Any] | None
    device: str
    age_bucket: str
    personalised: bool
    counted: bool
    """Whether Record may keep frequency counters under the listener's pseudonym."""
    unmeasured: bool = False
    """Consent refuses measurement outright: the decision rows must carry no pseudonym."""


PERSONAS = (
    Persona("full", FULL, PERSONALISED_DEVICE, PERSONALISED_AGE, personalised=True, counted=True),
    Persona("none", None, "smart_speaker", "65+", personalised=False, counted=False),
    Persona("capsonly", CAPS_ONLY, "console", "55-64", personalised=False, counted=True),
    Persona("unmeasured", UNMEASURED, "desktop", "45-54", personalised=False, counted=True, unmeasured=True),
    Persona(
        "tcf", {"tcf": tc_string(purposes=(1, 2, 3, 4, 7))}, PERSONALISED_DEVICE, PERSONALISED_AGE, True, counted=True
    ),
    Persona("minor", FULL, "wearable", "13-17", personalised=False, counted=True),
)
LISTENERS_PER_PERSONA = 2
DECISIONS_PER_LISTENER = 2


@dataclass(frozen=True)
class Listener:
    persona: Persona
    id: str
    sessions: tuple[str, ...]


def listeners() -> list[Listener]:
    """Long random ids and session ids: a substring search can only find them where they were written."""
    return [
        Listener(
            persona,
            f"privacy-e2e-listener-{persona.name}-{secrets.token_hex(12)}",
            tuple(f"privacy-e2e-session-{secrets.token_hex(12)}" for _ in range(DECISIONS_PER_LISTENER)),
        )
        for persona in PERSONAS
        for _ in range(LISTENERS_PER_PERSONA)
    ]


def campaign(campaign_id: str, *, capped: bool, now: datetime) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "advertiser_id": f"adv-{campaign_id}",
        "name": f"Privacy campaign {campaign_id}",
        "status": "active",
        "category": "music",
        "flight_start": (now - timedelta(days=1)).isoformat(),
        "flight_end": (now + timedelta(days=30)).isoformat(),
        "placements": ["audio_midroll"],
        "value_cpm": 5.0,
        "frequency_caps": [{"max": 1000, "window": "day"}, {"max": 1000, "window": "session"}] if capped else [],
        "creatives": [
            {
                "ad_id": f"ad-{campaign_id}",
                "format": "audio",
                "title": f"Spot {campaign_id}",
                "media_url": f"https://cdn.example.com/audio/{campaign_id}.mp3",
                "click_url": "https://example.com/",
                "duration_seconds": 30,
            }
        ],
    }


# --- the stack --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    api: str
    aws: str
    """moto itself: the test's reads do not go through the proxy."""
    resources: dict[str, str]
    output: tuple[Path, Path]
    """The process's stdout and stderr: every line the handlers and the devstack wrote."""
    proxy: AwsProxy
    """Between the stack and moto: every call the stack made and its answer."""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    options = ("--no-seed", "--raw-metrics", "--visibility-timeout", str(VISIBILITY_TIMEOUT))
    with moto_server() as moto, aws_proxy(moto, keep_traffic=True) as proxy:
        environment = {
            "AWS_ENDPOINT_URL": proxy.url,
            # busy-machine budgets, as in test_outcome_invariants
            "DECISION_LOG_TIMEOUT_SECONDS": "1.0",
            "CAP_READ_TIMEOUT_SECONDS": "5",
        }
        with running_stack(tmp_path, *options, environment=environment) as (_, api):
            banner = (tmp_path / "stdout").read_text(errors="replace")
            block = banner.split("Resources:", 1)[1].split("Routes:", 1)[0]
            resources = dict(re.findall(r"^ {4}(\w+)\s+(\S+)$", block, flags=re.MULTILINE))
            yield Stack(api, moto, resources, (tmp_path / "stdout", tmp_path / "stderr"), proxy)


def aws_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


# --- driving ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    listener: Listener
    decision_id: str
    mode: str
    tracking: tuple[str, ...]


def decide(api: httpx.Client, listener: Listener, session: str) -> Decided:
    request: dict[str, Any] = {
        "listener": {
            "id": listener.id,
            "country": "SE",
            "device": listener.persona.device,
            "age_bucket": listener.persona.age_bucket,
            "session_id": session,
            "context": {"content_type": "music", "genre": "pop"},
        },
        "placement": "audio_midroll",
        "max_ads": 2,
    }
    if listener.persona.consent is not None:
        request["consent"] = listener.persona.consent
    response = api.post("/v1/decisions", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ads"], body
    urls = tuple(ad["tracking"][event] for ad in body["ads"] for event in BEACONS)
    return Decided(listener, body["decision_id"], body["mode"], urls)


def fire(api: httpx.Client, url: str) -> None:
    for _ in range(5):  # a 503 is Track's answer when the queue was slow: the app retries
        response = api.get(url)
        if response.status_code != 503:
            break
    assert response.status_code == 204, response.text


def refused(api: httpx.Client, listener: Listener, url: str) -> None:
    malformed = {
        "listener": {"id": listener.id, "country": "SE", "device": "mobile", "session_id": listener.sessions[0]},
        "placement": "audio_midroll",
        "consent": {"tcf": "not-a-tc-string"},
    }
    response = api.post("/v1/decisions", json=malformed)
    assert response.status_code == 422, response.text
    assert "consent.tcf" in response.text
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert api.get(tampered).status_code == 403


# --- reading everything -----------------------------------------------------------------------------------


def dynamodb_items(client: "DynamoDBClient") -> dict[str, list[dict[str, Any]]]:
    """Every item of every table, all attributes (keys included), as DynamoDB returns them."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in client.list_tables()["TableNames"]:
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items.extend(page["Items"])
        tables[table] = items
    return tables


def queued_messages(client: "SQSClient") -> dict[str, list[str]]:
    """Every message on every queue, body and attributes; received without deleting (they stay invisible)."""
    queues: dict[str, list[str]] = {}
    for url in client.list_queues().get("QueueUrls", []):
        found: list[str] = []
        while True:
            messages = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=600,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            found.extend(json.dumps(message, default=str) for message in messages)
        queues[url] = found
    return queues


def stored_objects(client: "S3Client") -> dict[str, str]:
    """Every object in every bucket, gunzipped when it is gzip, as text (binary bytes replaced)."""
    objects: dict[str, str] = {}
    for bucket in client.list_buckets()["Buckets"]:
        name = bucket["Name"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for entry in page.get("Contents", []):
                body = client.get_object(Bucket=name, Key=entry["Key"])["Body"].read()
                objects[f"s3://{name}/{entry['Key']}"] = entry["Key"] + "\n" + text_of(body)
    return objects


Excuse = Callable[[str, str], bool]
"""(where, text) -> whether an occurrence there is by design."""


def legacy_erasure_lookup(listener_id: str, raw: set[str]) -> Excuse:
    """The one place a raw id may be, by design: erasure looks for counters written before pseudonyms, keyed
    by the raw id, so the erased listener's own id is the partition of its Query on the caps table (sent,
    never stored or logged). Only that Query, naming that id as its partition and no other raw id."""
    others = raw - {listener_id}

    def allowed(where: str, text: str) -> bool:
        if not where.endswith("(Query) request"):
            return False
        try:
            request = json.loads(text.partition("\n")[2])
        except ValueError:
            return False
        return (
            request.get("ExpressionAttributeValues") == {":partition": {"S": listener_id}}
            and text.count(listener_id) == 1
            and not any(other in text for other in others)
        )

    return allowed


def text_of(body: bytes) -> str:
    """Bytes as text, gunzipped first when they are gzip (log objects are, on the wire too)."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode(errors="replace")


@dataclass(frozen=True)
class Everything:
    tables: dict[str, list[dict[str, Any]]]
    queues: dict[str, list[str]]
    objects: dict[str, str]
    log_lines: list[str]
    traffic: list[tuple[str, bytes, bytes]]
    """Every call the stack made to AWS: (operation, request target and body, answer)."""

    def places(self) -> Iterator[tuple[str, str]]:
        """(where, text) for every stored item, message, object and log line."""
        for table, items in self.tables.items():
            for item in items:
                yield f"dynamodb:{table}", json.dumps(item)
        for queue, messages in self.queues.items():
            for message in messages:
                yield f"sqs:{queue}", message
        yield from self.objects.items()
        for number, line in enumerate(self.log_lines, 1):
            yield f"log line {number}", line
        for number, (operation, request, answer) in enumerate(self.traffic, 1):
            path, _, body = request.partition(b"\n")
            yield f"AWS call {number} ({operation}) request", path.decode(errors="replace") + "\n" + text_of(body)
            yield f"AWS call {number} ({operation}) answer", text_of(answer)

    def occurrences(
        self, needles: set[str], allowed: Callable[[str, str], bool] = lambda _where, _text: False
    ) -> list[str]:
        """Where each needle occurs, but in the places ``allowed(where, text)`` excuses."""
        return [
            f"{needle!r} in {where}: {text[:300]}"
            for where, text in self.places()
            for needle in needles
            if needle in text and not allowed(where, text)
        ]


def read_everything(session: boto3.session.Session, stack: Stack) -> Everything:
    log_lines = [line for path in stack.output for line in path.read_text(errors="replace").splitlines()]
    return Everything(
        tables=dynamodb_items(session.client("dynamodb", endpoint_url=stack.aws)),
        queues=queued_messages(session.client("sqs", endpoint_url=stack.aws)),
        objects=stored_objects(session.client("s3", endpoint_url=stack.aws)),
        log_lines=log_lines,
        traffic=list(stack.proxy.traffic or []),
    )


def wait_until_recorded(
    session: boto3.session.Session, stack: Stack, decided: list[Decided], beacons: int, since: datetime
) -> None:
    """Until the outcomes queue is empty and every decision and beacon is in the logs bucket."""
    sqs = session.client("sqs", endpoint_url=stack.aws)
    logs = S3LogStore(s3_client(endpoint_url=stack.aws), stack.resources["LogsBucket"])
    wanted = {d.decision_id for d in decided}
    queue = stack.resources["OutcomesQueue"]

    def read() -> Reading:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        depth = sum(int(value) for value in attributes.values())
        start, end = since - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
        logged = {record.decision_id for record in read_decisions(logs, start, end)} & wanted
        outcomes = sum(1 for _ in read_outcomes(logs, start, end))
        remaining = depth + len(wanted - logged) + max(beacons - outcomes, 0)
        return Reading(remaining, done=remaining == 0, note=f"(queue {depth})")

    wait_for_progress(
        read, "Record did not drain", stall_seconds=DRAIN_STALL_SECONDS, bound_seconds=DRAIN_BOUND_SECONDS
    )


def decision_rows(everything: Everything) -> dict[str, dict[str, Any]]:
    """Decision records as stored in the logs bucket, by decision id."""
    rows: dict[str, dict[str, Any]] = {}
    for text in everything.objects.values():
        for line in text.splitlines()[1:]:
            row = json.loads(line) if line.startswith("{") else None
            if row and row.get("kind") == "decision":
                rows[row["decision_id"]] = row
    assert rows, f"no decision rows among {sorted(everything.objects)}"
    return rows


def test_nothing_the_local_stack_stores_or_logs_names_a_listener_or_a_session(stack: Stack) -> None:
    started = datetime.now(UTC)
    session = aws_session()
    people = listeners()
    with httpx.Client(base_url=stack.api, timeout=30) as api:
        # Given capped and uncapped campaigns every listener is eligible for: three capped and one uncapped, so
        # two ads of a decision include a capped one whatever the policy draws (a counted listener gets
        # counters), and a listener who may not be counted still gets the uncapped one
        documents = [campaign(f"cmp-privacy-capped-{index}", capped=True, now=started) for index in range(3)]
        documents.append(campaign("cmp-privacy-open-0", capped=False, now=started))
        for document in documents:
            assert api.put(f"/v1/campaigns/{document['campaign_id']}", json=document).status_code == 200
        # When every listener gets decisions in two sessions, and every ad served is heard, clicked and completed
        decided = [decide(api, listener, sid) for listener in people for sid in listener.sessions]
        for decision in decided:
            for url in decision.tracking:
                fire(api, url)
        # and the error paths see the ids too: a malformed TC string (422) and a tampered beacon (403)
        refused(api, people[0], decided[0].tracking[0])
    beacons = sum(len(decision.tracking) for decision in decided)
    wait_until_recorded(session, stack, decided, beacons, started)
    # and one listener (full consent, counted) asks to be forgotten: its id is in the erasure's body
    forgotten = people[1]
    with httpx.Client(base_url=stack.api, timeout=30) as api:
        erased = api.post("/v1/erasures", json={"listener_id": forgotten.id})
    assert erased.status_code == 200, erased.text
    everything = read_everything(session, stack)

    # Then the modes are as consent and age say
    for decision in decided:
        expected = "personalised" if decision.listener.persona.personalised else "contextual"
        assert decision.mode == expected, (decision.listener.persona.name, decision.mode)
    # and no raw listener id or session id is anywhere: tables, queues, buckets, log lines
    raw = {listener.id for listener in people} | {sid for listener in people for sid in listener.sessions}
    assert everything.log_lines
    sent = {operation for operation, _, _ in everything.traffic}
    assert {"SendMessage", "ReceiveMessage", "PutObject", "Query", "TransactWriteItems"} <= sent, sent
    assert any(everything.tables.values())
    assert everything.objects
    leaks = everything.occurrences(raw, allowed=legacy_erasure_lookup(forgotten.id, raw))
    assert not leaks, "\n".join(leaks[:20])
    # and the decision records of listeners not personalised hold none of their listener fields
    rows = decision_rows(everything)
    for decision in decided:
        persona = decision.listener.persona
        row = rows[decision.decision_id]
        assert row["mode"] == decision.mode
        if persona.unmeasured:
            assert row.get("listener_hash") is None, row
        if persona.personalised:
            assert row["listener_features"]["device"] == persona.device
            continue
        assert set(row["listener_features"]).isdisjoint({"device", "age_bucket"}), row["listener_features"]
        text = json.dumps(row)
        assert persona.device not in text, text[:500]
        assert f'"{persona.age_bucket}"' not in text, text[:500]
    # their devices, unique to them, are in nothing stored at all
    unique_devices = {p.device for p in PERSONAS if not p.personalised and p.device != PERSONALISED_DEVICE}
    stored = Everything(everything.tables, everything.queues, everything.objects, log_lines=[], traffic=[])
    assert not stored.occurrences(unique_devices)
    # and the listeners without capping consent have no counter; those with it do (so the check can fail); and
    # no item of the caps table names both a listener and a decision
    check_counters_and_queue(session, stack, everything, people, forgotten, decided=decided)


def check_counters_and_queue(
    session: boto3.session.Session,
    stack: Stack,
    everything: Everything,
    people: list[Listener],
    forgotten: Listener,
    *,
    decided: list[Decided],
) -> None:
    """Counters only under counted listeners' pseudonyms (none left for the forgotten one); dedupe markers that
    name decisions but no listener; and a positive control: a measured listener's pseudonym is found in the
    messages sent and the logs stored."""
    pseudonyms = read_pseudonymizer(
        secretsmanager_client(endpoint_url=stack.aws), stack.resources["PseudonymKeySecret"]
    )
    measured = pseudonyms.listener(people[0].id)
    found = [where for where, text in everything.places() if measured in text]
    assert any("SendMessage" in where for where in found), found
    assert any(where.startswith("s3://") for where in found), found
    caps_items = everything.tables[stack.resources["FrequencyCapsTable"]]
    keyed = {item["listener_id"]["S"] for item in caps_items}
    for listener in people:
        has_counters = pseudonyms.listener(listener.id) in keyed
        counted = listener.persona.counted and listener is not forgotten
        assert has_counters == counted, (listener.persona.name, has_counters)
    names = {pseudonym for listener in people for pseudonym in pseudonyms.every_listener_pseudonym(listener.id)}
    decision_ids = {decision.decision_id for decision in decided}
    items = [json.dumps(item) for item in caps_items]
    naming_decisions = [item for item in items if any(decision_id in item for decision_id in decision_ids)]
    tied = [item for item in naming_decisions if any(name in item for name in names)]
    assert not tied, tied[:5]
    # (the markers of counted listeners' impressions name their decisions, so the check can fail)
    unmeasured = {d.decision_id for d in decided if d.listener.persona.unmeasured}
    assert any(any(decision_id in item for decision_id in unmeasured) for item in naming_decisions), items[:5]
