"""Argument types of the `adserve` commands: a value outside its domain is an argument error (exit 2) before
anything is read, not a traceback or a silently wrong run."""

import argparse
from collections.abc import Callable
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from adserve.core.identifiers import Identifier

T = TypeVar("T", int, float)
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


def checked(convert: Callable[[str], T], valid: Callable[[T], bool], expected: str) -> Callable[[str], T]:
    """An argparse type: *convert*ed text for which *valid* holds, else an error saying what was *expected*."""

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {expected}: {text!r}") from None
        if not valid(value):  # NaN fails every comparison, so every bound refuses it
            raise argparse.ArgumentTypeError(f"not {expected}: {text!r}")
        return value

    return parse


def identifier(what: str) -> Callable[[str], str]:
    """An argparse type: an Identifier (core.identifiers), as the routes accept; the message names *what* it is
    and does not echo the text (a listener id is personal)."""

    def parse(text: str) -> str:
        try:
            return _IDENTIFIER.validate_python(text)
        except ValidationError:
            raise argparse.ArgumentTypeError(f"not a {what} id: 1-64 of A-Z a-z 0-9 _ . : -") from None

    return parse
