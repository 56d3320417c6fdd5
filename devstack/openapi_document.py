"""One OpenAPI document for the whole HTTP API, merged from every HTTP function's router.

Each function only knows its own routes; clients want one document. Handlers build their AWS clients
lazily, so loading them for their schema needs no AWS at all.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from devstack.environment import EnvironmentPatch, functions_environment
from devstack.lambda_runtime import FunctionRuntime
from devstack.stack_description import StackDescription, describe_stack

__all__ = ["OpenApiConflictError", "merge_documents", "openapi_document", "render"]

TITLE = "adserve"
VERSION = "1"


class OpenApiConflictError(ValueError):
    """Two functions describe the same operation or the same schema name differently."""


def openapi_document(template_path: str | Path) -> dict[str, Any]:
    """The merged document of every function that has an HttpApi route in *template_path*."""
    template_path = Path(template_path).resolve()
    description = describe_stack(template_path)
    environ = EnvironmentPatch()
    environ.apply(functions_environment(description, template_path.parent))
    try:
        return merge_documents(
            [_function_document(description, function_id) for function_id in _http_functions(description)]
        )
    finally:
        environ.restore()


def merge_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Paths and components of *documents* in one; the rest (openapi, info, servers) from the first."""
    if not documents:
        raise ValueError("no HTTP function to document")
    merged = copy.deepcopy(documents[0])
    for document in documents[1:]:
        for path, operations in document.get("paths", {}).items():
            target = merged.setdefault("paths", {}).setdefault(path, {})
            for method, operation in operations.items():
                if method in target and target[method] != operation:
                    raise OpenApiConflictError(f"{method.upper()} {path} is documented twice, differently")
                target[method] = operation
        for section, entries in document.get("components", {}).items():
            target = merged.setdefault("components", {}).setdefault(section, {})
            for name, entry in entries.items():
                if name in target and target[name] != entry:
                    raise OpenApiConflictError(f"components.{section}.{name} differs between functions")
                target[name] = entry
    return merged


def render(document: dict[str, Any]) -> str:
    """Deterministic text, so the committed file only changes when the API does."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _http_functions(description: StackDescription) -> list[str]:
    return list(dict.fromkeys(route.function_id for route in description.routes))


def _function_document(description: StackDescription, function_id: str) -> dict[str, Any]:
    runtime = FunctionRuntime(description.functions[function_id], description.region, description.account_id)
    from adserve.http_api import openapi  # noqa: PLC0415 - loads observability, which the CLI must not at load

    return openapi.openapi_document(runtime.module.app, TITLE, VERSION)
