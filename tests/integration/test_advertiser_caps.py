"""An advertiser cap counts every impression of the advertiser, whichever of its campaigns served it.

The whole loop runs on the local stack: Decide chooses, Track takes the impression beacon, Record counts
what the outcomes queue holds, and Decide reads the counters back. The advertiser has a campaign with a
daily advertiser cap and a sibling with no cap: impressions of the sibling must exhaust the cap of both.
"""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from adserve.campaigns.model import Campaign

from devstack.stack import LocalStack
from tests.support.builders import campaign
from tests.support.outcomes_queue import drain, record_event
from tests.support.stored_campaigns import stored_campaigns

EVENTS = Path(__file__).parents[2] / "events"
CAP = 2
ATTEMPTS = 30
"""Decisions tried until the policy (which explores) serves the wanted ad; it is the favourite by far."""


@dataclass(frozen=True)
class Advertiser:
    capped: Campaign
    sibling: Campaign

    @property
    def campaign_ids(self) -> set[str]:
        return {self.capped.campaign_id, self.sibling.campaign_id}


@pytest.fixture(scope="module")
def advertiser(local_stack: LocalStack) -> Iterator[Advertiser]:
    suffix = uuid.uuid4().hex[:8]
    seeded = Advertiser(
        capped=campaign(
            campaign_id=f"advcap-capped-{suffix}",
            advertiser_id=f"adv-advcap-{suffix}",
            value_cpm=1000,
            frequency_caps=[{"max": CAP, "window": "day", "scope": "advertiser"}],
        ),
        sibling=campaign(campaign_id=f"advcap-sibling-{suffix}", advertiser_id=f"adv-advcap-{suffix}", value_cpm=1000),
    )
    with stored_campaigns(local_stack, [seeded.capped, seeded.sibling], reset=["DecideFunction", "RecordFunction"]):
        yield seeded


def decide(local_stack: LocalStack, listener_id: str, exclude_ads: list[str]) -> list[dict[str, Any]]:
    document = json.loads(json.loads((EVENTS / "decide_post_decision.json").read_text())["body"])
    document["listener"]["id"] = listener_id
    document["exclude_ads"] = exclude_ads
    function_id, event = local_stack.http_event("POST", "/v1/decisions", body=json.dumps(document))
    response = local_stack.invoke(function_id, event)
    assert response["statusCode"] == 200, response
    ads: list[dict[str, Any]] = json.loads(response["body"])["ads"]
    return ads


def serve(local_stack: LocalStack, listener_id: str, wanted: Campaign, exclude: Campaign) -> dict[str, Any]:
    """A decision that serves *wanted* (the other campaign excluded): the policy explores, so retry a little."""
    for _ in range(ATTEMPTS):
        ads = decide(local_stack, listener_id, exclude_ads=[creative.ad_id for creative in exclude.creatives])
        served = [ad for ad in ads if ad["campaign_id"] == wanted.campaign_id]
        if served:
            return served[0]
    pytest.fail(f"{wanted.campaign_id} was not served in {ATTEMPTS} decisions")


def hear(local_stack: LocalStack, ad: dict[str, Any]) -> None:
    """The app fires the impression beacon; Record then processes the outcomes queue as Lambda would."""
    [token] = parse_qs(urlparse(ad["tracking"]["impression"]).query)["t"]
    function_id, event = local_stack.http_event("GET", "/v1/events/impression", query=urlencode({"t": token}))
    assert local_stack.invoke(function_id, event)["statusCode"] == 204
    assert local_stack.invoke("RecordFunction", record_event(local_stack, drain(local_stack))) == {
        "batchItemFailures": []
    }


def test_impressions_of_an_uncapped_sibling_exhaust_the_advertiser_cap_of_both(
    local_stack: LocalStack, advertiser: Advertiser
) -> None:
    listener = f"listener-advcap-{uuid.uuid4().hex[:8]}"
    # Given both campaigns can be served to the listener
    serve(local_stack, listener, wanted=advertiser.capped, exclude=advertiser.sibling)
    # When the listener hears the advertiser CAP times, every time through the sibling that declares no cap
    for _ in range(CAP):
        hear(local_stack, serve(local_stack, listener, wanted=advertiser.sibling, exclude=advertiser.capped))
    # Then neither campaign of the advertiser is served to that listener any more
    for _ in range(5):
        served = {ad["campaign_id"] for ad in decide(local_stack, listener, exclude_ads=[])}
        assert served.isdisjoint(advertiser.campaign_ids), served
    # And another listener still gets them
    serve(local_stack, f"{listener}-other", wanted=advertiser.sibling, exclude=advertiser.capped)
