import math
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
from adserve.models.features import DEFAULT_SPEC, LISTENER_FIELDS, FeatureEncoder
from adserve.training.factorization_machine import FactorizationMachine, TrainingConfig
from adserve.training.metrics import log_loss, roc_auc
from adserve.training.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx
from adserve.training.simulation import World, bayes_auc

SMALL_SPEC = replace(DEFAULT_SPEC, hash_bits=14)


def _train(seed: int) -> tuple[FactorizationMachine, np.ndarray, np.ndarray, np.ndarray]:
    """Fit on a small, click-rich world; returns the model and its holdout (indices, clicks, true probs)."""
    world = World(seed=seed, n_advertisers=6, base_ctr=0.05)
    rng = np.random.default_rng(seed)
    encoder = FeatureEncoder(SMALL_SPEC)
    train, validation, holdout = (world.sample_impressions(n, rng) for n in (80_000, 20_000, 40_000))
    model = FactorizationMachine(SMALL_SPEC.hash_size, seed=seed)
    model.fit(
        encoder.encode_rows(train.listeners, train.ads, train.ads),
        train.clicks,
        encoder.encode_rows(validation.listeners, validation.ads, validation.ads),
        validation.clicks,
        TrainingConfig(seed=seed, max_epochs=8),
    )
    return model, encoder.encode_rows(holdout.listeners, holdout.ads, holdout.ads), holdout.clicks, holdout.true_probs


@pytest.fixture(scope="module")
def trained() -> tuple[FactorizationMachine, np.ndarray, np.ndarray, np.ndarray]:
    return _train(seed=11)


def test_fm_learns_the_simulated_world(
    trained: tuple[FactorizationMachine, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    model, indices, clicks, true_probs = trained

    auc = roc_auc(clicks, model.predict(indices))

    best = bayes_auc(true_probs, clicks)
    assert auc > 0.6
    assert auc > best - 0.03


def test_default_training_learns_who_likes_which_ad_well_enough_to_choose() -> None:
    """The demo's world (16 ads at 6% CTR) from 30k uniformly served impressions: the greedy choice by the
    default fit's scores earns over 90% of the oracle's click rate. The pair factors start near zero and grow
    for tens of epochs while the validation loss wobbles; patience 2 stopped this fit at epoch 6 (79%)."""
    world = World(seed=1, n_advertisers=8, campaigns_per_advertiser=1, ads_per_campaign=2, base_ctr=0.06)
    rng = np.random.default_rng(1)
    encoder = FeatureEncoder(SMALL_SPEC)
    train, validation = world.sample_impressions(30_000, rng), world.sample_impressions(4_285, rng)
    model = FactorizationMachine(SMALL_SPEC.hash_size, seed=1)
    model.fit(
        encoder.encode_rows(train.listeners, train.ads, train.ads),
        train.clicks,
        encoder.encode_rows(validation.listeners, validation.ads, validation.ads),
        validation.clicks,
        TrainingConfig(l2_factors=1e-3, seed=1),  # the demo's regularisation, every other setting the default
    )
    listeners = world.sample_listeners(3_000, rng)
    pairs = [listener for listener in listeners for _ in world.ads], list(world.ads) * len(listeners)
    truth = world.click_probabilities(*pairs).reshape(len(listeners), len(world.ads))
    scores = model.predict(encoder.encode_rows(*pairs, pairs[1])).reshape(truth.shape)

    greedy = truth[np.arange(len(listeners)), scores.argmax(axis=1)].mean()

    assert greedy / truth.max(axis=1).mean() > 0.9


def test_world_has_realistic_ctr_and_field_driven_tastes() -> None:
    world = World(seed=5)
    impressions = world.sample_impressions(50_000, np.random.default_rng(0))

    assert 0.01 < impressions.clicks.mean() < 0.05
    assert set(impressions.listeners[0]) == set(LISTENER_FIELDS)
    listener, ad = impressions.listeners[0], impressions.ads[0]
    assert world.click_probability(listener, ad) == pytest.approx(impressions.true_probs[0])
    assert World(seed=6).click_probability(listener, ad) != pytest.approx(impressions.true_probs[0])


def test_onnx_export_matches_numpy_forward(
    trained: tuple[FactorizationMachine, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    model, indices, _, _ = trained
    unseen = np.full((1, SMALL_SPEC.num_fields), 7, dtype=np.int64)  # bucket likely never trained: neutral
    batch = np.vstack([indices[:500], unseen])

    session = ort.InferenceSession(export_onnx(model, SMALL_SPEC.num_fields), providers=["CPUExecutionProvider"])
    (onnx_ctr,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})

    assert onnx_ctr.dtype == np.float32
    assert onnx_ctr.shape == (501,)
    np.testing.assert_allclose(onnx_ctr, model.predict(batch), atol=1e-5)


def test_export_is_byte_identical_for_the_same_seed() -> None:
    spec = replace(DEFAULT_SPEC, hash_bits=10)
    world = World(seed=2, n_advertisers=3)

    def build() -> bytes:
        impressions = world.sample_impressions(5_000, np.random.default_rng(2))
        indices = FeatureEncoder(spec).encode_rows(impressions.listeners, impressions.ads, impressions.ads)
        model = FactorizationMachine(spec.hash_size, seed=2)
        model.fit(indices, impressions.clicks, indices, impressions.clicks, TrainingConfig(seed=2, max_epochs=2))
        return export_onnx(model, spec.num_fields)

    assert build() == build()


def test_roc_auc_on_hand_computed_cases() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    # pairs (pos, neg): (.2,.2) tie = 1/2, (.2,.1) = 1, (.3,.2) = 1, (.3,.1) = 1 -> 3.5 / 4
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.2, 0.2, 0.1, 0.3])) == pytest.approx(0.875)
    assert roc_auc(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.9])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc(np.array([1, 1]), np.array([0.1, 0.2]))


def test_log_loss_on_hand_computed_cases() -> None:
    assert log_loss(np.array([1, 0]), np.array([0.8, 0.1])) == pytest.approx(-(math.log(0.8) + math.log(0.9)) / 2)
    assert math.isfinite(log_loss(np.array([1]), np.array([0.0])))


def _brute_force_logits(model: FactorizationMachine, indices: np.ndarray) -> np.ndarray:
    """Every kept pair term written out: the pairs (f, g), f < g, with g past the unpaired fields."""
    v, fields = model.factors[indices], indices.shape[1]
    pairs = sum(
        (v[:, f] * v[:, g]).sum(axis=1)
        for f in range(fields)
        for g in range(f + 1, fields)
        if g >= model.unpaired_fields
    )
    return np.asarray(model.bias + model.weights[indices].sum(axis=1) + pairs)


def test_unpaired_fields_leave_out_only_the_pairs_among_them() -> None:
    rng = np.random.default_rng(4)
    indices = rng.integers(0, 64, (40, 6))
    model = FactorizationMachine(64, num_factors=3, seed=4, init_scale=0.5, unpaired_fields=3)
    model.weights = rng.normal(0.0, 0.3, 64)

    np.testing.assert_allclose(model.logits(indices), _brute_force_logits(model, indices), atol=1e-12)
    everything = FactorizationMachine(64, num_factors=3, seed=4, init_scale=0.5)
    everything.weights = model.weights
    assert not np.allclose(everything.logits(indices), model.logits(indices))
    np.testing.assert_allclose(everything.logits(indices), _brute_force_logits(everything, indices), atol=1e-12)


@pytest.mark.parametrize("unpaired", [0, 2, 4])
def test_the_training_step_follows_the_gradient_of_the_kept_pairs(unpaired: int) -> None:
    """Adagrad's first step moves every touched parameter by the learning rate against its gradient's sign, so
    the step's direction is compared with a finite-difference gradient of the batch's log loss."""
    rng = np.random.default_rng(unpaired)
    indices = rng.choice(24, (8, 5), replace=True) + 24 * np.arange(5)  # each field its own index range
    clicks = rng.integers(0, 2, 8).astype(np.float64)
    model = FactorizationMachine(120, num_factors=2, seed=unpaired, init_scale=0.3, unpaired_fields=unpaired)
    before = model.factors.copy()
    config = TrainingConfig(learning_rate=1e-3, l2_linear=0.0, l2_factors=0.0, batch_size=8, max_epochs=1)

    model.fit(indices, clicks, indices, clicks, config)  # one batch: one step (kept: it lowers the batch's loss)

    moved = np.sign(model.factors - before)
    probe = FactorizationMachine(120, num_factors=2, seed=unpaired, init_scale=0.3, unpaired_fields=unpaired)
    for row in np.unique(indices)[:12]:
        for k in range(2):
            probe.factors = before.copy()
            probe.factors[row, k] += 1e-6
            up = log_loss(clicks, probe.predict(indices))
            probe.factors[row, k] -= 2e-6
            down = log_loss(clicks, probe.predict(indices))
            gradient = (up - down) / 2e-6
            if abs(gradient) > 1e-6:
                assert moved[row, k] == -np.sign(gradient), (row, k)


def test_onnx_export_of_a_model_with_unpaired_fields_matches_numpy() -> None:
    world = World(seed=3, n_advertisers=4, base_ctr=0.05)
    impressions = world.sample_impressions(6_000, np.random.default_rng(3))
    encoder = FeatureEncoder(SMALL_SPEC)
    indices = encoder.encode_rows(impressions.listeners, impressions.ads, impressions.ads)
    model = FactorizationMachine(SMALL_SPEC.hash_size, seed=3, unpaired_fields=len(LISTENER_FIELDS))
    model.fit(indices, impressions.clicks, indices, impressions.clicks, TrainingConfig(seed=3, max_epochs=3))

    session = ort.InferenceSession(export_onnx(model, SMALL_SPEC.num_fields), providers=["CPUExecutionProvider"])
    (onnx_ctr,) = session.run([OUTPUT_NAME], {INPUT_NAME: indices[:500].astype(np.int64)})

    np.testing.assert_allclose(onnx_ctr, model.predict(indices[:500]), atol=1e-5)
    np.testing.assert_allclose(model.logits(indices[:50]), _brute_force_logits(model, indices[:50]), atol=1e-9)


def test_a_batch_needs_a_row() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig(batch_size=0)
