"""A value loaded lazily once per execution environment and reloaded after a time-to-live.

Shared by the catalogs Decide and Record keep: if a reload fails the previous value keeps serving (and the
next attempt waits another TTL, so an outage of the source is not hammered); with no previous value there is
nothing to serve, so the first load may try again at once (``first_load_attempts``) before the error
propagates. A failed reload does not make the value younger: ``age_seconds`` is the time since the last
successful load, so a caller can refuse a value that has been stale for too long.
"""

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Generic, TypeVar

from adserve.core.observability import logger

T = TypeVar("T")

_RELOAD_WHILE: ContextVar[Callable[[], bool] | None] = ContextVar("reload_while", default=None)


class reloads_while:  # noqa: N801 - used as a context manager, named as the phrase it reads like
    """Within the block, a value that is due but still held is reloaded only while *in_time* says so; past it,
    it serves what it holds and reloads in a later block (its due time is left as it was). A first load
    (nothing held, or a SnapStart restore's value of unknown age, until its first attempt) always runs.

    Decide reloads inline on a request (catalog, model pointer, keys), each within its own client's time budget.
    With dependencies stalled, their budgets added up past the function's 3 s timeout, and a timed-out request
    answers a 5xx and emits none of the metrics its failures would have. A time window, not a count: at low
    traffic every value is due on every request, and a count of reloads let the first one read starve the
    others (the catalog past its max age: no ads). A class rather than a generator: it wraps every decision,
    and ``contextlib.contextmanager`` costs a few microseconds more.
    """

    __slots__ = ("_in_time", "_token")

    def __init__(self, in_time: Callable[[], bool]) -> None:
        self._in_time = in_time

    def __enter__(self) -> None:
        self._token = _RELOAD_WHILE.set(self._in_time)

    def __exit__(self, *_: object) -> None:
        _RELOAD_WHILE.reset(self._token)


def _may_reload() -> bool:
    """Whether the current block (``reloads_while``) still allows a reload; always outside one."""
    in_time = _RELOAD_WHILE.get()
    return in_time is None or in_time()


FIRST_LOAD_RETRY_SECONDS = 5.0
"""How soon a value of unknown age (``expire``) whose reload failed is tried again: as a value never loaded
would be at its next call, not a whole TTL later."""


@dataclass(frozen=True)
class _Loaded(Generic[T]):
    value: T
    loaded_at: float
    """When the value was loaded."""
    attempted_at: float
    """When a reload was last attempted, successful or not: the TTL counts from here."""


class RefreshingValue(Generic[T]):
    def __init__(
        self,
        load: Callable[[], T],
        ttl_seconds: float,
        *,
        name: str,
        first_load_attempts: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._name = name
        self._first_load_attempts = first_load_attempts
        self._monotonic = monotonic
        self._loaded: _Loaded[T] | None = None

    def get(self) -> T:
        """The current value, reloaded first when it is older than the TTL (and ``reloads_while`` allows)."""
        return self.get_if_fresher_than(self._ttl)

    def get_if_fresher_than(self, max_age_seconds: float) -> T:
        """The value, reloaded first when older than *max_age_seconds* (e.g. sooner than the TTL on a miss)."""
        loaded = self._loaded
        if loaded is None:
            loaded = self._reload(None)
        elif (since := self._monotonic() - loaded.attempted_at) >= max_age_seconds and (
            # A restore's value, not yet tried: whatever the block says. Its retries within the block, as any
            # reload (in an outage they added every due value's budget to each request again), but whatever it
            # says once it has been due a TTL: a reload that always fills the window (a slow catalog, due at each
            # decision when traffic is sparse) would keep keys of unknown age from ever being read again
            loaded.attempted_at == float("-inf")
            or _may_reload()
            or (loaded.loaded_at == float("-inf") and since >= max_age_seconds + self._ttl)
        ):
            loaded = self._reload(loaded)
        return loaded.value

    @property
    def loaded(self) -> bool:
        """Whether a value was ever loaded, so ``peek`` answers."""
        return self._loaded is not None

    def peek(self) -> T:
        """The value the last ``get`` returned, never reloading; raises LookupError before any load."""
        if self._loaded is None:
            raise LookupError(f"{self._name} not loaded yet")
        return self._loaded.value

    def expire(self) -> None:
        """The next ``get`` reloads, and until a load succeeds the value counts as infinitely old.

        For a SnapStart restore: the value was loaded when the snapshot was taken, an unknown time ago, so
        the first request after it checks freshness, a failed reload does not pass the value off as young, and
        the next reload is tried after FIRST_LOAD_RETRY_SECONDS rather than a whole TTL (signing keys days old
        would otherwise sign for five minutes more with a key Track may no longer hold).
        """
        loaded = self._loaded
        if loaded is not None:
            self._loaded = _Loaded(loaded.value, float("-inf"), float("-inf"))

    def age_seconds(self) -> float:
        """Seconds since the current value was loaded (failed reloads do not count); infinite before any."""
        loaded = self._loaded
        return float("inf") if loaded is None else self._monotonic() - loaded.loaded_at

    def _reload(self, stale: _Loaded[T] | None) -> _Loaded[T]:
        try:
            value = self._load() if stale is not None else self._first_load()
        except Exception:
            if stale is None:
                raise
            logger.exception("refresh failed; serving the previous value", extra={"cache": self._name})
            attempted = self._monotonic()
            if stale.loaded_at == float("-inf"):  # expired (a restore): of unknown age, retried as a first load is
                attempted += FIRST_LOAD_RETRY_SECONDS - self._ttl
            self._loaded = _Loaded(stale.value, stale.loaded_at, attempted)
            return self._loaded
        now = self._monotonic()
        self._loaded = _Loaded(value, now, now)
        return self._loaded

    def _first_load(self) -> T:
        for attempt in range(1, self._first_load_attempts):
            try:
                return self._load()
            except Exception:  # noqa: BLE001 - the last attempt's error is the one raised
                logger.warning("first load failed; trying again", extra={"cache": self._name, "attempt": attempt})
        return self._load()
