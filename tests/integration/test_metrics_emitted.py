"""Every metric RUNBOOK.md documents is emitted by the handlers, in namespace Adserve, by the documented service.

The handlers run in process on the local stack through the scenarios of a working day: campaigns written,
decisions (one with no ad), beacons and a batch of events (valid and not), a Record batch with a valid, a
duplicate and a malformed record; then the faults the runbook's *Needs* column names: the caps table and the
outcomes queue throttled (through a fault-injecting proxy), the model files broken. The EMF documents each
invocation prints are captured and attributed to the function invoked.
"""

import contextlib
import io
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from adserve.campaigns.model import CampaignStatus
from adserve.core.errors import NotFoundError
from adserve.core.observability import MetricName
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore

from devstack.stack import LocalStack
from tests.support.aws_proxy import AwsProxy, aws_proxy
from tests.support.builders import campaign
from tests.support.outcomes_queue import drain, record_event
from tests.support.record_messages import sqs_record

ROOT = Path(__file__).parents[2]
RUNBOOK = ROOT / "RUNBOOK.md"
EVENTS = ROOT / "events"
NAMESPACE = "Adserve"
NORMAL = "-"
FAULTS = (
    "caps table throttled",
    "outcomes queue throttled",
    "broken model files",
    "a campaign in a currency without an exchange rate",
)
"""The *Needs* entries this module produces; metrics needing anything else are proven elsewhere."""


@dataclass(frozen=True)
class DocumentedMetric:
    name: str
    service: str
    unit: str
    needs: str


@dataclass(frozen=True)
class Emitted:
    function_id: str
    document: dict[str, Any]

    def metrics(self) -> list[tuple[str, str, list[list[str]]]]:
        """(namespace, name, dimension sets) of every metric in the document."""
        return [
            (directive["Namespace"], metric["Name"], directive["Dimensions"])
            for directive in self.document["_aws"]["CloudWatchMetrics"]
            for metric in directive["Metrics"]
        ]


def documented_metrics() -> dict[str, DocumentedMetric]:
    """The rows of the table in RUNBOOK.md's Metrics section (the first table after its heading)."""
    section = RUNBOOK.read_text().split("\n## Metrics\n", 1)[1]
    lines = section[section.index("| Metric |") :].splitlines()
    rows: dict[str, DocumentedMetric] = {}
    for line in lines[2:]:  # after the header and the |---| line
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 5, f"a Metrics row needs 5 cells: {line}"
        name, service, unit, _meaning, needs = cells
        assert name not in rows, f"{name} is documented twice"
        rows[name] = DocumentedMetric(name=name, service=service, unit=unit, needs=needs)
    assert rows, "RUNBOOK.md's Metrics section has no table"
    return rows


# ------------------------------------------------------------------------------------------ the scenarios


class Scenarios:
    """Invokes handlers and keeps the EMF documents each invocation printed."""

    def __init__(self, local_stack: LocalStack, proxy: AwsProxy) -> None:
        self.stack = local_stack
        self.proxy = proxy
        self.emitted: list[Emitted] = []

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            response = self.stack.invoke(function_id, event)
        for line in printed.getvalue().splitlines():
            if line.startswith("{") and '"_aws"' in line:
                self.emitted.append(Emitted(function_id, json.loads(line)))
        return response

    def api(self, method: str, path: str, body: Any = None, query: str = "") -> dict[str, Any]:
        payload = json.dumps(body) if body is not None else None
        function_id, event = self.stack.http_event(method, path, body=payload, query=query)
        response: dict[str, Any] = self.invoke(function_id, event)
        return response

    def decide(self, path: str = "/v1/decisions", **changes: Any) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(json.loads((EVENTS / "decide_post_decision.json").read_text())["body"])
        document.update(changes)
        return self.api("POST", path, document)

    def beacon(self, url_or_token: str, event_type: str = "impression") -> dict[str, Any]:
        token = parse_qs(urlparse(url_or_token).query).get("t", [url_or_token])[0]
        return self.api("GET", f"/v1/events/{event_type}", query=urlencode({"t": token}))


def run_scenarios(scenarios: Scenarios, tmp_path: Path, suffix: str) -> None:
    capped = campaign(
        campaign_id=f"metrics-capped-{suffix}",
        advertiser_id=f"adv-metrics-{suffix}",
        value_cpm=900,
        frequency_caps=[{"max": 5, "window": "day"}],
    )
    free = campaign(campaign_id=f"metrics-free-{suffix}", advertiser_id=f"adv-free-{suffix}", value_cpm=800)
    # Campaigns are written through the admin API
    for document in (capped, free):
        response = scenarios.api("PUT", f"/v1/campaigns/{document.campaign_id}", document.model_dump(mode="json"))
        assert response["statusCode"] == 200, response
    scenarios.stack.reset_function("DecideFunction")  # a warm catalog would not see them for up to its TTL
    drain(scenarios.stack)

    # A decision, and one nothing is eligible for
    decision = scenarios.decide(max_ads=3)
    assert decision["statusCode"] == 200, decision
    ads = json.loads(decision["body"])["ads"]
    assert capped.campaign_id in {ad["campaign_id"] for ad in ads}
    assert (
        scenarios.decide(placement="podcast_postroll", exclude_ads=postroll_ads(scenarios.stack))["statusCode"] == 200
    )
    # A decision without consent: contextual, and the capped campaign withheld
    assert scenarios.decide(consent={"personalise": False, "cap_frequency": False})["statusCode"] == 200
    # An explain request (it serves nothing, so its decision record is the only trace it leaves)
    assert scenarios.decide("/v1/decisions/explain")["statusCode"] == 200

    # Beacons: a valid impression of the capped campaign, a forged one; then a batch with one of each
    impression_url = next(ad for ad in ads if ad["campaign_id"] == capped.campaign_id)["tracking"]["impression"]
    assert scenarios.beacon(impression_url)["statusCode"] == 204
    assert scenarios.beacon("not-a-token")["statusCode"] in (403, 422)
    click_token = parse_qs(urlparse(ads[0]["tracking"]["click"]).query)["t"][0]
    now = datetime.now(UTC).isoformat()
    batch = {
        "events": [
            {"event_id": f"e-{suffix}-1", "type": "click", "token": click_token, "occurred_at": now},
            {"event_id": f"e-{suffix}-2", "type": "click", "token": "forged.token", "occurred_at": now},
        ]
    }
    assert scenarios.api("POST", "/v1/events", batch)["statusCode"] == 202

    # Record: what was queued, the impression once more (a duplicate) and a malformed record
    queued = drain(scenarios.stack)
    impression = next(message for message in queued if '"impression"' in message["Body"])
    event = record_event(scenarios.stack, queued)
    duplicate = {**event["Records"][queued.index(impression)], "messageId": str(uuid.uuid4())}
    event["Records"] += [duplicate, sqs_record("{not json")]
    failures = scenarios.invoke("RecordFunction", event)["batchItemFailures"]
    assert [failure["itemIdentifier"] for failure in failures] == [event["Records"][-1]["messageId"]]

    # Fault: the caps table throttles
    scenarios.proxy.throttle.add("Query")
    assert scenarios.decide(max_ads=3)["statusCode"] == 200
    scenarios.proxy.throttle.clear()

    # Fault: the outcomes queue throttles (the decision is served unlogged; the beacon asks for a retry)
    scenarios.proxy.throttle.add("SendMessage")
    assert scenarios.decide(max_ads=3)["statusCode"] == 200
    assert scenarios.beacon(impression_url)["statusCode"] == 503
    scenarios.proxy.throttle.clear()

    unpriced_campaign(scenarios, suffix)

    # Fault: the model files are broken
    broken = tmp_path / "broken-model"
    shutil.copytree(ROOT / "layers" / "model" / "bootstrap", broken)
    (broken / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_DIR", str(broken))
        scenarios.stack.reset_function("DecideFunction")
        scenarios.decide(max_ads=1)
    scenarios.stack.reset_function("DecideFunction")
    drain(scenarios.stack)


def unpriced_campaign(scenarios: Scenarios, suffix: str) -> None:
    """Fault: a campaign priced in a currency the deployment has no exchange rate for (the local stack ranks in USD
    without rates): the catalog load leaves it out. Archived again, it leaves the catalog as it found it."""
    unpriced = campaign(campaign_id=f"metrics-sek-{suffix}", advertiser_id=f"adv-sek-{suffix}", currency="SEK")
    path = f"/v1/campaigns/{unpriced.campaign_id}"
    assert scenarios.api("PUT", path, unpriced.model_dump(mode="json"))["statusCode"] == 200
    scenarios.stack.reset_function("DecideFunction")
    ads = json.loads(scenarios.decide(max_ads=3)["body"])["ads"]
    assert unpriced.campaign_id not in {ad["campaign_id"] for ad in ads}
    archived = unpriced.model_copy(update={"status": CampaignStatus.ARCHIVED})
    assert scenarios.api("PUT", path, archived.model_dump(mode="json"))["statusCode"] == 200
    scenarios.stack.reset_function("DecideFunction")


def postroll_ads(local_stack: LocalStack) -> list[str]:
    """Every ad of the podcast_postroll placement, so a decision excluding them all is empty."""
    store = CampaignStore(
        dynamodb_client(endpoint_url=local_stack.endpoint_url), local_stack.physical_name("CampaignsTable")
    )
    ads = [
        creative.ad_id
        for listed in store.list_campaigns()
        if "podcast_postroll" in listed.placements
        for creative in listed.creatives
    ]
    assert len(ads) <= 100, "exclude_ads takes at most 100 ids"
    return ads


@pytest.fixture(scope="module")
def emitted(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Emitted]]:
    """Run the scenarios once with DynamoDB and SQS behind a fault-injecting proxy; the EMF they printed."""
    with aws_proxy(local_stack.endpoint_url) as proxy, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        patch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
        for function_id in local_stack.description.functions:
            local_stack.reset_function(function_id)
        scenarios = Scenarios(local_stack, proxy)
        suffix = uuid.uuid4().hex[:8]
        try:
            run_scenarios(scenarios, tmp_path_factory.mktemp("metrics"), suffix)
        finally:
            for function_id in local_stack.description.functions:
                local_stack.reset_function(function_id)
    yield scenarios.emitted
    for function_id in local_stack.description.functions:
        local_stack.reset_function(function_id)
    # the stack is the worker's for its later modules: the scenario's campaigns would be served in their decisions
    store = CampaignStore(
        dynamodb_client(endpoint_url=local_stack.endpoint_url), local_stack.physical_name("CampaignsTable")
    )
    for kind in ("capped", "free", "sek"):
        with contextlib.suppress(NotFoundError):
            store.delete(f"metrics-{kind}-{suffix}")


# ------------------------------------------------------------------------------------------------ the tests


def test_the_runbook_documents_exactly_the_metric_names() -> None:
    documented = set(documented_metrics())
    declared = {name.value for name in MetricName}
    assert declared - documented == set(), "add a row to RUNBOOK.md's Metrics table for each new MetricName"
    assert documented - declared == set(), "the runbook documents metrics MetricName does not declare"


def test_documented_services_and_units_are_real() -> None:
    services = {"decide", "track", "record", "campaigns", "retrain", "pacing", "listeners"}
    for metric in documented_metrics().values():
        assert set(metric.service.split(", ")) <= services, metric  # "decide, track": emitted by both
        assert re.fullmatch(r"Count|Milliseconds|Seconds|Percent|Bytes|None", metric.unit), metric
        assert metric.needs, f"{metric.name}: Needs is '-' or the condition that emits it"


def test_every_documented_metric_is_emitted_by_its_service_in_the_adserve_namespace(
    local_stack: LocalStack, emitted: list[Emitted]
) -> None:
    # Which function each documented service is (POWERTOOLS_SERVICE_NAME in template.yaml)
    service_of = {
        function_id: function.environment.get("POWERTOOLS_SERVICE_NAME")
        for function_id, function in local_stack.description.functions.items()
    }
    seen: dict[str, set[str]] = {}
    for item in emitted:
        for namespace, name, dimension_sets in item.metrics():
            assert namespace == NAMESPACE, (name, namespace)
            assert any(
                "service" in dimensions
                for dimension_sets_item in [dimension_sets]
                for dimensions in dimension_sets_item
            ), name
            seen.setdefault(name, set()).add(str(service_of[item.function_id]))
    expected = {
        metric.name: metric.service
        for metric in documented_metrics().values()
        if metric.needs == NORMAL or metric.needs in FAULTS
    }
    missing = sorted(name for name in expected if name not in seen)
    assert missing == [], f"documented but never emitted: {missing}"
    wrong_service = {
        name: sorted(seen[name]) for name, service in expected.items() if seen[name] != set(service.split(", "))
    }
    assert wrong_service == {}, "emitted by another service than documented"


def test_every_emitted_metric_is_documented(emitted: list[Emitted]) -> None:
    documented = documented_metrics()
    names = {name for item in emitted for _, name, _ in item.metrics()}
    assert names - documented.keys() == set()


def test_units_are_the_documented_ones(emitted: list[Emitted]) -> None:
    documented = documented_metrics()
    for item in emitted:
        for directive in item.document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                assert metric["Unit"] == documented[metric["Name"]].unit, metric


def test_what_the_canaries_watch_is_counted_by_function_and_by_function_version(
    local_stack: LocalStack, emitted: list[Emitted]
) -> None:
    # The faults above degrade invocations of Decide (caps unread, decisions unlogged) and Track (a beacon not
    # queued: a 503 too, yet one invocation); the broken model files answer a 500 (no model to score with)
    counted: dict[tuple[str, str, str], list[Any]] = {}
    for item in emitted:
        for directive in item.document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                name = metric["Name"]
                if name in (MetricName.DEGRADED_INVOCATIONS, MetricName.UNHANDLED_ERRORS):
                    [dimensions] = directive["Dimensions"]
                    assert set(dimensions) in ({"service"}, {"service", "version"}), dimensions
                    by = "version" if "version" in dimensions else "function"
                    counted.setdefault((name, item.function_id, by), []).append(item.document[name])
    assert {(name, function_id) for name, function_id, _ in counted} == {
        (MetricName.DEGRADED_INVOCATIONS, "DecideFunction"),
        (MetricName.DEGRADED_INVOCATIONS, "TrackFunction"),
        (MetricName.UNHANDLED_ERRORS, "DecideFunction"),
    }
    for (name, function_id, by), values in counted.items():
        # once per invocation, however many failures it counted, in each document
        assert values == [[1.0]] * len(values), (name, function_id, by)
        assert len(values) == len(counted[(name, function_id, "version" if by == "function" else "function")])
