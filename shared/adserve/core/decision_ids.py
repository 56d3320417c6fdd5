"""Decision ids: time-ordered UUIDs (RFC 9562, version 7) that say when the decision was made.

The id travels in every tracking token, signed, so Track knows from it alone, in a token format every deployed
Track already reads, that no event of the decision happened earlier (``decided_at``). 48 bits of Unix
milliseconds, then 74 random bits: ids of one millisecond collide once in some 10**22 pairs.
"""

import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_decision_id() -> str:
    """A version-7 UUID of now, as ``str(uuid.UUID(...))`` writes it, without building a ``uuid.UUID``."""
    raw = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))
    raw[6] = raw[6] & 0x0F | 0x70  # version 7
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 9562 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def decided_at(decision_id: str) -> datetime | None:
    """When a version-7 decision id was made (to the millisecond); None for any other id (version-4 ids were
    issued before ids said when).

    The canonical form ``new_decision_id`` writes is read from its text (Record reads one per outcome: building
    a ``uuid.UUID`` took half as long again); any other text, through ``uuid.UUID``, as before."""
    if _CANONICAL_V7.fullmatch(decision_id):
        return _EPOCH + timedelta(milliseconds=int(decision_id[:8] + decision_id[9:13], 16))
    try:
        parsed = uuid.UUID(decision_id)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return _EPOCH + timedelta(milliseconds=parsed.int >> 80)


_CANONICAL_V7 = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")
"""A version-7 id in canonical form: 48 bits of milliseconds, then the version and the RFC 9562 variant."""
