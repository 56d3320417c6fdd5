"""The cyclic garbage collector around a cold start's bulk allocations.

Importing a handler and building its service allocate a few hundred thousand objects that live as long as
the process (module code, dataclass methods, pydantic schemas, botocore's service models) and almost no
garbage. The collector, triggered by allocation counts, would rescan them again and again for nothing: about
a sixth of Decide's cold-start CPU on the bench.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No collection inside the block; on leaving it, everything allocated so far is moved out of the
    collector's reach (``gc.freeze``: later collections skip it) and collection resumes if it was on."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
