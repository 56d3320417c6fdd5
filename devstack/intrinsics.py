"""Resolve CloudFormation intrinsics (Ref, Fn::GetAtt, Fn::Sub, Fn::Join) against local resources.

The local stack has no CloudFormation engine; only the intrinsics a function's environment or a resource's
properties actually use are supported, and anything else fails loudly rather than leaking a dict into an
environment variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NO_VALUE", "ResourceReferences", "UnresolvableError", "references_in", "resolve"]


class UnresolvableError(ValueError):
    """An intrinsic names something the local stack does not know, or has an unsupported shape."""


class _NoValue:
    """Marker for ``!Ref AWS::NoValue``: the enclosing key or list item disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass(frozen=True)
class ResourceReferences:
    """What ``!Ref`` and ``!GetAtt`` give for one resource."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[attribute]
        except KeyError:
            known = ", ".join(sorted(self.attributes)) or "none"
            msg = f"!GetAtt {logical_id}.{attribute}: unknown attribute locally (known: {known})"
            raise UnresolvableError(msg) from None


def resolve(value: Any, references: Mapping[str, ResourceReferences], pseudo: Mapping[str, str]) -> Any:
    """*value* with every supported intrinsic replaced by a string; ``AWS::NoValue`` entries dropped."""
    if isinstance(value, list):
        items = [resolve(item, references, pseudo) for item in value]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key in _INTRINSICS:
            return _INTRINSICS[key](argument, references, pseudo)
        if key.startswith("Fn::"):
            raise UnresolvableError(f"{key} is not supported by the local stack")
    resolved = {key: resolve(item, references, pseudo) for key, item in value.items()}
    return {key: item for key, item in resolved.items() if item is not NO_VALUE}


def references_in(value: Any) -> set[str]:
    """Logical IDs that *value* refers to through Ref, GetAtt or Sub; used to order resource creation."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references_in(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt" and isinstance(argument, list) and argument:
                found.add(str(argument[0]))
            elif key == "Fn::Sub":
                template = argument[0] if isinstance(argument, list) else argument
                found |= {name.split(".")[0] for name in _SUB_VARIABLE.findall(str(template))}
                found |= references_in(argument[1] if isinstance(argument, list) else None)
            else:
                found |= references_in(argument)
    return {name for name in found if not name.startswith("AWS::")}


def _ref(name: Any, references: Mapping[str, ResourceReferences], pseudo: Mapping[str, str]) -> Any:
    if name == "AWS::NoValue":
        return NO_VALUE
    if name in pseudo:
        return pseudo[name]
    if name in references:
        return references[name].ref
    raise UnresolvableError(f"!Ref {name}: no such local resource, parameter or pseudo parameter")


def _get_att(argument: Any, references: Mapping[str, ResourceReferences], _pseudo: Mapping[str, str]) -> str:
    if not (isinstance(argument, list) and len(argument) == 2):
        raise UnresolvableError(f"!GetAtt needs [LogicalId, Attribute], got {argument!r}")
    logical_id, attribute = (str(part) for part in argument)
    if logical_id not in references:
        raise UnresolvableError(f"!GetAtt {logical_id}.{attribute}: no such local resource")
    return references[logical_id].get_att(logical_id, attribute)


def _sub(argument: Any, references: Mapping[str, ResourceReferences], pseudo: Mapping[str, str]) -> str:
    if isinstance(argument, list):
        template, variables = str(argument[0]), resolve(argument[1], references, pseudo)
    else:
        template, variables = str(argument), {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        if "." in name and name.split(".")[0] not in pseudo:
            logical_id, attribute = name.split(".", 1)
            return _get_att([logical_id, attribute], references, pseudo)
        return str(_ref(name, references, pseudo))

    return _SUB_VARIABLE.sub(substitute, template).replace("${!", "${")


def _join(argument: Any, references: Mapping[str, ResourceReferences], pseudo: Mapping[str, str]) -> str:
    separator, items = argument
    return str(separator).join(str(item) for item in resolve(items, references, pseudo))


_INTRINSICS: dict[str, Callable[[Any, Mapping[str, ResourceReferences], Mapping[str, str]], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
}
