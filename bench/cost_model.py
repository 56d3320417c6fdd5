"""Dollars per million decisions: measured usage per unit of work x traffic assumptions x list prices.

Pure arithmetic (no AWS, no moto), so tests can check it by hand. ``bench.cost`` measures the usage against
moto and writes the results; this module turns usage and traffic into monthly line items.

Units of work: a *decision* (Decide), a *beacon* (Track: an impression, or an event such as a click or a
completion), an outcome *message* (Record, one per decision record, impression and event, taken in mixed full
batches), and an *environment* of each function (what it reloads on a timer: Decide's catalog, pointer and keys,
Track's keys, Record's campaign directory; Decide's cold starts).
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench.prices import MONTH_SECONDS, PRICES, Price

PACING_STEP_SECONDS = 60
"""PacingFunction's schedule (rate(1 minute) in template.yaml)."""

LATENCY_MS: dict[str, float] = {
    "dynamodb.Query": 4.0,
    "dynamodb.Scan": 10.0,
    "dynamodb.GetItem": 4.0,
    "dynamodb.UpdateItem": 6.0,
    "dynamodb.PutItem": 6.0,
    "dynamodb.TransactWriteItems": 10.0,
    "dynamodb.BatchGetItem": 6.0,
    "dynamodb.BatchWriteItem": 8.0,
    "sqs.SendMessage": 6.0,
    "sqs.SendMessageBatch": 8.0,
    "s3.PutObject": 25.0,
    "s3.GetObject": 15.0,
    "secretsmanager.GetSecretValue": 10.0,
}
"""ASSUMED round-trip latency (ms) of each AWS call from Lambda in the same region: what a call adds to the
billed duration, on top of our own CPU measured by the bench. Not measured: moto's latency says nothing
about AWS's."""


@dataclass(frozen=True)
class Usage:
    """What one unit of work uses, measured (calls, units and bytes against moto; CPU from the bench)."""

    calls: dict[str, float] = field(default_factory=dict)
    """AWS calls per unit, by ``service.Operation``."""
    read_units: float = 0.0
    write_units: float = 0.0
    sqs_requests: float = 0.0
    """Sends, in 64 KiB chunks."""
    s3_puts: float = 0.0
    s3_bytes: float = 0.0
    log_bytes: float = 0.0
    """What the function prints per unit (EMF metrics, log lines)."""
    response_bytes: float = 0.0
    message_bytes: float = 0.0
    """The outcome message a unit puts on the queue (what Record's poller receives)."""
    cpu_ms: float = 0.0
    """Our own CPU per unit, from the bench's in-process figures."""
    stored_byte_seconds: float = 0.0
    """What the unit leaves stored in DynamoDB: each new item with a TTL (a delivery or caps marker) at its billed
    size (100 bytes more than its own), times how long it lives."""

    def billed_ms(self) -> float:
        """Own CPU plus the assumed latency of each AWS call (the function waits on them in turn)."""
        return self.cpu_ms + sum(count * LATENCY_MS[call] for call, count in self.calls.items())


@dataclass(frozen=True)
class Traffic:
    """ASSUMED traffic, stated with the figure."""

    decisions_per_second: float = 1000.0
    ads_per_decision: float = 1.5
    impression_rate: float = 0.9
    """Share of served ads whose impression beacon arrives."""
    events_per_impression: float = 1.0
    """Completions, clicks and skips per impression."""
    record_batch_size: int = 100
    messages_per_receive: int = 10
    """What one ReceiveMessage of Lambda's SQS poller returns (its maximum)."""
    environment_lifetime_hours: float = 2.0
    """How long a Decide environment lives before Lambda recycles it (each new one is a cold start)."""
    xray_sampled_share: float = 0.05
    """X-Ray's default rule: the first request each second, then 5 %."""
    platform_log_bytes: int = 350
    """Lambda's own START, END and REPORT lines per invocation."""
    budgeted_campaigns: int = 1_000
    """Live campaigns with a budget: the pacing step paces each one every minute, whatever the traffic."""


@dataclass(frozen=True)
class Measured:
    """Usage per unit of work, and the deployment facts it ran with (memory from template.yaml)."""

    decision: Usage
    impression: Usage
    event: Usage
    record_message: Usage
    """Per outcome message, measured over full batches of the three kinds mixed as the queue mixes them: Record's
    per-batch work (an S3 object per log kind and hour, a request-count update per placement and hour, its EMF
    document) falls on the messages of a batch, whatever their kind."""
    pacing_step: Usage
    """Per budgeted campaign and pacing step (bench figure 10d; calls at their assumed latencies, its CPU)."""
    pacing_parallel_reads: int
    environment_refresh: dict[str, dict[str, Usage]]
    """Per function (``DecideFunction``, ...), per reload of each thing one of its environments refreshes on a timer
    (Decide's ``catalog``, ``pointer``, ``keys``; Track's ``keys``; Record's ``campaigns``)."""
    refresh_seconds: dict[str, dict[str, float]]
    """The same, every how many seconds."""
    refresh_read_units_per_campaign: dict[str, dict[str, float]]
    """The reloads that Scan a table of campaigns, their read units per campaign (Decide's catalog: a campaign's
    document and its pacing state; Record's directory: the document), measured on the bench's campaigns and priced
    at ``Traffic.budgeted_campaigns``: a Scan reads every item, so it grows with the catalog, not the traffic."""
    memory_mb: dict[str, int]
    """DecideFunction, TrackFunction, RecordFunction, PacingFunction."""
    init_ms: float
    """A Decide cold start's import + first request (bench figure 3)."""
    custom_metrics: int
    """Distinct metrics (name x dimensions) the functions emitted."""
    alarm_metrics: int
    """Metrics the alarms read: CloudWatch bills an alarm per metric it reads (a metric math alarm, several)."""
    secrets: int
    log_retention_days: float
    s3_retention_days: float
    retrain_runs_per_month: float
    """RetrainFunction's schedule (``RetrainSchedule``'s default), each run a retrain (``RetrainFirstDecisions`` 0)."""
    retrain_hours: float
    """The hours of logs a run reads (``TRAINING_HOURS``): every log object Record wrote in them, one GET each."""
    access_log_bytes: dict[str, float]
    """The HTTP API's access log line of a ``decision`` and of a ``beacon``: template.yaml's format filled in."""
    limits: dict[str, float]
    """What template.yaml deploys by default that bounds the traffic it carries: ``RecordMaximumConcurrency``, and
    the HTTP API's per-route rate limit (requests a second, ``DefaultRouteSettings``)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measured":
        fields = dict(data)
        for key in ("decision", "impression", "event", "record_message", "pacing_step"):
            fields[key] = Usage(**data[key])
        fields["environment_refresh"] = {
            function: {name: Usage(**usage) for name, usage in reloads.items()}
            for function, reloads in data["environment_refresh"].items()
        }
        return cls(**fields)


@dataclass(frozen=True)
class LineItem:
    key: str
    service: str
    what: str
    quantity: float
    """Units a month."""
    price: str
    monthly_usd: float
    fixed: bool = False
    """A monthly amount that does not grow with decisions (alarms, metrics, secrets; the pacing step's, which grows
    with the budgeted campaigns instead)."""


def _gb(n_bytes: float) -> float:
    return n_bytes / 1e9


def decide_environments(measured: Measured, traffic: Traffic) -> float:
    """Busy Decide environments by Little's law: decisions per second x billed seconds per decision."""
    return environments(measured, traffic)["DecideFunction"]


def environments(measured: Measured, traffic: Traffic) -> dict[str, float]:
    """Busy environments of each function by Little's law (invocations per second x billed seconds per invocation,
    at least one): each reloads what it caches on its own timer, however little traffic it takes."""
    impressions = traffic.decisions_per_second * traffic.ads_per_decision * traffic.impression_rate
    events = impressions * traffic.events_per_impression
    messages = traffic.decisions_per_second + impressions + events
    busy_ms = {
        "DecideFunction": traffic.decisions_per_second * measured.decision.billed_ms(),
        "TrackFunction": impressions * measured.impression.billed_ms() + events * measured.event.billed_ms(),
        "RecordFunction": messages * measured.record_message.billed_ms(),
    }
    return {function: max(1.0, ms / 1000) for function, ms in busy_ms.items()}


def capacity(measured: Measured, traffic: Traffic) -> dict[str, Any]:
    """What the traffic needs of the limits template.yaml deploys by default, and whether they carry it: Record's
    busy environments against ``RecordMaximumConcurrency`` (fewer, and the queue's backlog grows without end), and
    the beacon route's and the decision route's requests a second against the HTTP API's per-route limit (past it,
    API Gateway answers 429: a beacon refused is an impression not counted)."""
    beacons = traffic.decisions_per_second * traffic.ads_per_decision * traffic.impression_rate
    beacons *= 1 + traffic.events_per_impression
    needed = {
        "record_concurrency": environments(measured, traffic)["RecordFunction"],
        "beacon_route_requests_per_second": beacons,
        "decision_route_requests_per_second": traffic.decisions_per_second,
    }
    limits = measured.limits
    carried = (
        needed["record_concurrency"] <= limits["record_maximum_concurrency"]
        and max(beacons, traffic.decisions_per_second) <= limits["api_route_rate_limit"]
    )
    return {"needed": needed, "deployed": dict(limits), "carried_by_the_defaults": carried}


def cold_starts_per_month(measured: Measured, traffic: Traffic) -> float:
    """Each environment is replaced every ``environment_lifetime_hours`` (an assumption)."""
    return decide_environments(measured, traffic) * (MONTH_SECONDS / 3600) / traffic.environment_lifetime_hours


def snapstart(measured: Measured, traffic: Traffic, prices: Mapping[str, Price] = PRICES) -> dict[str, float]:
    """What SnapStart would add for Decide: one cached snapshot per published version, a restore per cold start."""
    memory_gb = measured.memory_mb["DecideFunction"] / 1024
    restores = cold_starts_per_month(measured, traffic)
    cache = prices["snapstart_cache_gb_second"].monthly(memory_gb * MONTH_SECONDS)
    restore = prices["snapstart_restore_gb"].monthly(memory_gb * restores)
    return {
        "memory_gb": memory_gb,
        "cache_usd_month_per_version": cache,
        "restore_usd_each": prices["snapstart_restore_gb"].usd * memory_gb,
        "restores_per_month": restores,
        "restore_usd_month": restore,
        "usd_per_million_decisions": (cache + restore) / (traffic.decisions_per_second * MONTH_SECONDS / 1e6),
    }


def line_items(measured: Measured, traffic: Traffic, prices: Mapping[str, Price] = PRICES) -> list[LineItem]:
    """Every term of the monthly bill at this traffic."""
    decisions = traffic.decisions_per_second * MONTH_SECONDS
    impressions = decisions * traffic.ads_per_decision * traffic.impression_rate
    events = impressions * traffic.events_per_impression
    beacons = impressions + events
    messages = decisions + impressions + events
    record_invocations = messages / traffic.record_batch_size
    m = measured
    decide_ms = math.ceil(m.decision.billed_ms())  # Lambda bills each invocation rounded up to the millisecond
    busy = environments(m, traffic)
    cold_starts = cold_starts_per_month(m, traffic)
    # (function, a reload's usage at the traffic's campaigns, reloads a month) of each thing reloaded on a timer
    reloads = [
        (
            function,
            replace(
                usage,
                read_units=usage.read_units
                + m.refresh_read_units_per_campaign.get(function, {}).get(name, 0.0) * traffic.budgeted_campaigns,
            ),
            busy[function] * MONTH_SECONDS / m.refresh_seconds[function][name],
        )
        for function, refreshed in m.environment_refresh.items()
        for name, usage in refreshed.items()
    ]

    def total(of: Callable[[Usage], float]) -> float:
        """*of* each unit of work, summed over the month."""
        value = (
            of(m.decision) * decisions
            + of(m.impression) * impressions
            + of(m.event) * events
            + of(m.record_message) * messages
        )
        return value + sum(of(usage) * count for _, usage, count in reloads)

    def gb_seconds(memory_mb: int, milliseconds: float) -> float:
        return memory_mb / 1024 * milliseconds / 1000

    def refresh_ms(of_function: str) -> float:
        return sum(usage.billed_ms() * count for function, usage, count in reloads if function == of_function)

    message_bytes = (
        m.decision.message_bytes * decisions + m.impression.message_bytes * impressions + m.event.message_bytes * events
    )
    receives = max(messages / traffic.messages_per_receive, message_bytes / 65536)
    deletes = messages / traffic.messages_per_receive
    paced = MONTH_SECONDS / PACING_STEP_SECONDS * traffic.budgeted_campaigns
    pacing = m.pacing_step
    pacing_ms = paced * (pacing.cpu_ms + (pacing.billed_ms() - pacing.cpu_ms) / m.pacing_parallel_reads)
    invocations = decisions + beacons + record_invocations
    log_bytes = total(lambda u: u.log_bytes) + invocations * traffic.platform_log_bytes
    access_log_bytes = decisions * m.access_log_bytes["decision"] + beacons * m.access_log_bytes["beacon"]
    log_objects = total(lambda u: u.s3_puts)
    retrain_gets = log_objects / (MONTH_SECONDS / 3600) * m.retrain_hours * m.retrain_runs_per_month
    s3_bytes = total(lambda u: u.s3_bytes)
    secret_reads = total(lambda u: u.calls.get("secretsmanager.GetSecretValue", 0.0))

    items = [
        (
            "api_requests",
            "API Gateway",
            "HTTP API requests (decisions and beacons)",
            decisions + beacons,
            "api_gateway_http_request",
            False,
        ),
        (
            "data_out",
            "API Gateway",
            "responses to the internet",
            _gb(
                m.decision.response_bytes * decisions
                + m.impression.response_bytes * impressions
                + m.event.response_bytes * events
            ),
            "data_transfer_out_gb",
            False,
        ),
        (
            "decide_gb_s",
            "Lambda",
            f"Decide GB-s ({m.memory_mb['DecideFunction']} MB, {decide_ms:.1f} ms a decision "
            "+ catalog/pointer/key reloads)",
            gb_seconds(m.memory_mb["DecideFunction"], decide_ms * decisions + refresh_ms("DecideFunction")),
            "lambda_gb_second",
            False,
        ),
        (
            "decide_init_gb_s",
            "Lambda",
            f"Decide cold starts ({cold_starts:,.0f} a month, {m.init_ms:.0f} ms each)",
            gb_seconds(m.memory_mb["DecideFunction"], m.init_ms * cold_starts),
            "lambda_gb_second",
            False,
        ),
        (
            "track_gb_s",
            "Lambda",
            f"Track GB-s ({m.memory_mb['TrackFunction']} MB + key reloads)",
            gb_seconds(
                m.memory_mb["TrackFunction"],
                math.ceil(m.impression.billed_ms()) * impressions
                + math.ceil(m.event.billed_ms()) * events
                + refresh_ms("TrackFunction"),
            ),
            "lambda_gb_second",
            False,
        ),
        (
            "record_gb_s",
            "Lambda",
            f"Record GB-s ({m.memory_mb['RecordFunction']} MB, batches of {traffic.record_batch_size} "
            "+ campaign directory reloads)",
            gb_seconds(
                m.memory_mb["RecordFunction"], m.record_message.billed_ms() * messages + refresh_ms("RecordFunction")
            ),
            "lambda_gb_second",
            False,
        ),
        (
            "pacing_gb_s",
            "Lambda",
            f"Pacing GB-s ({m.memory_mb['PacingFunction']} MB, a step a minute, {m.pacing_parallel_reads} "
            "campaigns read at once)",
            gb_seconds(m.memory_mb["PacingFunction"], pacing_ms),
            "lambda_gb_second",
            True,
        ),
        (
            "lambda_requests",
            "Lambda",
            "invocations (Decide, Track, Record)",
            invocations,
            "lambda_request",
            False,
        ),
        (
            "dynamodb_reads",
            "DynamoDB",
            f"read units (caps Query per decision; Decide's catalog and pacing Scans and Record's campaign Scans, "
            f"{traffic.budgeted_campaigns:,} campaigns at the read units per campaign measured)",
            total(lambda u: u.read_units),
            "dynamodb_read_request_unit",
            False,
        ),
        (
            "pacing_reads",
            "DynamoDB",
            f"pacing step's read units ({traffic.budgeted_campaigns:,} budgeted campaigns, each one's lifetime "
            "a minute and its today's hours once in 15)",
            paced * pacing.read_units,
            "dynamodb_read_request_unit",
            True,
        ),
        (
            "pacing_writes",
            "DynamoDB",
            "pacing states written (one a budgeted campaign a minute)",
            paced * pacing.write_units,
            "dynamodb_write_request_unit",
            True,
        ),
        (
            "dynamodb_writes",
            "DynamoDB",
            "write units (Record's transactions at 2 units an item)",
            total(lambda u: u.write_units),
            "dynamodb_write_request_unit",
            False,
        ),
        (
            "dynamodb_storage",
            "DynamoDB",
            "items stored (the markers that make counting exactly-once, for as long as their TTL keeps them)",
            _gb(total(lambda u: u.stored_byte_seconds) / MONTH_SECONDS),
            "dynamodb_storage_gb_month",
            False,
        ),
        (
            "dynamodb_pitr",
            "DynamoDB",
            "point-in-time recovery of those items (on for every table)",
            _gb(total(lambda u: u.stored_byte_seconds) / MONTH_SECONDS),
            "dynamodb_pitr_gb_month",
            False,
        ),
        (
            "sqs_sends",
            "SQS",
            "SendMessage in 64 KiB chunks (decision records, outcome events)",
            total(lambda u: u.sqs_requests),
            "sqs_request",
            False,
        ),
        (
            "sqs_receives_deletes",
            "SQS",
            "Record's poller: ReceiveMessage (10 a call or 64 KiB) and DeleteMessageBatch",
            receives + deletes,
            "sqs_request",
            False,
        ),
        ("s3_puts", "S3", "log objects written by Record", log_objects, "s3_put", False),
        (
            "retrain_gets",
            "S3",
            f"log objects Retrain reads ({m.retrain_runs_per_month:.0f} runs a month, each every object of the last "
            f"{m.retrain_hours:.0f} hours: {retrain_gets / m.retrain_runs_per_month:,.0f} GETs a run)",
            retrain_gets,
            "s3_get",
            False,
        ),
        (
            "retrain_lists",
            "S3",
            "Retrain's listings of those objects (1,000 keys a LIST)",
            retrain_gets / 1000,
            "s3_list",
            False,
        ),
        (
            "s3_storage",
            "S3",
            f"logs kept {m.s3_retention_days:.0f} days (steady state)",
            _gb(s3_bytes) * m.s3_retention_days / 30,
            "s3_storage_gb_month",
            False,
        ),
        (
            "logs_ingested",
            "CloudWatch",
            "Logs ingested: EMF metrics, log lines, Lambda's lines, API access logs",
            _gb(log_bytes + access_log_bytes),
            "cloudwatch_logs_ingested_gb",
            False,
        ),
        (
            "logs_stored",
            "CloudWatch",
            f"Logs stored {m.log_retention_days:.0f} days (as ingested: an upper bound)",
            _gb(log_bytes + access_log_bytes) * m.log_retention_days / 30,
            "cloudwatch_logs_stored_gb_month",
            False,
        ),
        (
            "xray_traces",
            "X-Ray",
            f"traces recorded ({traffic.xray_sampled_share:.0%} of invocations sampled)",
            invocations * traffic.xray_sampled_share,
            "xray_trace_recorded",
            False,
        ),
        (
            "secret_reads",
            "Secrets Manager",
            "GetSecretValue (Decide's and Track's key reloads per environment)",
            secret_reads,
            "secrets_manager_api_call",
            False,
        ),
        (
            "custom_metrics",
            "CloudWatch",
            "custom metrics (fixed)",
            float(m.custom_metrics),
            "cloudwatch_metric_month",
            True,
        ),
        (
            "alarm_metrics",
            "CloudWatch",
            "metrics the alarms in template.yaml read (fixed)",
            float(m.alarm_metrics),
            "cloudwatch_alarm_metric_month",
            True,
        ),
        ("secrets", "Secrets Manager", "secrets (fixed)", float(m.secrets), "secrets_manager_secret_month", True),
    ]
    return [
        LineItem(key, service, what, quantity, price, prices[price].monthly(quantity), fixed)
        for key, service, what, quantity, price, fixed in items
    ]


def summary(items: list[LineItem], traffic: Traffic) -> dict[str, Any]:
    """Dollars per million decisions, per line item and in total; the three largest."""
    millions = traffic.decisions_per_second * MONTH_SECONDS / 1e6
    monthly = sum(item.monthly_usd for item in items)
    ranked = sorted(items, key=lambda item: -item.monthly_usd)
    return {
        "decisions_per_month": millions * 1e6,
        "monthly_usd": round(monthly, 2),
        "usd_per_million_decisions": round(monthly / millions, 4),
        "items": [
            {**asdict(item), "usd_per_million_decisions": round(item.monthly_usd / millions, 4)} for item in ranked
        ],
        "largest": [item.key for item in ranked[:3]],
    }


def page_read_units(items: list[dict[str, Any]], consistent: bool) -> float:
    """A Query or Scan page: the items' total size in 4 KB units, halved when eventually consistent."""
    units = max(1, math.ceil(sum(dynamodb_item_size(item) for item in items) / 4096))
    return units if consistent else units / 2


def scan_read_units(items: list[dict[str, Any]], consistent: bool) -> float:
    """What *items* add to a Scan's read units, the page not rounded up: per item, a share that holds for a Scan
    of many more."""
    units = sum(dynamodb_item_size(item) for item in items) / 4096
    return units if consistent else units / 2


def write_units(item: Mapping[str, Any]) -> int:
    return max(1, math.ceil(dynamodb_item_size(item) / 1024))


def dynamodb_item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values (numbers ~1 byte a 2 digits + 1; a Map or a
    List 3 bytes plus 1 an element, as well as its elements)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "M":
        return 3 + len(inner) + dynamodb_item_size(inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: element}) for element in inner)
    return _scalar_size(kind, inner)


def _scalar_size(kind: str, inner: Any) -> int:
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return math.ceil(len(str(inner).lstrip("-").replace(".", "")) / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    raise ValueError(f"unknown DynamoDB type {kind}")
