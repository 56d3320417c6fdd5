"""Shared fixtures: one local stack per test process (moto in server mode on a free port).

Under pytest-xdist every worker is its own process, so each gets its own moto server, port and
environment; nothing is shared between workers.
"""

import os
from collections.abc import Iterator

import pytest

from devstack.environment import functions_environment
from devstack.stack import DEFAULT_TEMPLATE, LocalStack
from devstack.stack_description import describe_stack


def pytest_configure(config: pytest.Config) -> None:
    """Set the template's POWERTOOLS_* variables before any test module imports adserve.core.observability.

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
    from adserve.core.observability import metrics

    metrics.clear_metrics()


_STARTED: list[tuple[LocalStack, frozenset[str]]] = []
"""The worker's local stack once started, and the campaigns it started with (``_no_campaigns_left_behind``)."""


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """The template's tables, queues, buckets and secrets on an in-process moto; handlers see its env."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_ENDPOINT_URL", raising=False)  # always the embedded moto, never a real endpoint
        with LocalStack.start(DEFAULT_TEMPLATE) as stack:
            _STARTED.append((stack, _campaign_ids(stack)))
            yield stack
            _STARTED.clear()


def _campaign_ids(stack: LocalStack) -> frozenset[str]:
    """The ids of the campaigns stored in the stack's table (not the ad id claims beside them)."""
    import boto3  # here, not at the top: only modules that start a stack pay for it

    pages = boto3.client("dynamodb", endpoint_url=stack.endpoint_url).get_paginator("scan")
    table = stack.physical_name("CampaignsTable")
    items = (
        item for page in pages.paginate(TableName=table, ProjectionExpression="campaign_id") for item in page["Items"]
    )
    return frozenset(item["campaign_id"]["S"] for item in items if not item["campaign_id"]["S"].startswith("ad#"))


@pytest.fixture(scope="module", autouse=True)
def _no_campaigns_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module deletes the campaigns its tests write: the worker's stack is shared by the modules after it, and
    a campaign left behind is served in their decisions (a capping test once failed on one, in some orders only)."""
    before = _campaign_ids(_STARTED[0][0]) if _STARTED else None
    yield
    if not _STARTED:
        return
    stack, at_start = _STARTED[0]
    left = _campaign_ids(stack) - (at_start if before is None else before)
    assert not left, f"{request.module.__name__} left campaigns behind in the shared stack: {sorted(left)}"
