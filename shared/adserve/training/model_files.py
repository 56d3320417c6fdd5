"""A model directory as serving and the registry expect it: ``model.onnx`` next to ``manifest.json``.

The bootstrap builder and the retraining pipeline both write through here, so every published model has
the keys ``CtrModel.load`` checks (version, sha256, feature spec, graph input/output names).
"""

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adserve.models.ctr_model import MANIFEST_FILE, MODEL_FILE
from adserve.models.factorization import FM_MODEL_TYPE
from adserve.models.features import FeatureSpec
from adserve.training.onnx_export import INPUT_NAME, OUTPUT_NAME


def write_model_dir(
    out_dir: Path, model_bytes: bytes, spec: FeatureSpec, version: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    """Write ``model.onnx`` and ``manifest.json`` (sorted keys, so reproducible) to out_dir; the manifest.

    ``version`` may contain ``{sha12}``, replaced by the first 12 hex digits of the model's sha256.
    ``details`` adds keys (metrics, training window, parent, ...) next to the ones serving requires.
    """
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    manifest: dict[str, Any] = {
        **details,
        "version": version.replace("{sha12}", sha256[:12]),
        "model_type": FM_MODEL_TYPE,
        "feature_spec": spec.to_dict(),
        "sha256": sha256,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(model_bytes)
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
