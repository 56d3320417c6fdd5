"""``python -m bench.cost`` (``make cost``): dollars per million decisions, from measured usage and list prices.

Measured here, in process against the bench's moto stack (``LocalStack`` from template.yaml), with the real handlers
and production wiring: every AWS call each function makes per decision, per beacon (impression or event, fired in
the traffic's proportions) and per outcome message (in full batches of the kinds mixed), and what each function's
first invocation loads and its environments then reload on a timer (counted apart), counted at the lean clients'
entry points (``JsonClient.call``, ``S3RestClient``'s object calls, wrapped in this process only), with the DynamoDB
units each call consumes (computed from the items read and written, transactions at 2 units an item), SQS sends in
64 KiB chunks, S3 objects and bytes, the EMF bytes each invocation prints and the distinct metrics. From
bench/results/latest.json: our own CPU per decision, beacon and message, the lean clients' CPU per Query,
SendMessage and TransactWriteItems (figure 12), and the cold start. From template.yaml: each function's memory, the
alarms, log and object retention.

Assumed (stated with the figure): the traffic (``cost_model.Traffic``), AWS's call latencies
(``cost_model.LATENCY_MS``) and the prices ``bench/prices.py`` marks so. Output: bench/results/cost.json,
rendered into docs/performance.md and README.md by ``python -m bench.docs``.
"""

import argparse
import contextlib
import json
import math
import random
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

from adserve.campaigns.model import Budget, BudgetUnit, Campaign
from adserve.dal.botocore_session import sqs_client
from adserve.dal.delivery_store import DynamoDeliveryStore
from adserve.dal.json_clients import DynamoDBJsonClient, JsonClient
from adserve.dal.pacing_store import DynamoPacingStore
from adserve.dal.s3_rest import S3RestClient
from adserve.delivery.pacing_step import run_pacing_step
from adserve.outcomes.key_cache import KEY_CACHE_SECONDS
from adserve.wiring.settings import DecideSettings, RecordSettings

from bench import catalogs, environment
from bench.cold_start import CAMPAIGNS
from bench.cost_model import (
    Measured,
    Traffic,
    Usage,
    capacity,
    dynamodb_item_size,
    line_items,
    page_read_units,
    scan_read_units,
    snapstart,
    summary,
    write_units,
)
from bench.docs import COMPANIONS
from bench.docs import RESULTS as BENCH_RESULTS
from bench.moto_latency import empty_queue, put_campaigns
from bench.pacing_scale import STEPS as PACING_STEPS
from bench.pacing_scale import DeliveryTable
from bench.prices import MONTH_SECONDS, PRICES, RETRIEVED
from devstack.event_source_mapping import sqs_event
from devstack.stack import DEFAULT_TEMPLATE, LocalStack
from devstack.stack_description import FunctionDefinition
from devstack.template import alarmed_metrics, load_template, resources_of_type

OUTPUT = COMPANIONS["cost"]
DECISIONS = 1_000
"""At the traffic's proportions 3,700 outcome messages, 37 full Record batches of 100: every message counted (a
partial last batch is left out), and Decide's randomness averaged over many."""
LISTENERS = 12
CHUNK = 65536
SHUFFLE_SEED = 13
EVENT_KINDS = ("complete", "click", "skip")

CUTS = {
    "api_requests": "batch beacons: POST /v1/events takes a player's events in one request; or serve beacons from "
    "a Lambda function URL, which bills no request fee (CloudFront bills about as much a request as the HTTP API)",
    "data_out": "smaller decision responses: shorter tracking URLs (one token for the four events)",
    "decide_gb_s": "Decide is billed 1769 MB (a full vCPU) mostly while it waits on the caps Query and the "
    "SendMessage: 1024 MB or arm64 (when onnxruntime runs there) cut the GB-s per millisecond",
    "decide_init_gb_s": "SnapStart (restore instead of init) or fewer recycled environments",
    "track_gb_s": "Track waits on one SendMessage per beacon: batch beacons (POST /v1/events) or less memory",
    "record_gb_s": "Record waits on one TransactWriteItems per impression in turn: run them concurrently",
    "lambda_requests": "fewer invocations: batch beacons; larger Record batches",
    "dynamodb_reads": "fewer caps Queries: skip the read when no eligible campaign is capped (already done)",
    "pacing_reads": "each budgeted campaign's lifetime is 64 shard items read every minute: fewer counter shards "
    "for campaigns that never need 64, or a step every 2 minutes",
    "pacing_writes": "write a campaign's state only when its p or status changed",
    "pacing_gb_s": "more campaigns read at once (PACING_PARALLEL_READS): the step mostly waits on DynamoDB",
    "dynamodb_writes": "every outcome writes a delivery marker (exactly-once) in a transaction at 2 units an item, "
    "the larger half, and each counted impression a caps marker and a counter per cap slot: one marker per "
    "impression serving both tables, or merging one listener's impressions of a batch into one transaction, "
    "writes fewer items",
    "sqs_sends": "compact decision records (issue 13, item 6): one 64 KiB chunk instead of several",
    "sqs_receives_deletes": "larger messages per receive are free up to 64 KiB: compact records keep receives at 10",
    "s3_puts": "larger Record batches (one object per kind and hour per batch)",
    "s3_storage": "shorter retention, or a lifecycle move to Infrequent Access after 30 days",
    "logs_ingested": "the access log and Lambda's START, END and REPORT lines are most of it (the EMF document is "
    "one an invocation already): a shorter access log format, and the JSON log format with the system log level at "
    "WARN, which drops Lambda's lines",
    "logs_stored": "shorter log retention",
    "xray_traces": "tracing Decide only, or no active tracing: Lambda's sampling (1 a second and 5 % of the rest) is "
    "not configurable",
    "secret_reads": "a longer key cache TTL",
    "custom_metrics": "fewer metric names or dimensions",
    "alarm_metrics": "fewer alarms, or alarms that read fewer metrics",
    "retrain_gets": "fewer, larger log objects: larger Record batches, or a compaction of each hour's objects into "
    "one before Retrain reads them",
    "retrain_lists": "the same: fewer log objects",
    "dynamodb_storage": "markers that live shorter: they live as long as a copy of their message can still arrive "
    "(14 days: the queue's retention and a dead-letter redrive), so a shorter redrive window shortens them",
    "dynamodb_pitr": "the same, or point-in-time recovery off on the tables whose items a restore need not bring back",
    "secrets": "-",
}


@dataclass
class Tally:
    """What the calls made inside one bucket (a kind of unit of work) used."""

    units: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    read_units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    write_units: float = 0.0
    sqs_requests: float = 0.0
    sqs_bytes: float = 0.0
    s3_puts: float = 0.0
    s3_bytes: float = 0.0
    log_bytes: float = 0.0
    response_bytes: float = 0.0
    scan_units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Each table's Scans' read units, pages not rounded up: what its items add to a Scan of many more."""
    stored_byte_seconds: float = 0.0

    def usage(self, cpu_ms: float, *, message_bytes: float | None = None) -> Usage:
        n = max(self.units, 1)
        return Usage(
            calls={call: count / n for call, count in sorted(self.calls.items())},
            read_units=sum(self.read_units.values()) / n,
            write_units=self.write_units / n,
            sqs_requests=self.sqs_requests / n,
            s3_puts=self.s3_puts / n,
            s3_bytes=self.s3_bytes / n,
            log_bytes=self.log_bytes / n,
            response_bytes=self.response_bytes / n,
            stored_byte_seconds=self.stored_byte_seconds / n,
            message_bytes=self.sqs_bytes / n if message_bytes is None else message_bytes,
            cpu_ms=cpu_ms,
        )


ITEM_OVERHEAD_BYTES = 100
"""What DynamoDB adds to each item's own size in the storage it bills."""


def stored_byte_seconds(item: Mapping[str, Any]) -> float:
    """What a new item with a TTL (``expires_at``) keeps stored: its billed size for as long as it lives (DynamoDB
    deletes an expired item within days, which this leaves out). Only Puts: the markers, most of what is stored.
    The frequency-cap counters an UpdateItem creates live a day or less under the bench's caps and are left out
    (an undercount of a few percent, more with lifetime caps); campaigns and pacing states are a fixed few."""
    expires = item.get("expires_at", {}).get("N")
    if expires is None:
        return 0.0
    return (dynamodb_item_size(item) + ITEM_OVERHEAD_BYTES) * max(float(expires) - time.time(), 0.0)


def _update_size(update: dict[str, Any]) -> dict[str, Any]:
    """An update's item as far as its request shows it: the key and the values it sets."""
    return {**update["Key"], **update.get("ExpressionAttributeValues", {})}


class Meter:
    """Counts the functions' AWS calls into the current bucket (only while one is open)."""

    def __init__(self) -> None:
        self.tallies: dict[str, Tally] = {}
        self.metrics: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
        self._bucket: Tally | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def counting(self, bucket: str) -> Iterator[Tally]:
        tally = self.tallies.setdefault(bucket, Tally())
        self._bucket = tally
        try:
            yield tally
        finally:
            self._bucket = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Count every call at the lean clients' entry points: the JSON clients' ``call`` and the S3 client's object
        calls (the functions make no botocore call; this bench process is the only one wrapped)."""
        lean_call, object_call = JsonClient.call, S3RestClient._object_call

        def counted(client: JsonClient, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
            call = self._count(client.service, operation, params)
            answer = lean_call(client, operation, params)
            self._count_answer(call, params, answer)
            return answer

        def counted_object(client: S3RestClient, operation: str, method: str, **request: Any) -> Any:
            self._count("s3", operation, {"Body": request["body"]})
            return object_call(client, operation, method, **request)

        JsonClient.call = counted  # type: ignore[method-assign,assignment]
        S3RestClient._object_call = counted_object  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            JsonClient.call = lean_call  # type: ignore[method-assign]
            S3RestClient._object_call = object_call  # type: ignore[method-assign]

    def on_metrics(self, _: FunctionDefinition, documents: list[dict[str, Any]]) -> None:
        tally = self._bucket
        for document in documents:
            if tally is not None:
                tally.log_bytes += len(json.dumps(document, separators=(",", ":"))) + 1
            for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
                for dimensions in directive.get("Dimensions", [[]]):
                    key = tuple(sorted((name, str(document.get(name))) for name in dimensions))
                    for metric in directive.get("Metrics", []):
                        self.metrics.add((directive["Namespace"], metric["Name"], key))

    def _count(self, service: str, operation: str, params: Mapping[str, Any]) -> str | None:
        """Count one call into the open bucket; its name, or None outside a bucket."""
        tally = self._bucket
        if tally is None:
            return None
        call = f"{service}.{operation}"
        with self._lock:
            tally.calls[call] += 1
            if operation == "TransactWriteItems":
                for entry in params["TransactItems"]:
                    ((kind, body),) = entry.items()
                    item = body["Item"] if kind == "Put" else _update_size(body) if kind == "Update" else body["Key"]
                    tally.write_units += 2 * write_units(item)
                    if kind == "Put":
                        tally.stored_byte_seconds += stored_byte_seconds(item)
            elif operation in ("UpdateItem", "DeleteItem"):
                tally.write_units += write_units(_update_size(dict(params)))
            elif operation == "PutItem":
                tally.write_units += write_units(params["Item"])
                tally.stored_byte_seconds += stored_byte_seconds(params["Item"])
            elif operation == "SendMessage":
                size = len(params["MessageBody"].encode())
                tally.sqs_bytes += size
                tally.sqs_requests += math.ceil(size / CHUNK)
            elif operation == "SendMessageBatch":
                size = sum(len(entry["MessageBody"].encode()) for entry in params["Entries"])
                tally.sqs_bytes += size
                tally.sqs_requests += math.ceil(size / CHUNK)
            elif operation == "PutObject":
                tally.s3_puts += 1
                body = params["Body"]
                tally.s3_bytes += len(body)
        return call

    def _count_answer(self, call: str | None, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> None:
        tally = self._bucket
        if tally is None or call not in ("dynamodb.Query", "dynamodb.Scan", "dynamodb.GetItem"):
            return
        consistent = bool(params.get("ConsistentRead"))
        items = parsed.get("Items", [parsed["Item"]] if "Item" in parsed else [])
        with self._lock:
            tally.read_units[call] += page_read_units(items, consistent)
            if call == "dynamodb.Scan":
                tally.scan_units[params["TableName"]] += scan_read_units(items, consistent)


def _drain(stack: LocalStack) -> list[dict[str, Any]]:
    """Every message on the outcomes queue, received with its attributes and deleted (Lambda's poller's part)."""
    client = sqs_client()
    queue_url = stack.env["OUTCOMES_QUEUE_URL"]
    messages: list[dict[str, Any]] = []
    while batch := client.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", []):
        messages.extend(dict(message) for message in batch)
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return messages


def _record(stack: LocalStack, messages: list[dict[str, Any]]) -> None:
    """Feed *messages* to Record in one batch, as its event source mapping would."""
    arn = str(stack.description.references["OutcomesQueue"].attributes["Arn"])
    event = sqs_event(messages, queue_arn=arn, region=stack.description.region)  # type: ignore[arg-type]
    response = stack.invoke("RecordFunction", event)
    if response.get("batchItemFailures"):
        raise RuntimeError(f"Record failed items: {response['batchItemFailures']}")


def _record_mixed(stack: LocalStack, meter: Meter, batch_size: int) -> None:
    """Everything queued, kinds interleaved as the queue mixes them (seeded), fed to Record in batches of
    *batch_size*: only full batches count (``record_message``), as Record's per-batch work (an object per log kind
    and hour, its EMF document) is shared by the batch's messages; the last, partial one is processed uncounted."""
    messages = _drain(stack)
    random.Random(SHUFFLE_SEED).shuffle(messages)
    full = len(messages) - len(messages) % batch_size
    if not full:
        raise RuntimeError(f"{len(messages)} messages do not fill a batch of {batch_size}")
    with meter.counting("record_message") as tally:
        for start in range(0, full, batch_size):
            _record(stack, messages[start : start + batch_size])
        tally.units += full
    if messages[full:]:
        _record(stack, messages[full:])


def _beacons(stack: LocalStack, meter: Meter, bucket: str, urls: list[str]) -> None:
    with meter.counting(bucket) as tally:
        for url in urls:
            _beacon(stack, url, tally)
            tally.units += 1


def _beacon(stack: LocalStack, url: str, tally: Tally) -> None:
    parts = urlsplit(url)
    function, event = stack.http_event("GET", parts.path, query=parts.query)
    response = stack.invoke(function, event)
    if response["statusCode"] != 204:
        raise RuntimeError(f"beacon answered {response['statusCode']}: {response.get('body')}")
    tally.response_bytes += len(response.get("body") or "")


def beacon_urls(served: list[dict[str, Any]], traffic: Traffic) -> tuple[list[str], list[str]]:
    """(impression, event) beacon URLs in the traffic's proportions: an impression for ``impression_rate`` of the
    ads served (a seeded choice), ``events_per_impression`` events for each (a completion, then a click, a skip)."""
    impressed = random.Random(SHUFFLE_SEED).sample(served, round(len(served) * traffic.impression_rate))
    events = round(len(impressed) * traffic.events_per_impression)
    return (
        [ad["tracking"]["impression"] for ad in impressed],
        [
            impressed[i % len(impressed)]["tracking"][EVENT_KINDS[i // len(impressed) % len(EVENT_KINDS)]]
            for i in range(events)
        ],
    )


def _sdk_cpu_ms(figures: dict[str, Any]) -> dict[str, float]:
    """The lean JSON clients' own CPU per call (figure 12) of the calls made once per unit of work; the functions'
    CPU figures are taken with in-memory fakes, so without it a call's client-side work would count for nothing."""
    sdk = figures["sdk_calls"]
    return {
        "dynamodb.Query": sdk["lean_caps_query_cpu_us"] / 1000,
        "sqs.SendMessage": sdk["lean_record_send_cpu_us"] / 1000,
        "dynamodb.TransactWriteItems": sdk["lean_impression_count_cpu_us"] / 1000,
    }


def _with_sdk(tally: Tally, own_cpu_ms: float, sdk_cpu_ms: dict[str, float], **usage: Any) -> Usage:
    """A bucket's usage with its calls' client-side CPU added to the function's own."""
    n = max(tally.units, 1)
    calls = sum(count / n * sdk_cpu_ms.get(call, 0.0) for call, count in tally.calls.items())
    return tally.usage(own_cpu_ms + calls, **usage)


def _bench_figures() -> dict[str, float]:
    figures = json.loads(BENCH_RESULTS.read_text())["figures"]
    return {
        "decision_cpu_ms": figures["decide_in_process"]["sizes"]["50"]["full_handler"]["p50_ms"],
        "beacon_cpu_ms": figures["track_beacon"]["full_handler"]["p50_ms"],
        "message_cpu_ms": figures["record_fakes"]["sizes"]["100"]["full_handler"]["us_per_event_p50"] / 1000,
        "init_ms": figures["cold_start"]["handler_import_and_init_ms"],
    }


ACCESS_LOG_VALUES = {
    "decision": {
        "context.requestId": "Jh3kLzqMIAMEMNQ=",
        "context.identity.sourceIp": "203.0.113.45",
        "context.requestTime": "07/Dec/2026:00:35:23 +0000",
        "context.httpMethod": "POST",
        "context.routeKey": "POST /v1/decisions",
        "context.status": "200",
        "context.protocol": "HTTP/1.1",
        "context.responseLength": "3675",
        "context.responseLatency": "14",
        "context.integrationLatency": "13",
        "context.integrationErrorMessage": "-",
    },
    "beacon": {
        "context.requestId": "Jh3kLzqMIAMEMNQ=",
        "context.identity.sourceIp": "203.0.113.45",
        "context.requestTime": "07/Dec/2026:00:35:23 +0000",
        "context.httpMethod": "GET",
        "context.routeKey": "GET /v1/events/{event_type}",
        "context.status": "204",
        "context.protocol": "HTTP/1.1",
        "context.responseLength": "0",
        "context.responseLatency": "9",
        "context.integrationLatency": "8",
        "context.integrationErrorMessage": "-",
    },
}
"""Typical values of the access log's variables for a decision and a beacon (an IPv4 caller, a 3.7 KB response)."""


def access_log_bytes(log_format: str) -> dict[str, float]:
    """The HTTP API's access log line for a decision and for a beacon: *log_format* with each ``$context`` variable
    filled in (``ACCESS_LOG_VALUES``), and its newline."""
    variables = re.compile(r"\$(context(?:\.\w+)+)")
    return {
        request: float(len(variables.sub(partial(_filled, values), log_format).encode()) + 1)
        for request, values in ACCESS_LOG_VALUES.items()
    }


def _filled(values: Mapping[str, str], match: re.Match[str]) -> str:
    return values[match.group(1)]


def _template_facts() -> dict[str, Any]:
    template = load_template(DEFAULT_TEMPLATE)
    resources = template["Resources"]
    kinds = Counter(resource["Type"] for resource in resources.values())
    rules = resources["LogsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]

    def deployed(value: Any) -> float:
        """A literal, or a parameter's default (the retention is LogRetentionDays)."""
        return float(template["Parameters"][value["Ref"]]["Default"] if isinstance(value, dict) else value)

    parameters = template["Parameters"]
    schedule = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", parameters["RetrainSchedule"]["Default"])
    if schedule is None:
        raise ValueError("RetrainSchedule's default is not a rate(N unit) this model reads")
    every_seconds = int(schedule[1]) * {"minute": 60, "hour": 3600, "day": 86_400}[schedule[2]]
    api = resources["AdserveHttpApi"]["Properties"]
    return {
        "retrain_runs_per_month": MONTH_SECONDS / every_seconds,
        "retrain_hours": float(
            resources["RetrainFunction"]["Properties"]["Environment"]["Variables"]["TRAINING_HOURS"]
        ),
        "access_log_bytes": access_log_bytes(api["AccessLogSettings"]["Format"]),
        "limits": {
            "record_maximum_concurrency": float(parameters["RecordMaximumConcurrency"]["Default"]),
            "api_route_rate_limit": deployed(api["DefaultRouteSettings"]["ThrottlingRateLimit"]),
        },
        "alarm_metrics": sum(
            len(alarmed_metrics(alarm)) for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        ),
        "secrets": kinds["AWS::SecretsManager::Secret"],
        "log_retention_days": deployed(resources["DecideFunctionLogGroup"]["Properties"]["RetentionInDays"]),
        "s3_retention_days": deployed(next(rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule)),
    }


def max_ads_of(index: int, ads_per_decision: float) -> int:
    """The ``max_ads`` of the index-th measured decision: whole steps that average *ads_per_decision* (1.5: 1, 2,
    1, 2, ...), so the responses measured are as large as those of the traffic priced (3 ads each overstated the
    bytes out by half)."""
    return math.floor((index + 1) * ads_per_decision) - math.floor(index * ads_per_decision)


def _pacing_state_read_units(campaigns: list[Campaign]) -> float:
    """A budgeted campaign's pacing state's share of Decide's pacing Scan (read units, eventually consistent): the
    states the real step writes for the bench's campaigns given a budget, after a period of steps (figure 10d's
    table). The stack's campaigns have no budget, so its pacing table holds no state for the catalog to read."""
    start = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    budgeted = [
        campaign.model_copy(update={"budget": Budget(unit=BudgetUnit.IMPRESSIONS, daily=1e9)}) for campaign in campaigns
    ]
    table = DeliveryTable()
    client = cast("DynamoDBJsonClient", table)
    delivery, states = DynamoDeliveryStore(client, "delivery"), DynamoPacingStore(client, "pacing")
    for step in range(PACING_STEPS):
        table.now = start + timedelta(minutes=step)
        run_pacing_step(budgeted, delivery, delivery, states, table.now)
    items = [json.loads(item) for item in table.tables["pacing"].values()]
    return scan_read_units(items, consistent=False) / len(items)


def measure(decisions: int = DECISIONS, batch_size: int = 100) -> Measured:
    meter = Meter()
    bench = _bench_figures()
    traffic = Traffic()
    catalog = catalogs.campaigns(CAMPAIGNS, datetime.now(UTC))
    with LocalStack.start(DEFAULT_TEMPLATE, on_metrics=meter.on_metrics) as stack, meter.installed():
        put_campaigns(stack, catalog)
        empty_queue(stack)
        # Each function's first invocation loads what its environment then reloads on a timer: counted apart
        with meter.counting("init") as init:
            response = stack.invoke("DecideFunction", catalogs.api_gateway_event(catalogs.decision_request_document()))
            init.units = 1
        with meter.counting("track_init") as track_init:
            _beacon(stack, json.loads(response["body"])["ads"][0]["tracking"]["impression"], track_init)
        with meter.counting("record_init") as record_init:
            _record(stack, _drain(stack))
        served: list[dict[str, Any]] = []
        with meter.counting("decision") as tally:
            for index in range(decisions):
                request = catalogs.decision_request_document(max_ads_of(index, traffic.ads_per_decision))
                request["listener"] = {**request["listener"], "id": f"listener-cost-{index % LISTENERS}"}
                response = stack.invoke("DecideFunction", catalogs.api_gateway_event(request))
                if response["statusCode"] != 200:
                    raise RuntimeError(f"decision answered {response['statusCode']}: {response['body']}")
                tally.response_bytes += len(response["body"])
                served.extend(json.loads(response["body"])["ads"])
                tally.units += 1
        impressions, events = beacon_urls(served, traffic)
        _beacons(stack, meter, "impression", impressions)
        _beacons(stack, meter, "event", events)
        _record_mixed(stack, meter, batch_size)
        memory = {
            name: stack.description.functions[name].memory_mb
            for name in ("DecideFunction", "TrackFunction", "RecordFunction", "PacingFunction")
        }
        campaigns_table = stack.env["CAMPAIGNS_TABLE_NAME"]
    t = meter.tallies
    decide_defaults, record_defaults = DecideSettings.model_fields, RecordSettings.model_fields
    figures = json.loads(BENCH_RESULTS.read_text())["figures"]
    sdk = _sdk_cpu_ms(figures)
    pacing = figures["pacing_step"]

    def reload(tally: Tally, call: str) -> Usage:
        """What a reload calls (its read units are priced per campaign: ``refresh_read_units_per_campaign``)."""
        return Usage(calls={call: float(tally.calls[call])})

    return Measured(
        decision=_with_sdk(t["decision"], bench["decision_cpu_ms"], sdk),
        impression=_with_sdk(t["impression"], bench["beacon_cpu_ms"], sdk),
        event=_with_sdk(t["event"], bench["beacon_cpu_ms"], sdk),
        record_message=_with_sdk(t["record_message"], bench["message_cpu_ms"], sdk, message_bytes=0.0),
        pacing_step=Usage(
            calls=pacing["steady_calls_per_campaign"],
            read_units=pacing["steady_read_units_per_campaign"],
            write_units=pacing["steady_write_units_per_campaign"],
            cpu_ms=pacing["steady_cpu_ms_per_campaign"],
        ),
        pacing_parallel_reads=pacing["parallel_reads"],
        environment_refresh={
            "DecideFunction": {
                "catalog": reload(init, "dynamodb.Scan"),
                "pointer": reload(init, "s3.GetObject"),
                "keys": reload(init, "secretsmanager.GetSecretValue"),
            },
            "TrackFunction": {"keys": reload(track_init, "secretsmanager.GetSecretValue")},
            "RecordFunction": {"campaigns": reload(record_init, "dynamodb.Scan")},
        },
        refresh_seconds={
            "DecideFunction": {
                "catalog": float(decide_defaults["catalog_ttl_seconds"].default),
                "pointer": float(decide_defaults["model_pointer_check_seconds"].default),
                "keys": KEY_CACHE_SECONDS,
            },
            "TrackFunction": {"keys": KEY_CACHE_SECONDS},
            "RecordFunction": {"campaigns": float(record_defaults["catalog_ttl_seconds"].default)},
        },
        refresh_read_units_per_campaign={
            "DecideFunction": {
                "catalog": init.scan_units[campaigns_table] / CAMPAIGNS + _pacing_state_read_units(catalog)
            },
            "RecordFunction": {"campaigns": record_init.scan_units[campaigns_table] / CAMPAIGNS},
        },
        memory_mb=memory,
        init_ms=bench["init_ms"],
        custom_metrics=len(meter.metrics),
        **_template_facts(),
    )


def build(measured: Measured, traffic: Traffic) -> dict[str, Any]:
    """The results document: inputs, every line item, the total and the three largest with what would cut them."""
    result = summary(line_items(measured, traffic), traffic)
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "commit": environment.describe()["git_commit"],
        "traffic_assumed": asdict(traffic),
        "measured": measured.to_dict(),
        "prices_retrieved": RETRIEVED,
        "prices": {key: asdict(price) for key, price in PRICES.items()},
        **result,
        "cuts": {key: CUTS[key] for key in result["largest"]},
        "capacity": capacity(measured, traffic),
        "snapstart": snapstart(measured, traffic),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=DECISIONS, help="decisions measured against moto")
    parser.add_argument("--decisions-per-second", type=float, default=Traffic().decisions_per_second)
    args = parser.parse_args(argv)
    document = build(measure(args.decisions), Traffic(decisions_per_second=args.decisions_per_second))
    OUTPUT.write_text(json.dumps(document, indent=2) + "\n")
    print(f"${document['usd_per_million_decisions']:.2f} per million decisions; largest: {document['largest']}")
    print(f"written {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
