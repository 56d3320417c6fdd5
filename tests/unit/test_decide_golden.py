"""Decide's observable output, byte for byte, on a fixed seed: what the speed work must not change.

A seeded catalog (targeting that admits and refuses, paused and finished campaigns, several creatives,
shared advertisers, campaign and advertiser caps below and at their limits), seeded requests (every other
one chosen by SquareCB, the rest epsilon-greedy), a fixed clock, seeded decision ids and fixed signing
keys (tokens name the current one). The campaign store fails
for two requests: one is served from the snapshot (its age in the metrics), the other finds the snapshot
past its maximum age and serves nothing. The catalog snapshot's put fails at the first catalog load, so the
first records carry their ads' features inline (schema 1); from the next load on they are compact (schema 2,
adserve.outcomes.catalog_snapshots). For every request the golden file holds the response JSON, the
decision record JSON as the queue would carry it (and trimmed, for one request) and the metrics Decide
added. The golden file was written by the code before any optimisation; regenerate it only for an
intended change of output:
``ADSERVE_WRITE_GOLDEN=1 .venv/bin/pytest tests/unit/test_decide_golden.py``.
"""

import json
import os
import random
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from adserve.campaigns.frequency_caps import AdvertiserCaps, session_key
from adserve.campaigns.model import Campaign
from adserve.core.observability import MetricName, metrics
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import CampaignCatalog
from adserve.decisions.policy import EpsilonGreedy, SquareCB
from adserve.decisions.service import DecisionService, PolicySettings
from adserve.models.features import DEFAULT_SPEC, FeatureEncoder
from adserve.outcomes.tokens import TokenSigner, key_id
from adserve.privacy.consent import ConsentRules

from devstack.fakes import (
    InMemoryCampaigns,
    InMemoryCounters,
    InMemoryLogStore,
    InMemoryPacingStore,
    RecordingDecisionLog,
)
from tests.support.builders import NOW, impression_counters
from tests.support.privacy import PSEUDONYMS

GOLDEN = Path(__file__).parent / "golden" / "decide.json"
BASE_URL = "https://api.example.com"
PLACEMENTS = ("audio_preroll", "audio_midroll", "podcast_midroll", "display_companion")
COUNTRIES = ("SE", "NO", "DE", "US")
DEVICES = ("mobile", "desktop", "smart_speaker")
GENRES = ("pop", "rock", "jazz")
TRIM_TO_BYTES = 3_000
CURRENT_KEY, PREVIOUS_KEY = bytes(range(32, 96)), bytes(range(96, 160))
CATALOG_TTL, CATALOG_MAX_AGE = 60.0, 300.0
STORE_DOWN = {14: 200.0, 15: 1_000.0}
"""Requests for which the campaign store fails, and the monotonic time then: the first is served from a
snapshot 80 s old, the second finds it 880 s old, past the maximum age."""


@dataclass
class SwitchableCampaigns(InMemoryCampaigns):
    available: bool = True

    def list_campaigns(self) -> list[Campaign]:
        if not self.available:
            raise ConnectionError("campaigns table unreachable")
        return super().list_campaigns()


@dataclass
class Monotonic:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class HashScorer:
    """Deterministic, varied scores from the encoded indices: no ONNX runtime version in the golden bytes.

    Only the listener and ad columns count, so that a new candidate field (spec 2's ``exposure``) changed the
    golden records by that field alone; the exposure each candidate was scored with is in the records.
    """

    version = "golden-1"

    def predict(self, indices: np.ndarray) -> np.ndarray:
        scored = indices[:, : len(DEFAULT_SPEC.listener_fields) + len(DEFAULT_SPEC.ad_fields)]
        scores: np.ndarray = ((scored.sum(axis=1) % 997) / 997 * 0.2).astype(np.float32)
        return scores


def _some(rng: random.Random, values: tuple[str, ...]) -> list[str]:
    return [] if rng.random() < 0.5 else sorted(rng.sample(values, rng.randint(1, len(values) - 1)))


def _campaign(index: int, rng: random.Random) -> Campaign:
    campaign_id = f"cmp-{index:03d}"
    roll = rng.random()
    status = "paused" if roll < 0.05 else "active"
    start = NOW - timedelta(days=rng.randint(1, 30))
    end = NOW - timedelta(hours=1) if 0.05 <= roll < 0.1 else NOW + timedelta(days=rng.randint(1, 30))
    caps: list[dict[str, Any]] = []
    if index % 3 == 0:
        caps = [{"max": 2, "window": "session"}, {"max": 5, "window": "day", "scope": "advertiser"}]
    elif index % 5 == 0:
        caps = [{"max": 3, "window": "hour"}, {"max": 9, "window": "week"}, {"max": 20, "window": "month"}]
    creatives = [
        {
            "ad_id": f"{campaign_id}-ad-{number}",
            "format": rng.choice(("audio", "audio", "audio", "display")),
            "title": f"Offer {index}/{number}",
            "media_url": f"https://cdn.example.com/{campaign_id}/{number}.mp3",
            "click_url": f"https://advertiser-{index}.example.com/landing?src=adserve&n={number}",
            "duration_seconds": rng.choice((15, 30, None)),
        }
        for number in range(1, rng.choice((2, 2, 2, 3, 4)))
    ]
    return Campaign.model_validate(
        {
            "campaign_id": campaign_id,
            "advertiser_id": f"adv-{index % 29:02d}",
            "name": f"Campaign {index}",
            "status": status,
            "category": rng.choice(("auto", "food", "retail", "travel")),
            "flight_start": start.isoformat(),
            "flight_end": end.isoformat(),
            "placements": sorted(rng.sample(PLACEMENTS, rng.randint(1, 3))),
            "targeting": {
                "countries": _some(rng, COUNTRIES),
                "devices": _some(rng, DEVICES),
                "genres": _some(rng, GENRES) if rng.random() < 0.4 else [],
                "hours": sorted(rng.sample(range(24), 12)) if rng.random() < 0.2 else [],
            },
            "value_cpm": round(rng.uniform(1.0, 40.0), 2),
            "frequency_caps": caps,
            "creatives": creatives,
        }
    )


def _requests(rng: random.Random, campaigns: list[Campaign]) -> list[DecisionRequest]:
    ad_ids = [creative.ad_id for campaign in campaigns for creative in campaign.creatives]
    requests = []
    for index in range(20):
        context: dict[str, Any] = {"content_type": rng.choice(("music", "podcast"))}
        if rng.random() < 0.7:
            context["genre"] = rng.choice(GENRES)
        if rng.random() < 0.5:
            context["local_hour"] = rng.randrange(24)
        listener: dict[str, Any] = {
            "id": f"listener-{index % 7}",
            "country": rng.choice(COUNTRIES),
            "device": rng.choice(DEVICES),
            "context": context,
        }
        if rng.random() < 0.6:
            listener["session_id"] = f"session-{index % 4}"
        if rng.random() < 0.5:
            listener["age_bucket"] = "25-34"
        document: dict[str, Any] = {
            "listener": listener,
            "placement": rng.choice(PLACEMENTS) if index % 10 != 9 else "podcast_postroll",
            "max_ads": rng.randint(1, 6),
        }
        if rng.random() < 0.3:
            document["exclude_ads"] = rng.sample(ad_ids, 5)
        requests.append(DecisionRequest.model_validate(document))
    return requests


def _counters(campaigns: list[Campaign]) -> InMemoryCounters:
    """Every other capped campaign at its first cap in force for listeners 0-2, the rest below it.

    A campaign that declares no cap but whose advertiser's other campaign does is capped too (its first cap
    is the advertiser's), so a sibling's advertiser counter can refuse it.
    """
    advertiser_caps = AdvertiserCaps(campaigns)
    capped = [(c, caps) for c in campaigns if (caps := advertiser_caps.caps_of(c))]
    counts: dict[str, dict[str, int]] = {}
    for listener in range(3):
        session = session_key(PSEUDONYMS.session(f"session-{listener}"), NOW)
        for number, (campaign, caps) in enumerate(capped):
            slots = impression_counters(campaign, caps, NOW, session)
            counts.setdefault(PSEUDONYMS.listener(f"listener-{listener}"), {})[slots[0].key] = (
                caps[0].max if number % 2 else caps[0].max - 1
            )
    return InMemoryCounters(counts=counts)


def _monotonic_at(index: int) -> float:
    """10 s per request; after the outage a TTL and more past it, so the next request reloads."""
    last_down = max(STORE_DOWN)
    return 10.0 * index if index < last_down else STORE_DOWN[last_down] + 70.0 + 10.0 * (index - last_down - 1)


def _service(
    source: SwitchableCampaigns,
    monotonic: Monotonic,
    counters: InMemoryCounters,
    log: RecordingDecisionLog,
    archive: InMemoryLogStore,
) -> DecisionService:
    ids = random.Random(41)
    encoder = FeatureEncoder()
    signer = TokenSigner(CURRENT_KEY, previous=PREVIOUS_KEY)
    catalog = CampaignCatalog(
        source,
        encoder,
        ttl_seconds=CATALOG_TTL,
        max_age_seconds=CATALOG_MAX_AGE,
        monotonic=monotonic,
        pacing=InMemoryPacingStore(),
        pacing_max_age=timedelta(minutes=5),
        archive=archive,
    )
    return DecisionService(
        catalog=catalog,
        counters=counters,
        scorer=lambda _listener: HashScorer(),
        decision_log=log,
        signer=lambda: signer,
        pseudonyms=lambda: PSEUDONYMS,
        consent=ConsentRules("legacy"),
        encoder=encoder,
        policy=PolicySettings(exploration=EpsilonGreedy(0.3), token_ttl=timedelta(hours=6)),
        rng=random.Random(7),
        clock=lambda: NOW,
        new_decision_id=lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4)),
    )


def _metrics_added() -> dict[str, Any]:
    """The metrics one decision added; the latency's value is the only one that differs run to run."""
    added = {}
    for name, metric in metrics.metric_set.items():
        values = ["<latency>"] * len(metric["Value"]) if name == MetricName.DECIDE_LATENCY else metric["Value"]
        added[name] = {"Unit": metric["Unit"], "Value": values}
    metrics.clear_metrics()
    return added


def golden_document() -> str:
    rng = random.Random(2026)
    campaigns = [_campaign(index, rng) for index in range(150)]
    requests = _requests(rng, campaigns)
    counters = _counters(campaigns)
    log = RecordingDecisionLog()
    source, monotonic = SwitchableCampaigns(campaigns), Monotonic()
    archive = InMemoryLogStore(available=False)
    service = _service(source, monotonic, counters, log, archive)
    # Every other request by SquareCB: the same catalog, counters, log, random stream and decision ids
    squarecb = replace(service, policy=replace(service.policy, exploration=SquareCB(gamma=20.0)))
    metrics.clear_metrics()
    decisions = []
    for index, request in enumerate(requests):
        counters.available = index % 11 != 5
        log.fail = index % 13 == 7
        source.available = index not in STORE_DOWN
        monotonic.now = STORE_DOWN.get(index, _monotonic_at(index))
        archive.available = index > 0
        response = (squarecb if index % 2 else service).decide(request, BASE_URL)
        entry: dict[str, Any] = {"response": response.model_dump_json(), "metrics": _metrics_added()}
        if not log.fail:
            record = log.records.pop()
            entry["record"] = record.model_dump_json()
            if len(record.candidates) > 10:
                entry["record_trimmed"] = record.to_json_within(TRIM_TO_BYTES)
        decisions.append(entry)
    return json.dumps(decisions, indent=1) + "\n"


def test_decisions_are_byte_identical_to_the_golden_file() -> None:
    produced = golden_document()
    if os.environ.get("ADSERVE_WRITE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(produced)
    assert produced == GOLDEN.read_text()


def test_the_golden_file_covers_what_it_guards() -> None:
    decisions = json.loads(GOLDEN.read_text())
    responses = [json.loads(d["response"]) for d in decisions]
    records = [json.loads(d["record"]) for d in decisions if "record" in d]
    ads = [ad for response in responses for ad in response["ads"]]
    assert sum(not response["ads"] for response in responses) >= 1
    assert sum(len(response["ads"]) >= 3 for response in responses) >= 5
    assert any(ad["propensity"] > 0.7 for ad in ads), "greedy choices"
    assert any(ad["propensity"] < 0.3 for ad in ads), "explored choices"
    assert {record["cap_check"] for record in records} == {"ok", "not_needed", "unavailable"}
    assert {record["policy"]["name"] for record in records} == {"epsilon_greedy", "squarecb"}
    assert max(len(record["candidates"]) for record in records) >= 30
    assert [record.get("schema_version", 1) for record in records][:6] == [1] * 6, "inline until the put succeeds"
    assert [MetricName.CATALOG_SNAPSHOT_FAILURES in d["metrics"] for d in decisions].count(True) == 1
    assert len({record["catalog_version"] for record in records if record.get("schema_version") == 2}) == 1
    assert max(len(record["candidates"]["ad_id"]) for record in records if record.get("schema_version") == 2) >= 30
    assert any("record_trimmed" in d and json.loads(d["record_trimmed"])["candidates_dropped"] for d in decisions)
    assert any(MetricName.DECISION_LOG_FAILURES in d["metrics"] for d in decisions)
    assert any(MetricName.CAP_CHECK_FAILURES in d["metrics"] for d in decisions)
    by_cap = [d["metrics"].get(MetricName.CANDIDATES_FILTERED_BY_CAP, {"Value": [0]})["Value"] for d in decisions]
    assert any(value[0] > 0 for value in by_cap), "some capped campaign at its cap"
    assert all(MetricName.CATALOG_AGE_SECONDS in d["metrics"] for d in decisions)
    assert [MetricName.CATALOG_STALE in d["metrics"] for d in decisions].count(True) == 1
    assert decisions[min(STORE_DOWN)]["metrics"][MetricName.CATALOG_AGE_SECONDS]["Value"] == [80.0]
    assert responses[max(STORE_DOWN)]["ads"] == []
    tokens = [url.split("?t=")[1] for ad in ads for url in ad["tracking"].values()]
    assert {token.split(".")[0] for token in tokens} == {key_id(CURRENT_KEY)}, "signed with the current key"
