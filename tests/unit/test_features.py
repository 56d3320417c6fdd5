import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from adserve.models.features import (
    AD_FIELDS,
    CANDIDATE_FIELDS,
    DEFAULT_SPEC,
    LISTENER_FIELDS,
    FeatureEncoder,
    FeatureSpec,
    candidate_features,
    exposure_value,
    spec_mismatches,
    spec_supported,
)

LISTENER = {
    "country": "SE",
    "device": "mobile",
    "age_bucket": "25-34",
    "content_type": "music",
    "genre": "pop",
    "placement": "audio_preroll",
    "hour_of_day": "20",
    "day_of_week": "5",
}
AD = {
    "advertiser_id": "adv-001",
    "campaign_id": "cmp-001-00",
    "ad_id": "ad-001-00-00",
    "category": "auto",
    "format": "audio",
}
# Computed once with blake2b-64 over "field=value", 18 bits. If these change, every deployed model breaks.
LISTENER_INDICES = [160989, 139442, 147917, 159594, 77083, 65674, 16771, 114022]
AD_INDICES = [199443, 164074, 158397, 153840, 171329]


def test_known_inputs_map_to_fixed_indices() -> None:
    encoder = FeatureEncoder()

    assert encoder.encode_listener(LISTENER).tolist() == LISTENER_INDICES
    assert encoder.encode_ad(AD).tolist() == AD_INDICES


def test_indices_do_not_depend_on_the_process_hash_seed() -> None:
    script = (
        "from adserve.models.features import FeatureEncoder;"
        f"print(FeatureEncoder().encode_listener({LISTENER!r}).tolist())"
    )
    shared = str(Path(__file__).resolve().parents[2] / "shared")
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": shared}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == str(LISTENER_INDICES)


def test_shapes_and_dtypes() -> None:
    encoder = FeatureEncoder()
    listener_row = encoder.encode_listener(LISTENER)
    ad_rows = np.stack([encoder.encode_ad(AD), encoder.encode_ad({**AD, "ad_id": "ad-2"})])

    own = encoder.encode_candidates([candidate_features(0), candidate_features(None)])
    matrix = encoder.encode(listener_row, ad_rows, own)

    assert listener_row.shape == (len(LISTENER_FIELDS),)
    assert listener_row.dtype == np.int64
    assert matrix.shape == (2, DEFAULT_SPEC.num_fields)
    assert matrix.dtype == np.int64
    assert (matrix[:, : len(LISTENER_FIELDS)] == listener_row).all()
    assert (matrix[:, len(LISTENER_FIELDS) : len(LISTENER_FIELDS) + len(AD_FIELDS)] == ad_rows).all()
    assert (matrix[:, len(LISTENER_FIELDS) + len(AD_FIELDS) :] == own).all()
    assert own.shape == (2, len(CANDIDATE_FIELDS))
    assert (matrix >= 0).all()
    assert (matrix < 2**DEFAULT_SPEC.hash_bits).all()


def test_encode_rows_matches_the_serving_path() -> None:
    encoder = FeatureEncoder()
    other = {**LISTENER, "country": "US", "genre": ""}

    rows = encoder.encode_rows([LISTENER, other], [AD, AD], [candidate_features(3), candidate_features(None)])

    assert rows[0].tolist()[: len(LISTENER_FIELDS) + len(AD_FIELDS)] == LISTENER_INDICES + AD_INDICES
    expected = encoder.encode(
        encoder.encode_listener(other),
        encoder.encode_ad(AD)[None, :],
        encoder.encode_candidates([candidate_features(None)]),
    )
    assert (rows[1] == expected[0]).all()
    exposure = DEFAULT_SPEC.fields.index("exposure")
    assert rows[0, exposure] != rows[1, exposure]


def test_candidate_rows_are_the_encoded_candidate_features_in_every_slot_also_past_the_kept_table() -> None:
    encoder = FeatureEncoder()
    many = [None, 0, 3, *range(300)]  # past the table's kept rows: the rest is encoded per call

    for slot in (1, 2, 3, 1):
        for exposures in ([None, 0, 3, 0, None], many, [7]):
            expected = encoder.encode_candidates([candidate_features(e, slot) for e in exposures])
            assert np.array_equal(encoder.candidate_rows(exposures, slot), expected)
    assert not np.array_equal(encoder.candidate_rows([0], 1), encoder.candidate_rows([0], 2))


def test_missing_and_empty_values_share_their_own_token_and_extra_keys_are_ignored() -> None:
    encoder = FeatureEncoder()
    without_age = {k: v for k, v in LISTENER.items() if k != "age_bucket"}

    missing = encoder.encode_listener(without_age)
    empty = encoder.encode_listener({**LISTENER, "age_bucket": ""})
    with_extra = encoder.encode_listener({**LISTENER, "listener_id": "abc"})

    age = LISTENER_FIELDS.index("age_bucket")
    assert missing[age] == empty[age] != LISTENER_INDICES[age]
    assert with_extra.tolist() == LISTENER_INDICES


def test_field_name_salts_the_hash() -> None:
    encoder = FeatureEncoder()

    row = encoder.encode_listener({"hour_of_day": "5", "day_of_week": "5"})

    assert row[LISTENER_FIELDS.index("hour_of_day")] != row[LISTENER_FIELDS.index("day_of_week")]


def test_spec_round_trips_through_a_dict() -> None:
    assert FeatureSpec.from_dict(DEFAULT_SPEC.to_dict()) == DEFAULT_SPEC
    assert DEFAULT_SPEC.num_fields == len(LISTENER_FIELDS) + len(AD_FIELDS) + len(CANDIDATE_FIELDS) == 15
    assert DEFAULT_SPEC.fields == (*LISTENER_FIELDS, *AD_FIELDS, "exposure", "slot")


@pytest.mark.parametrize(
    ("count", "value"), [(None, ""), (0, "0"), (1, "1"), (2, "2"), (3, "3-4"), (4, "3-4"), (5, "5+"), (40, "5+")]
)
def test_exposure_counts_fall_into_buckets_and_uncounted_is_the_unknown_value(count: int | None, value: str) -> None:
    assert exposure_value(count) == value
    assert candidate_features(count) == {"exposure": value, "slot": "1"}
    assert candidate_features(count, 3) == {"exposure": value, "slot": "3"}


def test_a_spec_1_manifest_has_no_candidate_fields_and_this_server_refuses_it() -> None:
    # Given the feature spec a model trained before exposure existed carries in its manifest
    old = {k: v for k, v in DEFAULT_SPEC.to_dict().items() if k != "candidate_fields"} | {"version": 1}
    # When it is parsed
    spec = FeatureSpec.from_dict(old)
    # Then it has the 13 fields it was trained on, and the server names both reasons it cannot honour it
    assert spec.candidate_fields == ()
    assert spec.num_fields == 13
    assert [m.split(":")[0] for m in spec_mismatches(spec, DEFAULT_SPEC)] == ["version", "candidate_fields"]


@pytest.mark.parametrize(
    "broken",
    [{}, {**DEFAULT_SPEC.to_dict(), "hash_bits": "18"}, {**DEFAULT_SPEC.to_dict(), "ad_fields": "ad_id"}],
)
def test_malformed_spec_dict_is_rejected(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="feature spec"):
        FeatureSpec.from_dict(broken)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hash_bits": 20}, "hash_bits"),
        ({"hash_function": "murmur3-32"}, "hash_function"),
        ({"listener_fields": LISTENER_FIELDS[:-1]}, "listener_fields"),
        ({"ad_fields": (*AD_FIELDS, "creative_length")}, "ad_fields"),
        ({"version": 1}, "version"),
        ({"candidate_fields": ()}, "candidate_fields"),
    ],
)
def test_spec_mismatch_is_detected(change: dict[str, object], reason: str) -> None:
    model_spec = FeatureSpec.from_dict({**DEFAULT_SPEC.to_dict(), **change})

    assert not spec_supported(model_spec, DEFAULT_SPEC)
    assert [m.split(":")[0] for m in spec_mismatches(model_spec, DEFAULT_SPEC)] == [reason]
    assert spec_supported(DEFAULT_SPEC, DEFAULT_SPEC)
