"""Serving-side CTR model: a verified ONNX artifact run by onnxruntime, one batched call per request.

Loading refuses anything it cannot trust, by the model contract (``adserve.models.contract``, the same
check ``adserve models publish`` runs): a file whose sha256 differs from its manifest, a model trained on
indices this server's encoder does not produce, a graph with unexpected inputs or outputs, or one whose
scores on sample rows are not probabilities. A bad model must fail at start-up, never score ads with garbage.
"""

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from adserve.models.contract import MANIFEST_FILE, MODEL_FILE, read_manifest, read_model, verify
from adserve.models.features import FeatureSpec

__all__ = ["MANIFEST_FILE", "MODEL_FILE", "CtrModel", "Scorer"]


class Scorer(Protocol):
    """What Decide needs of a model: its version for the record, and probabilities for index rows."""

    @property
    def version(self) -> str: ...

    def predict(self, indices: np.ndarray) -> np.ndarray: ...


class CtrModel:
    """A loaded click-through-rate model; ``predict`` maps hashed index rows to click probabilities."""

    def __init__(self, session: ort.InferenceSession, manifest: dict[str, Any], spec: FeatureSpec) -> None:
        self._session = session
        self.manifest = manifest
        self.version: str = str(manifest["version"])
        self.spec = spec
        self._input_name: str = manifest["input_name"]
        self._output_names: list[str] = [manifest["output_name"]]

    @classmethod
    def load(cls, model_dir: Path, supported_spec: FeatureSpec) -> "CtrModel":
        """Read, verify (every clause of the contract) and open ``model_dir``; raises ModelLoadError saying why."""
        manifest = read_manifest(model_dir / MANIFEST_FILE)
        label = str(manifest.get("version", model_dir)) if isinstance(manifest, dict) else str(model_dir)
        verified = verify(read_model(model_dir / MODEL_FILE), manifest, supported_spec, label)
        return cls(verified.session, verified.manifest, verified.spec)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        """Click probabilities (float32, shape (n,)) for an (n, num_fields) int64 index matrix."""
        if indices.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        feed = {self._input_name: np.ascontiguousarray(indices, dtype=np.int64)}
        (ctr,) = self._session.run(self._output_names, feed)
        return np.asarray(ctr, dtype=np.float32).reshape(-1)
