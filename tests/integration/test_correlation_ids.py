"""One correlation id from the API request, through the outcomes queue, to Record's log lines.

Decide and Track put their request's correlation id (API Gateway's request id) on each message as the
``correlation_id`` attribute; Record logs every record under it and the record's decision id. The logs are
read as Powertools formats them (JSON), through a handler added to its logger for the test, so the check
does not depend on which stream the logger was bound to when the worker imported it.
"""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from adserve.core.observability import logger
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore

from devstack.stack import LocalStack
from tests.support.builders import campaign
from tests.support.log_lines import powertools_log_lines
from tests.support.outcomes_queue import drain, record_event
from tests.support.record_messages import sqs_record

EVENTS = Path(__file__).parents[2] / "events"


@pytest.fixture(scope="module")
def seeded(local_stack: LocalStack) -> Iterator[str]:
    """A campaign every decision of the sample listener gets; removed again for the worker's other tests."""
    store = CampaignStore(
        dynamodb_client(endpoint_url=local_stack.endpoint_url), local_stack.physical_name("CampaignsTable")
    )
    campaign_id = f"corr-{uuid.uuid4().hex[:8]}"
    store.put(campaign(campaign_id=campaign_id, advertiser_id=f"adv-{campaign_id}", value_cpm=950))
    local_stack.reset_function("DecideFunction")  # a warm catalog would not see it for up to its TTL
    yield campaign_id
    store.delete(campaign_id)
    local_stack.reset_function("DecideFunction")


def api_event(name: str, request_id: str, **changes: Any) -> dict[str, Any]:
    """A sample API event with API Gateway's request id (the correlation id) set."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    event["requestContext"]["requestId"] = request_id
    event.update(changes)
    return event


def test_a_decision_and_its_outcome_keep_their_request_ids_through_the_queue_into_records_logs(
    local_stack: LocalStack, seeded: str
) -> None:
    # Given a decision and the impression beacon of its first ad, each with its own API request id
    drain(local_stack)
    decide_request, track_request = f"req-decide-{uuid.uuid4()}", f"req-track-{uuid.uuid4()}"
    listener_id = f"listener-corr-{uuid.uuid4().hex[:8]}"
    body = json.loads(api_event("decide_post_decision.json", decide_request)["body"])
    body["listener"]["id"] = listener_id
    with powertools_log_lines() as api_logs:
        response = local_stack.invoke(
            "DecideFunction", api_event("decide_post_decision.json", decide_request, body=json.dumps(body))
        )
        decision = json.loads(response["body"])
        token = parse_qs(urlparse(decision["ads"][0]["tracking"]["impression"]).query)["t"][0]
        beacon = api_event("track_beacon_impression.json", track_request, rawQueryString=urlencode({"t": token}))
        beacon["queryStringParameters"] = {"t": token}
        assert local_stack.invoke("TrackFunction", beacon)["statusCode"] == 204
    # When Record consumes what they queued
    messages = drain(local_stack)
    attributes = {
        json.loads(message["Body"])["kind"]: message["MessageAttributes"]["correlation_id"]["StringValue"]
        for message in messages
        if json.loads(message["Body"]).get("decision_id") == decision["decision_id"]
    }
    assert attributes == {"decision": decide_request, "outcome": track_request}
    with powertools_log_lines() as record_logs:
        local_stack.invoke("RecordFunction", record_event(local_stack, messages))
    # Then each record's log lines carry its producer's correlation id and the decision id
    handled = {
        line["kind"]: line["correlation_id"]
        for line in record_logs
        if line["message"] == "record handled" and line.get("decision_id") == decision["decision_id"]
    }
    assert handled == {"decision": decide_request, "outcome": track_request}
    # and the per-record keys are gone once the record is done
    assert {"correlation_id", "decision_id"}.isdisjoint(logger.get_current_keys())
    # And no log line of the whole path holds the raw listener id (only its pseudonym may appear)
    text = json.dumps([*api_logs, *record_logs])
    assert listener_id not in text


def test_a_malformed_record_is_logged_under_its_correlation_id(local_stack: LocalStack) -> None:
    # Given a record that is neither a decision nor an outcome, with a correlation id attribute
    record = sqs_record('{"kind":"mystery"}')
    record["messageAttributes"] = {
        "correlation_id": {
            "stringValue": "req-poison",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }
    # When Record fails it
    with powertools_log_lines("INFO") as lines:
        response = local_stack.invoke("RecordFunction", {"Records": [record]})
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == [record["messageId"]]
    # Then the warning says so under the correlation id, without the body
    [warning] = [line for line in lines if line["message"] == "invalid queue message"]
    assert warning["correlation_id"] == "req-poison"
    assert "mystery" not in json.dumps(warning)
