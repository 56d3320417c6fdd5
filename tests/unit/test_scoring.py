import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from adserve.core.errors import ModelLoadError
from adserve.models.ctr_model import CtrModel
from adserve.models.features import DEFAULT_SPEC, FeatureEncoder

BOOTSTRAP = Path(__file__).resolve().parents[2] / "layers" / "model" / "bootstrap"
LISTENER = {
    "country": "SE",
    "device": "mobile",
    "age_bucket": "25-34",
    "content_type": "music",
    "genre": "pop",
}
ADS = [{"advertiser_id": f"adv-{a:03d}", "category": c, "format": "audio"} for a, c in enumerate(["auto", "food"])]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(BOOTSTRAP, copy)
    return copy


def _edit_manifest(model_dir: Path, **changes: object) -> None:
    path = model_dir / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_bootstrap_model_loads_and_scores_a_batch() -> None:
    model = CtrModel.load(BOOTSTRAP, DEFAULT_SPEC)
    encoder = FeatureEncoder(model.spec)
    ad_rows = np.stack([encoder.encode_ad(ad) for ad in ADS])

    ctr = model.predict(
        encoder.encode(encoder.encode_listener(LISTENER), ad_rows, encoder.encode_candidates([{}] * len(ADS)))
    )

    assert model.version.startswith("bootstrap-")
    assert model.manifest["holdout_auc"] > 0.6
    assert ctr.dtype == np.float32
    assert ctr.shape == (2,)
    assert ((ctr > 0.0) & (ctr < 0.5)).all()


def test_empty_batch_returns_empty_scores() -> None:
    model = CtrModel.load(BOOTSTRAP, DEFAULT_SPEC)

    ctr = model.predict(np.empty((0, DEFAULT_SPEC.num_fields), dtype=np.int64))

    assert ctr.dtype == np.float32
    assert ctr.shape == (0,)


def test_tampered_model_bytes_are_refused(model_dir: Path) -> None:
    onnx_path = model_dir / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:-1] + b"\x00")

    with pytest.raises(ModelLoadError, match="sha256"):
        CtrModel.load(model_dir, DEFAULT_SPEC)


def test_corrupt_model_with_matching_sha_is_refused(model_dir: Path) -> None:
    garbage = b"not an onnx graph"
    (model_dir / "model.onnx").write_bytes(garbage)
    _edit_manifest(model_dir, sha256=hashlib.sha256(garbage).hexdigest())

    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        CtrModel.load(model_dir, DEFAULT_SPEC)


def test_missing_manifest_is_refused(model_dir: Path) -> None:
    (model_dir / "manifest.json").unlink()

    with pytest.raises(ModelLoadError, match="does not exist"):
        CtrModel.load(model_dir, DEFAULT_SPEC)


def test_missing_model_file_is_refused(model_dir: Path) -> None:
    (model_dir / "model.onnx").unlink()

    with pytest.raises(ModelLoadError, match="does not exist"):
        CtrModel.load(model_dir, DEFAULT_SPEC)


def test_bad_json_is_refused(model_dir: Path) -> None:
    (model_dir / "manifest.json").write_text("{not json")

    with pytest.raises(ModelLoadError, match="unreadable"):
        CtrModel.load(model_dir, DEFAULT_SPEC)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hash_bits": 20}, "hash_bits"),
        ({"listener_fields": ["country", "device"]}, "listener_fields"),
        ({"ad_fields": ["ad_id"]}, "ad_fields"),
    ],
)
def test_manifest_with_a_different_feature_spec_is_refused(
    model_dir: Path, change: dict[str, object], field: str
) -> None:
    _edit_manifest(model_dir, feature_spec={**DEFAULT_SPEC.to_dict(), **change})

    with pytest.raises(ModelLoadError, match=f"cannot honour: {field}"):
        CtrModel.load(model_dir, DEFAULT_SPEC)


def test_wrong_io_names_are_refused(model_dir: Path) -> None:
    _edit_manifest(model_dir, output_name="probability")

    with pytest.raises(ModelLoadError, match=r"\[output\] .* the manifest says .probability."):
        CtrModel.load(model_dir, DEFAULT_SPEC)
