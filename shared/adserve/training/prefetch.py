"""Read a log partition's objects concurrently: S3 GETs are latency-bound, the readers are sequential.

``outcomes.logs`` lists one hour partition and then reads its objects in order. Wrapped in
``PrefetchingReader``, the first read of an object starts fetching the others listed with it on a small thread
pool, and each ``read_object`` waits for its own fetch. Listing alone fetches nothing: the retrain schedule
counts a whole window's decisions by listing (``count_rows_at_most``), and a run found not due must not GET, nor
hold, every object of it; the few objects it must read (named before names carried their count) it reads
``without_prefetch``. At most the objects of the partitions being read are in memory (compressed): about
one hour of logs per kind.
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
        self._listed: dict[str, tuple[str, ...]] = {}
        """Objects listed and not yet fetched, each with the objects listed with it."""

    def list_keys(self, prefix: str) -> Iterator[str]:
        keys = list(self._store.list_keys(prefix))
        batch = tuple(key for key in keys if key.endswith(OBJECT_SUFFIX) and key not in self._pending)
        for key in batch:
            self._listed[key] = batch
        return iter(keys)

    def read_object(self, key: str) -> bytes:
        for other in self._listed.pop(key, ()):  # its first read: fetch the rest of its listing meanwhile
            if other != key and self._listed.pop(other, None) is not None:
                self._pending[other] = self._pool.submit(self._store.read_object, other)
        future = self._pending.pop(key, None)
        return future.result() if future is not None else self._store.read_object(key)

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._listed.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def without_prefetch(reader: LogReader) -> LogReader:
    """*reader*'s own store when it prefetches: for reads of one object alone. Counting rows by listing
    (``count_rows_at_most``) reads the objects named before names carried their count, and through the prefetcher
    each such read would start fetching every object listed with it and hold them until the dataset reads their hour:
    a whole window's logs in memory, or fetched for nothing by a run found not due."""
    return reader._store if isinstance(reader, PrefetchingReader) else reader
