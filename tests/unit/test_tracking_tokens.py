"""Tracking tokens: signed, expiring, bound to one event type and naming their key; forgery, tampering and
retired keys are caught, and a token signed just before a rotation stays valid."""

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, replace
from datetime import timedelta

import pytest
from adserve.core.errors import ExpiredTokenError, TokenError
from adserve.core.vocabulary import EventType
from adserve.outcomes.tokens import TokenSigner, TrackingClaims, UnknownKeyError, key_id

from tests.support.builders import NOW, tracking_claims

KEY = b"k" * 32
OLD_KEY = b"o" * 32
NEW_KEY = b"n" * 32
CLAIMS = tracking_claims()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mac(key: bytes, message: str) -> str:
    """The documented signature, computed independently of TokenSigner."""
    return b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


def payload_of(claims: dict[str, object]) -> str:
    return b64(json.dumps(claims, separators=(",", ":")).encode())


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


def test_a_token_names_its_key_and_is_the_documented_hmac() -> None:
    token = TokenSigner(KEY).sign(CLAIMS)
    kid, payload, signature = token.split(".")
    assert kid == key_id(KEY)
    assert len(kid) == 8
    assert signature == mac(KEY, f"{kid}.{payload}")


def test_key_ids_tell_keys_apart_and_do_not_expose_them() -> None:
    assert key_id(KEY) == key_id(bytes(KEY))
    assert key_id(KEY) != key_id(OLD_KEY)
    assert key_id(KEY) not in (b64(KEY), b64(hashlib.sha256(KEY).digest()))


def test_a_token_signed_with_another_key_is_refused() -> None:
    forged = TokenSigner(b"x" * 32).sign(CLAIMS)
    with pytest.raises(UnknownKeyError, match="unknown signing key"):
        TokenSigner(KEY).verify(forged, EventType.IMPRESSION, NOW)


def test_a_token_naming_our_key_but_signed_with_another_is_refused() -> None:
    _, payload, _ = TokenSigner(KEY).sign(CLAIMS).split(".")
    forged = f"{key_id(KEY)}.{payload}.{mac(b'x' * 32, f'{key_id(KEY)}.{payload}')}"
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(KEY).verify(forged, EventType.IMPRESSION, NOW)


def test_a_tampered_payload_is_refused() -> None:
    signer = TokenSigner(KEY)
    kid, payload, signature = signer.sign(CLAIMS).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["campaign_id"] = "cmp-rich"
    with pytest.raises(TokenError, match="signature"):
        signer.verify(f"{kid}.{payload_of(claims)}.{signature}", EventType.IMPRESSION, NOW)


def test_a_tampered_key_id_is_refused() -> None:
    # Given a signer holding both keys and a token signed with the old one
    signer = TokenSigner(NEW_KEY, previous=OLD_KEY)
    _, payload, signature = TokenSigner(OLD_KEY).sign(CLAIMS).split(".")
    # When its key id is switched to the other key the signer holds, the signature no longer matches
    with pytest.raises(TokenError, match="signature"):
        signer.verify(f"{key_id(NEW_KEY)}.{payload}.{signature}", EventType.IMPRESSION, NOW)
    # And an id it does not hold is refused before any MAC is computed
    with pytest.raises(UnknownKeyError):
        signer.verify(f"{key_id(b'z' * 32)}.{payload}.{signature}", EventType.IMPRESSION, NOW)


def test_a_token_signed_before_a_rotation_verifies_with_the_previous_key() -> None:
    # Given a token signed with the key that was current until a rotation
    token = TokenSigner(OLD_KEY).sign(CLAIMS)
    # When the keys rotate (the old key becomes the previous one)
    rotated = TokenSigner(NEW_KEY, previous=OLD_KEY)
    # Then the token still verifies, and new tokens are signed with the new key
    assert rotated.verify(token, EventType.IMPRESSION, NOW) == CLAIMS
    assert rotated.sign(CLAIMS).split(".")[0] == key_id(NEW_KEY)
    assert rotated.key_ids == (key_id(NEW_KEY), key_id(OLD_KEY))


def test_a_second_rotation_retires_the_first_key() -> None:
    token = TokenSigner(OLD_KEY).sign(CLAIMS)
    twice_rotated = TokenSigner(b"t" * 32, previous=NEW_KEY)
    with pytest.raises(UnknownKeyError):
        twice_rotated.verify(token, EventType.IMPRESSION, NOW)


def test_an_expired_token_of_the_previous_key_is_still_refused() -> None:
    token = TokenSigner(OLD_KEY).sign(CLAIMS)
    rotated = TokenSigner(NEW_KEY, previous=OLD_KEY)
    with pytest.raises(ExpiredTokenError):
        rotated.verify(token, EventType.IMPRESSION, NOW + timedelta(hours=1))


def test_a_token_issued_before_key_ids_verifies_with_the_current_or_previous_key() -> None:
    # A token of the format before key ids: base64url(payload).HMAC(key, payload)
    payload = TokenSigner(OLD_KEY).sign(CLAIMS).split(".")[1]
    legacy = f"{payload}.{mac(OLD_KEY, payload)}"
    assert TokenSigner(OLD_KEY).verify(legacy, EventType.IMPRESSION, NOW) == CLAIMS
    assert TokenSigner(NEW_KEY, previous=OLD_KEY).verify(legacy, EventType.IMPRESSION, NOW) == CLAIMS
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(b"t" * 32, previous=NEW_KEY).verify(legacy, EventType.IMPRESSION, NOW)


def test_a_new_token_with_its_key_id_cut_off_is_not_a_valid_old_one() -> None:
    # The MAC of a new token covers "kid.payload", so dropping the id does not yield a legacy token
    _, payload, signature = TokenSigner(KEY).sign(CLAIMS).split(".")
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(KEY).verify(f"{payload}.{signature}", EventType.IMPRESSION, NOW)


@pytest.mark.parametrize(
    "token",
    [
        *("", "no-dot", ".sig", "payload.", "kid..sig", "a.b.c.d", "a" * 2000),
        *("payload.sig\u00e9", f"{key_id(KEY)}.payload.sig\u00e9"),  # non-ASCII: compare_digest would raise
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenError):
        TokenSigner(KEY).verify(token, EventType.IMPRESSION, NOW)


def test_a_claim_a_later_release_signs_is_left_out_not_refused() -> None:
    # Given a genuine token whose payload holds a claim this release does not know
    signed = f"{key_id(KEY)}.{payload_of(asdict(CLAIMS) | {'signed_by': 'a later release'})}"
    # When it is verified, it is accepted with the claims this release knows
    assert TokenSigner(KEY).verify(f"{signed}.{mac(KEY, signed)}", EventType.IMPRESSION, NOW) == CLAIMS


def test_a_token_issued_before_pseudonyms_verifies_without_its_raw_listener_id() -> None:
    # Given a genuine token of the format before pseudonyms, which named the raw listener id and session
    claims = {k: v for k, v in asdict(CLAIMS).items() if k != "listener"} | {"listener_id": "listener-7"}
    signed = f"{key_id(KEY)}.{payload_of(claims | {'session': 's:session-7'})}"
    # When it is verified
    verified = TokenSigner(KEY).verify(f"{signed}.{mac(KEY, signed)}", EventType.IMPRESSION, NOW)
    # Then its event is kept, but neither the raw id nor the raw session goes any further
    assert verified == replace(CLAIMS, listener=None, session="")


def test_a_validly_signed_payload_that_is_not_claims_is_refused() -> None:
    signer = TokenSigner(KEY)
    signed = f"{key_id(KEY)}.{payload_of({'unexpected': 1})}"
    token = f"{signed}.{mac(KEY, signed)}"
    with pytest.raises(TokenError, match="payload"):
        signer.verify(token, EventType.IMPRESSION, NOW)


def test_each_claim_change_changes_the_signature() -> None:
    signer = TokenSigner(KEY)
    assert signer.sign(CLAIMS) != signer.sign(replace(CLAIMS, ad_id="ad-2"))


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenSigner(b"short")


def test_short_previous_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenSigner(KEY, previous=b"short")


@pytest.mark.parametrize(
    "claims",
    [
        tracking_claims(listener='lístener "1"', expires_at=1_795_635_000),
        tracking_claims(listener=None, session="", ad_id="ad\\\u2028\t1"),
    ],
)
def test_tokens_signed_per_event_type_carry_the_claims_as_compact_json(claims: TrackingClaims) -> None:
    # Given claims and the JSON a plain json.dumps of them gives for each event type
    signer = TokenSigner(b"k" * 32, previous=KEY)
    types = tuple(event_type.value for event_type in EventType)
    # When one call signs a token per event type
    tokens = signer.sign_each(claims, types)
    # Then each names the current key, its payload is exactly that JSON, and it verifies for its own type only
    for event_type, token in zip(types, tokens, strict=True):
        kid, payload, _ = token.split(".")
        assert kid == key_id(b"k" * 32)
        expected = json.dumps({**asdict(claims), "event_type": event_type}, separators=(",", ":"))
        assert base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode() == expected
        assert signer.verify(token, EventType(event_type), NOW).event_type == event_type


@pytest.mark.parametrize("ad_id", ["ad-1", "ad-12", "ad-123"])
def test_each_token_is_the_mac_of_its_whole_payload_whatever_the_shared_jsons_length(ad_id: str) -> None:
    # Given claims whose JSON before the event type has each length modulo 3 (base64's group of bytes)
    claims = tracking_claims(ad_id=ad_id)
    types = tuple(event_type.value for event_type in EventType)
    # When one call signs a token per event type
    tokens = TokenSigner(KEY).sign_each(claims, types)
    # Then each is kid.base64url(JSON).base64url(HMAC(kid.payload)), as if signed alone
    kid = key_id(KEY)
    for event_type, token in zip(types, tokens, strict=True):
        document = json.dumps({**asdict(claims), "event_type": event_type}, separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(document).rstrip(b"=").decode()
        mac = hmac.new(KEY, f"{kid}.{payload}".encode(), hashlib.sha256).digest()
        assert token == f"{kid}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_a_signer_that_signed_other_claims_before_signs_as_a_fresh_one() -> None:
    # Given one signer that signs, in turn, claims of every shared-JSON length modulo 3 over many expiries
    signer = TokenSigner(KEY)
    types = tuple(event_type.value for event_type in EventType)
    claims = [
        tracking_claims(ad_id=ad_id, expires_at=1_795_635_000 + second)
        for second in (0, 0, 1, 2, 3, 4, 5, 0)
        for ad_id in ("ad-1", "ad-12", "ad-123")
    ]
    # When it signs them all, back and forth across the seconds, with all types and with one
    signed = [(signer.sign_each(each, types), signer.sign(each)) for each in claims]
    # Then every token is the one a signer that never signed anything before makes
    for each, (tokens, single) in zip(claims, signed, strict=True):
        assert tokens == TokenSigner(KEY).sign_each(each, types)
        assert single == TokenSigner(KEY).sign(each)
