"""Run a template function's handler in this process, as one Lambda execution environment would.

The handler module is imported from its file once per runtime (cold start) and then reused (warm), and
invocations of one function never overlap: the HTTP router keeps the current event on the module-level
``app``, exactly as it may in Lambda, where an environment serves one request at a time. Functions whose
state is shared in this process (the API functions, which share the HTTP layer) share one lock, so they never
overlap one another either.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from devstack.metrics_output import ThreadRoutedStdout, emf_documents
from devstack.stack_description import FunctionDefinition

__all__ = ["FunctionRuntime", "HandlerLoadError", "LocalLambdaContext", "MetricsListener"]

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]
MetricsListener = Callable[[FunctionDefinition, list[dict[str, Any]]], None]
"""Receives the EMF documents one invocation printed (instead of stdout getting them)."""


class HandlerLoadError(RuntimeError):
    """A function's CodeUri/Handler does not name an importable callable."""


@dataclass
class LocalLambdaContext:
    """The parts of ``LambdaContext`` that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionRuntime:
    """One execution environment per function: lazy import, serialized invocations."""

    def __init__(
        self,
        definition: FunctionDefinition,
        region: str,
        account_id: str,
        on_metrics: MetricsListener | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        """*on_metrics*, if given, gets each invocation's EMF documents; otherwise they go to stdout as in Lambda.

        *lock* is taken by every invocation (its own if none is given): functions that share state in this
        process, where Lambda gives each its own, share one, so their invocations never overlap either.
        """
        self.definition = definition
        self._on_metrics = on_metrics
        self._stdout = ThreadRoutedStdout.install() if on_metrics is not None else None
        self._arn = f"arn:aws:lambda:{region}:{account_id}:function:{definition.physical_name}"
        self._lock = lock or threading.Lock()
        self._module: ModuleType | None = None

    @property
    def module(self) -> ModuleType:
        """The handler module, imported on first use (the cold start)."""
        with self._lock:
            return self._load()

    def reset(self) -> None:
        """Discard the execution environment: the next invocation is a cold start that re-reads os.environ."""
        with self._lock:
            self._module = None

    def invoke(self, event: Any) -> Any:
        """Call the handler with *event* and a fresh context; exceptions propagate to the caller."""
        with self._lock:
            handler = getattr(self._load(), self.definition.handler_name)
            context = LocalLambdaContext(
                function_name=self.definition.physical_name,
                memory_limit_in_mb=self.definition.memory_mb,
                invoked_function_arn=self._arn,
                timeout_seconds=self.definition.timeout_seconds,
            )
            started = time.perf_counter()
            try:
                with self._collecting_metrics():
                    return handler(event, context)
            finally:
                elapsed = time.perf_counter() - started
                if elapsed > self.definition.timeout_seconds:
                    logger.warning(
                        "%s ran %.1f s, over its %d s timeout; Lambda would have stopped it",
                        self.definition.logical_id,
                        elapsed,
                        self.definition.timeout_seconds,
                    )

    @contextmanager
    def _collecting_metrics(self) -> Iterator[None]:
        if self._stdout is None or self._on_metrics is None:
            yield
            return
        with self._stdout.collecting() as lines:
            try:
                yield
            finally:
                documents = emf_documents(lines)
                if documents:
                    self._on_metrics(self.definition, documents)

    def _load(self) -> ModuleType:
        if self._module is not None:
            return self._module
        path = self.definition.module_file
        name = f"adserve_function_{self.definition.logical_id.lower()}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise HandlerLoadError(f"{self.definition.logical_id}: no handler module at {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # a fresh runtime replaces an older one of the same function
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        if not callable(getattr(module, self.definition.handler_name, None)):
            raise HandlerLoadError(
                f"{self.definition.logical_id}: {path} has no callable {self.definition.handler_name}"
            )
        self._module = module
        return module
