"""Counts (and silences) the errors the handler logs while it is being timed.

Decide serves even when the caps read or the decision log fails (it logs the exception and degrades), so a
benchmark that only checked the response could silently time a degraded path. Against moto, a slow Query
past the 0.3 s caps budget is exactly that.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from adserve.core.observability import logger


class ErrorCounter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        self.count += 1
        if len(self.messages) < 3:
            self.messages.append(f"{record.getMessage()} ({record.exc_info[1] if record.exc_info else ''})")
        return False

    def to_dict(self) -> dict[str, object]:
        return {"count": self.count, "first": self.messages}


@contextmanager
def counting_errors() -> Iterator[ErrorCounter]:
    counter = ErrorCounter()
    logger.addFilter(counter)
    try:
        yield counter
    finally:
        logger.removeFilter(counter)
