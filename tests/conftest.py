"""Shared fixtures: one local stack per test process (moto in server mode on a free port) and API events.

Under pytest-xdist every worker is its own process, so each gets its own moto server, port and
environment; nothing is shared between workers.
"""

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.environment import functions_environment
from devstack.stack import DEFAULT_TEMPLATE, LocalStack
from devstack.stack_description import describe_stack

HttpEvent = Callable[..., dict[str, Any]]
CallApi = Callable[..., dict[str, Any]]


def pytest_configure(config: pytest.Config) -> None:
    """Set the template's POWERTOOLS_* variables before any test module imports adserve.observability.

    Powertools reads them when its logger, tracer and metrics are built at import, as in Lambda where the
    environment exists before the code loads; a unit test importing the module first must not freeze the
    metrics namespace to None for the handlers run later in the same process.
    """
    environment = functions_environment(describe_stack(DEFAULT_TEMPLATE), DEFAULT_TEMPLATE.parent)
    for name, value in environment.items():
        if name.startswith("POWERTOOLS_"):
            os.environ.setdefault(name, value)


@pytest.fixture(autouse=True)
def _no_metrics_left_behind() -> Iterator[None]:
    """Drop metrics a test added outside a handler (domain code on fakes), which no log_metrics flushed.

    The Powertools metrics object is one per process, as in Lambda; left alone, a unit test's metrics would
    be printed by the next handler invocation of another test in the same worker, under its service.
    """
    yield
    # Imported here, not at the top: this module loads before pytest_configure sets POWERTOOLS_*.
    from adserve.observability import metrics

    metrics.clear_metrics()


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """The template's tables, queues, buckets and secrets on an in-process moto; handlers see its env."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_ENDPOINT_URL", raising=False)  # always the embedded moto, never a real endpoint
        with LocalStack.start(DEFAULT_TEMPLATE) as stack:
            yield stack


@pytest.fixture
def http_event(local_stack: LocalStack) -> HttpEvent:
    """Build the API Gateway v2.0 event a request would produce, routed by the template's routes.

    ``http_event("PUT", "/v1/campaigns/c-1", body={...})`` -> the event dict; ``body`` may be a dict (sent as
    JSON), a str or bytes; ``query`` is a raw query string.
    """

    def build(
        method: str,
        path: str,
        body: dict[str, Any] | str | bytes | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> dict[str, Any]:
        payload = json.dumps(body) if isinstance(body, dict) else body
        _, event = local_stack.http_event(method, path, body=payload, headers=headers, query=query)
        return event

    return build


@pytest.fixture
def call_api(local_stack: LocalStack) -> CallApi:
    """Route a request like the HTTP API would and invoke the handler in process; the handler's response."""

    def call(
        method: str,
        path: str,
        body: dict[str, Any] | str | bytes | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> dict[str, Any]:
        payload = json.dumps(body) if isinstance(body, dict) else body
        function_id, event = local_stack.http_event(method, path, body=payload, headers=headers, query=query)
        response: dict[str, Any] = local_stack.invoke(function_id, event)
        return response

    return call
