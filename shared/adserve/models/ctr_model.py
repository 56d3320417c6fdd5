"""Serving-side CTR model: a verified ONNX artifact run by onnxruntime, one batched call per request.

Loading refuses anything it cannot trust, by the model contract (``adserve.models.contract``, the same
check ``adserve models publish`` runs): a file whose sha256 differs from its manifest, a model trained on
indices this server's encoder does not produce, a graph with unexpected inputs or outputs, or one whose
scores on sample rows are not probabilities. A bad model must fail at start-up, never score ads with garbage.
"""

import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import onnxruntime as ort

from adserve.models.contract import MANIFEST_FILE, MODEL_FILE, read_manifest, read_model, verify
from adserve.models.factorization import FM_MODEL_TYPE, FmParameters, NotDecomposableError
from adserve.models.features import FeatureSpec
from adserve.models.heard_ads import HeardAds

__all__ = ["MANIFEST_FILE", "MODEL_FILE", "CtrModel", "Decomposable", "Scorer", "Trained", "Windowed", "unseen_from"]


class Scorer(Protocol):
    """What Decide needs of a model: its version for the record, and probabilities for index rows."""

    @property
    def version(self) -> str: ...

    def predict(self, indices: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Trained(Protocol):
    """A model that knows how many of this deployment's logged decisions it learned from (its manifest's), and
    how many impressions of each ad (None: published before either was counted)."""

    @property
    def logged_decisions(self) -> int | None: ...

    @property
    def heard_ads(self) -> HeardAds | None: ...


@runtime_checkable
class Windowed(Protocol):
    """A model that knows from when on the logged decisions taught it nothing (``unseen_from``), so that
    offline evaluation judges it only on those."""

    @property
    def unseen_from(self) -> float | None: ...


@runtime_checkable
class Decomposable(Protocol):
    """A model explain can take apart: its FM parameters, or why it has none it can read."""

    def fm_parameters(self) -> FmParameters | str: ...


UNLABELLED_MEANS: Final = "click"
"""What a model whose manifest names no ``label`` predicts: the bootstrap model, and models published before
manifests said, are click models."""


class CtrModel:
    """A loaded click-through-rate model; ``predict`` maps hashed index rows to click probabilities."""

    def __init__(
        self,
        session: ort.InferenceSession,
        manifest: dict[str, Any],
        spec: FeatureSpec,
        model_bytes: bytes | None = None,
    ) -> None:
        self._session = session
        self.manifest = manifest
        self.version: str = str(manifest["version"])
        self.logged_decisions: int | None = manifest.get("logged_decisions")
        heard = manifest.get("heard_ads")
        self.heard_ads = None if heard is None else HeardAds.from_manifest(heard)
        self.spec = spec
        self._input_name: str = manifest["input_name"]
        self._output_names: list[str] = [manifest["output_name"]]
        self._model_bytes = model_bytes if manifest.get("model_type") == FM_MODEL_TYPE else None
        """Kept only for a factorization machine (about 1 MB), for explain; read on its first explain."""
        self._parameters: FmParameters | str | None = None

    @property
    def label(self) -> str:
        """The outcome it predicts (its manifest's ``label``): Decide ranks by it, so a model of another label changes
        what the deployment optimises rather than how well."""
        return str(self.manifest.get("label", UNLABELLED_MEANS))

    @property
    def unseen_from(self) -> float | None:
        """When the logged decisions stopped teaching this model (``unseen_from``); read for evaluation only."""
        return unseen_from(self.manifest)

    @classmethod
    def load(cls, model_dir: Path, supported_spec: FeatureSpec) -> "CtrModel":
        """Read, verify (every clause of the contract) and open ``model_dir``; raises ModelLoadError saying why."""
        manifest = read_manifest(model_dir / MANIFEST_FILE)
        label = str(manifest.get("version", model_dir)) if isinstance(manifest, dict) else str(model_dir)
        model_bytes = read_model(model_dir / MODEL_FILE)
        verified = verify(model_bytes, manifest, supported_spec, label)
        return cls(verified.session, verified.manifest, verified.spec, model_bytes)

    def fm_parameters(self) -> FmParameters | str:
        """The FM's parameters, read from the graph on first use; else why this model cannot be decomposed."""
        if self._parameters is None:
            if self._model_bytes is None:
                model_type = self.manifest.get("model_type", "unknown")
                self._parameters = f"model {self.version} is of type {model_type!r}, not {FM_MODEL_TYPE!r}"
            else:
                try:
                    self._parameters = FmParameters.from_onnx(self._model_bytes, self.spec.hash_size)
                except NotDecomposableError as error:
                    self._parameters = f"model {self.version}: {error}"
                self._model_bytes = None
        return self._parameters

    def predict(self, indices: np.ndarray) -> np.ndarray:
        """Click probabilities (float32, shape (n,)) for an (n, num_fields) int64 index matrix."""
        if indices.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        feed = {self._input_name: np.ascontiguousarray(indices, dtype=np.int64)}
        (ctr,) = self._session.run(self._output_names, feed)
        return np.asarray(ctr, dtype=np.float32).reshape(-1)


def unseen_from(manifest: Mapping[str, Any]) -> float | None:
    """Epoch seconds from which on no logged decision taught the model anything: its holdout's start (its fit
    learned from the train segment, and the validation segment chose its epochs), or its window's end when it was
    refitted on every row (the manifest's ``training_window``, ``refit_on_all``). None: the manifest does not say
    (the bootstrap model, a model made elsewhere, a window that is not timezone-aware ISO 8601), which judges it on
    every decision, as before models said."""
    window = manifest.get("training_window")
    refitted = "refit_on_all" in manifest
    when = window.get("end" if refitted else "holdout_start") if isinstance(window, Mapping) else None
    try:
        moment = datetime.fromisoformat(when) if isinstance(when, str) else None
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None:
        return None
    seconds = moment.timestamp()
    return math.nextafter(seconds, math.inf) if refitted else seconds  # the window's end is in it
