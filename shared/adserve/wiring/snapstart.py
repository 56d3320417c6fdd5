"""Lambda SnapStart's runtime hooks (python3.12+), for functions deployed with SnapStart on.

SnapStart runs a function's init once per published version, snapshots the memory and starts new
environments from that snapshot. So the snapshot should hold everything a first request would load
(``register``'s *prepare*), and whatever must not be shared by every environment restored from it, or
is stale by the time it is restored, is redone after the restore (``on_restore``): random state,
network connections, and the clocks of the values refreshed on a TTL (catalog, model pointer, keys).

``snapshot_restore_py`` exists only in Lambda's runtime; elsewhere (tests, the local stack, the bench)
``register`` does nothing and ``restored`` is called directly. Without SnapStart the hooks never run.
"""

from collections.abc import Callable
from functools import partial

from adserve.core.observability import metrics

try:
    from snapshot_restore_py import (  # type: ignore[import-not-found]  # only in Lambda's runtime
        register_after_restore,
        register_before_snapshot,
    )
except ImportError:
    register_after_restore = register_before_snapshot = None

_ON_RESTORE: dict[str, Callable[[], None]] = {}


def on_restore(name: str, action: Callable[[], None]) -> None:
    """Run *action* after each restore; a later action of the same name (a service built again) replaces it."""
    _ON_RESTORE[name] = action


def before_snapshot(prepare: Callable[[], object]) -> None:
    """The before-snapshot hook: *prepare*, then the metrics init and *prepare* added, flushed here, once.

    Left pending, they would be in the snapshot and sent again by every environment restored from it: a model
    refused when the version was published would page ``ModelLoadFailures`` at each scale-out, long after it was
    rolled back.
    """
    prepare()
    if metrics.metric_set:
        metrics.flush_metrics()


def restored() -> None:
    """The after-restore hook: every registered action, in registration order, after dropping any metric the
    snapshot still held (sent where it was taken, or of no environment's work); the actions emit what is true now."""
    metrics.clear_metrics()
    for action in list(_ON_RESTORE.values()):
        action()


def register(prepare: Callable[[], object]) -> None:
    """Called by a handler module at import: *prepare* runs before the snapshot, ``restored`` after a restore."""
    if register_before_snapshot is None:
        return
    register_before_snapshot(partial(before_snapshot, prepare))
    register_after_restore(restored)
