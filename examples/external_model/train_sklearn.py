"""Train a click model outside adserve's trainer and write it as a model adserve can serve.

    adserve logs --from 2026-11-18T00 --to 2026-11-24T23 --kind joined > joined.jsonl
    python examples/external_model/train_sklearn.py joined.jsonl --out build/sk-mlp

scikit-learn fits a one-hot + small MLP pipeline on adserve's own hashed indices (``FeatureEncoder``, so
the model sees exactly what Decide will send it), skl2onnx converts it, and the graph is trimmed to the
contract of docs/models.md: one int64 input ``indices`` [batch, 15] -> one float32 output ``ctr`` [batch].
Needs the ``examples`` extra (scikit-learn, skl2onnx), which no Lambda layer contains.
"""

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import skl2onnx
import sklearn
from adserve.models.features import FeatureEncoder, FeatureSpec, candidate_features
from onnx import TensorProto, helper, numpy_helper
from skl2onnx.common.data_types import Int64TensorType
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

INPUT_NAME = "indices"
OUTPUT_NAME = "ctr"
OPSET = 17


def read_joined(lines: Iterable[str], encoder: FeatureEncoder, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(index matrix, labels) from the JSON lines of ``adserve logs --kind joined``."""
    rows = [json.loads(line) for line in lines if line.strip()]
    own = [candidate_features(row.get("exposure"), row["rank"]) for row in rows]  # the rank it was heard at
    indices = encoder.encode_rows([row["listener_features"] for row in rows], [row["ad_features"] for row in rows], own)
    return indices, np.array([bool(row[label]) for row in rows], dtype=np.int64)


def fit(indices: np.ndarray, labels: np.ndarray, seed: int) -> Pipeline:
    """Each field's index as a category (an index never seen in training is all zeros), then a 16-unit MLP."""
    pipeline = make_pipeline(
        OneHotEncoder(handle_unknown="ignore"),
        MLPClassifier(hidden_layer_sizes=(16,), alpha=1e-2, max_iter=100, random_state=seed),
    )
    pipeline.fit(indices, labels)
    return pipeline


def to_onnx(pipeline: Pipeline, spec: FeatureSpec) -> bytes:
    """skl2onnx's graph gives a label and [batch, 2] probabilities; keep P(click) as ``ctr`` [batch] only."""
    classifier = pipeline.steps[-1][1]
    converted = skl2onnx.to_onnx(
        pipeline,
        initial_types=[(INPUT_NAME, Int64TensorType([None, spec.num_fields]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=OPSET,
    )
    graph = converted.graph
    probabilities = next(
        output.name for output in graph.output if output.type.tensor_type.elem_type == TensorProto.FLOAT
    )
    graph.initializer.append(numpy_helper.from_array(np.array(1, dtype=np.int64), "click_column"))
    graph.node.append(helper.make_node("Gather", [probabilities, "click_column"], [OUTPUT_NAME], axis=1))
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None]))
    trimmed = onnx.utils.Extractor(converted).extract_model([INPUT_NAME], [OUTPUT_NAME])
    trimmed.ir_version = converted.ir_version
    trimmed.opset_import.extend(
        [op for op in converted.opset_import if op.domain not in {o.domain for o in trimmed.opset_import}]
    )
    onnx.checker.check_model(trimmed)
    return bytes(trimmed.SerializeToString())


def write(out: Path, model_bytes: bytes, spec: FeatureSpec, details: dict[str, Any]) -> dict[str, Any]:
    """model.onnx + manifest.json with the keys of the contract (version, sha256, feature_spec, names)."""
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    manifest = {
        **details,
        "version": f"sk-mlp-{sha256[:12]}",
        "model_type": "sklearn-mlp",
        "sha256": sha256,
        "feature_spec": spec.to_dict(),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(model_bytes)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("joined", type=Path, help="JSON lines of `adserve logs --kind joined` ('-' for stdin)")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.onnx and manifest.json")
    parser.add_argument("--label", choices=("click", "complete"), default="click")
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args(argv)
    encoder = FeatureEncoder()
    lines = sys.stdin if str(arguments.joined) == "-" else arguments.joined.read_text().splitlines()
    indices, labels = read_joined(lines, encoder, arguments.label)
    if len(np.unique(labels)) < 2:
        print(f"need both classes to train; {len(labels)} rows, {int(labels.sum())} positive", file=sys.stderr)  # noqa: T201
        return 1
    pipeline = fit(indices, labels, arguments.seed)
    details = {
        "label": arguments.label,
        "training_rows": len(labels),
        "training_positives": int(labels.sum()),
        "trainer": {"library": f"scikit-learn {sklearn.__version__}", "converter": f"skl2onnx {skl2onnx.__version__}"},
    }
    manifest = write(arguments.out, to_onnx(pipeline, encoder.spec), encoder.spec, details)
    print(manifest["version"])  # noqa: T201 - the version, for the next command
    return 0


if __name__ == "__main__":
    sys.exit(main())
