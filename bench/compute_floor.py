"""The compute floor: only what no decision can skip, measured beside Decide in the same run.

Per request it pydantic-validates the same request JSON, hashes every model input with the same hash (blake2b,
64 bits, no cache, into the same hash space): the listener's fields and the candidate fields that are the same
for every candidate once, each candidate's ad fields (5) for it; runs a logistic-regression ONNX graph over the
rows and takes the top 3 by expected value. This is the floor as issue 13 defines it: it caches nothing between
requests, where Decide hashes the ad fields once per catalog load. Decide's figures are reported as ratios to it,
interleaved with them: at each candidate count the floor, ``service.decide`` (1a's fakes), the full handler, our
score path (figure 2's) and VW's predict (figure 5's) run in alternating blocks of calls, so the machine's load,
which on shared cores changes from one minute to the next, weighs on each of them alike; the score path and
Decide are compared with VW from these samples."""

import hashlib
import random
from functools import partial
from typing import Any

import numpy as np
import onnxruntime as ort
from adserve.decisions.api import DecisionRequest
from adserve.decisions.catalog import ad_features
from adserve.models.features import DEFAULT_SPEC, FeatureEncoder
from onnx import TensorProto, helper, numpy_helper
from vowpalwabbit import Workspace

from bench import catalogs, vw_peer
from bench.decide_latency import BASE_URL, MAX_ADS, SIZES, fake_service, load_model, quiet_stdout
from bench.handler import check_response, inject_service, lambda_context, load_module
from bench.onnx_scoring import ScorePath, ad_columns
from bench.stats import iterations_for, measure_interleaved

HASH_BITS = DEFAULT_SPEC.hash_bits
FIELDS = DEFAULT_SPEC.num_fields


def logistic_regression_graph(seed: int = 3) -> bytes:
    """sigmoid(bias + sum of one weight per hashed input): the smallest model over the same inputs."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, 0.05, size=(1 << HASH_BITS,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["weights", "indices"], ["gathered"], axis=0),
            helper.make_node("ReduceSum", ["gathered", "axes"], ["logit"], keepdims=0),
            helper.make_node("Add", ["logit", "bias"], ["shifted"]),
            helper.make_node("Sigmoid", ["shifted"], ["ctr"]),
        ],
        "compute_floor",
        [helper.make_tensor_value_info("indices", TensorProto.INT64, ["n", FIELDS])],
        [helper.make_tensor_value_info("ctr", TensorProto.FLOAT, ["n"])],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.array(-3.0, dtype=np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def session(model: bytes) -> ort.InferenceSession:
    """The same session options as ``CtrModel``: one thread, sequential, all graph optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def hashed(field: str, value: str) -> int:
    digest = hashlib.blake2b(f"{field}={value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << HASH_BITS) - 1)


class Floor:
    """One request of the floor over ``size`` candidates whose rows and values are precomputed."""

    def __init__(self, model: ort.InferenceSession, size: int) -> None:
        campaigns = catalogs.campaigns(size)
        self._ads = [
            [(f, features[f]) for f in DEFAULT_SPEC.ad_fields]
            for features in (ad_features(c, c.creatives[0].ad_id, c.creatives[0].format.value) for c in campaigns)
        ]
        self._values = np.array([c.value_cpm for c in campaigns], dtype=np.float32)
        self._model = model

    def decide(self, body: bytes) -> list[int]:
        request = DecisionRequest.model_validate_json(body)
        listener, context = request.listener, request.listener.context
        values = (
            listener.country,
            listener.device.value,
            listener.age_bucket.value if listener.age_bucket else "",
            context.content_type.value,
            context.genre or "",
            request.placement.value,
            str(context.local_hour),
            "0",
        )
        # no exposure counted, no slot yet: the candidate fields are the same for every candidate, as the listener's
        shared = [hashed(f, v) for f, v in zip(DEFAULT_SPEC.listener_fields, values, strict=True)]
        constant = [hashed(f, "") for f in DEFAULT_SPEC.candidate_fields]
        indices = np.array([[*shared, *(hashed(f, v) for f, v in ad), *constant] for ad in self._ads], dtype=np.int64)
        (ctr,) = self._model.run(None, {"indices": indices})
        expected = ctr * self._values
        top = np.argpartition(-expected, MAX_ADS - 1)[:MAX_ADS] if len(expected) > MAX_ADS else np.arange(len(expected))
        chosen: list[int] = top[np.argsort(-expected[top])].tolist()
        return chosen


def run(quick: bool = False) -> dict[str, Any]:
    floor_model = session(logistic_regression_graph())
    document = catalogs.decision_request_document(MAX_ADS)
    request = DecisionRequest.model_validate(document)
    body = request.model_dump_json().encode()
    encoder = FeatureEncoder()
    model = load_model(encoder)
    module, context, event = load_module(), lambda_context(), catalogs.api_gateway_event(document)
    workspace = Workspace(vw_peer.VW_ARGS)
    results: dict[str, Any] = {
        "model": "logistic regression: Gather, ReduceSum, Add, Sigmoid",
        "interleaved_with": ["service_decide", "full_handler", "score_path", "vw_predict"],
        "sizes": {},
    }
    try:
        vw_peer.train(workspace, catalogs.campaigns(max(SIZES), seed=5))
        for size in SIZES:
            floor = Floor(floor_model, size)
            if len(floor.decide(body)) != min(MAX_ADS, size):
                raise RuntimeError("the floor chose the wrong number of ads")
            wiring = fake_service(size, model, encoder)
            inject_service(module, wiring.service)
            parsed = vw_peer.parsed_actions(workspace, catalogs.campaigns(size))
            score_path = ScorePath(model, encoder, request, *ad_columns(size, model, encoder), random.Random(3))
            iterations = iterations_for(size, 1000, quick)
            with quiet_stdout():
                check_response(module.lambda_handler(event, context), MAX_ADS)
                summaries = measure_interleaved(
                    {
                        "floor": partial(floor.decide, body),
                        "service_decide": partial(wiring.service.decide, request, BASE_URL),
                        "full_handler": partial(module.lambda_handler, event, context),
                        "score_path": score_path,
                        "vw_predict": partial(vw_peer.decide_vw, workspace, request, parsed),
                    },
                    iterations,
                    max(iterations // 10, 20),
                    between={"service_decide": wiring.after_decision, "full_handler": wiring.after_decision},
                )
            workspace.finish_example(parsed)
            results["sizes"][str(size)] = {name: summary.to_dict() for name, summary in summaries.items()}
    finally:
        workspace.finish()
    return results
