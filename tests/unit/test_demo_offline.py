"""The demo's offline phases and simulated traffic serve what Decide could serve: only ads the placement plays."""

import warnings

import numpy as np
import pytest
from adserve.core.vocabulary import PLAYS, CreativeFormat, Placement
from adserve.decisions.policy import GREEDY
from adserve.training.simulation import World

from devstack.demo import DemoConfig, fresh_listeners, offline_phase
from devstack.fakes import InMemoryLogStore
from devstack.simulated_logs import TrafficConfig, simulate_traffic


def test_the_oracle_takes_the_best_ad_the_placement_plays_and_nothing_where_it_plays_none() -> None:
    # Given a world without a display ad, so that display_companion plays none of its ads
    seed = next(
        s
        for s in range(200)
        if {a["format"] for a in DemoConfig(n_advertisers=2, ads_per_campaign=2, seed=s).world().ads} == {"audio"}
    )
    world = DemoConfig(n_advertisers=2, ads_per_campaign=2, seed=seed).world()
    # When the oracle is measured offline (no 0 / 0 in its draw, as there was for the display slot)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        phase = offline_phase(world, "oracle", 2_000, GREEDY, np.random.default_rng(3), weekday="2")
    # Then its rate is the best playable ad's per listener, and 0 for a listener on the display slot
    listeners = fresh_listeners(world, 2_000, np.random.default_rng(3), "2")
    ads = list(world.ads)
    truth = world.click_probabilities([x for x in listeners for _ in ads], ads * len(listeners)).reshape(-1, len(ads))
    playable = np.array(
        [[CreativeFormat(ad["format"]) in PLAYS[Placement(x["placement"])] for ad in ads] for x in listeners]
    )
    best = np.where(playable, truth, 0.0).max(axis=1)
    assert not playable[[x["placement"] == "display_companion" for x in listeners]].any()
    assert phase.expected_ctr == best.mean()


@pytest.mark.parametrize("returning", [False, True], ids=["fresh listeners", "returning audience"])
def test_simulated_traffic_offers_each_break_only_the_ads_its_placement_plays(returning: bool) -> None:
    # Given a world of audio and display ads, and traffic offering every ad it may (more candidates than ads)
    world = World(seed=5)
    assert {ad["format"] for ad in world.ads} == {"audio", "display"}
    config = TrafficConfig(
        decisions=1_000,
        candidates=len(world.ads),
        keep_stream=True,
        audience=300 if returning else None,
        daily_cap=100 if returning else None,
    )
    # When it is simulated
    stream = simulate_traffic(InMemoryLogStore(), world, config).stream
    # Then every decision was offered exactly the ads its placement plays, as Decide's targeting offers them
    assert len(stream) == 1_000
    for decision in stream:
        placement = Placement(decision.listener["placement"])
        playable = {ad["ad_id"] for ad in world.ads if CreativeFormat(ad["format"]) in PLAYS[placement]}
        assert {ad["ad_id"] for ad in decision.ads} == playable
