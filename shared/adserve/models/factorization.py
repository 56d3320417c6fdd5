"""A served factorization machine, term by term: what explain shows of a score.

The logit of a second-order FM is exactly ``bias + sum_f w[x_f] + sum_{f<g} <V[x_f], V[x_g]>``: one term per
field and one per field pair, which sum to the logit whose sigmoid is the score. Serving holds only the
ONNX graph (``onnx`` is not in any layer, and onnxruntime does not hand out initializers), so the parameters
are read straight from the file's protobuf: the initializers ``row_of``, ``weights``, ``factors`` and
``bias`` that ``adserve.training.onnx_export`` writes. Only the few wire types those use are decoded; any
other file (a model published under docs/models.md's contract) is simply not decomposable, and explain says
so instead of failing. Reading happens on the first explain request for a model, never on the serving path.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

FM_MODEL_TYPE: Final = "factorization_machine"
"""The manifest's ``model_type`` of the models adserve trains (``adserve.training.model_files``)."""

_GRAPH, _INITIALIZER = 7, 5  # ModelProto.graph, GraphProto.initializer
_DIMS, _DATA_TYPE, _FLOAT_DATA, _INT32_DATA, _INT64_DATA, _NAME, _RAW_DATA = 1, 2, 4, 5, 7, 8, 9
_DTYPES: Final[dict[int, np.dtype[Any]]] = {1: np.dtype("<f4"), 6: np.dtype("<i4"), 7: np.dtype("<i8")}
"""TensorProto.DataType codes of FLOAT, INT32 and INT64."""
_NEEDED: Final = ("row_of", "weights", "factors", "bias")
_UNPAIRED: Final = "unpaired_fields"
"""Present when the pairs among the first that many fields were left out (``FactorizationMachine.unpaired_fields``)."""


class NotDecomposableError(ValueError):
    """The model is not a factorization machine whose parameters adserve can read; the message says why."""


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise NotDecomposableError("truncated protobuf varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise NotDecomposableError("protobuf varint over 64 bits")


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of one protobuf message; length-delimited values as views."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise NotDecomposableError("truncated protobuf field")
            yield number, wire, data[position : position + length]
            position += length
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:
            raise NotDecomposableError(f"protobuf wire type {wire} is not read here")


def _tensor(message: memoryview) -> tuple[str, np.ndarray]:
    name, dtype, dims, raw = "", 0, [], b""
    typed: dict[int, list[int | memoryview]] = {}
    for number, wire, value in _fields(message):
        if number == _NAME and isinstance(value, memoryview):
            name = bytes(value).decode()
        elif number == _DATA_TYPE and isinstance(value, int):
            dtype = value
        elif number == _DIMS:
            dims += _packed_varints(value)
        elif number == _RAW_DATA and isinstance(value, memoryview):
            raw = bytes(value)
        elif number in (_FLOAT_DATA, _INT32_DATA, _INT64_DATA) and wire == 2:
            typed.setdefault(number, []).append(value)
    if dtype not in _DTYPES:
        raise NotDecomposableError(f"initializer {name!r} has data type {dtype}")
    if typed and not raw:
        raise NotDecomposableError(f"initializer {name!r} is not stored as raw data")
    array = np.frombuffer(raw, dtype=_DTYPES[dtype])
    if array.size != int(np.prod(dims)):
        raise NotDecomposableError(f"initializer {name!r} holds {array.size} values for dims {dims}")
    return name, array.reshape(dims)


def _packed_varints(data: int | memoryview) -> list[int]:
    if isinstance(data, int):
        return [data]
    values, position = [], 0
    while position < len(data):
        value, position = _varint(data, position)
        values.append(value)
    return values


def _initializers(model_bytes: bytes) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for number, _wire, graph in _fields(memoryview(model_bytes)):
        if number != _GRAPH or not isinstance(graph, memoryview):
            continue
        for field_number, _kind, tensor in _fields(graph):
            if field_number == _INITIALIZER and isinstance(tensor, memoryview):
                name, array = _tensor(tensor)
                if name in _NEEDED or name == _UNPAIRED:
                    found[name] = array
    return found


@dataclass(frozen=True)
class FmTerms:
    """The terms of n scored rows: bias, linear [n, F] and pairs [n, F(F-1)/2] in ``pairs_of`` order."""

    bias: float
    linear: np.ndarray
    pairs: np.ndarray

    @property
    def logits(self) -> np.ndarray:
        return np.asarray(self.bias + self.linear.sum(axis=1) + self.pairs.sum(axis=1))


def pairs_of(num_fields: int) -> list[tuple[int, int]]:
    """Field pairs (f, g), f < g, in the order ``FmTerms.pairs`` holds them."""
    first, second = np.triu_indices(num_fields, k=1)
    return list(zip(first.tolist(), second.tolist(), strict=True))


@dataclass(frozen=True)
class FmParameters:
    """An exported FM's parameters: ``row_of`` [H] maps a hash index to a row of ``weights`` and ``factors``."""

    row_of: np.ndarray
    weights: np.ndarray
    factors: np.ndarray
    bias: float
    unpaired_fields: int = 0
    """The pairs among the first that many fields are not in the model: their terms are 0."""

    @classmethod
    def from_onnx(cls, model_bytes: bytes, hash_size: int) -> "FmParameters":
        """Raises NotDecomposableError naming what is missing or malformed."""
        found = _initializers(model_bytes)
        missing = [name for name in _NEEDED if name not in found]
        if missing:
            raise NotDecomposableError(f"the graph has no initializer {', '.join(missing)}")
        row_of, weights, factors, bias = (found[name] for name in _NEEDED)
        rows = weights.shape[0] if weights.ndim == 1 else -1
        if row_of.shape != (hash_size,) or factors.ndim != 2 or factors.shape[0] != rows or bias.size != 1:
            raise NotDecomposableError(
                f"initializer shapes row_of {row_of.shape}, weights {weights.shape}, factors {factors.shape}, "
                f"bias {bias.shape} are not an FM over {hash_size} buckets"
            )
        if row_of.size and (int(row_of.min()) < 0 or int(row_of.max()) >= rows):
            raise NotDecomposableError("row_of points outside weights")
        unpaired = found.get(_UNPAIRED, np.zeros(1, dtype=np.int64))
        if unpaired.size != 1 or int(unpaired[0]) < 0:
            raise NotDecomposableError(f"initializer {_UNPAIRED} {unpaired.tolist()} is not one field count")
        return cls(
            row_of.astype(np.int64),
            weights.astype(np.float64),
            factors.astype(np.float64),
            float(bias[0]),
            int(unpaired[0]),
        )

    def terms(self, indices: np.ndarray) -> FmTerms:
        """The terms of each (n, F) index row, in float64: they sum to the logit the graph computes."""
        rows = self.row_of[indices]
        v = self.factors[rows]  # [n, F, k]
        first, second = np.triu_indices(indices.shape[1], k=1)  # the order of pairs_of
        pairs = np.einsum("npk,npk->np", v[:, first, :], v[:, second, :])
        pairs[:, second < self.unpaired_fields] = 0.0
        return FmTerms(self.bias, self.weights[rows], pairs)
