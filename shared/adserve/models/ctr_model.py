"""Serving-side CTR model: a verified ONNX artifact run by onnxruntime, one batched call per request.

Loading refuses anything it cannot trust: a file whose sha256 differs from its manifest, a model trained
on indices this server's encoder does not produce, or a graph with unexpected input/output names. A bad
model must fail at start-up, never score ads with garbage.
"""

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from adserve.core.errors import ModelLoadError
from adserve.models.features import FeatureSpec, spec_mismatches

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"


class Scorer(Protocol):
    """What Decide needs of a model: its version for the record, and probabilities for index rows."""

    @property
    def version(self) -> str: ...

    def predict(self, indices: np.ndarray) -> np.ndarray: ...


def _session_options() -> ort.SessionOptions:
    """One thread, sequential: a Lambda has little CPU and each request is a single small batch."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ModelLoadError(f"model manifest {path} does not exist") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"model manifest {path} is unreadable: {error}") from error
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"model manifest {path} is not a JSON object")
    for key in ("version", "sha256", "feature_spec", "input_name", "output_name"):
        if key not in manifest:
            raise ModelLoadError(f"model manifest {path} lacks {key!r}")
    return manifest


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
        """Read, verify and open ``model_dir``; raises ModelLoadError saying what is wrong."""
        manifest = _read_manifest(model_dir / MANIFEST_FILE)
        try:
            spec = FeatureSpec.from_dict(manifest["feature_spec"])
        except ValueError as error:
            raise ModelLoadError(f"model {manifest['version']}: {error}") from error
        mismatches = spec_mismatches(spec, supported_spec)
        if mismatches:
            raise ModelLoadError(
                f"model {manifest['version']} needs a feature spec this server cannot honour: {'; '.join(mismatches)}"
            )
        try:
            model_bytes = (model_dir / MODEL_FILE).read_bytes()
        except OSError as error:
            raise ModelLoadError(f"model file {model_dir / MODEL_FILE} is unreadable: {error}") from error
        digest = hashlib.sha256(model_bytes).hexdigest()
        if digest != manifest["sha256"]:
            raise ModelLoadError(
                f"model {manifest['version']}: sha256 {digest} does not match manifest {manifest['sha256']}"
            )
        try:
            session = ort.InferenceSession(
                model_bytes, sess_options=_session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises several unrelated exception types for a bad graph
            raise ModelLoadError(f"model {manifest['version']}: onnxruntime cannot load it: {error}") from error
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != [manifest["input_name"]] or outputs != [manifest["output_name"]]:
            raise ModelLoadError(
                f"model {manifest['version']}: graph has inputs {inputs} and outputs {outputs}, "
                f"manifest promises {manifest['input_name']!r} -> {manifest['output_name']!r}"
            )
        return cls(session, manifest, spec)

    def predict(self, indices: np.ndarray) -> np.ndarray:
        """Click probabilities (float32, shape (n,)) for an (n, num_fields) int64 index matrix."""
        if indices.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        feed = {self._input_name: np.ascontiguousarray(indices, dtype=np.int64)}
        (ctr,) = self._session.run(self._output_names, feed)
        return np.asarray(ctr, dtype=np.float32)
