"""Signed, expiring tracking tokens: the only proof Track accepts that an ad was really served.

A token is `base64url(payload).base64url(HMAC-SHA256(key, payload))`. The payload is compact JSON naming
the decision, the ad, the listener and the one event type the token may report, with an expiry. Tokens are
signed, not encrypted: they carry nothing the listener's own app does not already know.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from adserve.core.errors import ExpiredTokenError, TokenError, WrongEventTypeError
from adserve.core.vocabulary import EventType

MAX_TOKEN_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class TrackingClaims:
    decision_id: str
    ad_id: str
    campaign_id: str
    advertiser_id: str
    listener_id: str
    session: str
    event_type: str
    expires_at: int


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a signing key needs at least 32 bytes")
        self._key = key

    def sign(self, claims: TrackingClaims) -> str:
        payload = _b64encode(json.dumps(asdict(claims), separators=(",", ":")).encode())
        return f"{payload}.{self._signature(payload)}"

    def verify(self, token: str, event_type: EventType, now: datetime) -> TrackingClaims:
        """Return the claims of a genuine, unexpired token for this event type; raise TokenError otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token is too long")
        payload, separator, signature = token.partition(".")
        if not separator or not payload or not signature:
            raise TokenError("token is malformed")
        if not hmac.compare_digest(signature, self._signature(payload)):
            raise TokenError("token signature is invalid")
        try:
            claims = TrackingClaims(**json.loads(_b64decode(payload)))
        except (ValueError, TypeError) as error:
            raise TokenError("token payload is malformed") from error
        if claims.event_type != event_type.value:
            raise WrongEventTypeError(f"token is not valid for {event_type.value} events")
        if claims.expires_at <= now.timestamp():
            raise ExpiredTokenError("token has expired")
        return claims

    def _signature(self, payload: str) -> str:
        return _b64encode(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
