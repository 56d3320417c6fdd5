"""Figure 12: the CPU of Decide's two AWS calls, and of Record's per-impression one, against a server that answers
at once.

Figures 1a-1f time ``service.decide`` with in-memory fakes for DynamoDB and SQS; figure 1b puts moto behind
them, whose server shares the cores. This figure times what a decision costs its own process for the two calls
it makes on Lambda, the caps Query (``FrequencyCapStore.read_counters``, 20 counters back) and the record's
SendMessage (``DecisionQueue.publish``, the compact record of a 50-candidate decision), to a local HTTP server
that answers from memory over kept-alive connections: through the lean JSON clients Decide uses
(``json_clients``) and, as the peer, through botocore's clients as ``aws_clients`` makes them (its session,
loader, parsers and time budgets), the dal around each the same. Per call, the calling thread's CPU time;
beside it, ``service.decide`` at 50 candidates timed in the same run, so the ratio says how much of a
decision's own CPU on Lambda its two calls are. Record's one call per impression is timed the same way
(``DynamoImpressionCounter.count_once``: a TransactWriteItems of the marker and two counters).
"""

import hashlib
import http.server
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from adserve.campaigns.frequency_caps import CounterSlot
from adserve.dal.aws_clients import dynamodb_client, sqs_send_client
from adserve.dal.botocore_session import botocore_client
from adserve.dal.decision_queue import DecisionQueue
from adserve.dal.frequency_cap_store import FrequencyCapStore
from adserve.dal.impression_counter import DynamoImpressionCounter
from adserve.dal.json_clients import DynamoDBJsonClient, JsonClient, SQSJsonClient
from adserve.decisions.api import DecisionRequest
from adserve.models.features import FeatureEncoder
from adserve.outcomes.recording import ImpressionIncrement

from bench import catalogs
from bench.decide_latency import BASE_URL, MAX_ADS, fake_service, load_model, quiet_stdout
from bench.local_server import serving

CALLS = 2000
COUNTERS = 20
CANDIDATES = 50
QUEUE_PATH = "/123456789012/decisions"


def _counters_page(now: datetime) -> bytes:
    expires = int(now.timestamp()) + 86_400
    items = [
        {"counter_key": {"S": f"cap#campaign-{n}#day"}, "impressions": {"N": "2"}, "expires_at": {"N": str(expires)}}
        for n in range(COUNTERS)
    ]
    return json.dumps({"Items": items, "Count": COUNTERS, "ScannedCount": COUNTERS}).encode()


class _AnswersFromMemory(http.server.BaseHTTPRequestHandler):
    """DynamoDB's Query and TransactWriteItems and SQS's SendMessage (JSON protocol) answered at once, the
    connection kept alive."""

    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per answer: no small writes for the client's delayed ACK to hold up

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        target = self.headers.get("X-Amz-Target", "")
        if target.endswith("TransactWriteItems"):
            body = b"{}"
        elif target.endswith("SendMessage"):
            message = json.loads(request)["MessageBody"].encode()
            checksum = hashlib.md5(message).hexdigest()  # SQS answers with the body's MD5
            body = json.dumps({"MessageId": "m-1", "MD5OfMessageBody": checksum}).encode()
        else:
            body = self.server.counters_page  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a log line per call would be most of the server's work."""


@contextmanager
def _endpoint(url: str) -> Iterator[None]:
    """adserve's clients find their endpoint as on the local stack: AWS_ENDPOINT_URL, read when each is made."""
    before = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield
    finally:
        if before is None:
            del os.environ["AWS_ENDPOINT_URL"]
        else:
            os.environ["AWS_ENDPOINT_URL"] = before


def _cpu_us(work: Callable[[], object], calls: int, after: Callable[[], None] | None = None) -> float:
    """Median CPU time of the calling thread per call, after a tenth as many untimed."""
    for _ in range(max(calls // 10, 20)):
        work()
        if after is not None:
            after()
    samples = []
    for _ in range(calls):
        started = time.thread_time_ns()
        work()
        samples.append((time.thread_time_ns() - started) / 1e3)
        if after is not None:
            after()
    return round(statistics.median(samples), 1)


class _ThroughBotocore(JsonClient):
    """A lean client's methods (its paging too), each call made by botocore's client: its validation,
    serialising, signing, HTTP and parsing in place of the lean client's, the dal around them unchanged."""

    def __init__(self, client: Any) -> None:  # nothing of the lean client's own is used
        self._botocore = client

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._botocore._make_api_call(operation, dict(params))
        return answer


class _BotocoreDynamoDB(_ThroughBotocore, DynamoDBJsonClient):
    pass


class _BotocoreSQS(_ThroughBotocore, SQSJsonClient):
    pass


def _impression(now: datetime) -> ImpressionIncrement:
    """One impression of a campaign with a day and a session cap: its marker and two counter slots."""
    expires = now + timedelta(days=2)
    slots = (
        CounterSlot("cap#campaign#c-1#day#2026-12-05", expires),
        CounterSlot("cap#campaign#c-1#session#s", expires),
    )
    return ImpressionIncrement("listener-pseudonym", "seen#d-1#ad-1#impression", expires, slots, now)


def run(quick: bool = False) -> dict[str, Any]:
    calls = CALLS // 10 if quick else CALLS
    now = datetime.now(UTC)
    encoder = FeatureEncoder()
    wiring = fake_service(CANDIDATES, encoder=encoder, model=load_model(encoder))
    request = DecisionRequest.model_validate(catalogs.decision_request_document(MAX_ADS))
    decide = partial(wiring.service.decide, request, BASE_URL)
    with quiet_stdout():
        decide()
    record = wiring.log.records[-1]
    with serving(_AnswersFromMemory, counters_page=_counters_page(now)) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        budget: dict[str, Any] = {"connect_timeout": 1.0, "read_timeout": 1.0, "attempts": 1}
        with _endpoint(url):
            lean_dynamodb = dynamodb_client(**budget)
            lean = (
                FrequencyCapStore(lean_dynamodb, "caps"),
                DecisionQueue(sqs_send_client(**budget), url + QUEUE_PATH),
                DynamoImpressionCounter(lean_dynamodb, "caps"),
            )
            botocore_dynamodb = _BotocoreDynamoDB(botocore_client("dynamodb", **budget))
            botocore = (
                FrequencyCapStore(botocore_dynamodb, "caps"),
                DecisionQueue(_BotocoreSQS(botocore_client("sqs", **budget)), url + QUEUE_PATH),
                DynamoImpressionCounter(botocore_dynamodb, "caps"),
            )
        impression = _impression(now)
        figures: dict[str, float] = {}
        with quiet_stdout():
            for name, (caps, queue, counter) in (("lean", lean), ("botocore", botocore)):
                if len(caps.read_counters("listener-pseudonym", now)) != COUNTERS:
                    raise RuntimeError(f"the caps Query ({name}) did not read the counters back")
                figures[f"{name}_caps_query_cpu_us"] = _cpu_us(
                    partial(caps.read_counters, "listener-pseudonym", now), calls
                )
                figures[f"{name}_record_send_cpu_us"] = _cpu_us(partial(queue.publish, record), calls)
                figures[f"{name}_impression_count_cpu_us"] = _cpu_us(partial(counter.count_once, impression), calls)
            decide_us = _cpu_us(decide, calls, wiring.after_decision)
    lean_impression, botocore_impression = (
        figures["lean_impression_count_cpu_us"],
        figures["botocore_impression_count_cpu_us"],
    )
    lean_us = figures["lean_caps_query_cpu_us"] + figures["lean_record_send_cpu_us"]
    botocore_us = figures["botocore_caps_query_cpu_us"] + figures["botocore_record_send_cpu_us"]
    return {
        "calls": calls,
        "counters": COUNTERS,
        "record_bytes": len(record.to_json_within(1 << 20)),
        **figures,
        "service_decide_cpu_us": decide_us,
        "candidates": CANDIDATES,
        "lean_over_botocore": round(lean_us / botocore_us, 3),
        "impression_lean_over_botocore": round(lean_impression / botocore_impression, 3),
        "lean_calls_over_decide": round(lean_us / decide_us, 2),
        "botocore_calls_over_decide": round(botocore_us / decide_us, 2),
    }
