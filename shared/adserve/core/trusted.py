"""Pydantic models built from values the code already holds in valid form, without validating them again.

Validation belongs at the edges (requests, stored items, queue messages). Inside a decision the values come
from the validated catalog, the request and the model, and re-validating them per candidate was most of
Decide's cost. ``model_construct`` would skip validation too, but resolves aliases and defaults field by
field, which is slower than validating; this sets exactly what it sets when every field is given.
"""

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_new = object.__new__
_set = object.__setattr__
_FIELDS: dict[type[BaseModel], set[str]] = {}


def trusted(model: type[M], values: dict[str, Any]) -> M:
    """``model.model_construct(**values)`` for a plain model given every one of its fields.

    Instances of one model share one fields-set: it already names every field, so nothing ever adds to it.
    """
    instance = _new(model)
    _set(instance, "__dict__", values)
    fields = _FIELDS.get(model)
    if fields is None:
        fields = _FIELDS[model] = set(model.model_fields)
    _set(instance, "__pydantic_fields_set__", fields)
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance
