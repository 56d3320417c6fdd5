"""The model contract: what an ONNX model must be for Decide to serve it, checked by one function.

``check`` is the single verification path. ``CtrModel.load`` runs it on every load (bootstrap at start-up,
a promoted version at hot swap) and ``publish`` runs it before anything is stored, so a model that passes
at publish time passes at load time on the same server, and one that is refused names the clause it
breaks. docs/models.md is the contract for people; this module is the contract for the machine.

Independent clauses are all reported; a clause that cannot be judged because an earlier one failed
(no graph to inspect, no declared names to compare) is not, so every refusal is a real one.
"""

import hashlib
import json
import random
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from adserve.core.errors import ModelLoadError, ModelStoreUnavailableError
from adserve.models.features import FeatureEncoder, FeatureSpec, spec_mismatches
from adserve.models.heard_ads import HeardAds
from adserve.models.registry import ModelStore, ModelVersion

MODEL_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
MAX_MODEL_BYTES: Final = 64 * 1024 * 1024
"""64 MiB: Decide unpacks a promoted model in /tmp (512 MB) and holds up to four sessions during a swap in
1769 MB, and the bootstrap model shares the 200 MB function + layers budget with ~130 MB of code."""
INPUT_TYPE: Final = "tensor(int64)"
OUTPUT_TYPE: Final = "tensor(float)"
SMOKE_ROWS: Final = 64
SMOKE_SEED: Final = 20240601


class Clause(StrEnum):
    """One rule of the contract; the value is what a refusal prints, the text says what the rule is."""

    SIZE = "size"
    MANIFEST = "manifest"
    SHA256 = "sha256"
    FEATURE_SPEC = "feature-spec"
    LOADS = "loads"
    INPUT = "input"
    OUTPUT = "output"
    SMOKE_TEST = "smoke-test"

    @property
    def text(self) -> str:
        return CLAUSE_TEXT[self]


CLAUSE_TEXT: Final[Mapping[Clause, str]] = {
    Clause.SIZE: f"model.onnx is at most {MAX_MODEL_BYTES // (1024 * 1024)} MiB",
    Clause.MANIFEST: "the manifest is a JSON object with version, sha256, feature_spec, input_name and output_name",
    Clause.SHA256: "the manifest's sha256 is the sha256 of model.onnx",
    Clause.FEATURE_SPEC: "the manifest's feature_spec is exactly the spec of this server's feature encoder",
    Clause.LOADS: "onnxruntime loads the graph with the serving session options (CPU, one thread)",
    Clause.INPUT: "the graph has one input, named input_name, int64, shape [batch, num_fields], batch dynamic",
    Clause.OUTPUT: "the graph has one output, named output_name, float32, shape [batch] or [batch, 1]",
    Clause.SMOKE_TEST: "scoring sample index rows gives one finite probability in [0, 1] per row",
}


@dataclass(frozen=True)
class Violation:
    clause: Clause
    detail: str

    def __str__(self) -> str:
        return f"[{self.clause}] {self.clause.text}: {self.detail}"


class ContractViolationError(ModelLoadError):
    """A model breaks one or more clauses; ``violations`` names each, ``str()`` says all of them."""

    def __init__(self, label: str, violations: list[Violation]) -> None:
        super().__init__(f"model {label} breaks the model contract: " + "; ".join(map(str, violations)))
        self.violations = violations


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
GraphName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ManifestHeader(BaseModel):
    """The manifest keys serving relies on; any other key (metrics, provenance) is kept as it is."""

    model_config = ConfigDict(extra="allow", strict=True)

    version: ModelVersion
    sha256: Sha256
    feature_spec: dict[str, Any]
    input_name: GraphName
    output_name: GraphName
    model_type: Annotated[str, StringConstraints(max_length=80)] = "unknown"
    logged_decisions: Annotated[int, Field(ge=0)] | None = None
    """How many of this deployment's logged decisions the model learned from (0: the bootstrap model; absent:
    published before the count was written). Decide's growing SquareCB gamma is derived from it."""
    heard_ads: dict[str, list[int]] | None = None
    """The impressions of each ad the model learned from (``HeardAds``); absent: published before they were
    counted, and served without SquareCB's optimism."""


def session_options() -> ort.SessionOptions:
    """Serving's options: one thread, sequential. A Lambda has little CPU and each request is one small batch."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


@dataclass(frozen=True)
class Verified:
    """A model that meets the contract: its open session, its manifest and its feature spec."""

    session: ort.InferenceSession
    manifest: dict[str, Any]
    header: ManifestHeader
    spec: FeatureSpec


def _manifest(manifest: object) -> tuple[ManifestHeader | None, FeatureSpec | None, list[Violation]]:
    if not isinstance(manifest, dict):
        return None, None, [Violation(Clause.MANIFEST, f"not a JSON object but {type(manifest).__name__}")]
    try:
        header = ManifestHeader.model_validate(manifest)
    except ValidationError as error:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}" for e in error.errors())
        return None, None, [Violation(Clause.MANIFEST, reasons)]
    try:
        spec = FeatureSpec.from_dict(header.feature_spec)
        if header.heard_ads is not None:
            HeardAds.from_manifest(header.heard_ads)
    except ValueError as error:
        return header, None, [Violation(Clause.MANIFEST, str(error))]
    return header, spec, []


def _dynamic(dimension: object) -> bool:
    """onnxruntime reports a symbolic dimension as its name (or None), a fixed one as an int."""
    return not isinstance(dimension, int)


def _port_violations(
    kind: str,
    ports: list[Any],
    *,
    declared_name: str | None,
    expected_type: str,
    shape_fits: Callable[[list[Any]], bool],
    expected_shape: str,
) -> list[str]:
    """What is wrong with a graph's inputs or outputs: exactly one, named as declared, of the type and shape."""
    if len(ports) != 1:
        return [f"the graph has {len(ports)} {kind} {[port.name for port in ports]}"]
    (port,) = ports
    problems = []
    if declared_name is not None and port.name != declared_name:
        problems.append(f"it is named {port.name!r}, the manifest says {declared_name!r}")
    if port.type != expected_type:
        problems.append(f"its type is {port.type}")
    shape = list(port.shape or [])
    if not shape_fits(shape):
        problems.append(f"its shape is {shape}, not {expected_shape}")
    return problems


def _input_violations(session: ort.InferenceSession, header: ManifestHeader | None, spec: FeatureSpec) -> list[str]:
    return _port_violations(
        "inputs",
        session.get_inputs(),
        declared_name=header.input_name if header else None,
        expected_type=INPUT_TYPE,
        shape_fits=lambda shape: len(shape) == 2 and _dynamic(shape[0]) and shape[1] == spec.num_fields,
        expected_shape=f"[batch, {spec.num_fields}]",
    )


def _output_violations(session: ort.InferenceSession, header: ManifestHeader | None) -> list[str]:
    return _port_violations(
        "outputs",
        session.get_outputs(),
        declared_name=header.output_name if header else None,
        expected_type=OUTPUT_TYPE,
        shape_fits=lambda shape: len(shape) in {1, 2} and _dynamic(shape[0]) and shape[1:] in ([], [1]),
        expected_shape="[batch] or [batch, 1]",
    )


def sample_rows(spec: FeatureSpec, rows: int = SMOKE_ROWS) -> np.ndarray:
    """Index rows the encoder can produce: seeded random buckets, both ends of the range, all values missing.

    The buckets come from the standard library's generator: ``numpy.random``, imported on first use, would add
    ~8 ms to every cold start for 61 rows of integers."""
    rng = random.Random(SMOKE_SEED)
    random_rows = np.array(
        [[rng.randrange(spec.hash_size) for _ in range(spec.num_fields)] for _ in range(rows - 3)], dtype=np.int64
    )
    encoder = FeatureEncoder(spec)
    missing = encoder.encode(
        encoder.encode_listener({}), encoder.encode_ad({})[np.newaxis, :], encoder.encode_candidates([{}])
    )
    ends = np.array([[0] * spec.num_fields, [spec.hash_size - 1] * spec.num_fields], dtype=np.int64)
    return np.vstack([random_rows, ends, missing])


def _smoke_test(session: ort.InferenceSession, spec: FeatureSpec) -> str | None:
    """A batch of one and a full batch, as Decide sends them; None when both give valid probabilities."""
    rows = sample_rows(spec)
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    for batch in (rows[:1], rows):
        try:
            (scores,) = session.run([output_name], {input_name: batch})
        except Exception as error:  # noqa: BLE001 - onnxruntime raises several unrelated types at run time
            return f"scoring {len(batch)} rows failed: {error}"
        scores = np.asarray(scores)
        if scores.shape not in {(len(batch),), (len(batch), 1)}:
            return f"{len(batch)} rows gave an output of shape {scores.shape}"
        if not np.all(np.isfinite(scores)):
            return f"{int(np.sum(~np.isfinite(scores)))} of {len(batch)} scores are not finite"
        outside = (scores < 0.0) | (scores > 1.0)
        if np.any(outside):
            return f"{int(outside.sum())} of {len(batch)} scores are outside [0, 1], e.g. {float(scores[outside][0])}"
    return None


def check(model_bytes: bytes, manifest: object, server_spec: FeatureSpec) -> Verified | list[Violation]:
    """The model when it meets every clause for a server encoding with ``server_spec``, else the violations."""
    violations: list[Violation] = []
    if len(model_bytes) > MAX_MODEL_BYTES:
        return [Violation(Clause.SIZE, f"it is {len(model_bytes):,} bytes")]
    header, spec, manifest_violations = _manifest(manifest)
    violations += manifest_violations
    if header is not None:
        digest = hashlib.sha256(model_bytes).hexdigest()
        if digest != header.sha256:
            violations.append(Violation(Clause.SHA256, f"model.onnx has sha256 {digest}, manifest {header.sha256}"))
    if spec is not None:
        mismatches = spec_mismatches(spec, server_spec)
        if mismatches:
            detail = f"it needs a feature spec this server cannot honour: {'; '.join(mismatches)}"
            violations.append(Violation(Clause.FEATURE_SPEC, detail))
    try:
        session = ort.InferenceSession(model_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises several unrelated types for a bad graph
        return [*violations, Violation(Clause.LOADS, f"onnxruntime cannot load it: {error}")]
    graph_problems = [
        Violation(clause, "; ".join(problems))
        for clause, problems in (
            (Clause.INPUT, _input_violations(session, header, server_spec)),
            (Clause.OUTPUT, _output_violations(session, header)),
        )
        if problems
    ]
    violations += graph_problems
    if not graph_problems:
        smoke = _smoke_test(session, server_spec)
        if smoke is not None:
            violations.append(Violation(Clause.SMOKE_TEST, smoke))
    if violations or header is None or spec is None or not isinstance(manifest, dict):
        return violations
    return Verified(session, manifest, header, spec)


def verify(model_bytes: bytes, manifest: object, server_spec: FeatureSpec, label: str) -> Verified:
    """``check``, raising ContractViolationError naming every violated clause."""
    result = check(model_bytes, manifest, server_spec)
    if isinstance(result, list):
        raise ContractViolationError(label, result)
    return result


def read_manifest(path: Path) -> object:
    """The manifest's JSON value; not text or not JSON is a violation of the manifest clause.

    A file that exists but cannot be read now (too many open files, an I/O error) says nothing of the model: it
    is ModelStoreUnavailableError, which Decide retries at its next check, not a refusal it remembers."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ModelLoadError(f"model manifest {path} does not exist") from error
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ContractViolationError(str(path), [Violation(Clause.MANIFEST, f"unreadable: {error}")]) from error
    except OSError as error:
        raise ModelStoreUnavailableError(f"model manifest {path} could not be read: {error}") from error


def read_model(path: Path) -> bytes:
    """The model file's bytes; as ``read_manifest``, a read that fails now is ModelStoreUnavailableError."""
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise ModelLoadError(f"model file {path} does not exist") from error
    except OSError as error:
        raise ModelStoreUnavailableError(f"model file {path} could not be read: {error}") from error


def publish(store: ModelStore, model_file: Path, manifest_file: Path, server_spec: FeatureSpec) -> str:
    """Check a model made anywhere against the contract, then register it as the retrainer registers its own.

    Nothing is uploaded unless every clause holds; the registered version can then be promoted like any.
    """
    manifest = read_manifest(manifest_file)
    model_bytes = read_model(model_file)
    verify(model_bytes, manifest, server_spec, str(model_file))
    with tempfile.TemporaryDirectory(prefix="adserve-publish-") as folder:
        (Path(folder) / MODEL_FILE).write_bytes(model_bytes)
        (Path(folder) / MANIFEST_FILE).write_bytes(manifest_file.read_bytes())
        return store.publish(Path(folder))
