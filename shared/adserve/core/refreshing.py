"""A value loaded lazily once per execution environment and reloaded after a time-to-live.

Shared by the catalogs Decide and Record keep: if a reload fails the previous value keeps serving (and the
next attempt waits another TTL, so an outage of the source is not hammered); with no previous value there is
nothing to serve, so the first load may try again at once (``first_load_attempts``) before the error
propagates. A failed reload does not make the value younger: ``age_seconds`` is the time since the last
successful load, so a caller can refuse a value that has been stale for too long.
"""

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from adserve.core.observability import logger

T = TypeVar("T")


class _Block(NamedTuple):
    """What the current ``reloaded_first`` block did on entry: the values it holds (its reads serve them as they
    are), and those whose first load failed there, which its reads raise again instead of loading once more."""

    held: frozenset["RefreshingValue[Any]"]
    unloaded: frozenset["RefreshingValue[Any]"]


_BLOCK: ContextVar[_Block] = ContextVar("reloaded_first", default=_Block(frozenset(), frozenset()))  # noqa: B039 - immutable

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
        self._first_load_error: Exception | None = None
        """Why the last first load failed, while none has succeeded: a ``reloaded_first`` block raises it again."""

    def get(self) -> T:
        """The current value, reloaded first when it is older than the TTL (in a ``reloaded_first`` block that lists
        it, only on the block's entry)."""
        return self.get_if_fresher_than(self._ttl)

    def get_if_fresher_than(self, max_age_seconds: float) -> T:
        """The value, reloaded first when older than *max_age_seconds* (e.g. sooner than the TTL on a miss); held as
        it is within a ``reloaded_first`` block that lists it."""
        loaded = self._loaded
        if loaded is None:
            failure = self._first_load_error
            if failure is not None and self in _BLOCK.get().unloaded:
                raise failure
            loaded = self._reload(None)
        elif self._monotonic() - loaded.attempted_at >= max_age_seconds and self not in _BLOCK.get().held:
            loaded = self._reload(loaded)
        return loaded.value

    def due(self) -> bool:
        """Whether a value is held and older than its TTL (a value never loaded is loaded by its first ``get``, or
        by a ``reloaded_first`` block's entry)."""
        loaded = self._loaded
        return loaded is not None and self._monotonic() - loaded.attempted_at >= self._ttl

    def reloadable(self) -> "Reloadable":
        """The value as a decision reloads it first when due (``reloaded_first``)."""
        return Reloadable(self, self.get)

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
        except Exception as error:
            if stale is None:
                self._first_load_error = error
                raise
            logger.exception("refresh failed; serving the previous value", extra={"cache": self._name})
            attempted = self._monotonic()
            if stale.loaded_at == float("-inf"):  # expired (a restore): of unknown age, retried as a first load is
                attempted += FIRST_LOAD_RETRY_SECONDS - self._ttl
            self._loaded = _Loaded(stale.value, stale.loaded_at, attempted)
            return self._loaded
        now = self._monotonic()
        self._loaded = _Loaded(value, now, now)
        self._first_load_error = None
        return self._loaded

    def _first_load(self) -> T:
        for attempt in range(1, self._first_load_attempts):
            try:
                return self._load()
            except Exception:  # noqa: BLE001 - the last attempt's error is the one raised
                logger.warning("first load failed; trying again", extra={"cache": self._name, "attempt": attempt})
        return self._load()


_NONE: frozenset[RefreshingValue[Any]] = frozenset()


class Reloadable(NamedTuple):
    """A value a function keeps, and how its owner reads it (the catalog indexes a load, the model provider swaps
    models on a new pointer): the read is what reloads it."""

    cache: RefreshingValue[Any]
    read: Callable[[], object]


class Reloadables:
    """The values a decision reloads first (``reloaded_first``), listed once with the set it holds within its
    block, so a decision derives neither."""

    __slots__ = ("held", "loaded", "values")

    def __init__(self, values: Iterable[Reloadable]) -> None:
        self.values = tuple(values)
        self.held = frozenset(value.cache for value in self.values)
        self.loaded = _Block(self.held, _NONE)
        """The block of a decision whose entry left nothing unloaded, the usual one: built once, not per decision."""


def reload_due(values: Sequence[Reloadable]) -> frozenset[RefreshingValue[Any]]:
    """Read now every value of *values* that is due or was never loaded (an init whose read failed): two or more at
    once on threads, so the caller waits for the slowest rather than for their sum; the values still unloaded.

    A failed reload keeps its value, so a read raises here only where it would have anyway (a model provider
    that never loaded a model), once all are done. A first load that fails does not raise here: the value's own
    read in the block raises its error (``reloaded_first``), so a decision that does not read it (explain signs
    nothing) does not fail on it, and one that does fails where it reads it, without loading it a second time.
    """
    pending = [value for value in values if not value.cache.loaded or value.cache.due()]
    if len(pending) == 1:
        errors = [_error_of(pending[0].read)]
    elif pending:
        with ThreadPoolExecutor(max_workers=len(pending), thread_name_prefix="reload") as pool:
            futures = [pool.submit(_error_of, value.read) for value in pending]
        errors = [future.result() for future in futures]
    else:
        return _NONE
    unloaded = frozenset(value.cache for value in pending if not value.cache.loaded)
    for value, error in zip(pending, errors, strict=True):
        if error is not None and value.cache not in unloaded:
            raise error
    return unloaded or _NONE


def _error_of(read: Callable[[], object]) -> Exception | None:
    """What *read* raised, if anything: ``reload_due`` decides where it is raised."""
    try:
        read()
    except Exception as error:  # noqa: BLE001 - handed back to reload_due
        return error
    return None


class reloaded_first:  # noqa: N801 - used as a context manager, named as the phrase it reads like
    """A block (one decision) that first reloads the due values of *values* at once (``reload_due``), then serves
    them as it holds them: one that falls due within the block (a TTL of 0, or one passing during a slow reload)
    waits for the next block, so no reload starts after the entry's and their time budgets never add up. A value
    it does not list reloads on its reads as anywhere else.

    Decide reloads its catalog, model pointer and keys on a request, each within its own client's time budget.
    One after another, stalled dependencies added their budgets up past the function's 3 s timeout; and a cut-off
    (a time window for starting reloads) let a slow catalog, due on every request when traffic is sparse, keep the
    values read after it from ever reloading. A class rather than a generator: it wraps every decision, and
    ``contextlib.contextmanager`` costs a few microseconds more.
    """

    __slots__ = ("_listed", "_token")

    def __init__(self, listed: Reloadables) -> None:
        self._listed = listed

    def __enter__(self) -> None:
        listed = self._listed
        unloaded = reload_due(listed.values)
        self._token = _BLOCK.set(listed.loaded if unloaded is _NONE else _Block(listed.held, unloaded))

    def __exit__(self, *_: object) -> None:
        _BLOCK.reset(self._token)
