"""The environment variables the functions see locally.

Lambda gives every function its own environment; here all handlers share one process, so the variables
are the union of the functions' resolved environments. A variable two functions set differently cannot be
honoured for both and is left out (``POWERTOOLS_SERVICE_NAME`` then names the stack), and paths into a
layer's ``/opt`` content are pointed at that content in the repository.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from devstack.stack_description import StackDescription

__all__ = ["LAYER_CONTENT", "EnvironmentPatch", "functions_environment"]

LAYER_CONTENT = {"/opt/model": "layers/model/bootstrap"}
"""Where a layer's ``/opt`` directory lives in the repository, relative to the template."""


def functions_environment(description: StackDescription, template_dir: Path) -> dict[str, str]:
    """Union of every function's environment, plus what running outside Lambda needs."""
    merged: dict[str, str] = {}
    conflicting: set[str] = set()
    for function in description.functions.values():
        for name, value in function.environment.items():
            if name in merged and merged[name] != value:
                conflicting.add(name)
            merged.setdefault(name, value)
    environment = {name: _local_path(value, template_dir) for name, value in merged.items() if name not in conflicting}
    if "POWERTOOLS_SERVICE_NAME" in conflicting:
        environment["POWERTOOLS_SERVICE_NAME"] = description.stack_name
    environment["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon locally
    environment["AWS_REGION"] = description.region
    environment["AWS_DEFAULT_REGION"] = description.region
    return environment


def _local_path(value: str, template_dir: Path) -> str:
    for opt_path, local in LAYER_CONTENT.items():
        if value == opt_path or value.startswith(f"{opt_path}/"):
            return str(template_dir / local) + value[len(opt_path) :]
    return value


class EnvironmentPatch:
    """Sets variables in ``os.environ`` and puts the previous values back on ``restore``."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def apply(self, variables: Mapping[str, str]) -> None:
        for name, value in variables.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()
