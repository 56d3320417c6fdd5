"""Explain mode on the local stack: Decide over moto, then Record on what Decide queued.

An explain request gets every campaign's verdict and the bootstrap model's score term by term, and changes
nothing: not the listener's counters, not a delivery or request total, not a pacing state. A served decision
next to it, handled the same way, does change the request count, so the comparison can fail.
"""

import json
import math
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from adserve.campaigns.frequency_caps import AdvertiserCaps, session_key
from adserve.campaigns.model import Campaign
from adserve.cli.main import main
from adserve.outcomes.decision_records import DecisionRecord

from devstack.http_gateway import HttpGateway
from devstack.sigv4 import SigV4Verifier
from devstack.stack import LocalStack
from tests.support.builders import campaign, impression_counters
from tests.support.outcomes_queue import drain, record_event
from tests.support.stored_campaigns import stored_campaigns

SESSION = "session-explain"


@pytest.fixture(scope="module")
def seeded(local_stack: LocalStack) -> Iterator[dict[str, Campaign]]:
    suffix = uuid.uuid4().hex[:8]
    extras: dict[str, dict[str, Any]] = {
        "capped": {"value_cpm": 500, "frequency_caps": [{"max": 3, "window": "day"}]},
        "budgeted": {"value_cpm": 400, "budget": {"unit": "impressions", "daily": 1000}},
        "norway": {"value_cpm": 300, "targeting": {"countries": ["NO"]}},
        "open": {"value_cpm": 200},
    }
    campaigns = {
        name: campaign(campaign_id=f"explain-{name}-{suffix}", advertiser_id=f"adv-explain-{name}-{suffix}", **extra)
        for name, extra in extras.items()
    }
    with stored_campaigns(local_stack, campaigns.values(), reset=["DecideFunction", "RecordFunction"]):
        yield campaigns


def body(listener_id: str, **changes: Any) -> str:
    document: dict[str, Any] = {
        "listener": {"id": listener_id, "country": "SE", "device": "mobile", "session_id": SESSION},
        "placement": "audio_midroll",
        "max_ads": 2,
        "consent": {"personalise": True, "cap_frequency": True, "measure": True},
    }
    document.update(changes)
    return json.dumps(document)


def post(local_stack: LocalStack, text: str, path: str = "/v1/decisions/explain") -> tuple[int, dict[str, Any]]:
    function_id, event = local_stack.http_event("POST", path, body=text)
    response = local_stack.invoke(function_id, event)
    return response["statusCode"], json.loads(response["body"])


def tables(local_stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    """Every item of the tables a decision could count in: caps, delivery (totals and requests), pacing."""
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    names = ("FrequencyCapsTable", "DeliveryTable", "PacingTable")
    return {
        name: sorted(
            (
                item
                for page in dynamodb.get_paginator("scan").paginate(TableName=local_stack.physical_name(name))
                for item in page["Items"]
            ),
            key=json.dumps,
        )
        for name in names
    }


def put_count(local_stack: LocalStack, listener_id: str, capped: Campaign, count: int) -> None:
    now = datetime.now(UTC)
    pseudonyms = local_stack.pseudonyms()
    session = session_key(pseudonyms.session(SESSION), now)
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.endpoint_url)
    for slot in impression_counters(capped, AdvertiserCaps([capped]).caps_of(capped), now, session):
        dynamodb.put_item(
            TableName=local_stack.physical_name("FrequencyCapsTable"),
            Item={
                "listener_id": {"S": pseudonyms.listener(listener_id)},
                "counter_key": {"S": slot.key},
                "impressions": {"N": str(count)},
                "expires_at": {"N": str(int(slot.expires_at.timestamp()))},
            },
        )


def record_all(local_stack: LocalStack) -> list[DecisionRecord]:
    """Hand everything Decide queued to Record; the decision records among it."""
    messages = drain(local_stack)
    if messages:
        response = local_stack.invoke("RecordFunction", record_event(local_stack, messages))
        assert response == {"batchItemFailures": []}
    return [
        DecisionRecord.model_validate_json(message["Body"])
        for message in messages
        if json.loads(message["Body"]).get("kind") == "decision"
    ]


def test_explain_names_every_rule_and_counts_nothing(local_stack: LocalStack, seeded: dict[str, Campaign]) -> None:
    listener = f"listener-explain-{uuid.uuid4().hex[:8]}"
    put_count(local_stack, listener, seeded["capped"], 3)
    record_all(local_stack)
    before = tables(local_stack)
    # When an operator asks why, on the explain route
    status, explained = post(local_stack, body(listener))
    records = record_all(local_stack)
    # Then each seeded campaign has its rule, with what the rule saw
    assert status == 200, explained
    verdicts = {ad["campaign_id"]: ad for ad in explained["explanation"]["ads"]}
    capped, budgeted, norway, open_ = (verdicts[seeded[name].campaign_id] for name in seeded)
    assert capped["rule"] == "frequency_cap"
    assert capped["cap"] == {"window": "day", "scope": "campaign", "count": 3, "max": 3}
    assert budgeted["rule"] == "pacing"  # budgeted, and the pacing step has not judged it yet
    assert budgeted["serve_probability"] == 0.0
    assert norway["rule"] == "targeting"
    assert (norway["dimension"], norway["listener_value"], norway["targeted"]) == ("countries", "SE", ["NO"])
    assert open_["scoring"] is not None
    # And the bootstrap model's score is taken apart: the terms sum to the served logit
    assert explained["explanation"]["contributions_unavailable"] is None
    for ad in explained["explanation"]["ads"]:
        if ad["scoring"] is not None:
            terms = ad["scoring"]["contributions"]
            total = terms["bias"] + sum(terms["fields"].values()) + sum(terms["pairs"].values())
            score = ad["scoring"]["score"]
            assert abs(total - math.log(score / (1 - score))) < 1e-5
    # And its ads carry no tracking URL, its record is flagged, and after Record nothing changed
    assert explained["ads"]
    assert all(ad["tracking"] is None for ad in explained["ads"])
    assert [(r.decision_id, r.explain) for r in records] == [(explained["decision_id"], True)]
    assert tables(local_stack) == before
    # While a served decision, recorded the same way, is counted (so the comparison above can fail)
    status, served = post(local_stack, body(listener), path="/v1/decisions")
    assert status == 200
    assert "explanation" not in served
    assert all(ad["tracking"] is not None for ad in served["ads"])
    assert [r.explain for r in record_all(local_stack)] == [False]
    assert tables(local_stack)["DeliveryTable"] != before["DeliveryTable"]


@pytest.mark.parametrize("changes", [{"explain": True}, {"explain_campaign": "explain-open"}])
def test_the_decisions_route_refuses_to_explain_which_has_its_own_route_for_iam_to_grant_apart(
    local_stack: LocalStack, changes: dict[str, Any]
) -> None:
    # An explanation reads any listener's counters: a caller IAM lets make decisions must not get one
    status, answer = post(local_stack, body("listener-explain-elsewhere", **changes), path="/v1/decisions")
    assert status == 422
    assert "POST /v1/decisions/explain" in answer["error"]["message"]
    assert [detail["field"] for detail in answer["error"]["details"]] == list(changes)


@pytest.mark.parametrize("value", ["true", 1, None, {"on": True}])
def test_explain_that_is_not_a_boolean_is_a_422(local_stack: LocalStack, value: Any) -> None:
    status, answer = post(local_stack, body("listener-explain-bad", explain=value))
    assert status == 422
    assert answer["error"]["code"] == "invalid_request"
    assert [detail["field"] for detail in answer["error"]["details"]] == ["explain"]


@pytest.fixture(scope="module")
def signed_gateway(local_stack: LocalStack) -> Iterator[HttpGateway]:
    """The HTTP API as `make run --auth` serves it: IAM routes refuse what is not SigV4-signed."""
    description = local_stack.description
    verifier = SigV4Verifier({"testing": "testing"}, region=description.region, account_id=description.account_id)
    served = HttpGateway(local_stack, port=0, verifier=verifier)
    served.start()
    yield served
    served.stop()


def test_the_cli_explains_through_the_signed_api_as_a_table(
    local_stack: LocalStack,
    *,
    seeded: dict[str, Campaign],
    signed_gateway: HttpGateway,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    listener = f"listener-cli-{uuid.uuid4().hex[:8]}"
    put_count(local_stack, listener, seeded["capped"], 3)
    before = tables(local_stack)
    # From flags
    flags = ["--listener", listener, "--country", "SE", "--device", "mobile", "--placement", "audio_midroll"]
    flags += ["--session", SESSION, "--consent", "personalise,cap_frequency,measure", "--api", signed_gateway.url]
    assert main(["explain", *flags]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if not line.startswith("{")]  # the in-process stack's metrics
    assert lines[0].startswith("decision ")
    assert "mode personalised" in lines[0]
    rows = {line.split()[1]: line.split()[2] for line in lines if line.startswith("explain-")}
    assert rows[seeded["capped"].campaign_id] == "frequency_cap"
    assert rows[seeded["budgeted"].campaign_id] == "pacing"
    assert rows[seeded["norway"].campaign_id] == "targeting"
    assert "logit" in out
    assert "= bias" in out
    # From a request file, one campaign
    request = tmp_path / "request.json"
    request.write_text(body(listener))
    assert main(["explain", "--request", str(request), "--api", signed_gateway.url, "--campaign", "none"]) == 1
    assert "campaign 'none' is not in Decide's catalog" in capsys.readouterr().err  # a typo reads as no answer
    campaign_id = seeded["capped"].campaign_id
    assert main(["explain", "--request", str(request), "--api", signed_gateway.url, "--campaign", campaign_id]) == 0
    filtered = capsys.readouterr().out.splitlines()
    assert any(line.startswith("served: ") for line in filtered)
    assert {line.split()[1] for line in filtered if line.startswith("explain-")} == {campaign_id}
    record_all(local_stack)
    assert tables(local_stack) == before
    # Unsigned, the same API refuses: the command really signs
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone-else")
    assert main(["explain", *flags]) == 1
    assert "403" in capsys.readouterr().err


def test_the_cli_refuses_an_incomplete_request_before_calling_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--listener", "l", "--api", "http://127.0.0.1:9"]) == 2
    assert "--country, --device, --placement" in capsys.readouterr().err


@pytest.fixture
def answering() -> Iterator[Callable[[int, bytes], str]]:
    """A server answering every POST with the status and body given last: what stands at a mistyped --api URL."""
    answer: list[tuple[int, bytes]] = [(200, b"")]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            status, text = answer[-1]
            self.send_response(status)
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *_: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def at(status: int, text: bytes) -> str:
        answer.append((status, text))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield at
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "text"),
    [(200, b"<html>a proxy's page</html>"), (200, b'{"ok": true}'), (200, b""), (200, b"\xff\xfe"), (502, b"<html>")],
)
def test_the_cli_says_what_it_got_when_the_url_answers_no_explanation(
    answering: Callable[[int, bytes], str], capsys: pytest.CaptureFixture[str], status: int, text: bytes
) -> None:
    flags = ["--listener", "l", "--country", "SE", "--device", "mobile", "--placement", "audio_midroll"]
    for output in ([], ["--json"]):
        assert main(["explain", *flags, *output, "--api", answering(status, text)]) == 1
        assert f"the API answered {status}, not an explanation" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "http://127.0.0.1:99999", "http://127.0.0.1:9/a b"])
@pytest.mark.parametrize("signed", [True, False])
def test_the_cli_refuses_an_api_url_that_names_no_place_to_reach(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any, url: str, signed: bool
) -> None:
    if not signed:  # no credentials anywhere: the request goes unsigned, as to a local stack without --auth
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    flags = ["--listener", "l", "--country", "SE", "--device", "mobile", "--placement", "audio_midroll"]
    assert main(["explain", *flags, "--api", url]) == 2
    assert "is not a URL to reach" in capsys.readouterr().err
