"""The demo's traffic driver sends the events its listeners report to Track in batches Track accepts, even when
other listeners' threads add events between a report and its flush (``devstack.demo.Traffic.flush``)."""

import json
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from devstack.demo import EVENTS_PER_BATCH, DemoConfig, Traffic
from devstack.stack import LocalStack


@dataclass
class TrackOnly:
    """The stack as the flush sees it: an HTTP event per call, and Track's answer (every event queued)."""

    endpoint_url: str = "http://127.0.0.1:1"
    batches: list[list[dict[str, str]]] = field(default_factory=list)

    def http_event(self, method: str, path: str, **parts: Any) -> tuple[str, dict[str, Any]]:
        return "TrackFunction", {"method": method, "path": path, **parts}

    def invoke(self, function_id: str, event: dict[str, Any]) -> dict[str, Any]:
        events = json.loads(event["body"])["events"]
        self.batches.append(events)
        results = [{"event_id": entry["event_id"], "status": "queued"} for entry in events]
        return {"statusCode": 202, "body": json.dumps({"rejected": 0, "results": results})}


def test_a_flush_that_finds_more_than_a_batch_sends_every_event_in_batches_track_accepts() -> None:
    # Given more events pending than one Track batch holds (other threads reported while this one flushed)
    stack = TrackOnly()
    traffic = Traffic(cast(LocalStack, stack), DemoConfig().world(), np.random.default_rng(1), {})
    pending = [{"event_id": f"e-{n}", "type": "impression", "token": "t"} for n in range(2 * EVENTS_PER_BATCH + 1)]
    traffic.pending = list(pending)
    # When a report's flush runs
    traffic.flush(EVENTS_PER_BATCH)
    # Then every event went to Track once, in batches of at most EVENTS_PER_BATCH, and nothing is left pending
    assert [len(batch) for batch in stack.batches] == [EVENTS_PER_BATCH, EVENTS_PER_BATCH, 1]
    assert [entry for batch in stack.batches for entry in batch] == pending
    assert traffic.pending == []
