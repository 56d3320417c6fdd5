"""A function's OpenAPI document, from its router's routes: their parameters, body and answer models.

Only the local tooling builds it (``make openapi``, ``adserve-local``); the handlers never import this module.
"""

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from adserve.http_api.errors import ErrorResponse
from adserve.http_api.router import JSON_CONTENT, Route, Router

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
INVALID_REQUEST = "Invalid request"
"""The 422 of a route with parameters or a body that documents none of its own: our error shape."""


def openapi_document(router: Router, title: str, version: str) -> dict[str, Any]:
    """The document of *router*'s routes (those included in the schema), every model under components."""
    routes = [route for route in router.routes if route.include_in_schema]
    inputs: list[tuple[tuple[int, str], JsonSchemaMode, TypeAdapter[Any]]] = []
    for index, route in enumerate(routes):
        inputs += [((index, p.name), "validation", p.schema_adapter()) for p in route.parameters]
        for status, model in _response_models(route).items():
            inputs.append(((index, f"response {status}"), "serialization", TypeAdapter(model)))
    schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for index, route in enumerate(routes):
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = _operation(
            route, {key[1]: schema for (key, _), schema in schemas.items() if key[0] == index}
        )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }


def _response_models(route: Route) -> dict[int, Any]:
    """Each documented status's body model: the declared one, else (for the route's own status) what it returns."""
    models: dict[int, Any] = {}
    for status, response in route.responses.items():
        model = (response.get("content") or {}).get(JSON_CONTENT, {}).get("model")
        if model is not None:
            models[status] = model
    if route.status_code not in models and _is_model(route.returns):
        models[route.status_code] = route.returns
    if 422 not in route.responses and route.parameters:
        models[422] = ErrorResponse
    return models


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    parameters = []
    for parameter in route.parameters:
        if parameter.kind == "body":
            operation["requestBody"] = {
                "content": {JSON_CONTENT: {"schema": schemas[parameter.name]}},
                "required": parameter.required,
            }
            continue
        entry: dict[str, Any] = {
            "in": parameter.kind,
            "name": parameter.key,
            "required": parameter.required,
            "schema": schemas[parameter.name],
        }
        if parameter.marker is not None and parameter.marker.description:
            entry["description"] = parameter.marker.description
        parameters.append(entry)
    if parameters:
        operation["parameters"] = parameters
    responses: dict[str, Any] = {}
    own = {route.status_code} if not any(200 <= status < 300 for status in route.responses) else set()
    statuses = {*route.responses, *own} | ({422} if route.parameters else set())
    for status in sorted(statuses):
        declared = route.responses.get(status, {})
        default = INVALID_REQUEST if status == 422 and status not in route.responses else "Successful Response"
        response: dict[str, Any] = {"description": declared.get("description", default)}
        if f"response {status}" in schemas:
            response["content"] = {JSON_CONTENT: {"schema": schemas[f"response {status}"]}}
        elif "content" in declared:
            response["content"] = declared["content"]
        responses[str(status)] = response
    operation["responses"] = responses
    return operation
