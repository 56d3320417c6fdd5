"""``TrainerConfig.l2_factors_grid``: the trainer picks its L2 on the factors by validation log loss."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from adserve.models.ctr_model import MANIFEST_FILE
from adserve.models.features import DEFAULT_SPEC, FeatureEncoder
from adserve.training.dataset import Examples, SlotOne
from adserve.training.factorization_machine import TrainingConfig
from adserve.training.simulation import World
from adserve.training.trainer import SplitData, TimeSplit, TrainerConfig, export, fit, write_model

SPEC = replace(DEFAULT_SPEC, hash_bits=14)
QUICK = TrainingConfig(max_epochs=6, patience=2, seed=3)


def _examples(world: World, n: int, rng: np.random.Generator) -> Examples:
    impressions = world.sample_impressions(n, rng)
    return Examples(
        indices=FeatureEncoder(SPEC).encode_rows(impressions.listeners, impressions.ads, impressions.ads),
        labels=impressions.clicks,
        propensities=np.ones(n, dtype=np.float32),
        logged_scores=np.zeros(n, dtype=np.float32),
        values=np.ones(n, dtype=np.float32),
        ranks=np.ones(n, dtype=np.int16),
        decided_at=np.zeros(n),
    )


@pytest.fixture(scope="module")
def data() -> SplitData:
    """Uniformly logged impressions of a world with who-likes-which-ad signal (its factors need little L2)."""
    world = World(seed=4, n_advertisers=6, base_ctr=0.06)
    rng = np.random.default_rng(4)
    return SplitData(
        train=_examples(world, 20_000, rng),
        validation=_examples(world, 6_000, rng),
        holdout=_examples(world, 100, rng),
        holdout_slot_one=SlotOne.concatenate([], len(SPEC.listener_fields), len(SPEC.candidate_fields)),
        ad_rows=np.zeros((0, len(SPEC.ad_fields)), dtype=np.int32),
        split=TimeSplit(0.0, 0.0),
    )


def test_the_grid_keeps_the_l2_whose_fit_has_the_lowest_validation_log_loss(data: SplitData) -> None:
    grid = (1.0, 1e-4, 0.05)  # the best is not first, so keeping the first value would fail
    alone = {l2: fit(data, SPEC, TrainerConfig(fit=replace(QUICK, l2_factors=l2))) for l2 in grid}
    best_loss = {l2: min(trained.report.validation_log_loss) for l2, trained in alone.items()}

    chosen = fit(data, SPEC, TrainerConfig(fit=QUICK, l2_factors_grid=grid))

    assert chosen.l2_factors == min(best_loss, key=best_loss.__getitem__) == 1e-4
    assert chosen.grid_log_loss == pytest.approx(best_loss)
    rows = data.holdout.indices
    np.testing.assert_array_equal(chosen.model.predict(rows), alone[1e-4].model.predict(rows))


def test_the_grid_is_deterministic_and_its_choice_is_in_the_manifest(data: SplitData, tmp_path: Path) -> None:
    config = TrainerConfig(fit=QUICK, l2_factors_grid=(1e-4, 1.0))
    first, second = fit(data, SPEC, config), fit(data, SPEC, config)
    model_bytes = export(first, SPEC)

    manifest = write_model(
        tmp_path, model_bytes, trained=first, spec=SPEC, as_of=datetime(2026, 12, 1, tzinfo=UTC), details={}
    )

    assert export(second, SPEC) == model_bytes
    written = json.loads((tmp_path / MANIFEST_FILE).read_text())["fit"]
    assert written["l2_factors"] == manifest["fit"]["l2_factors"] == 1e-4
    assert set(written["l2_factors_grid"]) == {"0.0001", "1"}


def test_a_negative_l2_in_the_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="l2_factors_grid"):
        TrainerConfig(l2_factors_grid=(1e-3, -1e-4))
