"""Export a factorization machine to ONNX, deterministically: same parameters -> byte-identical file.

``onnx`` is a build-time dependency imported here only; serving loads the file with onnxruntime alone.

Only hash rows that carry parameters are stored. A ``row_of`` table maps each hash index to a compact
row (row 0 is all zeros, for values never seen in training), which keeps a 2**18-bucket model near 1 MB
instead of ~9 MB and so keeps cold starts short.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from adserve.training.factorization_machine import FactorizationMachine

INPUT_NAME = "indices"
OUTPUT_NAME = "ctr"
OPSET = 17
IR_VERSION = 8  # the IR that goes with opset 17; newer IRs are rejected by older onnxruntime releases
PRODUCER_NAME = "adserve"
PRODUCER_VERSION = "1"


def _compact(model: FactorizationMachine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row_of [H] int32, weights [R+1] float32, factors [R+1, k] float32) with row 0 all zeros."""
    used = np.flatnonzero((model.weights != 0.0) | np.any(model.factors != 0.0, axis=1))
    row_of = np.zeros(model.hash_size, dtype=np.int32)
    row_of[used] = np.arange(1, len(used) + 1, dtype=np.int32)
    weights = np.concatenate([[0.0], model.weights[used]]).astype(np.float32)
    factors = np.vstack([np.zeros((1, model.num_factors)), model.factors[used]]).astype(np.float32)
    return row_of, weights, factors


def export_onnx(model: FactorizationMachine, num_fields: int) -> bytes:
    """Serialized ONNX graph: ``indices`` int64 [N, num_fields] -> ``ctr`` float32 [N].

    A model with ``unpaired_fields`` also stores them as the initializer ``unpaired_fields`` (explain reads it) and
    subtracts the pairs among those first fields, computed as the whole row's are.
    """
    row_of, weights, factors = _compact(model)
    initializers = [
        numpy_helper.from_array(row_of, "row_of"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(factors, "factors"),
        numpy_helper.from_array(np.array([model.bias], dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_fields"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
    ]
    nodes = [
        helper.make_node("Gather", ["row_of", INPUT_NAME], ["rows"], axis=0),
        helper.make_node("Gather", ["weights", "rows"], ["w"], axis=0),  # [N, F]
        helper.make_node("ReduceSum", ["w", "axis_fields"], ["linear"], keepdims=0),  # [N]
        helper.make_node("Gather", ["factors", "rows"], ["v"], axis=0),  # [N, F, k]
        helper.make_node("ReduceSum", ["v", "axis_fields"], ["v_sum"], keepdims=0),  # [N, k]
        helper.make_node("Mul", ["v_sum", "v_sum"], ["v_sum_sq"]),
        helper.make_node("Mul", ["v", "v"], ["v_sq"]),
        helper.make_node("ReduceSum", ["v_sq", "axis_fields"], ["v_sq_sum"], keepdims=0),  # [N, k]
        helper.make_node("Sub", ["v_sum_sq", "v_sq_sum"], ["pair_terms"]),
        helper.make_node("ReduceSum", ["pair_terms", "axis_fields"], ["pair_sum"], keepdims=0),  # [N]
    ]
    if model.unpaired_fields:
        initializers += [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([model.unpaired_fields], dtype=np.int64), "unpaired_fields"),
        ]
        nodes += [
            helper.make_node("Slice", ["v", "zero", "unpaired_fields", "axis_fields"], ["u"]),  # [N, U, k]
            helper.make_node("ReduceSum", ["u", "axis_fields"], ["u_sum"], keepdims=0),
            helper.make_node("Mul", ["u_sum", "u_sum"], ["u_sum_sq"]),
            helper.make_node("Mul", ["u", "u"], ["u_sq"]),
            helper.make_node("ReduceSum", ["u_sq", "axis_fields"], ["u_sq_sum"], keepdims=0),
            helper.make_node("Sub", ["u_sum_sq", "u_sq_sum"], ["unpaired_terms"]),
            helper.make_node("ReduceSum", ["unpaired_terms", "axis_fields"], ["unpaired_sum"], keepdims=0),
            helper.make_node("Sub", ["pair_sum", "unpaired_sum"], ["kept_pair_sum"]),
        ]
    nodes += [
        helper.make_node("Mul", ["kept_pair_sum" if model.unpaired_fields else "pair_sum", "half"], ["pairwise"]),
        helper.make_node("Add", ["linear", "pairwise"], ["partial"]),
        helper.make_node("Add", ["partial", "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "factorization_machine",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT64, ["N", num_fields])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N"])],
        initializer=initializers,
    )
    onnx_model = helper.make_model(
        graph,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    onnx_model.ir_version = IR_VERSION
    onnx.checker.check_model(onnx_model, full_check=True)
    return bytes(onnx_model.SerializeToString(deterministic=True))
