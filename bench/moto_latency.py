"""Figure 1b: the full Decide handler against moto in server mode (the local stack built from template.yaml).

Each decision makes real HTTP calls to moto: one Query on the caps table and one SendMessage to the
outcomes queue (the catalog Scan and the secret read happen at service build and on refresh only). moto is
a Python server on the same two cores, so its own per-call cost is timed too and reported next to it. Every
candidate is scored, as in 1a (``PRERANK_TOP_K`` above the largest size): the deployed top K of 500 would score
half of them at 1000, and each size's decision record is checked to hold all of its candidates.
"""

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from adserve.campaigns.model import Campaign
from adserve.dal.aws_clients import dynamodb_client, sqs_send_client
from adserve.dal.botocore_session import sqs_client
from adserve.dal.campaign_store import CampaignStore
from adserve.outcomes.decision_records import DecisionRecord

from bench import catalogs
from bench.decide_latency import MAX_ADS, SIZES
from bench.handler import check_response
from bench.handler_errors import counting_errors
from bench.stats import measure
from devstack.stack import LocalStack

FUNCTION = "DecideFunction"


def delete_campaigns(stack: LocalStack) -> None:
    """An empty campaigns table: earlier figures on the same stack (the cold start's) leave theirs behind."""
    store = CampaignStore(dynamodb_client(), stack.physical_name("CampaignsTable"))
    for campaign in store.list_campaigns():
        store.delete(campaign.campaign_id)


def put_campaigns(stack: LocalStack, campaigns: Sequence[Campaign]) -> None:
    store = CampaignStore(dynamodb_client(), stack.physical_name("CampaignsTable"))
    for campaign in campaigns:
        store.put(campaign)


def put_counters(stack: LocalStack, campaigns: list[Campaign], now: datetime) -> int:
    client = dynamodb_client()
    table = stack.physical_name("FrequencyCapsTable")
    pseudonyms = stack.pseudonyms()
    counters = catalogs.listener_counters(campaigns, now, pseudonyms)
    for counter in counters:
        client.put_item(
            TableName=table,
            Item={
                "listener_id": {"S": pseudonyms.listener(catalogs.LISTENER_ID)},
                "counter_key": {"S": counter.key},
                "impressions": {"N": str(counter.impressions)},
                "expires_at": {"N": str(int(counter.expires_at.timestamp()))},
            },
        )
    return len(counters)


def caps_query(stack: LocalStack) -> Callable[[], object]:
    """The handler's one caps read, as a bare call of its client: what moto alone costs per decision."""
    return partial(
        dynamodb_client().query,
        TableName=stack.physical_name("FrequencyCapsTable"),
        KeyConditionExpression="listener_id = :listener",
        ExpressionAttributeValues={":listener": {"S": stack.pseudonyms().listener(catalogs.LISTENER_ID)}},
        ProjectionExpression="counter_key, impressions, expires_at",
    )


def sqs_send(stack: LocalStack, body_bytes: int) -> Callable[[], object]:
    """A bare SendMessage of a decision record's size: moto's cost for the handler's second call."""
    return partial(
        sqs_send_client().send_message, QueueUrl=stack.env["OUTCOMES_QUEUE_URL"], MessageBody="x" * body_bytes
    )


def empty_queue(stack: LocalStack) -> None:
    """moto's SendMessage slows down as a queue fills; real SQS does not, so each size starts empty.

    Drained by receive + delete, since PurgeQueue is allowed once a minute only.
    """
    client = sqs_client()
    queue_url = stack.env["OUTCOMES_QUEUE_URL"]
    while True:
        messages = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def record_bytes(stack: LocalStack, candidates: int) -> int:
    """Size of the decision record the handler just published into the empty queue (received and deleted), which
    must hold *candidates* candidates."""
    client = sqs_client()
    queue_url = stack.env["OUTCOMES_QUEUE_URL"]
    messages = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1).get("Messages", [])
    if not messages:
        raise RuntimeError("the decide handler published no decision record")
    client.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    body = messages[0].get("Body", "")
    scored = len(DecisionRecord.model_validate_json(body).candidates)
    if scored != candidates:
        raise RuntimeError(f"the decision record holds {scored} candidates, not {candidates}")
    return len(body.encode())


def run(stack: LocalStack, quick: bool = False, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """Figure 1b, with ``PRERANK_TOP_K`` set for Decide alone while it runs (set and restored, the rest of the
    environment untouched) and the service built with it dropped after."""
    before = os.environ.get("PRERANK_TOP_K")
    os.environ["PRERANK_TOP_K"] = str(max(sizes))
    try:
        return _run(stack, quick, sizes)
    finally:
        if before is None:
            del os.environ["PRERANK_TOP_K"]
        else:
            os.environ["PRERANK_TOP_K"] = before
        stack.handler_module(FUNCTION).service.cache_clear()


def _run(stack: LocalStack, quick: bool, sizes: tuple[int, ...]) -> dict[str, Any]:
    iterations = 50 if quick else 200
    results: dict[str, Any] = {"sizes": {}}
    event = catalogs.api_gateway_event(catalogs.decision_request_document(MAX_ADS))
    module = stack.handler_module(FUNCTION)
    now = datetime.now(UTC)
    campaigns = catalogs.campaigns(max(sizes), now)
    delete_campaigns(stack)
    stored = 0
    for size in sizes:
        put_campaigns(stack, campaigns[stored:size])
        stored = size
        counters = put_counters(stack, campaigns[:size], now)
        module.service.cache_clear()  # the next invocation builds the service and loads the bigger catalog
        empty_queue(stack)
        check_response(stack.invoke(FUNCTION, event), MAX_ADS)
        body_bytes = record_bytes(stack, size)
        count = iterations if size <= 200 else max(iterations // 2, 50)
        warmup = max(count // 10, 10)
        empty_queue(stack)
        with counting_errors() as errors:
            handler = measure(partial(stack.invoke, FUNCTION, event), count, warmup)
        query = measure(caps_query(stack), count, warmup)
        empty_queue(stack)
        send = measure(sqs_send(stack, body_bytes), count, warmup)
        results["sizes"][str(size)] = {
            "counters": counters,
            "record_bytes": body_bytes,
            "full_handler": handler.to_dict(),
            "moto_caps_query": query.to_dict(),
            "moto_sqs_send_record": send.to_dict(),
            "handler_errors": errors.to_dict(),
        }
    return results
