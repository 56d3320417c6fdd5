"""A function's execution environment in a process of its own, as Lambda gives every function its own.

``FunctionRuntime`` runs handlers in the stack's process, where the API functions must take turns (Powertools
keeps the event being resolved on a class, one per process) and every handler shares one interpreter lock, so
the stack runs on one core. A ``FunctionProcess`` runs the same ``FunctionRuntime`` in a child process started
on the first invocation (the cold start), with the environment ``os.environ`` had then: its handler takes no
turns with the API functions left in the stack's process and runs on another core. Each invocation costs a pipe
round trip and two process wake-ups, so it suits functions invoked with batches (``make demo`` runs Track and
Record so). Invocations of one function still never overlap (one environment per function). Events and
responses cross the pipe pickled; an exception the handler raises is raised again here, with the child's
traceback as a note; the EMF documents an invocation printed come back with its response, for the stack's
metrics listener.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from devstack.lambda_runtime import FunctionRuntime, MetricsListener
from devstack.stack_description import FunctionDefinition

__all__ = ["FunctionProcess", "FunctionProcesses", "process_cpu_seconds"]

_STOP_SECONDS = 10.0


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process *pid* has used: 0 where there is no /proc to read it from."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in clock ticks


class FunctionProcess:
    """One function's execution environment in a child process: lazy start, serialized invocations."""

    def __init__(
        self, definition: FunctionDefinition, region: str, account_id: str, on_metrics: MetricsListener | None = None
    ) -> None:
        self.definition = definition
        self._region = region
        self._account_id = account_id
        self._on_metrics = on_metrics
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._retired_cpu = 0.0

    def invoke(self, event: Any) -> Any:
        """Call the handler in the child with *event*; its exceptions are raised here."""
        with self._lock:
            connection = self._start()
            connection.send(event)
            try:
                outcome, value, documents = connection.recv()
            except EOFError:
                self._stop()
                raise RuntimeError(f"{self.definition.logical_id}: its process ended during an invocation") from None
        if documents and self._on_metrics is not None:
            self._on_metrics(self.definition, documents)
        if outcome == "raised":
            raise value
        return value

    def reset(self) -> None:
        """End the environment (also how the stack stops it): the next invocation, if any, starts a new process
        that reads os.environ again."""
        with self._lock:
            self._stop()

    def cpu_seconds(self) -> float:
        """CPU seconds this function's processes have used, the running one's and those already ended."""
        process = self._process
        running = process_cpu_seconds(process.pid) if process is not None and process.pid is not None else 0.0
        return self._retired_cpu + running

    def _start(self) -> Connection:
        if self._connection is not None:
            return self._connection
        context = multiprocessing.get_context("spawn")  # not fork: this process runs threads (pollers, moto)
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve,
            kwargs={
                "definition": self.definition,
                "region": self._region,
                "account_id": self._account_id,
                "collect_metrics": self._on_metrics is not None,
                "environment": dict(os.environ),
                "connection": child,
            },
            name=f"function-{self.definition.logical_id}",
            daemon=True,  # never outlives the stack's process
        )
        process.start()
        child.close()
        self._process, self._connection = process, parent
        return parent

    def _stop(self) -> None:
        process, connection = self._process, self._connection
        self._process, self._connection = None, None
        if process is None or connection is None:
            return
        cpu = process_cpu_seconds(process.pid) if process.pid is not None else 0.0
        connection.close()  # the child sees the end of the pipe and returns
        process.join(_STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
        self._retired_cpu += cpu


class FunctionProcesses:
    """Several execution environments of one function, each a ``FunctionProcess``, as Lambda runs concurrent
    invocations of a function: each invocation goes to an idle environment (waiting for one if all are busy), so
    as many run at once as there are environments. Each environment starts on its first invocation and keeps
    its own state (clients, caches, the model it serves), as Lambda's do."""

    def __init__(
        self,
        definition: FunctionDefinition,
        region: str,
        account_id: str,
        on_metrics: MetricsListener | None = None,
        environments: int = 1,
    ) -> None:
        if environments < 1:
            raise ValueError("a function needs at least one execution environment")
        self.definition = definition
        self.environments = [FunctionProcess(definition, region, account_id, on_metrics) for _ in range(environments)]
        self._idle: queue.SimpleQueue[FunctionProcess] = queue.SimpleQueue()
        for environment in self.environments:
            self._idle.put(environment)

    def invoke(self, event: Any) -> Any:
        """Call the handler in an idle environment (the one idle longest); its exceptions are raised here."""
        environment = self._idle.get()
        try:
            return environment.invoke(event)
        finally:
            self._idle.put(environment)

    def reset(self) -> None:
        """End every environment; the next invocations start new ones that read os.environ again."""
        for environment in self.environments:
            environment.reset()

    def cpu_seconds(self) -> float:
        """CPU seconds all of this function's processes have used."""
        return sum(environment.cpu_seconds() for environment in self.environments)


def _serve(
    *,
    definition: FunctionDefinition,
    region: str,
    account_id: str,
    collect_metrics: bool,
    environment: dict[str, str],
    connection: Connection,
) -> None:
    """The child: one ``FunctionRuntime`` answering invocations until the pipe closes."""
    os.environ.clear()
    os.environ.update(environment)
    documents: list[dict[str, Any]] = []

    def collect(_function: FunctionDefinition, printed: list[dict[str, Any]]) -> None:
        documents.extend(printed)

    runtime = FunctionRuntime(definition, region, account_id, collect if collect_metrics else None)
    while True:
        try:
            event = connection.recv()
        except EOFError:
            return
        documents.clear()
        try:
            connection.send(("returned", runtime.invoke(event), list(documents)))
        except Exception as error:  # noqa: BLE001 - the caller raises it, as the in-process runtime would
            connection.send(("raised", _portable(error), list(documents)))


def _portable(error: Exception) -> Exception:
    """*error* with the child's traceback as a note, or a RuntimeError naming it if it cannot be pickled."""
    text = "".join(traceback.format_exception(error))
    try:
        error.add_note(f"in the function's process:\n{text}")
        pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    except Exception:  # noqa: BLE001 - any failure to round-trip: send what can cross
        return RuntimeError(f"{type(error).__name__}: {error}\nin the function's process:\n{text}")
    return error
