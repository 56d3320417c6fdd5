"""The rejected-events alarm watches every rejection reason Track emits, as a share of all its events; the
rotation procedure it points to exists (every alarm's link is checked in test_template_guards.py)."""

import re
from pathlib import Path
from typing import Any

import pytest
from adserve.core.observability import MetricName
from adserve.outcomes.api import RejectionCode

from devstack.template import Template, load_template

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(ROOT / "template.yaml")


def runbook_anchors() -> set[str]:
    """GitHub's anchors of RUNBOOK.md's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", (ROOT / "RUNBOOK.md").read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_rotation_procedure_is_in_the_runbook() -> None:
    assert "rotating-the-signing-key" in runbook_anchors()


def test_the_rejected_share_counts_every_reason_against_accepted_events(template: Template) -> None:
    properties = template["Resources"]["TrackEventsRejectedAlarm"]["Properties"]
    queries: dict[str, dict[str, Any]] = {query["Id"]: query for query in properties["Metrics"]}
    watched: dict[str, tuple[str, dict[str, str]]] = {}
    for query_id, query in queries.items():
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            assert metric["Namespace"] == "Adserve"
            assert query["MetricStat"]["Period"] == 300
            watched[query_id] = (metric["MetricName"], {d["Name"]: d["Value"] for d in metric["Dimensions"]})
    # EventsRejected is emitted once per reason (dimension set [reason, service]): one metric per reason
    assert sorted(dims["reason"] for name, dims in watched.values() if name == MetricName.EVENTS_REJECTED) == sorted(
        RejectionCode
    )
    assert all(dims["service"] == "track" for _, dims in watched.values())
    assert [query_id for query_id, (name, _) in watched.items() if name == MetricName.EVENTS_ACCEPTED] == ["accepted"]
    rejected = queries["rejected"]["Expression"]
    assert all(f"FILL({query_id}, 0)" in rejected for query_id in watched if query_id != "accepted")
    [returned] = [query for query in queries.values() if query.get("ReturnData", True)]
    assert returned["Id"] == "share"
    assert "100 * rejected / MAX([total, 1])" in returned["Expression"]
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (5, "GreaterThanThreshold")
