"""The committed OpenAPI document is what the handlers' models produce, and documents every route."""

import json
from pathlib import Path

from devstack.openapi_document import openapi_document, render
from devstack.stack_description import describe_stack

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "template.yaml"
COMMITTED = ROOT / "shared" / "adserve" / "openapi.json"
DOCUMENT_ROUTE = "/v1/openapi.json"


def test_committed_document_matches_the_handlers() -> None:
    # Given the handlers' current models, when the document is regenerated
    regenerated = render(openapi_document(TEMPLATE))
    # Then it equals the committed one (run `make openapi` after changing an API model)
    assert regenerated == COMMITTED.read_text(encoding="utf-8")


def test_every_template_route_is_documented() -> None:
    paths = json.loads(COMMITTED.read_text(encoding="utf-8"))["paths"]
    for route in describe_stack(TEMPLATE).routes:
        if route.path == DOCUMENT_ROUTE:
            continue
        assert route.method.lower() in paths.get(route.path, {}), route.route_key


def test_every_route_documents_the_refusals_of_a_body() -> None:
    # screen_body runs before every route: a GET or a DELETE sent a body it cannot pass is refused alike
    paths = json.loads(COMMITTED.read_text(encoding="utf-8"))["paths"]
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    operations = [operation for methods in paths.values() for operation in methods.values()]
    with_body = [operation for operation in operations if "requestBody" in operation]
    assert len(with_body) == 5  # decisions, explain, campaigns PUT, events batch, erasures
    for operation in operations:
        statuses = ("400", "413", "415", "422") if operation in with_body else ("400", "413", "415")
        for status in statuses:
            assert operation["responses"][status]["content"] == error, (operation["summary"], status)
