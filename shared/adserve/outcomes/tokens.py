"""Signed, expiring tracking tokens: the only proof Track accepts that an ad was really served.

A token is `kid.base64url(payload).base64url(HMAC-SHA256(key, "kid.payload"))`. The payload is compact JSON
naming the decision, the ad, the listener's keyed pseudonym (null without capping consent) and the one event
type the token may report, with an expiry. Tokens are signed, not encrypted, so they carry no listener id: a
URL log that holds one names nobody (adserve.privacy.pseudonyms).

`kid` names the key that signed the token, so the key can be rotated while tokens signed with the previous
one are still out in apps: Decide signs with the current key, Track verifies with whichever of the current
and previous keys the token names. The key id is derived from the key itself (a hash, see `key_id`), not
from the Secrets Manager version: it then cannot disagree with the key however the key was loaded, a
restored or copied secret keeps its id, and tests need no Secrets Manager to build one.

Tokens issued before key ids existed (`base64url(payload).signature`, the MAC over the payload alone) are
accepted when the current or the previous key verifies them, and so are tokens issued before pseudonyms,
which name a raw `listener_id`: it is dropped on reading (the event then counts toward delivery but no
frequency counter, as Track cannot pseudonymise without the key). Both live at most a token lifetime (7 days
at the most), so those branches can go once every such token has expired.
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Final

from adserve.core.errors import ExpiredTokenError, TokenError, WrongEventTypeError
from adserve.core.keyed_hash import HmacSha256
from adserve.core.vocabulary import EventType

MAX_TOKEN_LENGTH = 1024
KEY_ID_LENGTH = 8
"""48 bits of a SHA-256: the current and the previous key share an id once in 2**48 rotations."""
_KEY_ID_CONTEXT = b"adserve tracking-token key id\x00"
_PAYLOAD_ENDS_KEPT = 8
"""Payload tails kept per signer: a second's decisions need at most three (one per tail of the shared JSON)."""


class UnknownKeyError(TokenError):
    """A token names a key this environment does not hold: forged, retired by two rotations, or newer than
    this environment's cached keys (Decide rotated first). Answered like any invalid token."""


@dataclass(frozen=True, slots=True)
class TrackingClaims:
    decision_id: str
    ad_id: str
    campaign_id: str
    advertiser_id: str
    listener: str | None
    """The listener's pseudonym, present only when it consented to frequency capping (Record counts it)."""
    session: str
    event_type: str
    expires_at: int


def key_id(key: bytes) -> str:
    """A short public name for *key*: a domain-separated hash, which reveals nothing usable about the key."""
    return _b64encode(hashlib.sha256(_KEY_ID_CONTEXT + key).digest())[:KEY_ID_LENGTH]


class _SigningKey:
    """One HMAC key, keyed once: each signature then costs copies of the keyed states and their updates."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a signing key needs at least 32 bytes")
        self.key_id = key_id(key)
        self.mac = HmacSha256(key)

    def signature(self, message: str) -> str:
        return _b64encode(self.mac.digest(message.encode()))


class TokenSigner:
    """Signs with the current key; verifies with the current key or the previous one, as the token names."""

    def __init__(self, current: bytes, previous: bytes | None = None) -> None:
        self._current = _SigningKey(current)
        keys = [self._current] if previous is None else [self._current, _SigningKey(previous)]
        self._by_id = {key.key_id: key for key in reversed(keys)}  # equal keys: the current one wins
        self._keys = tuple(keys)
        self._ends: dict[tuple[bytes, bytes, tuple[str, ...]], tuple[tuple[str, bytes], ...]] = {}

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the keys this signer verifies with, current first (for logs and tests)."""
        return tuple(key.key_id for key in self._keys)

    def sign(self, claims: TrackingClaims) -> str:
        (token,) = self.sign_each(claims, (claims.event_type,))
        return token

    def sign_each(self, claims: TrackingClaims, event_types: tuple[str, ...]) -> list[str]:
        """One token per event type for otherwise equal claims (Decide signs four per ad), all with the
        current key.

        The compact JSON is what ``json.dumps`` of the claims gives, written field by field with its string
        encoder (a dict through ``json.dumps`` cost more than the four signatures of an ad). The tokens differ
        only from the event type on, so the JSON before it is encoded and MAC-hashed once, not once per token:
        base64 maps each 3 bytes to 4 characters on their own, so the shared bytes up to a multiple of 3 are
        encoded once and the rest per token (``_payload_ends``), and the MAC absorbs ``kid.`` and that shared
        base64 once (``HmacSha256.with_prefix``).
        """
        listener = "null" if claims.listener is None else _json_string(claims.listener)
        shared = (
            f'{{"decision_id":{_json_string(claims.decision_id)},"ad_id":{_json_string(claims.ad_id)},'
            f'"campaign_id":{_json_string(claims.campaign_id)},"advertiser_id":{_json_string(claims.advertiser_id)},'
            f'"listener":{listener},"session":{_json_string(claims.session)},"event_type":'
        ).encode()
        whole = len(shared) - len(shared) % 3
        key = self._current
        signed_head = f"{key.key_id}.{_b64encode(shared[:whole])}"
        mac = key.mac.with_prefix(signed_head.encode())
        tail = f',"expires_at":{int(claims.expires_at)}}}'.encode()
        return [
            f"{signed_head}{end}.{_b64encode(mac.digest(raw_end))}"
            for end, raw_end in self._payload_ends(shared[whole:], tail, event_types)
        ]

    def _payload_ends(self, rest: bytes, tail: bytes, event_types: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
        """Each token's base64 from the shared bytes' last ``len % 3`` on, as text and as the bytes the MAC reads.

        ``rest`` is one of the three tails of ``"event_type":``, so these depend only on it, the event types and
        the expiry after them: every ad of a decision, and every decision signed in the same second, shares
        them. Up to ``_PAYLOAD_ENDS_KEPT`` are kept, then all are dropped: a second's decisions need three.
        """
        cache_key = (rest, tail, event_types)
        ends = self._ends.get(cache_key)
        if ends is None:
            if len(self._ends) >= _PAYLOAD_ENDS_KEPT:
                self._ends.clear()
            texts = [_b64encode(rest + _json_string(event_type).encode() + tail) for event_type in event_types]
            ends = self._ends[cache_key] = tuple((text, text.encode()) for text in texts)
        return ends

    def verify(self, token: str, event_type: EventType, now: datetime) -> TrackingClaims:
        """Return the claims of a genuine, unexpired token for this event type; raise TokenError otherwise.

        Raises UnknownKeyError (a TokenError) when the token names a key this signer does not hold.
        """
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token is too long")
        parts = token.split(".")
        # base64url and dots only: compare_digest refuses (TypeError) a non-ASCII signature
        if not token.isascii() or not all(parts) or len(parts) not in (2, 3):
            raise TokenError("token is malformed")
        if len(parts) == 3:
            kid, payload, signature = parts
            key = self._by_id.get(kid)
            if key is None:
                raise UnknownKeyError("token names an unknown signing key")
            genuine = hmac.compare_digest(signature, key.signature(f"{kid}.{payload}"))
        else:  # issued before key ids: the MAC is over the payload alone
            payload, signature = parts
            genuine = any(hmac.compare_digest(signature, key.signature(payload)) for key in self._keys)
        if not genuine:
            raise TokenError("token signature is invalid")
        try:
            document = json.loads(_b64decode(payload))
            if "listener_id" in document:  # issued before pseudonyms: never carry the raw id further
                del document["listener_id"]
                document.update(listener=None, session="")
            # Claims this release does not know are left out: a later release may sign one while this one still
            # verifies its tokens (canaries, rollbacks), and what is signed cannot have been slipped in.
            claims = TrackingClaims(**{name: document[name] for name in _CLAIMS if name in document})
        except (ValueError, TypeError) as error:
            raise TokenError("token payload is malformed") from error
        if claims.event_type != event_type.value:
            raise WrongEventTypeError(f"token is not valid for {event_type.value} events")
        if claims.expires_at <= now.timestamp():
            raise ExpiredTokenError("token has expired")
        return claims


_CLAIMS: Final = tuple(field.name for field in fields(TrackingClaims))

_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def _b64encode(raw: bytes) -> str:
    """URL-safe base64 without padding (``base64.urlsafe_b64encode`` without its Python layers)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()


_json_string: Callable[[str], str] = encode_basestring_ascii
"""A string as ``json.dumps`` writes it (ASCII, escaped): the C function it calls."""


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
