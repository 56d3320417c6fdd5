"""Argument types of the `adserve` commands: a value outside its domain is an argument error (exit 2) before
anything is read, not a traceback or a silently wrong run."""

import argparse
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", int, float)


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
