"""A handler's service built during Lambda's init phase, on a thread, while the handler's last imports run.

The first request's reads (secrets, Scans, the model pointer) mostly wait on the network, and the HTTP layer's
import (our router and error shapes) is CPU that needs none of them: started before that import,
the reads wait while it runs instead of after it. The init then waits for the build, so an environment's first
request finds the service built, as SnapStart's snapshot holds it.
"""

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from adserve.core.observability import logger

INIT_TYPE_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"
"""Set by Lambda in every execution environment (on-demand, provisioned-concurrency, snap-start), nowhere else."""


@contextmanager
def built_meanwhile(build: Callable[[], object], environ: Mapping[str, str] = os.environ) -> Iterator[None]:
    """In a Lambda init, run *build* on a thread while the block runs and wait for it when the block ends.

    Elsewhere (tests, the local stack, a module loaded to inject a service) nothing is built at import: the
    service is built by the first request, as before. A build that fails here is logged and left to the first
    request, which builds again and reports the failure as it always did.
    """
    if not environ.get(INIT_TYPE_VARIABLE):
        yield
        return
    thread = threading.Thread(target=_build_or_log, args=(build,), name="init-build", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _build_or_log(build: Callable[[], object]) -> None:
    try:
        build()
    except Exception:  # noqa: BLE001 - whatever it is, the first request meets it again and reports it
        logger.warning("building the service during init failed; the first request builds it", exc_info=True)
