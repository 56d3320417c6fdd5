"""Keyed listener pseudonyms: what adserve stores, queues, logs and signs instead of a listener id.

A pseudonym is HMAC-SHA256(key, domain + id), 128 bits in hex. Without the key it cannot be recomputed from
a list of ids (an unkeyed hash can: hash every candidate id and compare), so a leaked log, counter or token
names nobody. The key lives in Secrets Manager; Decide (which turns ids into pseudonyms) and the erasure
route (which must find a listener's data) are the only readers.

Rotating the key is crypto-shredding: pseudonyms made under the old key can no longer be linked to any
listener once the old key is gone (destroyed: Secrets Manager keeps an old version until it holds 100, and only
the functions' roles are kept to the current and previous ones), so logs written before the rotation stop being
personal data. It also
starts every listener's frequency counters afresh (they are keyed by the pseudonym): rotate at a quiet
hour, no more often than the longest cap window you sell matters to you. Erasure looks under the current
and the previous key, so a request arriving just after a rotation still finds what was written before it.
"""

import hashlib

from adserve.core.keyed_hash import HmacSha256

PSEUDONYM_HEX_LENGTH = 32
"""128 bits: collisions among a billion listeners have odds of about 1 in 10**20."""
LEGACY_HASH_HEX_LENGTH = 24
_DOMAIN = b"adserve listener pseudonym\x00"
_SESSION_DOMAIN = b"adserve session pseudonym\x00"


class _Keyed:
    """One HMAC key, keyed once: each pseudonym then costs copies of the keyed states and their updates."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a pseudonym key needs at least 32 bytes")
        self._mac = HmacSha256(key)

    def of(self, domain: bytes, value: str) -> str:
        return self._mac.digest(domain + value.encode()).hex()[:PSEUDONYM_HEX_LENGTH]


class Pseudonymizer:
    """Pseudonyms under the current key; the previous key's too, for erasure across a rotation."""

    def __init__(self, current: bytes, previous: bytes | None = None) -> None:
        self._current = _Keyed(current)
        self._previous = None if previous is None or previous == current else _Keyed(previous)

    def listener(self, listener_id: str) -> str:
        """The listener's pseudonym under the current key: the key of its counters, in tokens and logs."""
        return self._current.of(_DOMAIN, listener_id)

    def session(self, session_id: str) -> str:
        """An app's session id, keyed like a listener id: a session id can be as identifying as a user id."""
        return self._current.of(_SESSION_DOMAIN, session_id)

    def every_listener_pseudonym(self, listener_id: str) -> tuple[str, ...]:
        """Under the current key and, after a rotation, the previous one: where erasure must look."""
        keys = (self._current,) if self._previous is None else (self._current, self._previous)
        return tuple(key.of(_DOMAIN, listener_id) for key in keys)


def legacy_listener_hash(listener_id: str) -> str:
    """The unkeyed hash decision rows carried before keyed pseudonyms: erasure records it too, so the readers
    drop the listener's older rows as well (anyone with the id can compute it, so it hides nothing new)."""
    return hashlib.blake2b(listener_id.encode(), digest_size=12, person=b"adserve-listen").hexdigest()
