"""Tracking tokens: signed, expiring, bound to one event type; forgery and tampering are caught."""

import base64
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from adserve.core.errors import TokenError
from adserve.core.vocabulary import EventType
from adserve.outcomes.tokens import TokenSigner

from tests.support.builders import NOW, tracking_claims

KEY = b"k" * 32
CLAIMS = tracking_claims()


def test_a_signed_token_verifies_to_its_claims() -> None:
    signer = TokenSigner(KEY)
    assert signer.verify(signer.sign(CLAIMS), EventType.IMPRESSION, NOW) == CLAIMS


def test_a_token_for_one_event_type_is_refused_for_another() -> None:
    signer = TokenSigner(KEY)
    with pytest.raises(TokenError, match="not valid for click"):
        signer.verify(signer.sign(CLAIMS), EventType.CLICK, NOW)


def test_an_expired_token_is_refused() -> None:
    signer = TokenSigner(KEY)
    token = signer.sign(CLAIMS)
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, EventType.IMPRESSION, NOW + timedelta(hours=1))


def test_a_token_signed_with_another_key_is_refused() -> None:
    forged = TokenSigner(b"x" * 32).sign(CLAIMS)
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(KEY).verify(forged, EventType.IMPRESSION, NOW)


def test_a_tampered_payload_is_refused() -> None:
    signer = TokenSigner(KEY)
    payload, signature = signer.sign(CLAIMS).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["campaign_id"] = "cmp-rich"
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="signature"):
        signer.verify(f"{tampered}.{signature}", EventType.IMPRESSION, NOW)


@pytest.mark.parametrize("token", ["", "no-dot", ".sig", "payload.", "a" * 2000])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenError):
        TokenSigner(KEY).verify(token, EventType.IMPRESSION, NOW)


def test_a_validly_signed_payload_that_is_not_claims_is_refused() -> None:
    signer = TokenSigner(KEY)
    payload = base64.urlsafe_b64encode(b'{"unexpected": 1}').rstrip(b"=").decode()
    token = f"{payload}.{signer._signature(payload)}"
    with pytest.raises(TokenError, match="payload"):
        signer.verify(token, EventType.IMPRESSION, NOW)


def test_each_claim_change_changes_the_signature() -> None:
    signer = TokenSigner(KEY)
    assert signer.sign(CLAIMS) != signer.sign(replace(CLAIMS, ad_id="ad-2"))


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenSigner(b"short")
