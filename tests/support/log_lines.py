"""adserve's log lines as Powertools formats them (JSON), read through a handler added for the test, so a
check does not depend on which stream the logger was bound to when the worker imported it."""

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adserve.core.observability import logger


@contextmanager
def powertools_log_lines(level: str = "DEBUG") -> Iterator[list[dict[str, Any]]]:
    """The JSON lines adserve's logger writes meanwhile, at *level* and above."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    previous = logger.log_level
    standard = logging.getLogger(logger.name)  # the stdlib logger Powertools logs through
    standard.addHandler(handler)
    logger.setLevel(level)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        standard.removeHandler(handler)
        logger.setLevel(previous)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
