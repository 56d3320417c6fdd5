"""Read a log partition's objects concurrently: S3 GETs are latency-bound, the readers are sequential.

``outcomes.logs`` lists one hour partition and then reads its objects in order. Wrapped in
``PrefetchingReader``, listing a partition starts fetching all of its objects on a small thread pool, and
each ``read_object`` waits for its own fetch. At most the objects of the partitions listed but not yet read
are in memory (compressed): about one hour of logs per kind.
"""

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Self

from adserve.outcomes.logs import OBJECT_SUFFIX, LogReader

DEFAULT_WORKERS = 10
"""botocore's default connection pool holds 10 connections per client; more threads would only queue."""


class PrefetchingReader:
    """A LogReader over another one; use as a context manager so the pool is shut down."""

    def __init__(self, store: LogReader, workers: int = DEFAULT_WORKERS) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="log-prefetch")
        self._pending: dict[str, Future[bytes]] = {}

    def list_keys(self, prefix: str) -> Iterator[str]:
        keys = list(self._store.list_keys(prefix))
        for key in keys:
            if key.endswith(OBJECT_SUFFIX) and key not in self._pending:
                self._pending[key] = self._pool.submit(self._store.read_object, key)
        return iter(keys)

    def read_object(self, key: str) -> bytes:
        future = self._pending.pop(key, None)
        return future.result() if future is not None else self._store.read_object(key)

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
