"""Figure 1a: warm Decide latency in-process, with DynamoDB, SQS and S3 replaced by in-memory fakes.

Two numbers per candidate count: ``service.decide`` alone (targeting, caps, encoding, ONNX, policy,
tokens, the decision record) and the full handler (the router, request validation, the
body-size limit, response serialisation and the metrics flush around it). The catalog snapshot is written
(to a fake bucket) as in production, so the records are compact; figure 1g sets their size against the
inline record of the same decision, up to 5,000 candidates.
"""

import contextlib
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TextIO

from adserve.campaigns.model import Budget, BudgetUnit, Campaign
from adserve.core.observability import metrics
from adserve.dal.decision_queue import MAX_MESSAGE_BYTES
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.policy import EpsilonGreedy
from adserve.decisions.service import DecisionService, PolicySettings
from adserve.decisions.throttling import throttle
from adserve.delivery.pacing import TrafficProfile, pace
from adserve.models.ctr_model import CtrModel
from adserve.models.features import FeatureEncoder
from adserve.outcomes.catalog_snapshots import parse_snapshot, snapshot_key
from adserve.outcomes.decision_records import DecisionRecord
from adserve.outcomes.tokens import TokenSigner
from adserve.privacy.consent import ConsentRules, ServingMode

from bench import catalogs
from bench.handler import check_response, inject_service, lambda_context, load_module
from bench.stats import iterations_for, measure, measure_interleaved
from devstack.fakes import (
    InMemoryCampaigns,
    InMemoryCounters,
    InMemoryLogStore,
    InMemoryPacingStore,
    RecordingDecisionLog,
)

MODEL_DIR = catalogs.REPO_ROOT / "layers" / "model" / "bootstrap"
BASE_URL = "https://abc123.execute-api.us-east-1.amazonaws.com"
EPSILON = 0.1
MAX_ADS = 3
SIZES = (10, 50, 200, 1000)
SCORE_ALL = 1_000_000
"""Figures 1a-1f score every eligible ad, as the compute floor does: pre-ranking (``PRERANK_TOP_K``, 500 by
default) would cut the 1000-candidate decision to 500. Figure 10 (``bench/scale.py``) measures it on."""


@contextlib.contextmanager
def quiet_stdout() -> Iterator[TextIO]:
    """The handler prints its EMF metrics every call; send them to /dev/null (the write still happens)."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield sink


@dataclass
class FakeWiring:
    service: DecisionService
    log: RecordingDecisionLog
    counters: InMemoryCounters
    pacing: InMemoryPacingStore
    archive: InMemoryLogStore
    """The logs bucket: Decide's catalog snapshot lands here."""

    def after_decision(self) -> None:
        """What follows each decision in production, run untimed between calls: the record leaves (the fake
        queue is emptied) and the handler flushes the decision's metrics (dropped here: the handler's figure
        times its flush). Without the flush, ``service.decide`` timed on its own would flush a hundred
        decisions' metrics in every hundredth call (Powertools flushes at 100 values a metric): 1% of the
        calls, which was the figure's p99 at 50 candidates."""
        self.log.records.clear()
        metrics.clear_metrics()


def load_model(encoder: FeatureEncoder) -> CtrModel:
    return CtrModel.load(MODEL_DIR, encoder.spec)


def fake_service(
    size: int,
    model: CtrModel,
    encoder: FeatureEncoder,
    *,
    serve_probability: float | None = None,
    contextual_eligible: bool = False,
    prerank_top_k: int = SCORE_ALL,
    catalog: Sequence[Campaign] | None = None,
) -> FakeWiring:
    """A DecisionService as adserve.wiring.decide builds it, with in-memory ports and ``size`` eligible campaigns.

    With *serve_probability*, every campaign has a budget and a fresh pacing state with that probability, so
    each decision draws once per campaign (the throttle's slowest path). With *contextual_eligible*, no
    campaign targets devices or age buckets, so a contextual decision has all ``size`` candidates too. With
    *catalog*, those campaigns instead of ``size`` generated ones (figure 10: 10,000, ``size`` eligible).
    """
    now = datetime.now(UTC)
    campaigns = list(catalog) if catalog is not None else catalogs.campaigns(size, now)
    if contextual_eligible:
        untargeted: dict[str, list[str]] = {"devices": [], "age_buckets": []}
        campaigns = [c.model_copy(update={"targeting": c.targeting.model_copy(update=untargeted)}) for c in campaigns]
    pacing = InMemoryPacingStore()
    if serve_probability is not None:
        campaigns = [c.model_copy(update={"budget": Budget(unit=BudgetUnit.IMPRESSIONS, daily=1e9)}) for c in campaigns]
        for c in campaigns:
            state = pace(c, None, 0, 0, TrafficProfile.uniform(), now)
            pacing.put(state.model_copy(update={"serve_probability": serve_probability}))
    counters = InMemoryCounters(
        counts={
            catalogs.PSEUDONYMS.listener(catalogs.LISTENER_ID): {
                c.key: c.impressions for c in catalogs.listener_counters(campaigns, now)
            }
        }
    )
    log, archive = RecordingDecisionLog(), InMemoryLogStore()
    signer = TokenSigner(random.Random(size).randbytes(64))
    service = DecisionService(
        catalog=CampaignCatalog(
            InMemoryCampaigns(campaigns),
            encoder,
            ttl_seconds=3600.0,
            max_age_seconds=7200.0,
            pacing=pacing,
            pacing_max_age=timedelta(hours=2),
            archive=archive,
        ),
        counters=counters,
        scorer=lambda _listener: model,
        decision_log=log,
        signer=lambda: signer,
        pseudonyms=lambda: catalogs.PSEUDONYMS,
        consent=ConsentRules(),
        encoder=encoder,
        policy=PolicySettings(
            exploration=EpsilonGreedy(EPSILON), token_ttl=timedelta(days=1), prerank_top_k=prerank_top_k
        ),
        rng=random.Random(size),
    )
    return FakeWiring(service, log, counters, pacing, archive)


def _check_service(
    wiring: FakeWiring, request: DecisionRequest, size: int, mode: ServingMode = ServingMode.PERSONALISED
) -> int:
    """Fail unless all ``size`` ads are eligible, caps were read and ``mode`` served; the record's JSON size."""
    response = wiring.service.decide(request, BASE_URL)
    record = wiring.log.records[-1]
    if (
        len(response.ads) != MAX_ADS
        or len(record.candidates) != size
        or record.cap_check != "ok"
        or record.mode != mode
    ):
        raise RuntimeError(
            f"benchmark catalog is wrong: {len(response.ads)} ads, {len(record.candidates)} of {size} "
            f"candidates eligible, caps {record.cap_check}, {record.mode} instead of {mode}"
        )
    return len(record.model_dump_json().encode())


RECORD_SIZES = (10, 50, 200, 1000, 2000, 5000)


def run_record_sizes() -> dict[str, Any]:
    """Figure 1g: one decision per candidate count, its record as Decide sends it (compact) and as the inline
    record of the same decision would be sent; what the queue's limit trims from each; the snapshot's size.

    Sizes, not times: one decision per count is the whole measurement.
    """
    encoder = FeatureEncoder()
    model = load_model(encoder)
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    sizes: dict[str, Any] = {}
    for size in RECORD_SIZES:
        wiring = fake_service(size, model, encoder)
        _check_service(wiring, request, size)
        record = wiring.log.records[-1]
        if record.catalog_version is None:
            raise RuntimeError("the catalog snapshot was not written: the record is not compact")
        snapshot = wiring.archive.objects[snapshot_key(record.catalog_version)]
        inline = record.with_features(parse_snapshot(record.catalog_version, snapshot))
        sent = {"compact": record.to_json_within(MAX_MESSAGE_BYTES), "inline": inline.to_json_within(MAX_MESSAGE_BYTES)}
        sizes[str(size)] = {
            "compact_bytes": len(record.model_dump_json().encode()),
            "inline_bytes": len(inline.model_dump_json().encode()),
            **{
                f"{shape}_dropped": DecisionRecord.model_validate_json(body).candidates_dropped
                for shape, body in sent.items()
            },
            "snapshot_gzip_bytes": len(snapshot),
        }
    most_dropped = max(data["compact_dropped"] for data in sizes.values())
    return {"queue_limit_bytes": MAX_MESSAGE_BYTES, "sizes": sizes, "most_compact_dropped": most_dropped}


def run(quick: bool = False) -> dict[str, Any]:
    encoder = FeatureEncoder()
    model = load_model(encoder)
    module = load_module()
    context = lambda_context()
    request_document = catalogs.decision_request_document(MAX_ADS)
    request = DecisionRequest.model_validate(request_document)
    event = catalogs.api_gateway_event(request_document)
    results: dict[str, Any] = {"model_version": model.version, "sizes": {}}
    for size in SIZES:
        wiring = fake_service(size, model, encoder)
        inject_service(module, wiring.service)
        iterations = iterations_for(size, 2000, quick)
        warmup = max(iterations // 10, 20)
        with quiet_stdout():
            record_bytes = _check_service(wiring, request, size)
            check_response(module.lambda_handler(event, context), MAX_ADS)
            decide = measure(
                partial(wiring.service.decide, request, BASE_URL), iterations, warmup, wiring.after_decision
            )
            handler = measure(partial(module.lambda_handler, event, context), iterations, warmup, wiring.after_decision)
        results["sizes"][str(size)] = {
            "service_decide": decide.to_dict(),
            "full_handler": handler.to_dict(),
            "decision_record_bytes": record_bytes,
            "cap_reads": wiring.counters.reads,
        }
    return results


PACED_SIZE = 50
PACED_PROBABILITY = 0.999
"""Paced, but (nearly) never filtered: the same candidates reach scoring as without pacing, so the difference
between the two runs is the throttle's cost, not fewer candidates to score."""


def run_pacing(quick: bool = False) -> dict[str, Any]:
    """Decide at 50 candidates without pacing and with every campaign paced, interleaved in one run.

    Also the throttle alone on the 50 targeted candidates, and the reads: the pacing Scan happens once per
    catalog load (``pacing_scans``), and no read of the pacing table (Scan or Get) per decision; the caps reads
    per decision are the same in both.
    """
    encoder = FeatureEncoder()
    model = load_model(encoder)
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    off = fake_service(PACED_SIZE, model, encoder)
    on = fake_service(PACED_SIZE, model, encoder, serve_probability=PACED_PROBABILITY)
    iterations = iterations_for(PACED_SIZE, 2000, quick)
    warmup = max(iterations // 10, 20)
    with quiet_stdout():
        off.service.decide(request, BASE_URL)
        on.service.decide(request, BASE_URL)
        reads_after_load = on.pacing.scans + on.pacing.gets
        summaries = measure_interleaved(
            {name: partial(wiring.service.decide, request, BASE_URL) for name, wiring in (("off", off), ("on", on))},
            iterations,
            warmup,
            between={"off": off.after_decision, "on": on.after_decision},
        )
        results = {name: summary.to_dict() for name, summary in summaries.items()}
    targeted = on.service.catalog.ads_for(request.placement).ads
    rng = random.Random(1)
    alone = measure(partial(throttle, targeted, rng), iterations * 5, warmup, lambda: None)
    return {
        "candidates": PACED_SIZE,
        "serve_probability": PACED_PROBABILITY,
        "decide_pacing_off": results["off"],
        "decide_pacing_on": results["on"],
        "p99_difference_us": round((results["on"]["p99_ms"] - results["off"]["p99_ms"]) * 1000, 1),
        "p50_difference_us": round((results["on"]["p50_ms"] - results["off"]["p50_ms"]) * 1000, 1),
        "throttle_alone": alone.to_dict(),
        "pacing_scans": on.pacing.scans,
        "pacing_reads_during_decisions": on.pacing.scans + on.pacing.gets - reads_after_load,
        "cap_reads_off": off.counters.reads,
        "cap_reads_on": on.counters.reads,
    }


CONSENT_SIZE = 50
CONTEXTUAL_CONSENT = {"personalise": False, "cap_frequency": True, "measure": True}
"""Contextual, but with capping consent: the caps are read and all candidates stay eligible, as when
personalised, so the two modes differ only in what the model sees of the listener."""


def run_consent(quick: bool = False) -> dict[str, Any]:
    """Decide at 50 candidates personalised and contextual, interleaved on one catalog, and p99 contextual/personalised.

    The catalog targets no device or age bucket, so both modes have the same 50 eligible candidates (checked
    before timing), and both read the caps (capping consent): only the listener features differ.
    """
    encoder = FeatureEncoder()
    model = load_model(encoder)
    wiring = fake_service(CONSENT_SIZE, model, encoder, contextual_eligible=True)
    requests = {
        ServingMode.PERSONALISED: DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS)),
        ServingMode.CONTEXTUAL: DecisionRequest.model_validate(
            catalogs.decision_request_document(MAX_ADS, consent=CONTEXTUAL_CONSENT)
        ),
    }
    for mode, request in requests.items():
        _check_service(wiring, request, CONSENT_SIZE, mode)
    iterations = iterations_for(CONSENT_SIZE, 2000, quick)
    with quiet_stdout():
        summaries = measure_interleaved(
            {mode.value: partial(wiring.service.decide, request, BASE_URL) for mode, request in requests.items()},
            iterations,
            max(iterations // 10, 20),
            between=dict.fromkeys((mode.value for mode in requests), wiring.after_decision),
        )
    personalised, contextual = summaries["personalised"].to_dict(), summaries["contextual"].to_dict()
    return {
        "candidates": CONSENT_SIZE,
        "contextual_consent": CONTEXTUAL_CONSENT,
        "decide_personalised": personalised,
        "decide_contextual": contextual,
        "p99_contextual_to_personalised": round(contextual["p99_ms"] / personalised["p99_ms"], 3),
        "p50_contextual_to_personalised": round(contextual["p50_ms"] / personalised["p50_ms"], 3),
    }


EXPLAIN_SIZE = 50


def run_explain(quick: bool = False) -> dict[str, Any]:
    """Decide at 50 candidates with and without ``"explain": true``, interleaved on one service, in one run.

    The served request takes the branch it always took (the golden test holds its output byte for byte), so
    its p99 here next to figure 1a's is the before/after; explain's own cost is the other column. Both use
    the bootstrap model, so explain reads the FM's parameters (once, on its first call) and decomposes all
    50 scores.
    """
    encoder = FeatureEncoder()
    model = load_model(encoder)
    # Full consent, so every candidate is eligible and caps are read (the deployment default is strict).
    consent = {"personalise": True, "cap_frequency": True, "measure": True}
    document = {**catalogs.decision_request_document(MAX_ADS), "consent": consent}
    served = DecisionRequest.model_validate(document)
    explained = DecisionRequest.model_validate({**document, "explain": True})
    wiring = fake_service(EXPLAIN_SIZE, model, encoder)
    iterations = iterations_for(EXPLAIN_SIZE, 2000, quick)
    warmup = max(iterations // 10, 20)
    with quiet_stdout():
        _check_service(wiring, served, EXPLAIN_SIZE)
        answer = wiring.service.decide(explained, BASE_URL)
        if answer.explanation is None or answer.explanation.contributions_unavailable is not None:
            raise RuntimeError(f"explain gave no contributions: {answer.explanation}")
        summaries = measure_interleaved(
            {
                "decide": partial(wiring.service.decide, served, BASE_URL),
                "explain": partial(wiring.service.decide, explained, BASE_URL),
            },
            iterations,
            warmup,
            {"decide": wiring.after_decision, "explain": wiring.after_decision},
        )
    decide, explain = summaries["decide"].to_dict(), summaries["explain"].to_dict()
    return {
        "candidates": EXPLAIN_SIZE,
        "decide": decide,
        "explain": explain,
        "p99_ratio": round(explain["p99_ms"] / decide["p99_ms"], 2),
        "explain_response_bytes": len(answer.model_dump_json().encode()),
    }
