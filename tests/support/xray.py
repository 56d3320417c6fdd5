"""An X-Ray recorder that keeps what it would send, for tests of what the lean clients trace."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Collected:
    """An X-Ray emitter that keeps what it would send to the daemon."""

    def __init__(self) -> None:
        self.entities: list[Any] = []

    def send_entity(self, entity: Any) -> None:
        self.entities.append(entity)

    def set_daemon_address(self, address: str) -> None:
        """No daemon."""


@contextmanager
def xray_recorder() -> Iterator[tuple[Any, Collected]]:
    """A recorder with the plain context (with Lambda's variables set, as the tests set some, it would take Lambda's
    own) and the SDK switched on for the block: Powertools' Tracer switches it off for the whole process while
    tracing is off, as in the tests."""
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core.context import Context
    from aws_xray_sdk.core.recorder import AWSXRayRecorder

    was = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    recorder, emitter = AWSXRayRecorder(), Collected()
    recorder.configure(sampling=False, emitter=emitter, context=Context(context_missing="RUNTIME_ERROR"))
    try:
        yield recorder, emitter
    finally:
        global_sdk_config.set_sdk_enabled(was)
