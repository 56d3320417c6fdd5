"""The model contract: every clause has a model that breaks it, and the refusal names exactly that clause.

The graphs are tiny, built with onnx.helper: a mean of the indices through a sigmoid, then bent one way.
Loading (``CtrModel.load``) and publishing (``contract.publish``) run the same check; both are shown here.
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from adserve.core.errors import ModelLoadError, ModelStoreUnavailableError
from adserve.models.contract import (
    MAX_MODEL_BYTES,
    Clause,
    ContractViolationError,
    Verified,
    check,
    publish,
    read_manifest,
    read_model,
    sample_rows,
)
from adserve.models.ctr_model import CtrModel
from adserve.models.features import DEFAULT_SPEC
from onnx import TensorProto, helper, numpy_helper

FIELDS = DEFAULT_SPEC.num_fields


def tiny_model(
    *,
    input_type: int = TensorProto.INT64,
    input_shape: tuple[str | int, ...] = ("N", FIELDS),
    output_type: int = TensorProto.FLOAT,
    output_shape: tuple[str | int, ...] = ("N",),
    squash: str = "Sigmoid",
    keepdims: int = 0,
    extra_input: bool = False,
    extra_output: bool = False,
    padding_bytes: int = 0,
    input_name: str = "indices",
    output_name: str = "ctr",
) -> bytes:
    """input -> float -> mean over fields x 1e-4 (a logit near 13) -> squash -> cast to output_type."""
    nodes = [
        helper.make_node("Cast", [input_name], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1], keepdims=keepdims),
        helper.make_node("Mul", ["mean", "scale"], ["logit"]),
        helper.make_node(squash, ["logit"], ["squashed"]),
        helper.make_node("Cast", ["squashed"], [output_name], to=output_type),
    ]
    initializers = [numpy_helper.from_array(np.array(1e-4, dtype=np.float32), "scale")]
    if padding_bytes:
        initializers.append(numpy_helper.from_array(np.zeros(padding_bytes, dtype=np.uint8), "padding"))
    inputs = [helper.make_tensor_value_info(input_name, input_type, list(input_shape))]
    outputs = [helper.make_tensor_value_info(output_name, output_type, list(output_shape))]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, ["N"]))
    if extra_output:
        outputs.append(helper.make_tensor_value_info("logit", TensorProto.FLOAT, list(output_shape)))
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def manifest_for(model_bytes: bytes, **changes: Any) -> dict[str, Any]:
    manifest = {
        "version": "external-tiny-1",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "feature_spec": DEFAULT_SPEC.to_dict(),
        "input_name": "indices",
        "output_name": "ctr",
        "model_type": "tiny",
    }
    return manifest | changes


def with_logit_output() -> bytes:
    """Sigmoid left out: scores are logits, mostly above 1."""
    return tiny_model(squash="Identity")


def with_nan_output() -> bytes:
    """log(-x) of positive logits: NaN scores."""
    nodes_model = onnx.load_from_string(tiny_model(squash="Neg"))
    node = helper.make_node("Log", ["squashed"], ["nan_scores"])
    nodes_model.graph.node.insert(4, node)
    nodes_model.graph.node[5].input[0] = "nan_scores"
    return bytes(nodes_model.SerializeToString())


def with_unknown_operator() -> bytes:
    model = onnx.load_from_string(tiny_model())
    model.graph.node[3].op_type = "NoSuchSigmoid"
    return bytes(model.SerializeToString())


GOOD = tiny_model()
# Each case: a model and its manifest that break exactly one clause, by name.
VIOLATIONS: dict[str, tuple[Clause, Callable[[], tuple[bytes, Any]]]] = {
    "too large": (Clause.SIZE, lambda: (m := tiny_model(padding_bytes=MAX_MODEL_BYTES), manifest_for(m))),
    "manifest not an object": (Clause.MANIFEST, lambda: (GOOD, [manifest_for(GOOD)])),
    "manifest without input_name": (
        Clause.MANIFEST,
        lambda: (GOOD, {k: v for k, v in manifest_for(GOOD).items() if k != "input_name"}),
    ),
    "version not a registry name": (Clause.MANIFEST, lambda: (GOOD, manifest_for(GOOD, version="../etc"))),
    "sha256 not hex": (Clause.MANIFEST, lambda: (GOOD, manifest_for(GOOD, sha256="not-a-digest"))),
    "feature spec malformed": (Clause.MANIFEST, lambda: (GOOD, manifest_for(GOOD, feature_spec={"version": 1}))),
    "heard ads wider than int64": (
        Clause.MANIFEST,
        lambda: (GOOD, manifest_for(GOOD, heard_ads={"indices": [2**70], "counts": [1]})),
    ),
    "heard ads of a negative index": (
        Clause.MANIFEST,
        lambda: (GOOD, manifest_for(GOOD, heard_ads={"indices": [-1], "counts": [1]})),
    ),
    "sha256 of other bytes": (Clause.SHA256, lambda: (GOOD, manifest_for(GOOD, sha256="0" * 64))),
    "other hash bits": (
        Clause.FEATURE_SPEC,
        lambda: (GOOD, manifest_for(GOOD, feature_spec={**DEFAULT_SPEC.to_dict(), "hash_bits": 20})),
    ),
    "other hash function": (
        Clause.FEATURE_SPEC,
        lambda: (GOOD, manifest_for(GOOD, feature_spec={**DEFAULT_SPEC.to_dict(), "hash_function": "murmur3"})),
    ),
    "not a graph": (Clause.LOADS, lambda: (b := b"\x08\x07not an onnx graph", manifest_for(b))),
    "unknown operator": (Clause.LOADS, lambda: (m := with_unknown_operator(), manifest_for(m))),
    "float input": (Clause.INPUT, lambda: (m := tiny_model(input_type=TensorProto.FLOAT), manifest_for(m))),
    "one field short": (Clause.INPUT, lambda: (m := tiny_model(input_shape=("N", FIELDS - 1)), manifest_for(m))),
    "two inputs": (Clause.INPUT, lambda: (m := tiny_model(extra_input=True), manifest_for(m))),
    "input named otherwise": (Clause.INPUT, lambda: (GOOD, manifest_for(GOOD, input_name="features"))),
    "int64 output": (Clause.OUTPUT, lambda: (m := tiny_model(output_type=TensorProto.INT64), manifest_for(m))),
    "float64 output": (Clause.OUTPUT, lambda: (m := tiny_model(output_type=TensorProto.DOUBLE), manifest_for(m))),
    "two probabilities a row": (
        Clause.OUTPUT,
        lambda: (m := tiny_model(output_shape=("N", 2), keepdims=1), manifest_for(m)),
    ),
    "two outputs": (Clause.OUTPUT, lambda: (m := tiny_model(extra_output=True), manifest_for(m))),
    "output named otherwise": (Clause.OUTPUT, lambda: (GOOD, manifest_for(GOOD, output_name="probability"))),
    "logits, not probabilities": (Clause.SMOKE_TEST, lambda: (m := with_logit_output(), manifest_for(m))),
    "NaN scores": (Clause.SMOKE_TEST, lambda: (m := with_nan_output(), manifest_for(m))),
    "negative scores": (Clause.SMOKE_TEST, lambda: (m := tiny_model(squash="Neg"), manifest_for(m))),
}


def test_the_good_model_meets_every_clause() -> None:
    result = check(GOOD, manifest_for(GOOD), DEFAULT_SPEC)
    assert isinstance(result, Verified)
    assert result.header.version == "external-tiny-1"


def test_a_batch_by_one_output_meets_the_contract_and_serves_flat(tmp_path: Path) -> None:
    model = tiny_model(output_shape=("N", 1), keepdims=1)
    write(tmp_path, model, manifest_for(model))
    scores = CtrModel.load(tmp_path, DEFAULT_SPEC).predict(sample_rows(DEFAULT_SPEC)[:5])
    assert scores.shape == (5,)
    assert np.all((scores >= 0) & (scores <= 1))  # probabilities, as the contract checks them (float32 may round to 1)


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_a_model_that_breaks_a_clause_is_refused_naming_it(case: str) -> None:
    clause, make = VIOLATIONS[case]
    model_bytes, manifest = make()
    result = check(model_bytes, manifest, DEFAULT_SPEC)
    assert isinstance(result, list)
    assert [violation.clause for violation in result] == [clause], [str(v) for v in result]
    assert str(result[0]).startswith(f"[{clause}] {clause.text}: ")


def write(folder: Path, model_bytes: bytes, manifest: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model_bytes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("case", [case for case in VIOLATIONS if VIOLATIONS[case][0] is not Clause.SIZE])
def test_loading_refuses_by_the_same_clauses(tmp_path: Path, case: str) -> None:
    clause, make = VIOLATIONS[case]
    write(tmp_path, *make())
    with pytest.raises(ContractViolationError, match=rf"\[{clause}\]") as refusal:
        CtrModel.load(tmp_path, DEFAULT_SPEC)
    assert [violation.clause for violation in refusal.value.violations] == [clause]


def test_a_manifest_that_is_not_json_breaks_the_manifest_clause(tmp_path: Path) -> None:
    write(tmp_path, GOOD, {})
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ContractViolationError, match=r"\[manifest\].*unreadable"):
        CtrModel.load(tmp_path, DEFAULT_SPEC)


def test_independent_violations_are_all_reported() -> None:
    model = tiny_model(input_type=TensorProto.FLOAT, output_type=TensorProto.INT64)
    result = check(model, manifest_for(model, sha256="0" * 64), DEFAULT_SPEC)
    assert isinstance(result, list)
    assert [violation.clause for violation in result] == [Clause.SHA256, Clause.INPUT, Clause.OUTPUT]


def test_a_fixed_batch_is_refused_at_the_input_and_so_at_the_output() -> None:
    """onnxruntime infers the output's fixed batch from the input's, so both clauses are broken."""
    model = tiny_model(input_shape=(1, FIELDS))
    result = check(model, manifest_for(model), DEFAULT_SPEC)
    assert isinstance(result, list)
    assert [violation.clause for violation in result] == [Clause.INPUT, Clause.OUTPUT]
    assert f"its shape is [1, {FIELDS}], not [batch, {FIELDS}]" in str(result[0])


class RecordingStore:
    """A ModelStore that only remembers what it was asked to publish (the S3 store is tested in integration)."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, model_dir: Path) -> str:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        self.published.append(manifest)
        return str(manifest["version"])


@pytest.mark.parametrize("case", ["sha256 of other bytes", "two outputs", "logits, not probabilities"])
def test_publish_stores_nothing_for_a_broken_model(tmp_path: Path, case: str) -> None:
    clause, make = VIOLATIONS[case]
    write(tmp_path, *make())
    store = RecordingStore()
    with pytest.raises(ContractViolationError, match=rf"\[{clause}\]"):
        publish(store, tmp_path / "model.onnx", tmp_path / "manifest.json", DEFAULT_SPEC)  # type: ignore[arg-type]
    assert store.published == []


def test_publish_registers_a_good_model_with_its_manifest_as_written(tmp_path: Path) -> None:
    manifest = manifest_for(GOOD, trained_by="someone else")
    write(tmp_path, GOOD, manifest)
    store = RecordingStore()
    version = publish(store, tmp_path / "model.onnx", tmp_path / "manifest.json", DEFAULT_SPEC)  # type: ignore[arg-type]
    assert version == "external-tiny-1"
    assert store.published == [manifest]


def test_a_file_that_cannot_be_read_now_is_not_a_refusal_of_the_model(tmp_path: Path) -> None:
    """Decide remembers a refused version (ModelLoadError) and never loads it again; a read that fails now (too
    many open files, an I/O error: here a directory where the file should be) says nothing of the model."""
    (tmp_path / "model.onnx").mkdir()
    (tmp_path / "manifest.json").mkdir()
    with pytest.raises(ModelStoreUnavailableError, match="could not be read"):
        read_model(tmp_path / "model.onnx")
    with pytest.raises(ModelStoreUnavailableError, match="could not be read"):
        read_manifest(tmp_path / "manifest.json")
    with pytest.raises(ModelLoadError, match="does not exist"):
        read_model(tmp_path / "missing.onnx")
