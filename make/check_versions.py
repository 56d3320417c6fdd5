"""Check that a deploy of new code publishes (and canaries) a new version of every function with AutoPublishAlias.

By default SAM names a function's next version by its CodeUri, Environment, MemorySize and SnapStart as written,
so a change to a layer (where Decide's and Track's code lives: SharedLayer) published nothing, and their `live`
alias kept serving the old code. This runs SAM's own translator (the one CloudFormation runs) on template.yaml
with each code location moved in turn, and fails unless each move renames the version of exactly the functions
that use it. Run by `make validate` with the SAM CLI's interpreter (samtranslator is not a dev dependency).
"""

import copy
import logging
import os
import sys
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
PARAMETERS = {"AlarmEmail": "ops@example.com"}
"""The parameters without a default."""


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def _code_locations(template: dict[str, Any]) -> dict[str, str]:
    """Each function's and layer's code property, by logical id."""
    kinds = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
    return {name: kinds[r["Type"]] for name, r in template["Resources"].items() if r["Type"] in kinds}


def _versions(template: dict[str, Any], moved: str | None) -> dict[str, str]:
    """The version SAM publishes for each aliased function, with *moved*'s code at a new location (as a build of
    changed code uploads it under its new hash)."""
    built = copy.deepcopy(template)
    for name, key in _code_locations(built).items():
        resource = built["Resources"][name]
        resource["Properties"][key] = f"s3://artifacts/{name}{'-changed' if name == moved else ''}.zip"
        resource.pop("Metadata", None)
    resources = transform(built, PARAMETERS, _NoManagedPolicies())["Resources"]
    return {
        name[: -len("Version") - 10]: name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Version"
    }


def _layers_of(template: dict[str, Any], function: str) -> set[str]:
    declared = template["Resources"][function]["Properties"].get("Layers")
    if declared is None:
        declared = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    return {layer["Ref"] for layer in declared if isinstance(layer, dict) and "Ref" in layer}


def main() -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator wants a region for its ARNs
    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its feature-toggle and metrics notes, per run
    template = yaml_parse(TEMPLATE.read_text())
    before = _versions(template, None)
    problems = []
    for moved in _code_locations(template):
        after = _versions(template, moved)
        for function, version in before.items():
            uses = moved == function or moved in _layers_of(template, function)
            if (after[function] != version) != uses:
                problems.append(
                    f"{moved} changed: {function}'s version {'stayed' if uses else 'changed'} ({version})"
                    + (", so its alias keeps the old code" if uses else "")
                )
    for problem in problems:
        print(f"check_versions: {problem}", file=sys.stderr)  # noqa: T201
    if not problems:
        print(f"check_versions: {', '.join(sorted(before))} publish a new version on any change of their code")  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
