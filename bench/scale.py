"""Figure 10: 10,000 live campaigns. Catalog load (parse, validate, encode, index) with its memory, and Decide
at 10,000 campaigns with 1,000 and with 50 eligible, next to a 50-campaign catalog measured in the same run.

The catalog mixes what a real one holds: the eligible campaigns are the bench's usual ones (``catalogs``:
targeting that names the bench listener among other values, every third campaign capped), and each of the
others misses the request for one realistic reason: it runs in other placements, targets other countries,
devices or genres, is paused, or its flight is over or not yet begun. The store's items are the JSON
documents the campaigns table holds; loading parses each as ``dal.campaign_store`` does after a Scan.
"""

import gc
import json
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

from adserve.campaigns.model import Campaign
from adserve.core.vocabulary import Placement
from adserve.dal.campaign_store import DOCUMENT_ATTRIBUTE, CampaignStore
from adserve.dal.json_clients import DynamoDBJsonClient
from adserve.dal.pacing_store import DynamoPacingStore
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import CampaignCatalog, ad_features
from adserve.decisions.prerank import DEFAULT_TOP_K
from adserve.decisions.targeting import TargetingIndex
from adserve.delivery.pacing import TrafficProfile, pace
from adserve.models.features import FeatureEncoder, token_index

from bench import catalogs
from bench.decide_latency import BASE_URL, MAX_ADS, FakeWiring, fake_service, load_model, quiet_stdout
from bench.stats import measure_interleaved
from devstack.fakes import InMemoryLogStore, InMemoryPacingStore

CAMPAIGNS = 10_000
ELIGIBLE = 1_000
MANY_ELIGIBLE = 5_000
FEW_ELIGIBLE = 50
SMALL_CATALOG = 50
LOAD_RUNS = 3
LOAD_BUDGET_MS = 2000.0
DECIDE_BUDGET_MS = 10.0
PRERANK_TOP_K = DEFAULT_TOP_K
"""The deployment default (``DecideSettings.prerank_top_k``), so the figure measures what deploys."""


def _miss(document: dict[str, Any], now: datetime, rng: random.Random) -> None:
    """Make one campaign miss the bench request for one reason, in a mix like a real catalog's."""
    reason = rng.random()
    targeting = document["targeting"]
    if reason < 0.35:
        document["placements"] = sorted(rng.sample(catalogs.OTHER_PLACEMENTS, k=rng.randint(1, 3)))
    elif reason < 0.65:
        targeting["countries"] = sorted(rng.sample(catalogs.OTHER_COUNTRIES, k=rng.randint(1, 4)))
    elif reason < 0.75:
        targeting["devices"] = sorted(rng.sample(catalogs.OTHER_DEVICES, k=rng.randint(1, 2)))
    elif reason < 0.85:
        targeting["genres"] = sorted(rng.sample(catalogs.OTHER_GENRES, k=rng.randint(1, 3)))
    elif reason < 0.92:
        document["status"] = "paused"
    elif reason < 0.96:
        document["flight_start"] = (now - timedelta(days=40)).isoformat()
        document["flight_end"] = (now - timedelta(days=rng.randint(1, 10))).isoformat()
    else:
        document["flight_start"] = (now + timedelta(days=rng.randint(1, 10))).isoformat()


def catalog_items(total: int, eligible: int, now: datetime, seed: int = 11) -> list[str]:
    """The campaigns table's documents: ``total`` campaigns, ``eligible`` of them servable to the bench request."""
    rng = random.Random(seed)
    servable = set(rng.sample(range(total), eligible))
    items = []
    for index in range(total):
        document = catalogs.campaign_document(index, now, rng)
        if index not in servable:
            _miss(document, now, rng)
        items.append(json.dumps(document))
    return items


@dataclass
class ScannedCampaigns:
    """The campaigns table in memory, as Scan pages return it: each item's JSON parsed as the dal parses it."""

    items: list[str]

    def list_campaigns(self) -> list[Campaign]:
        campaigns = [Campaign.model_validate_json(item) for item in self.items]
        return sorted(campaigns, key=lambda campaign: campaign.campaign_id)


def _catalog(items: list[str], encoder: FeatureEncoder) -> CampaignCatalog:
    return CampaignCatalog(
        ScannedCampaigns(items),
        encoder,
        ttl_seconds=3600.0,
        max_age_seconds=7200.0,
        pacing=InMemoryPacingStore(),
        pacing_max_age=timedelta(hours=2),
        archive=InMemoryLogStore(),
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _timed(work: Callable[[], object], *, from_scratch: bool = False) -> float:
    """Milliseconds of one call, with the cyclic collector off as ``CampaignCatalog`` loads. *from_scratch*: as a
    new environment makes it, the process's hash cache (``token_index``, shared by every encoder) emptied first,
    untimed, so an earlier load's hashes do not make it look cheaper."""
    if from_scratch:
        token_index.cache_clear()
    gc.disable()
    try:
        started = time.perf_counter()
        work()
        return _ms(started)
    finally:
        gc.enable()


def _encode_all(campaigns: list[Campaign], encoder: FeatureEncoder) -> None:
    for campaign in campaigns:
        for creative in campaign.creatives:
            encoder.encode_ad(ad_features(campaign, creative.ad_id, creative.format.value))


def run_load(items: list[str], encoder: FeatureEncoder) -> dict[str, Any]:
    """The whole load (``CampaignCatalog.warm``: parse, validate, encode, index, and the catalog snapshot's
    put to an in-memory logs bucket as production does) and each stage alone, every
    one with the cyclic collector off as the catalog loads.

    Its first run also gives the resident-memory growth while the snapshot is held; tracemalloc's peak and
    what stays allocated come from a separate run (tracing slows everything it measures).
    """
    rss_before = _rss_kb()
    first = _catalog(items, encoder)
    totals = [_timed(first.warm, from_scratch=True)]
    rss_delta_mb = round((_rss_kb() - rss_before) / 1024, 1)
    source = ScannedCampaigns(items)
    parse, encode, index, priors = [], [], [], []
    model = load_model(encoder)
    for _ in range(LOAD_RUNS):
        totals.append(_timed(_catalog(items, encoder).warm, from_scratch=True))
        parse.append(_timed(source.list_campaigns))
        campaigns = source.list_campaigns()
        encode.append(_timed(partial(_encode_all, campaigns, encoder), from_scratch=True))
        ads = first.ads_for(Placement.AUDIO_MIDROLL).ads
        index.append(_timed(partial(TargetingIndex, Placement.AUDIO_MIDROLL, ads)))
        fresh = TargetingIndex(Placement.AUDIO_MIDROLL, ads)
        priors.append(_timed(partial(fresh.priors, model, encoder)))
    tracemalloc.start()
    traced = _catalog(items, encoder)
    traced.warm()
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    return {
        "campaigns": len(items),
        "ads_in_placement": len(first.ads_for(Placement.AUDIO_MIDROLL)),
        "total_ms": {"median": statistics.median(totals), "runs": totals},
        "parse_and_validate_ms": statistics.median(parse),
        "encode_ads_ms": statistics.median(encode),
        "index_one_placement_ms": statistics.median(index),
        "prior_scores_one_placement_ms": statistics.median(priors),
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "tracemalloc_retained_mb": round(retained / 2**20, 1),
        "rss_delta_first_load_mb": rss_delta_mb,
    }


PAGE_BYTES = 1 << 20
"""A Scan page's most (DynamoDB stops a page at 1 MB of items)."""
REPACED_PROBABILITIES = (0.8, 0.6)
CHANGED_SHARE = 0.01


class ScannedTables:
    """DynamoDB as the JSON client answers the stores: items per table, a Scan paged at 1 MB and each page parsed
    from its JSON body (fresh strings every Scan, as from the wire). Only the calls the two stores make here; each
    item is kept as the JSON the service would send, so building a page costs the bench, not the client, nothing
    but a join."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, str]] = {}

    def put_item(self, *, TableName: str, Item: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.tables.setdefault(TableName, {})[Item["campaign_id"]["S"]] = json.dumps(Item)
        return {}

    def scan_pages(self, *, TableName: str, **_: Any) -> Iterator[dict[str, Any]]:  # noqa: N803
        page: list[str] = []
        size = 0
        for item in self.tables.get(TableName, {}).values():
            page.append(item)
            size += len(item)
            if size >= PAGE_BYTES:
                yield json.loads(f'{{"Items": [{",".join(page)}]}}')
                page, size = [], 0
        yield json.loads(f'{{"Items": [{",".join(page)}]}}')


def _budgeted(items: list[str]) -> list[str]:
    """Every other campaign with a daily budget, so a refresh repaces half the catalog."""
    documents = [json.loads(item) for item in items]
    for document in documents[::2]:
        document["budget"] = {"unit": "impressions", "daily": 1_000_000}
    return [json.dumps(document) for document in documents]


def run_refresh(items: list[str], encoder: FeatureEncoder) -> dict[str, Any]:
    """A refresh of a 10,000-campaign catalog against a load from scratch, through the real stores
    (``CampaignStore``, ``DynamoPacingStore``) over in-memory Scan pages, half the campaigns budgeted and paced.

    Each refresh is ``CampaignCatalog.expire`` then ``warm``, as the TTL's would be: with nothing changed, with
    every budgeted campaign repaced (what each refresh after a pacing step sees), and with 1% of the campaigns
    edited as well. Network time is not in it; the Scans' JSON parse is.
    """
    now = datetime.now(UTC)
    tables = ScannedTables()
    client = cast("DynamoDBJsonClient", tables)
    campaigns, pacing = CampaignStore(client, "campaigns"), DynamoPacingStore(client, "pacing")
    documents = _budgeted(items)
    for document in documents:
        tables.put_item(
            TableName="campaigns",
            Item={"campaign_id": {"S": json.loads(document)["campaign_id"]}, DOCUMENT_ATTRIBUTE: {"S": document}},
        )
    budgeted = [campaign for campaign in campaigns.list_campaigns() if campaign.budget is not None]

    def repace(probability: float) -> None:
        for campaign in budgeted:
            state = pace(campaign, None, 0, 0, TrafficProfile.uniform(), now)
            pacing.put(state.model_copy(update={"serve_probability": probability}))

    def catalog() -> CampaignCatalog:
        return CampaignCatalog(
            CampaignStore(client, "campaigns"),
            encoder,
            ttl_seconds=3600.0,
            max_age_seconds=7200.0,
            pacing=pacing,
            pacing_max_age=timedelta(hours=2),
            archive=InMemoryLogStore(),
        )

    def refreshed(served: CampaignCatalog) -> float:
        served.expire()
        return _timed(served.warm)

    def edit(count: int) -> None:
        for document in rng.sample(documents, count):
            changed = json.loads(document) | {"value_cpm": round(rng.uniform(2.0, 40.0), 2)}
            tables.put_item(
                TableName="campaigns",
                Item={"campaign_id": {"S": changed["campaign_id"]}, DOCUMENT_ATTRIBUTE: {"S": json.dumps(changed)}},
            )

    cases = ("cold_load", "unchanged", "repaced", "repaced_1_edited", "repaced_1pct_edited")
    runs: dict[str, list[float]] = {case: [] for case in cases}
    rng = random.Random(3)
    probability = REPACED_PROBABILITIES[0]
    repace(probability)
    for _ in range(LOAD_RUNS):
        served = catalog()
        runs["cold_load"].append(_timed(served.warm, from_scratch=True))
        runs["unchanged"].append(refreshed(served))
        for case, edits in (("repaced", 0), ("repaced_1_edited", 1), ("repaced_1pct_edited", len(documents) // 100)):
            edit(edits)
            probability = REPACED_PROBABILITIES[(probability == REPACED_PROBABILITIES[0]) * 1]
            repace(probability)
            runs[case].append(refreshed(served))
    medians = {case: statistics.median(values) for case, values in runs.items()}
    return {
        "campaigns": len(items),
        "budgeted": len(budgeted),
        "ms": medians,
        "runs_ms": runs,
        "to_cold_load": {case: round(value / medians["cold_load"], 3) for case, value in medians.items()},
    }


def _check(wiring: FakeWiring, request: DecisionRequest, scored: int, dropped: int) -> None:
    """Fail unless the decision served MAX_ADS, read the caps, scored ``scored`` ads and pre-ranked out ``dropped``."""
    response = wiring.service.decide(request, BASE_URL)
    record = wiring.log.records[-1]
    if (len(response.ads), len(record.candidates), record.prerank_dropped, record.cap_check) != (
        MAX_ADS,
        scored,
        dropped,
        "ok",
    ):
        raise RuntimeError(
            f"scale catalog is wrong: {len(response.ads)} ads, {len(record.candidates)} scored (want {scored}), "
            f"{record.prerank_dropped} pre-ranked out (want {dropped}), caps {record.cap_check}"
        )


def run(quick: bool = False) -> dict[str, Any]:
    encoder = FeatureEncoder()
    model = load_model(encoder)
    now = datetime.now(UTC)
    many = catalog_items(CAMPAIGNS, ELIGIBLE, now)
    load = run_load(many, encoder)
    refresh = run_refresh(many, encoder)
    few = [Campaign.model_validate_json(item) for item in catalog_items(CAMPAIGNS, FEW_ELIGIBLE, now)]
    most = [Campaign.model_validate_json(item) for item in catalog_items(CAMPAIGNS, MANY_ELIGIBLE, now)]
    parsed = [Campaign.model_validate_json(item) for item in many]
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    services = {
        "eligible_1000": fake_service(ELIGIBLE, model, encoder, prerank_top_k=PRERANK_TOP_K, catalog=parsed),
        "eligible_1000_score_all": fake_service(ELIGIBLE, model, encoder, catalog=parsed),
        "eligible_5000": fake_service(MANY_ELIGIBLE, model, encoder, prerank_top_k=PRERANK_TOP_K, catalog=most),
        "eligible_50": fake_service(FEW_ELIGIBLE, model, encoder, prerank_top_k=PRERANK_TOP_K, catalog=few),
        "catalog_50": fake_service(SMALL_CATALOG, model, encoder, prerank_top_k=PRERANK_TOP_K),
    }
    wanted = {
        "eligible_1000": ELIGIBLE,
        "eligible_1000_score_all": ELIGIBLE,
        "eligible_5000": MANY_ELIGIBLE,
        "eligible_50": FEW_ELIGIBLE,
    }
    iterations = 50 if quick else 400
    with quiet_stdout():
        for name, wiring in services.items():
            eligible = wanted.get(name, SMALL_CATALOG)
            scored = min(eligible, wiring.service.policy.prerank_top_k)
            _check(wiring, request, scored, eligible - scored)
        summaries = measure_interleaved(
            {name: partial(wiring.service.decide, request, BASE_URL) for name, wiring in services.items()},
            iterations,
            max(iterations // 10, 20),
            between={name: wiring.after_decision for name, wiring in services.items()},
        )
    decide = {name: summary.to_dict() for name, summary in summaries.items()}

    def ratios(ours: str, floor: str) -> dict[str, float]:
        return {q: round(float(decide[ours][f"{q}_ms"]) / float(decide[floor][f"{q}_ms"]), 2) for q in ("p50", "p99")}

    return {
        "campaigns": CAMPAIGNS,
        "prerank_top_k": PRERANK_TOP_K,
        "load": load,
        "refresh": refresh,
        "decide": decide,
        "ratios": {
            "1000_to_50_eligible": ratios("eligible_1000", "eligible_50"),
            "5000_to_1000_eligible": ratios("eligible_5000", "eligible_1000"),
            "50_eligible_10000_to_50_campaigns": ratios("eligible_50", "catalog_50"),
            "prerank_to_score_all": ratios("eligible_1000", "eligible_1000_score_all"),
        },
        "load_budget_ms": LOAD_BUDGET_MS,
        "decide_budget_ms": DECIDE_BUDGET_MS,
    }
