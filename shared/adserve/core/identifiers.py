"""Bounded, constrained string types shared by every API model."""

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


def _iso_date_time(value: object) -> object:
    """An ISO 8601 date-time string, parsed (or a datetime, from Python): lax validation reads a number, or a string
    of digits, as seconds since 1970."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be an ISO 8601 date-time string with a timezone, e.g. 2026-01-01T00:00:00Z")


IsoDateTimeText: Final = BeforeValidator(_iso_date_time)
"""Annotate a ``datetime`` a caller writes with it."""
