"""Bounded, constrained string types shared by every API model."""

from typing import Annotated

from pydantic import StringConstraints

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
"""Ids of listeners, campaigns, advertisers, ads and sessions: 1..64 safe characters."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2, upper case."""

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
"""Lower-case tokens such as genres and categories."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
