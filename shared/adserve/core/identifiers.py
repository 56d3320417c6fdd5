"""Bounded, constrained string types shared by every API model."""

import re
from datetime import datetime
from typing import Annotated, Final

from pydantic import BeforeValidator, StringConstraints

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
"""Ids of listeners, campaigns, advertisers, ads and sessions: 1..64 safe characters."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2, upper case."""

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
"""Lower-case tokens such as genres and categories."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


_SECONDS_SINCE_1970: Final = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
"""The text pydantic reads as a Unix time rather than a date-time: a number written as a string."""


def _date_time_text(value: object) -> object:
    """A date-time string for pydantic to parse as RFC 3339 (or a datetime, from Python): lax validation also reads
    a number, or a string of one, as seconds since 1970 (``0``: 1970, ``"1900000000"``: 2030)."""
    if isinstance(value, datetime) or (isinstance(value, str) and not _SECONDS_SINCE_1970.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time string with a timezone, e.g. 2026-01-01T00:00:00Z")


DateTimeText: Final = BeforeValidator(_date_time_text)
"""Annotate a ``datetime`` a caller writes with it."""
