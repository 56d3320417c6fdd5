"""Rotating the signing key with live tracking URLs: Decide and Track in process against moto over HTTP.

The test gets a secret of its own (the worker's other tests keep the stack's), rotated the way the runbook
says, with `put_secret_value`: Secrets Manager moves AWSCURRENT to the new value and AWSPREVIOUS to the old.
Track's Secrets Manager calls go through a counting, fault-injecting proxy, so the test can see when Track
served its cached keys and when it reloaded them, and can make a reload fail.
"""

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import boto3
import pytest
from adserve.dal.aws_clients import dynamodb_client
from adserve.dal.campaign_store import CampaignStore
from adserve.outcomes.tokens import key_id

from devstack.stack import LocalStack
from tests.support.aws_proxy import AwsProxy, aws_proxy
from tests.support.builders import campaign
from tests.support.outcomes_queue import drain

EVENTS = Path(__file__).parents[2] / "events"
DECIDE, TRACK = "DecideFunction", "TrackFunction"
REFRESH_SECONDS = 1.0
"""Track's UNKNOWN_KEY_REFRESH_SECONDS here: an unknown key id reloads the keys at most once a second."""
ADOPTION_SECONDS = 3.0
"""Decide's SIGNING_KEY_ADOPTION_SECONDS here: longer than Track's interval by more than the second to which
moto truncates a version's CreatedDate."""


@dataclass
class Rotation:
    stack: LocalStack
    proxy: AwsProxy
    secret_id: str

    def rotate(self) -> bytes:
        """Write a new random key, as the runbook's procedure does; returns it."""
        key = secrets.token_urlsafe(48)
        boto3.client("secretsmanager", endpoint_url=self.stack.endpoint_url).put_secret_value(
            SecretId=self.secret_id, SecretString=key
        )
        return key.encode()

    def decide(self) -> dict[str, str]:
        """A decision's first ad's tracking tokens, by event type."""
        response = self.stack.invoke(DECIDE, json.loads((EVENTS / "decide_post_decision.json").read_text()))
        assert response["statusCode"] == 200, response
        [ad, *_] = json.loads(response["body"])["ads"]
        return {kind: parse_qs(urlparse(url).query)["t"][0] for kind, url in ad["tracking"].items()}

    def beacon(self, event_type: str, token: str) -> dict[str, Any]:
        """Fire a beacon; the Secrets Manager calls it made are in `proxy.calls`."""
        self.proxy.calls.clear()
        function_id, event = self.stack.http_event("GET", f"/v1/events/{event_type}", query=urlencode({"t": token}))
        response: dict[str, Any] = self.stack.invoke(function_id, event)
        return response

    def key_reads(self) -> int:
        return self.proxy.calls["GetSecretValue"]


def error_code(response: dict[str, Any]) -> str:
    code: str = json.loads(response["body"])["error"]["code"]
    return code


def past_the_adoption_delay() -> None:
    """The key written before this call is old enough to sign with."""
    time.sleep(ADOPTION_SECONDS * 1.2)


def past_the_refresh_interval() -> None:
    """Track reloaded its keys before this call: once it returns, an unknown key id may reload them again."""
    time.sleep(REFRESH_SECONDS * 1.2)


@pytest.fixture
def rotation(local_stack: LocalStack) -> Iterator[Rotation]:
    """A fresh secret for Decide and Track, Secrets Manager behind a proxy, and campaigns to decide on."""
    secrets_client = boto3.client("secretsmanager", endpoint_url=local_stack.endpoint_url)
    secret_id = secrets_client.create_secret(
        Name=f"rotation-{uuid.uuid4().hex[:8]}", SecretString=secrets.token_urlsafe(48)
    )["ARN"]
    store = CampaignStore(
        dynamodb_client(endpoint_url=local_stack.endpoint_url), local_stack.physical_name("CampaignsTable")
    )
    seeded = campaign(campaign_id=f"rotation-{uuid.uuid4().hex[:8]}", advertiser_id="adv-rotation", value_cpm=950)
    store.put(seeded)
    with aws_proxy(local_stack.endpoint_url) as proxy, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url)
        patch.setenv("SIGNING_KEY_SECRET_ID", secret_id)
        patch.setenv("UNKNOWN_KEY_REFRESH_SECONDS", str(REFRESH_SECONDS))
        patch.setenv("SIGNING_KEY_ADOPTION_SECONDS", str(ADOPTION_SECONDS))
        local_stack.reset_function(DECIDE)
        local_stack.reset_function(TRACK)
        try:
            yield Rotation(local_stack, proxy, secret_id)
        finally:
            store.delete(seeded.campaign_id)
            secrets_client.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
    local_stack.reset_function(DECIDE)
    local_stack.reset_function(TRACK)
    drain(local_stack)


def test_tracking_urls_outlive_one_rotation_and_not_two(rotation: Rotation) -> None:
    # Given a token Decide signed with the first key, which Track accepts (loading the current key only)
    first_key = boto3.client("secretsmanager", endpoint_url=rotation.stack.endpoint_url).get_secret_value(
        SecretId=rotation.secret_id
    )["SecretString"]
    first = rotation.decide()
    assert first["impression"].split(".")[0] == key_id(first_key.encode())
    assert rotation.beacon("impression", first["impression"])["statusCode"] == 204

    # When the key is rotated, Track's cache still holds the first key: the token is accepted, no reload
    second_key = rotation.rotate()
    assert rotation.beacon("click", first["click"])["statusCode"] == 204
    assert rotation.key_reads() == 0

    # And a Decide environment that reloads at once still signs with the first key: the second is younger than
    # the adoption delay, within which a Track that had just reloaded (as this one did) could not reload for it
    rotation.stack.reset_function(DECIDE)
    early = rotation.decide()
    assert early["impression"].split(".")[0] == key_id(first_key.encode())
    assert rotation.beacon("impression", early["impression"])["statusCode"] == 204
    assert rotation.key_reads() == 0

    # And once the second key is older than that, a Decide environment that reloads signs with it, and Track,
    # whose keys predate it, reloads for it at once
    past_the_adoption_delay()
    rotation.stack.reset_function(DECIDE)
    second = rotation.decide()
    assert second["impression"].split(".")[0] == key_id(second_key)
    assert rotation.beacon("impression", second["impression"])["statusCode"] == 204
    assert rotation.key_reads() == 2  # AWSCURRENT and AWSPREVIOUS
    # Then with the reloaded keys, the first key's tokens are still accepted: it is AWSPREVIOUS now
    assert rotation.beacon("complete", first["complete"])["statusCode"] == 204
    assert rotation.key_reads() == 0

    # When the key is rotated a second time and Track reloads (a token of the third key)
    third_key = rotation.rotate()
    past_the_adoption_delay()
    rotation.stack.reset_function(DECIDE)
    third = rotation.decide()
    assert third["impression"].split(".")[0] == key_id(third_key)
    assert rotation.beacon("impression", third["impression"])["statusCode"] == 204
    # Then the first key is gone: its token is refused (and reloading once more does not bring it back)
    past_the_refresh_interval()
    refused = rotation.beacon("skip", first["skip"])
    assert (refused["statusCode"], error_code(refused)) == (403, "invalid_token")
    assert rotation.key_reads() == 2
    # While the second key's tokens are still accepted
    assert rotation.beacon("click", second["click"])["statusCode"] == 204


def test_a_failed_reload_keeps_the_cached_keys_serving(rotation: Rotation, capsys: pytest.CaptureFixture[str]) -> None:
    # Given Track holding the current key, then Secrets Manager failing every read
    tokens = rotation.decide()
    assert rotation.beacon("impression", tokens["impression"])["statusCode"] == 204
    rotation.proxy.throttle.add("GetSecretValue")
    # When a token naming an unknown key makes Track try to reload
    forged = f"{key_id(b'not-our-key' * 4)}.{tokens['click'].split('.', 1)[1]}"
    past_the_refresh_interval()
    refused = rotation.beacon("click", forged)
    # Then the reload was tried and failed (a metric says so), and the token, whose key may be a new one Track could
    # not fetch, is answered "retry" (503 with Retry-After), not refused for good with a 403
    assert (refused["statusCode"], error_code(refused)) == (503, "keys_unavailable")
    assert refused["headers"]["Retry-After"] == "1"
    assert rotation.key_reads() == 1
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [doc["SigningKeyRefreshFailures"] for doc in emitted if "SigningKeyRefreshFailures" in doc] == [[1.0]]
    # And the cached key keeps verifying genuine tokens, without another read within the interval
    assert rotation.beacon("click", tokens["click"])["statusCode"] == 204
    assert rotation.beacon("complete", forged.replace(forged[:8], key_id(b"another-key" * 4)))["statusCode"] == 503
    assert rotation.key_reads() == 0


def test_an_environment_that_cannot_read_its_keys_answers_retry_not_a_500(rotation: Rotation) -> None:
    # Given genuine tokens, then a fresh Track environment while Secrets Manager fails every read
    tokens = rotation.decide()
    rotation.proxy.throttle.add("GetSecretValue")
    rotation.stack.reset_function(TRACK)
    # When a beacon and a batch arrive, they are answered "retry": a 503 with Retry-After, and "failed" per event
    refused = rotation.beacon("impression", tokens["impression"])
    assert (refused["statusCode"], error_code(refused)) == (503, "keys_unavailable")
    events = [
        {"event_id": f"e-{kind}", "type": kind, "token": tokens[kind], "occurred_at": "2026-11-25T13:00:00Z"}
        for kind in ("impression", "click")
    ]
    function_id, event = rotation.stack.http_event("POST", "/v1/events", body=json.dumps({"events": events}))
    batch = rotation.stack.invoke(function_id, event)
    assert batch["statusCode"] == 202, batch
    answer = json.loads(batch["body"])
    assert (answer["accepted"], answer["failed"]) == (0, 2)
    assert {result["status"] for result in answer["results"]} == {"failed"}
    # and once Secrets Manager answers, the same beacon is accepted
    rotation.proxy.throttle.discard("GetSecretValue")
    assert rotation.beacon("impression", tokens["impression"])["statusCode"] == 204
