"""The demo's truth for its simulated listeners: every listener's true click probability of every ad, computed in
one vectorised call up front (``devstack.demo.true_ctr_by_ad``), is exactly what one call per shown ad gave."""

import numpy as np

from devstack.demo import DemoConfig, as_served, fresh_listeners, true_ctr_by_ad


def test_the_vectorised_truth_equals_the_truth_of_each_pair() -> None:
    world = DemoConfig().world()
    listeners = fresh_listeners(world, 200, np.random.default_rng(11))
    ads_by_id = {as_served(ad)["ad_id"]: ad for ad in world.ads}
    truth = true_ctr_by_ad(world, listeners, ads_by_id)
    assert len(truth) == len(listeners)
    for listener, by_ad in zip(listeners, truth, strict=True):
        assert list(by_ad) == list(ads_by_id)
        assert by_ad == {ad_id: world.click_probability(listener, ad) for ad_id, ad in ads_by_id.items()}
