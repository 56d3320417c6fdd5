"""Read the SAM/CloudFormation template into plain Python data.

CloudFormation YAML uses short-form intrinsic tags (``!Ref``, ``!GetAtt``,
``!Sub`` ...) that a plain YAML loader rejects. :func:`load_template` turns
them into their long (JSON) form, so the result is exactly what the same
template written in JSON would give::

    !Ref CampaignsTable          -> {"Ref": "CampaignsTable"}
    !GetAtt OutcomesQueue.Arn    -> {"Fn::GetAtt": ["OutcomesQueue", "Arn"]}
    !Sub "https://${Api}..."     -> {"Fn::Sub": "https://${Api}..."}
    !If [Cond, a, b]             -> {"Fn::If": ["Cond", "a", "b"]}
    !Condition IsProd            -> {"Condition": "IsProd"}

Intrinsics are left unresolved; resolving them is up to the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["Template", "load_template", "resources_of_type"]

Template = dict[str, Any]
"""A parsed template: the top-level mapping (``Resources``, ``Outputs`` ...)."""

# Short-form tags CloudFormation accepts (without the leading "!"); all but
# Ref and Condition map to "Fn::<name>".
_FN_TAGS = frozenset(
    {
        "And",
        "Base64",
        "Cidr",
        "Equals",
        "FindInMap",
        "ForEach",
        "GetAZs",
        "GetAtt",
        "If",
        "ImportValue",
        "Join",
        "Length",
        "Not",
        "Or",
        "Select",
        "Split",
        "Sub",
        "ToJsonString",
        "Transform",
    }
)
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation short-form tags; dates stay strings."""


# CloudFormation keeps unquoted dates such as ``Version: 2012-10-17`` as strings.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node {type(node).__name__}", node.start_mark)


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = _node_value(loader, node)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix not in _FN_TAGS:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
        )
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | Path) -> Template:
    """Parse the YAML (or JSON) template at *path*, intrinsic tags in long form."""
    text = Path(path).read_text(encoding="utf-8")
    loader = _CfnLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        msg = f"{path}: a template must be a mapping at the top level, got {type(data).__name__}"
        raise TypeError(msg)
    return data


def resources_of_type(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Resources of *template* whose ``Type`` is *resource_type*, by logical ID, in template order."""
    resources: dict[str, dict[str, Any]] = template.get("Resources") or {}
    return {
        logical_id: resource
        for logical_id, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == resource_type
    }


def alarmed_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an ``AWS::CloudWatch::Alarm`` reads: its one metric, or each its metric math reads (what
    CloudWatch bills it for)."""
    properties: dict[str, Any] = alarm["Properties"]
    if "MetricName" in properties:
        return [properties]
    return [query["MetricStat"]["Metric"] for query in properties["Metrics"] if "MetricStat" in query]
